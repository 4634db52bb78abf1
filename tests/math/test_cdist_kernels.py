"""The blocked Gram kernels behind `Randers.cdist` and `FunkBall.cdist`: exact zeros at coincident
points, gradients against autograd through the pointwise distance (several blocks), and the
coincident-pair search against a brute-force comparison."""

import pytest
import torch

from finslerlib import FunkBall, Randers
from finslerlib.math import funk as fmath
from finslerlib.math import pairwise
from finslerlib.math.pairwise import block_rows, coincident_pairs

# every test with the torch and the compiled epilogue (finslerlib.math.epilogue)
pytestmark = pytest.mark.usefixtures("cdist_epilogue")

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])


def _general_randers(dim, drift, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    a = (q * torch.exp(torch.empty(dim, dtype=torch.float64).uniform_(-1, 1, generator=g))) @ q.T
    w = torch.randn(dim, generator=g, dtype=torch.float64)
    b = torch.linalg.cholesky(a) @ (drift * w / w.norm())
    return Randers(a.to(dtype), b.to(dtype))


def test_coincident_pairs_finds_every_equal_row():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 5, generator=g)
    y = torch.cat([x[[3, 7, 7, 30]], torch.randn(20, 5, generator=g), x[[3]]])
    x[11] = x[3]  # a duplicate inside x too
    y[5, 0] = x[3, 0] + 1e-6  # differs in one coordinate: not coincident
    rows, cols = coincident_pairs(x, y)
    want = (x[:, None, :] == y[None, :, :]).all(-1).nonzero(as_tuple=True)
    got = sorted(zip(rows.tolist(), cols.tolist(), strict=True))
    assert got == sorted(zip(want[0].tolist(), want[1].tolist(), strict=True))
    assert len(got) == 7


@DTYPES
@pytest.mark.parametrize("drift", [0.7, 0.95])
def test_randers_cdist_self_diagonal_is_exactly_zero_with_finite_gradients(dtype, drift):
    """Regression: the Gram form left 6.8e-3 (float32, distances ~ 10) on the diagonal."""
    m = _general_randers(16, drift, dtype)
    g = torch.Generator().manual_seed(2)
    x = (3 * torch.randn(300, 16, generator=g, dtype=torch.float64) + 5).to(dtype).requires_grad_()
    for y in (x, x.detach().clone().requires_grad_()):
        out = m.cdist(x, y)
        assert (out.diagonal() == 0).all(), out.diagonal().abs().max()
        out.sum().backward()
        assert torch.isfinite(x.grad).all() and (y is x or torch.isfinite(y.grad).all())
        x.grad = None
    # batched inputs take the composite path: zeros there too
    out = m.cdist(x.detach()[None, :50], x.detach()[None, :50])
    assert (out[0].diagonal() == 0).all()


@DTYPES
def test_funk_cdist_self_diagonal_is_exactly_zero_with_finite_gradients(dtype):
    """Regression: 1.8e-3 on the diagonal, 8.2e-5 for a point at |x| = 1 - 1.5e-8 (float64)."""
    ball = FunkBall(8)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 8, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.rand(200, 1, generator=g, dtype=torch.float64) * 0.99
    if dtype == torch.float64:
        x[0] = x[0] / x[0].norm() * (1 - 1.5e-8)
    x = x.to(dtype).requires_grad_()
    for fn in (ball.cdist, ball.reverse().cdist):
        out = fn(x, x)
        assert (out.diagonal() == 0).all(), out.diagonal().abs().max()
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None


def _pointwise_grads(dist, x, y, weights):
    """Autograd through the pointwise distance of every pair (the definition of cdist)."""
    x, y = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    d = dist(x[:, None, :].expand(-1, y.shape[0], -1), y[None].expand(x.shape[0], -1, -1))
    return torch.autograd.grad((d * weights).sum(), (x, y)), d.detach()


def _kernel_grads(cdist, x, y, weights):
    x, y = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    d = cdist(x, y)
    return torch.autograd.grad((d * weights).sum(), (x, y)), d.detach()


