"""The head's fused logits kernel `unit_randers_logits` (scale and geodesic margin folded in):
gradients against finite differences (`gradcheck`, float64) at zero, strong and moderate drifts
and at coincident points, float32 against the float64 brute force within an error bound derived
from the Gram trick's rounding, and the head's margin forward against its definition."""

import pytest
import torch

from finslerlib.math.pairwise import pairwise_sqdist, safe_sqrt
from finslerlib.nn import FAIMHead
from finslerlib.nn._kernels import unit_randers_logits

SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}
DRIFTS = {"zero": 0.0, "moderate": 0.5, "strong": 0.95}


def _drift(dim, size, dtype=torch.float64, seed=0):
    w = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return size * w / w.norm()


def _brute(s, m, w, sign):
    """Unit Randers distances from the [B, C, R] differences (float64 oracle)."""
    diff = m.unsqueeze(0) - s.unsqueeze(1)
    alpha, drift = diff.norm(dim=-1), diff @ w
    return alpha + drift.abs() if sign == 0 else alpha + sign * drift


@pytest.mark.parametrize("drift", DRIFTS)
@pytest.mark.parametrize("direction", SIGNS)
def test_gradcheck_with_scale_and_margin(direction, drift):
    torch.manual_seed(11)
    s = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    m = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    # "max" at zero drift has a kink in w (|w . (m - s)| at w = 0): w is held fixed there
    w = _drift(3, DRIFTS[drift]).requires_grad_(not (direction == "max" and drift == "zero"))
    scale = torch.tensor(-2.5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 4, 2])

    def f(*args):
        return unit_randers_logits(*args, sign=SIGNS[direction], labels=labels, margin=0.3)

    assert torch.autograd.gradcheck(f, (s, m, w, scale))
    assert torch.autograd.gradgradcheck(f, (s, m, w, scale))


@pytest.mark.parametrize("direction", SIGNS)
def test_coincident_points_give_finite_gradients_equal_to_the_safe_composite(direction):
    # a feature equal to a prototype: the |.| part of the distance contributes 0 (safe_sqrt's
    # choice), the drift part its ordinary gradient; checked against autograd through safe_sqrt.
    # The Gram trick leaves a rounding residue delta ~ R eps T (T ~ |s|^2) for alpha^2 there; when
    # it is positive the entry contributes (s - m) / sqrt(delta) with s - m computed as a
    # difference of terms of size |s| / sqrt(delta): an error of about sqrt(R eps) |s|, times
    # the weights and the scale
    torch.manual_seed(12)
    s = torch.randn(4, 3, dtype=torch.float64)
    m = torch.cat([s[1:3], torch.randn(3, 3, dtype=torch.float64)])
    w = _drift(3, 0.7)
    scale = torch.tensor(-1.5, dtype=torch.float64)
    labels = torch.tensor([1, 0, 1, 4])
    weights = torch.randn(4, 5, dtype=torch.float64)
    sign = SIGNS[direction]

    def composite(s, m, w, scale):
        alpha = safe_sqrt(pairwise_sqdist(s, m))
        t = (m @ w).unsqueeze(0) - (s @ w).unsqueeze(1)
        d = alpha + t.abs() if sign == 0 else alpha + sign * t
        return scale * (d + 0.2 * torch.nn.functional.one_hot(labels, 5).double())

    fused_in = [t.clone().requires_grad_() for t in (s, m, w, scale)]
    ref_in = [t.clone().requires_grad_() for t in (s, m, w, scale)]
    out = unit_randers_logits(*fused_in, sign=sign, labels=labels, margin=0.2)
    fused = torch.autograd.grad((out * weights).sum(), fused_in)
    reference = torch.autograd.grad((composite(*ref_in) * weights).sum(), ref_in)
    size = max(float(s.abs().max()), float(m.abs().max()))
    atol = 10 * (3 * torch.finfo(torch.float64).eps) ** 0.5 * size * 1.5 * float(weights.abs().sum(0).max())
    if sign == 0:
        # "max" has a second kink there, |w . (m - s)|: the kernel takes sign(u_j - v_i) of a
        # rounding-sized difference, another subgradient (its drift part moves within
        # [-1, 1] |w| per coincident entry, times the weights and the scale)
        atol += 2 * 1.5 * float(w.abs().max() * weights.abs().sum() + (s.abs().max() + m.abs().max()))
    for got, want in zip(fused, reference, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=0.0, atol=atol)


