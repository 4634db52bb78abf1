"""The fused pairwise kernels behind the head (`pairwise_randers`, `pairwise_dist`) and the
`Randers.cdist` paths that use them, checked against brute force and autograd references."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from finslerlib import Randers
from finslerlib.math.pairwise import pairwise_dist, pairwise_randers, pairwise_sqdist, safe_sqrt
from tests.support import tol
from tests.support.nn_toys import randers_brute_force


def _instance(seed, dim=4, dtype=torch.float64, drift=0.7):
    g = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, dim, generator=g, dtype=dtype) + 2 * torch.eye(dim, dtype=dtype)
    w = torch.randn(dim, generator=g, dtype=dtype)
    w = drift * w / w.norm()
    return factor, w


@given(seed=st.integers(0, 2**20), n=st.integers(1, 5), m=st.integers(1, 5))
def test_pairwise_randers_is_randers_norm_of_differences(seed, n, m):
    factor, w = _instance(seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randn(m, 4, generator=g, dtype=torch.float64)
    a, b = factor @ factor.T, factor @ w
    torch.testing.assert_close(pairwise_randers(x, y, factor, w), randers_brute_force(a, b, x, y))


def test_pairwise_randers_far_from_the_origin_float32():
    # internal centring keeps the Gram trick accurate for clustered points far out
    factor, w = _instance(0, dtype=torch.float32)
    offset = 1000.0 * torch.ones(4)
    x, y = offset + torch.randn(6, 4), offset + torch.randn(5, 4)
    exact = randers_brute_force((factor @ factor.T).double(), (factor @ w).double(), x.double() - offset,
                                y.double() - offset)
    torch.testing.assert_close(pairwise_randers(x, y, factor, w).double(), exact, rtol=1e-4, atol=1e-3)


def test_pairwise_randers_gradients_first_and_second_order():
    factor, w = _instance(1, dim=3)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    factor, w = factor.requires_grad_(), w.requires_grad_()
    assert torch.autograd.gradcheck(pairwise_randers, (x, y, factor, w))
    assert torch.autograd.gradgradcheck(pairwise_randers, (x, y, factor, w))


def test_pairwise_randers_gradient_matches_autograd_composite_including_coincident_points():
    factor, w = _instance(2, dim=3)
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.cat([x[:2], torch.randn(3, 3, dtype=torch.float64)])  # two zero distances
    weights = torch.randn(4, 5, dtype=torch.float64)

    def composite(x, y, factor, w):
        xt, yt = x @ factor, y @ factor
        return safe_sqrt(pairwise_sqdist(xt, yt)) + (yt @ w).unsqueeze(0) - (xt @ w).unsqueeze(1)

    inputs = [t.clone().requires_grad_() for t in (x, y, factor, w)]
    fused = torch.autograd.grad((pairwise_randers(*inputs) * weights).sum(), inputs)
    inputs = [t.clone().requires_grad_() for t in (x, y, factor, w)]
    reference = torch.autograd.grad((composite(*inputs) * weights).sum(), inputs)
    for got, want in zip(fused, reference, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)


def test_pairwise_randers_rejects_batched_inputs():
    with pytest.raises(ValueError, match="pairwise_randers needs"):
        pairwise_randers(torch.randn(2, 3, 4), torch.randn(3, 4), torch.eye(4), torch.zeros(4))


def test_pairwise_dist_matches_torch_cdist_and_safe_sqrt_gradients(dtype, device):
    torch.manual_seed(3)
    x = torch.randn(2, 5, 3, dtype=dtype, device=device)
    y = torch.cat([x[0, :2], torch.randn(4, 3, dtype=dtype, device=device)])
    rtol, atol = tol(dtype)
    torch.testing.assert_close(pairwise_dist(x, y), torch.cdist(x, y), rtol=100 * rtol, atol=1e-3 if
                               dtype == torch.float32 else 1e-7)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ys = [y.clone().requires_grad_() for _ in range(2)]
    weights = torch.randn(2, 5, 6, dtype=dtype, device=device)
    (pairwise_dist(xs[0], ys[0]) * weights).sum().backward()
    (safe_sqrt(pairwise_sqdist(xs[1], ys[1])) * weights).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=100 * rtol, atol=100 * atol)
    torch.testing.assert_close(ys[0].grad, ys[1].grad, rtol=100 * rtol, atol=100 * atol)


def test_pairwise_dist_double_backward():
    x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(pairwise_dist, (x, y))


def _randers_variants():
    torch.manual_seed(4)
    a = torch.randn(4, 4, dtype=torch.float64)
    a = a @ a.T + torch.eye(4, dtype=torch.float64)
    b = torch.linalg.cholesky(a) @ torch.tensor([0.3, -0.2, 0.1, 0.4], dtype=torch.float64)
    full = Randers.learnable(4, dtype=torch.float64)
    low = Randers.learnable(4, rank=2, dtype=torch.float64)
    with torch.no_grad():
        for p in [*full.parameters(), *low.parameters()]:
            p.add_(0.4 * torch.randn_like(p))
    fixed = Randers(a, b)
    return {"fixed": fixed, "learnable": full, "low_rank": low, "reverse_fixed": fixed.reverse(),
            "reverse_learnable": full.reverse()}


@pytest.mark.parametrize("name", list(_randers_variants()))
def test_randers_cdist_paths_agree_with_brute_force(name):
    m = _randers_variants()[name]
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    expected = randers_brute_force(m.a.detach(), m.b.detach(), x, y)
    torch.testing.assert_close(m.cdist(x, y).detach(), expected)  # 2-D: fused kernel
    batched = m.cdist(torch.stack([x, x + 1]), y).detach()  # batched: generic Gram path
    torch.testing.assert_close(batched[0], expected)
    assert torch.autograd.gradcheck(lambda x, y: m.cdist(x, y), (x.requires_grad_(), y.requires_grad_()))


def test_learnable_parameter_gradients_agree_between_fused_and_batched_paths():
    m = _randers_variants()["learnable"]
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    weights = torch.randn(5, 3, dtype=torch.float64)
    fused = torch.autograd.grad((m.cdist(x, y) * weights).sum(), list(m.parameters()))
    batched = torch.autograd.grad((m.cdist(x[None], y)[0] * weights).sum(), list(m.parameters()))
    for got, want in zip(fused, batched, strict=True):
        torch.testing.assert_close(got, want)


def test_randers_expmap0_logmap0_are_the_identity():
    m = Randers.learnable(3)
    u = torch.randn(2, 3)
    assert m.expmap0(u) is u and m.logmap0(u) is u
    torch.testing.assert_close(m.expmap(torch.zeros(3), u), m.expmap0(u))


def test_fixed_randers_cdist_after_load_state_dict():
    # regression: the (non-persistent) Cholesky factor used by cdist went stale on load
    target = Randers(4 * torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
    loaded = Randers(torch.eye(2, dtype=torch.float64))
    loaded.load_state_dict(target.state_dict())
    x, y = torch.zeros(1, 2, dtype=torch.float64), torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(loaded.cdist(x, y), torch.tensor([[2.5]], dtype=torch.float64))
    torch.testing.assert_close(loaded.cdist(x, y), loaded.dist(x, y).unsqueeze(-1))