@pytest.mark.parametrize("drift", [0.3, 0.95])
def test_randers_cdist_gradients_over_several_blocks_match_pointwise_autograd(drift, monkeypatch):
    m = _general_randers(6, drift, torch.float64, seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64)
    y = torch.randn(500, 6, generator=g, dtype=torch.float64)
    assert block_rows(300, 500, x.device) >= 1
    monkeypatch.setattr(pairwise, "block_rows", lambda n, m, device: 64)  # 5 blocks, the last partial
    weights = torch.randn(300, 500, generator=g, dtype=torch.float64)
    (gx, gy), d = _kernel_grads(m.cdist, x, y, weights)
    (rx, ry), want = _pointwise_grads(m.dist, x, y, weights)
    torch.testing.assert_close(d, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(gy, ry, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("reverse", [False, True])
def test_funk_cdist_gradients_over_several_blocks_match_pointwise_autograd(reverse, monkeypatch):
    monkeypatch.setattr(fmath, "block_rows", lambda n, m, device: 64)
    radius = 1.5
    g = torch.Generator().manual_seed(6)

    def points(n):
        v = torch.randn(n, 5, generator=g, dtype=torch.float64)
        size = torch.rand(n, 1, generator=g, dtype=torch.float64) * radius * 0.95
        return v / v.norm(dim=-1, keepdim=True) * size

    x, y = points(300), points(500)
    weights = torch.randn(300, 500, generator=g, dtype=torch.float64)

    def pointwise(a, b):
        return fmath.dist(b, a, radius=radius) if reverse else fmath.dist(a, b, radius=radius)

    (gx, gy), d = _kernel_grads(lambda a, b: fmath.cdist(a, b, radius=radius, reverse=reverse), x, y, weights)
    (rx, ry), want = _pointwise_grads(pointwise, x, y, weights)
    # the Gram form: absolute error ~ sqrt(eps) / Q near the diagonal only; these pairs are apart
    torch.testing.assert_close(d, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gx, rx, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(gy, ry, rtol=1e-7, atol=1e-7)


def test_funk_cdist_double_backward():
    g = torch.Generator().manual_seed(7)
    x = (torch.rand(4, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    y = (torch.rand(3, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    for reverse in (False, True):

        def fn(a, b, reverse=reverse):
            return fmath.cdist(a, b, radius=1.2, reverse=reverse)

        assert torch.autograd.gradgradcheck(fn, (x, y))


def _shell_points(n, dim, radius, g, inner=0.0):
    v = torch.randn(n, dim, generator=g, dtype=torch.float64)
    size = inner + (radius - inner) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    return v / v.norm(dim=-1, keepdim=True) * size


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("upstream", ["weights", "sum", "transposed"])
def test_float32_funk_cdist_gradients_near_the_wall_match_float64_dist(reverse, upstream, monkeypatch):
    """The float32 backward (with the compiled epilogue: its fused weight pass) against autograd
    through float64 `dist` on the same float32 inputs, over several row blocks, with points up to
    |x| = 1 - 1e-3, a near-duplicate and a coincident pair (flagged entries), for a dense upstream
    gradient, the expanded one of `.sum()` and a non-contiguous one. Bound: each pair's term off by
    at most float32 eps times the conditioning 1/Q of the metric at the wall, so a point's gradient
    by that times the sum of its terms' norms (the terms cancel: their sum is down to 1e-2 of it)."""
    monkeypatch.setattr(fmath, "block_rows", lambda n, m, device: 48)  # 3 blocks, the last partial
    g = torch.Generator().manual_seed(12)
    n, m, dim = 130, 70, 16
    x = _shell_points(n, dim, 1 - 1e-3, g, inner=0.5).float()
    y = _shell_points(m, dim, 1 - 1e-3, g).float()
    y[3] = (x[60].double() * (1 - 1e-5)).float()
    y[9] = x[100]
    if upstream == "weights":
        w = torch.randn(n, m, generator=g, dtype=torch.float64)
    elif upstream == "sum":
        w = torch.ones(n, m, dtype=torch.float64)
    else:
        w = torch.randn(m, n, generator=g, dtype=torch.float64).mT

    xs, ys = x.clone().requires_grad_(), y.clone().requires_grad_()
    out = fmath.cdist(xs, ys, reverse=reverse)
    (out.sum() if upstream == "sum" else (out * w.float()).sum()).backward()
    # the oracle per pair: float64 autograd through `dist` (the difference form)
    xd = x.double()[:, None].expand(n, m, dim).clone().requires_grad_()
    yd = y.double()[None].expand(n, m, dim).clone().requires_grad_()
    (fmath.dist(yd, xd) if reverse else fmath.dist(xd, yd)).mul(w).sum().backward()
    eps = torch.finfo(torch.float32).eps
    q_min = 1 - max(x.double().norm(dim=-1).max(), y.double().norm(dim=-1).max()) ** 2
    for got, terms, side in ((xs.grad, xd.grad, 1), (ys.grad, yd.grad, 0)):
        assert got.dtype == torch.float32
        err = (got.double() - terms.sum(side)).norm(dim=-1)
        assert bool((err <= eps / q_min * terms.norm(dim=-1).sum(side)).all()), err.max().item()


@pytest.mark.parametrize("which", [0, 1])
def test_float32_funk_cdist_gradient_of_one_side_only(which):
    """Only one input needs a gradient: the same gradient as when both do."""
    g = torch.Generator().manual_seed(13)
    x, y = _shell_points(300, 8, 0.9, g).float(), _shell_points(260, 8, 0.9, g).float()
    w = torch.randn(300, 260, generator=g)
    both = [x.clone().requires_grad_(), y.clone().requires_grad_()]
    (fmath.cdist(*both) * w).sum().backward()
    one = [x.clone(), y.clone()]
    one[which].requires_grad_()
    (fmath.cdist(*one) * w).sum().backward()
    assert one[1 - which].grad is None
    torch.testing.assert_close(one[which].grad, both[which].grad, rtol=0, atol=0)


@DTYPES
def test_funk_cdist_empty_sides_have_empty_gradients(dtype):
    g = torch.Generator().manual_seed(14)
    for n, m in ((0, 5), (4, 0), (0, 0)):
        x = _shell_points(n, 3, 0.9, g).to(dtype).requires_grad_()
        y = _shell_points(m, 3, 0.9, g).to(dtype).requires_grad_()
        out = fmath.cdist(x, y)
        assert out.shape == (n, m) and out.dtype == dtype
        out.sum().backward()
        assert x.grad.shape == (n, 3) and y.grad.shape == (m, 3)
        assert not x.grad.any() and not y.grad.any()