@pytest.mark.parametrize("drift", DRIFTS)
@pytest.mark.parametrize("direction", SIGNS)
def test_float32_within_the_gram_rounding_bound(direction, drift):
    # float32 against the float64 brute force. The Gram trick computes alpha^2 = |s_i - m_j|^2
    # from terms of size at most T_ij = (|s_i - c| + |m_j| + |c|)^2 (c: the prototypes' mean),
    # each a sum of R products: its error is at most about 2 R eps T_ij, so alpha's is
    # 2 R eps T_ij / (2 alpha_ij) (alpha_ij >= 0.5 here); the drift term's error is
    # R eps |w| (|s_i| + |m_j|). Tested with a factor 4 over these bounds, on points offset
    # from the origin (where centring matters).
    g = torch.Generator().manual_seed(13)
    dim, sign = 16, SIGNS[direction]
    offset = 3.0 * torch.randn(dim, generator=g, dtype=torch.float64)
    s64 = offset + torch.randn(32, dim, generator=g, dtype=torch.float64)
    m64 = offset + torch.randn(40, dim, generator=g, dtype=torch.float64)
    w64 = _drift(dim, DRIFTS[drift], seed=14)
    exact = _brute(s64, m64, w64, sign)
    alpha = torch.cdist(s64, m64)
    assert alpha.min() >= 0.5
    eps = torch.finfo(torch.float32).eps
    c = m64.mean(0)
    terms = ((s64 - c).norm(dim=1, keepdim=True) + m64.norm(dim=1) + c.norm()) ** 2
    sizes = s64.norm(dim=1, keepdim=True) + m64.norm(dim=1)
    bound = dim * eps * terms / alpha + dim * eps * w64.norm() * sizes
    got = unit_randers_logits(s64.float(), m64.float(), w64.float(), sign=sign).double()
    assert ((got - exact).abs() <= 4 * bound).all()
    # the same through the scale and the margin
    scale = torch.tensor(-3.0)
    labels = torch.arange(32) % 40
    scaled = unit_randers_logits(s64.float(), m64.float(), w64.float(), scale, sign=sign, labels=labels,
                                 margin=0.5).double()
    target = torch.nn.functional.one_hot(labels, 40).double()
    assert ((scaled - (-3.0) * (exact + 0.5 * target)).abs() <= 3.0 * (4 * bound + eps * (exact + 0.5))).all()


@pytest.mark.parametrize("direction", SIGNS)
def test_float32_gradients_within_a_conditioning_bound(direction):
    # first derivatives in float32 against float64: each entry's gradient involves
    # (s_i - m_j) / alpha_ij, whose error is the alpha error above over alpha, so the relative
    # error of the whole gradient is bounded by R eps T / alpha_min^2 (T the largest term)
    g = torch.Generator().manual_seed(15)
    dim, sign = 8, SIGNS[direction]
    s64 = torch.randn(12, dim, generator=g, dtype=torch.float64)
    m64 = torch.randn(10, dim, generator=g, dtype=torch.float64) + 0.5
    w64 = _drift(dim, 0.6, seed=16)
    scale64 = torch.tensor(-2.0, dtype=torch.float64)
    weights = torch.randn(12, 10, generator=g, dtype=torch.float64)
    labels = torch.arange(12) % 10
    alpha = torch.cdist(s64, m64)
    assert alpha.min() >= 0.3
    c = m64.mean(0)
    terms = ((s64 - c).norm(dim=1).max() + m64.norm(dim=1).max() + c.norm()) ** 2
    rtol = 4 * dim * torch.finfo(torch.float32).eps * float(terms / alpha.min() ** 2)
    grads = {}
    for dtype in (torch.float64, torch.float32):
        leaves = [t.to(dtype).requires_grad_() for t in (s64, m64, w64, scale64)]
        out = unit_randers_logits(*leaves, sign=sign, labels=labels, margin=0.25)
        grads[dtype] = torch.autograd.grad((out * weights.to(dtype)).sum(), leaves)
    for got, want in zip(grads[torch.float32], grads[torch.float64], strict=True):
        err = (got.double() - want).norm()
        assert err <= rtol * want.norm() + 1e-30, (float(err), rtol * float(want.norm()))


@pytest.mark.parametrize("direction", SIGNS)
def test_margin_logits_and_gradients_match_adding_it_after_the_kernel(direction):
    torch.manual_seed(17)
    s, m = torch.randn(6, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    w, scale = _drift(4, 0.4), torch.tensor(-1.3, dtype=torch.float64)
    labels = torch.tensor([6, 0, 3, 3, 1, 6], dtype=torch.int32)  # int32 labels work too
    weights = torch.randn(6, 7, dtype=torch.float64)
    fused_in = [t.clone().requires_grad_() for t in (s, m, w, scale)]
    ref_in = [t.clone().requires_grad_() for t in (s, m, w, scale)]
    fused = unit_randers_logits(*fused_in, sign=SIGNS[direction], labels=labels, margin=0.7)
    plain = unit_randers_logits(*ref_in[:3], sign=SIGNS[direction])
    onehot = torch.nn.functional.one_hot(labels.long(), 7).double()
    reference = ref_in[3] * (plain + 0.7 * onehot)
    torch.testing.assert_close(fused, reference, rtol=1e-13, atol=1e-13)
    got = torch.autograd.grad((fused * weights).sum(), fused_in)
    want = torch.autograd.grad((reference * weights).sum(), ref_in)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_bad_labels_shape_raises():
    s, m, w = torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(2)
    with pytest.raises(ValueError, match="labels must have shape"):
        unit_randers_logits(s, m, w, labels=torch.zeros(2, dtype=torch.long), margin=1.0)


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("direction", SIGNS)
def test_head_margin_forward_is_scale_times_distance_plus_margin(direction, rank):
    # head(x, y) = -s (d + m [k = y]) with the learnable scale's gradient, for the fused path
    # and for the same model on a given manifold (the scatter path)
    torch.manual_seed(18)
    head = FAIMHead(4, 5, direction=direction, rank=rank, margin=0.4, dtype=torch.float64)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    y = torch.tensor([[0, 4], [2, 2], [1, 3]])
    out = head(x, y)
    expected = -head.scale * (head.distances(x) + 0.4 * torch.nn.functional.one_hot(y, 5).double())
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    params = [p for p in head.parameters()]
    got = torch.autograd.grad((out * weights).sum(), params)
    want = torch.autograd.grad((expected * weights).sum(), params)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
