"""RandersField: position-dependent Randers metrics with numerical geodesics.

Oracles, all independent of the solver: the constant-coefficient `Randers` closed forms, the Funk
metric's closed forms (written out here from the reference, not imported), the scalar root-find
for a rotational Killing wind, central finite differences for every gradient, and geometric laws
(hypothesis).
"""

import math

import geoopt
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import brentq

from finslerlib import Randers, RandersField
from finslerlib.geodesics import GeodesicConvergenceError
from finslerlib.math import randers as rmath

F64 = torch.float64


# ---------------------------------------------------------------------------- fields used here
def _constant_data(dim=3, seed=0, drift=0.6):
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=g, dtype=F64)
    a = m @ m.mT + 0.5 * torch.eye(dim, dtype=F64)
    b = torch.randn(dim, generator=g, dtype=F64)
    b = drift * b / rmath.drift_norm(a, b)
    return a, b


def _funk_a(x):
    r2 = (x * x).sum(-1)[..., None, None]
    eye = torch.eye(x.shape[-1], dtype=x.dtype)
    return ((1 - r2) * eye + x[..., :, None] * x[..., None, :]) / (1 - r2) ** 2


def _funk_b(x):
    return x / (1 - (x * x).sum(-1, keepdim=True))


def _funk_norm(x, v):
    """Funk metric written from the reference: (sqrt((1-|x|^2)|v|^2 + <x,v>^2) + <x,v>)/(1-|x|^2)."""
    r2 = (x * x).sum(-1)
    xv = (x * v).sum(-1)
    return (torch.sqrt((1 - r2) * (v * v).sum(-1) + xv**2) + xv) / (1 - r2)


def _ball_points(n, dim, radius, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, dim, generator=g, dtype=F64)
    r = radius * torch.rand(n, 1, generator=g, dtype=F64) ** (1 / dim)
    return u / u.norm(dim=-1, keepdim=True) * r


class _Drift(torch.nn.Module):
    """A small learnable drift field b(x) = 0.3 tanh(W x + c), |b| < 0.3 * sqrt(D)."""

    def __init__(self, dim):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.lin = torch.nn.Linear(dim, dim, dtype=F64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(dim, dim, generator=g, dtype=F64))
            self.lin.bias.copy_(torch.randn(dim, generator=g, dtype=F64) * 0.3)

    def forward(self, x):
        return 0.3 * torch.tanh(self.lin(x))


class _Conformal(torch.nn.Module):
    """a(x) = (1 + s (sin x_0)^2 + 0.3 |x|^2) I with a learnable scale s."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5, dtype=F64))

    def forward(self, x):
        c = 1 + self.scale * torch.sin(x[..., 0]) ** 2 + 0.3 * (x * x).sum(-1)
        return c[..., None, None] * torch.eye(x.shape[-1], dtype=x.dtype)


def _nonlinear_field(dim=2, **options):
    return RandersField(_Conformal(), _Drift(dim), dim=dim, **options)


# ---------------------------------------------------------------------------- constant field == Randers
def test_constant_field_reproduces_randers():
    a, b = _constant_data()
    closed = Randers(a, b)
    field = RandersField(lambda x: a, lambda x: b.expand(x.shape), dim=3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=F64)
    y = torch.randn(6, 3, generator=g, dtype=F64)
    u = torch.randn(6, 3, generator=g, dtype=F64)
    torch.testing.assert_close(field.dist(x, y), closed.dist(x, y), rtol=0, atol=1e-6)
    torch.testing.assert_close(field.logmap(x, y), closed.logmap(x, y), rtol=0, atol=1e-6)
    torch.testing.assert_close(field.expmap(x, u), closed.expmap(x, u), rtol=0, atol=1e-6)
    torch.testing.assert_close(field.cdist(x[:4], y), closed.cdist(x[:4], y), rtol=0, atol=1e-6)
    # pointwise structure: the same closed forms at (a, b)
    torch.testing.assert_close(field.dual_norm(x, u), closed.dual_norm(x, u))
    torch.testing.assert_close(field.egrad2rgrad(x, u), closed.egrad2rgrad(x, u))
    torch.testing.assert_close(field.fundamental_tensor(x, u), closed.fundamental_tensor(x, u))


def test_constant_field_gradients_match_randers():
    a, b = _constant_data(seed=4)
    closed = Randers(a, b)
    field = RandersField(lambda x: a, lambda x: b.expand(x.shape), dim=3)
    g = torch.Generator().manual_seed(5)
    x0 = torch.randn(4, 3, generator=g, dtype=F64)
    y0 = torch.randn(4, 3, generator=g, dtype=F64)

    def grads(m, fn):
        x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
        fn(m, x, y).backward()
        return x.grad, y.grad

    for fn in (lambda m, x, y: m.dist(x, y).sum(), lambda m, x, y: (m.logmap(x, y) ** 3).sum()):
        for got, want in zip(grads(field, fn), grads(closed, fn), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_constant_field_parameter_gradient_matches_closed_form():
    a, b = _constant_data(seed=6)
    chol = torch.nn.Parameter(torch.linalg.cholesky(a))
    drift = torch.nn.Parameter(b.clone())
    field = RandersField(lambda x: chol @ chol.mT, lambda x: drift.expand(x.shape), dim=3)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    got = torch.autograd.grad(field.dist(x, y).sum(), (chol, drift))
    want = torch.autograd.grad(rmath.norm(y - x, chol @ chol.mT, drift).sum(), (chol, drift))
    for g_, w_ in zip(got, want, strict=True):
        torch.testing.assert_close(g_, w_, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- Funk field
def test_funk_field_reproduces_closed_forms():
    field = RandersField(_funk_a, _funk_b, dim=3, steps=32)
    x, y = _ball_points(12, 3, 0.7, seed=8), _ball_points(12, 3, 0.7, seed=9)
    chord = _funk_norm(x, y - x)
    want = -torch.log1p(-chord)
    torch.testing.assert_close(field.dist(x, y), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(field.logmap(x, y), (want / chord)[:, None] * (y - x), rtol=0, atol=1e-5)
    v = 0.8 * (y - x)
    f = _funk_norm(x, v)
    want_exp = x + ((1 - torch.exp(-f)) / f)[:, None] * v
    torch.testing.assert_close(field.expmap(x, v), want_exp, rtol=0, atol=1e-5)
    # The pointwise norm is the Funk formula (independent expression).
    torch.testing.assert_close(field.norm(x, v), _funk_norm(x, v))


def test_funk_field_distance_gradients_match_closed_form():
    field = RandersField(_funk_a, _funk_b, dim=2, steps=32)
    x0, y0 = _ball_points(5, 2, 0.6, seed=10), _ball_points(5, 2, 0.6, seed=11)
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    gx, gy = torch.autograd.grad(field.dist(x, y).sum(), (x, y))
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    wx, wy = torch.autograd.grad((-torch.log1p(-_funk_norm(x, y - x))).sum(), (x, y))
    torch.testing.assert_close(gx, wx, rtol=0, atol=1e-5)
    torch.testing.assert_close(gy, wy, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------- rotational Killing wind
def _rotation_oracle(x, y, omega):
    """Smallest T >= 0 with |R(-omega T) y - x| = T (forward geodesics are rotated lines)."""

    def gap(t):
        c, s = math.cos(-omega * t), math.sin(-omega * t)
        z = (c * y[0] - s * y[1], s * y[0] + c * y[1])
        return math.hypot(z[0] - x[0], z[1] - x[1]) - t

    grid = [0.01 * i for i in range(1, 2000)]
    lo = 0.0
    for hi in grid:
        if gap(hi) <= 0:
            return brentq(gap, lo, hi, xtol=1e-14, rtol=1e-14)
        lo = hi
    raise AssertionError("no root")


def test_rotational_wind_matches_root_find_oracle():
    omega = 0.4
    field = RandersField.from_navigation(
        wind=lambda x: omega * torch.stack([-x[..., 1], x[..., 0]], -1), dim=2, steps=32
    )
    x, y = _ball_points(12, 2, 1.2, seed=12), _ball_points(12, 2, 1.2, seed=13)
    got = field.dist(x, y)
    want = torch.tensor([_rotation_oracle(p.tolist(), q.tolist(), omega) for p, q in zip(x, y, strict=True)])
    torch.testing.assert_close(got, want.to(F64), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- gradients vs finite differences
def _central(fn, t, eps=1e-6):
    """Central differences of a scalar function of `t`, one evaluation per perturbation."""
    out = torch.zeros_like(t)
    flat = out.view(-1)
    for i in range(t.numel()):
        d = torch.zeros_like(t).view(-1)
        d[i] = eps
        d = d.view_as(t)
        flat[i] = (fn(t + d) - fn(t - d)) / (2 * eps)
    return out


def _central_pairs(fn, x, y, wrt, eps=1e-6):
    """Central differences of `fn(x, y).sum()` for per-pair `fn`, all perturbations in one batch."""
    n, d = x.shape
    steps = eps * torch.eye(d, dtype=x.dtype)
    moved = (x if wrt == 0 else y)[:, None, :] + torch.stack([steps, -steps])[:, None]  # [2, n, d, d]
    fixed = (y if wrt == 0 else x)[:, None, :].expand(n, d, d)
    args = (moved, fixed.expand(2, n, d, d)) if wrt == 0 else (fixed.expand(2, n, d, d), moved)
    vals = fn(*args)  # [2, n, d]
    return (vals[0] - vals[1]) / (2 * eps)


def test_dist_gradients_match_finite_differences():
    field = _nonlinear_field(steps=24, atol=1e-12, rtol=1e-12)
    x0 = torch.tensor([[0.3, -0.6], [-0.4, 0.2]], dtype=F64)
    y0 = torch.tensor([[-0.5, 0.7], [0.8, 0.9]], dtype=F64)
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    gx, gy = torch.autograd.grad(field.dist(x, y).sum(), (x, y))
    with torch.no_grad():
        torch.testing.assert_close(gx, _central_pairs(field.dist, x0, y0, 0), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gy, _central_pairs(field.dist, x0, y0, 1), rtol=1e-6, atol=1e-7)
    # parameters of the nn.Module fields (Simpson quadrature of dF/dtheta along the geodesic)
    params = [field.metric_fn.scale, field.drift_fn.lin.weight]
    grads = torch.autograd.grad(field.dist(x0, y0).sum(), params)
    for p, g, index in zip(params, grads, [(), (0, 1)], strict=True):
        base = p.detach().clone()

        def at(value, p=p, index=index, base=base):
            with torch.no_grad():
                moved = base.clone()
                moved[index] = value
                p.copy_(moved)
                return field.dist(x0, y0).sum()

        fd = _central(at, base[index])
        with torch.no_grad():
            p.copy_(base)
        torch.testing.assert_close(g[index], fd, rtol=1e-5, atol=1e-7)


def test_logmap_and_expmap_gradients_match_finite_differences():
    field = _nonlinear_field(steps=16, atol=1e-12, rtol=1e-12)
    x0 = torch.tensor([[0.2, -0.3]], dtype=F64)
    y0 = torch.tensor([[-0.6, 0.5]], dtype=F64)
    w = torch.tensor([1.3, -0.7], dtype=F64)
    scale = field.metric_fn.scale
    x, y = x0.clone().requires_grad_(), y0.clone().requires_grad_()
    gx, gy, gs = torch.autograd.grad((field.logmap(x, y) * w).sum(), (x, y, scale))

    def weighted_log(a, b):
        return (field.logmap(a, b) * w).sum(-1)

    with torch.no_grad():
        torch.testing.assert_close(gx, _central_pairs(weighted_log, x0, y0, 0), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gy, _central_pairs(weighted_log, x0, y0, 1), rtol=1e-6, atol=1e-7)

    def at(value):
        with torch.no_grad():
            scale.copy_(value)
            return (field.logmap(x0, y0) * w).sum()

    base = scale.detach().clone()
    fd = _central(at, base)
    with torch.no_grad():
        scale.copy_(base)
    torch.testing.assert_close(gs, fd, rtol=1e-5, atol=1e-7)
    # expmap: autograd through the RK4 integrator
    u0 = torch.tensor([[0.7, 0.4]], dtype=F64)
    x, u = x0.clone().requires_grad_(), u0.clone().requires_grad_()
    gx, gu = torch.autograd.grad((field.expmap(x, u) * w).sum(), (x, u))

    def weighted_exp(a, b):
        return (field.expmap(a, b) * w).sum(-1)

    with torch.no_grad():
        torch.testing.assert_close(gx, _central_pairs(weighted_exp, x0, u0, 0), rtol=1e-6, atol=1e-8)
        torch.testing.assert_close(gu, _central_pairs(weighted_exp, x0, u0, 1), rtol=1e-6, atol=1e-8)


def test_zero_distance_has_finite_gradient():
    field = _nonlinear_field()
    x = torch.tensor([[0.3, 0.1]], dtype=F64, requires_grad=True)
    d = field.dist(x, x.detach().clone().requires_grad_())
    assert d.item() == 0.0
    (g,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(g).all()
    assert torch.equal(field.logmap(x.detach(), x.detach()), torch.zeros_like(x))


# ---------------------------------------------------------------------------- geometric laws
_coord = st.floats(-0.9, 0.9, allow_nan=False, allow_infinity=False)
_point = st.tuples(_coord, _coord)


@given(_point, _point, _point)
def test_geometric_laws(p, q, r):
    field = _nonlinear_field(steps=8)
    x, y, z = (torch.tensor(t, dtype=F64) for t in (p, q, r))
    src = torch.stack([x, y, x])
    dst = torch.stack([y, z, z])
    with torch.no_grad():
        v = field.logmap(src, dst)
        d = field.dist(src, dst)
        # F(log_x y) = d(x -> y), exp o log = id
        torch.testing.assert_close(field.norm(src, v), d, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(field.expmap(src, v), dst, rtol=0, atol=1e-8)
        # positivity, and d(x -> x) = 0
        distinct = (src != dst).any(-1)
        assert (d[distinct] > 0).all()
        assert (d[~distinct] == 0).all()
        # triangle inequality d(x -> z) <= d(x -> y) + d(y -> z), up to the RK4 discretization error
        assert d[2] <= d[0] + d[1] + 1e-6


def test_reverse_swaps_direction():
    field = _nonlinear_field(steps=32)
    x = torch.tensor([[0.1, -0.5], [0.6, 0.2], [-0.3, -0.3]], dtype=F64)
    y = torch.tensor([[-0.4, 0.8], [-0.7, 0.1], [0.5, 0.5]], dtype=F64)
    forward, backward = field.dist(x, y), field.dist(y, x)
    assert (forward - backward).abs().min() > 1e-2  # the metric is genuinely asymmetric here
    torch.testing.assert_close(field.reverse().dist(y, x), forward, rtol=0, atol=1e-7)
    # it shares the parameters of the field
    assert {id(p) for p in field.reverse().parameters()} == {id(p) for p in field.parameters()}


def test_float32_matches_float64():
    field = RandersField(lambda x: (1 + (x * x).sum(-1))[..., None, None] * torch.eye(2, dtype=x.dtype),
                         lambda x: 0.3 * torch.tanh(x), dim=2)
    x = torch.tensor([[0.1, -0.4], [0.5, 0.5]], dtype=F64)
    y = torch.tensor([[-0.7, 0.3], [-0.2, 0.9]], dtype=F64)
    d64 = field.dist(x, y)
    d32 = field.dist(x.float(), y.float())
    assert d32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), d64, rtol=1e-4, atol=1e-5)


def test_subclass_overriding_fields():
    class HalfPlane(RandersField):
        """Poincare half-plane a = I / x_1^2 with the exact drift b = d(0.2 log x_1)."""

        def a(self, x):
            return torch.eye(2, dtype=x.dtype) / x[..., 1, None, None] ** 2

        def b(self, x):
            return torch.stack([torch.zeros_like(x[..., 1]), 0.2 / x[..., 1]], -1)

    field = HalfPlane(dim=2, steps=32)
    x = torch.tensor([[0.0, 1.0], [0.3, 0.8], [-0.2, 1.5]], dtype=F64)
    y = torch.tensor([[0.0, 2.0], [-0.4, 1.1], [0.5, 0.9]], dtype=F64)
    # An exact drift df leaves the geodesics Riemannian and adds f(y) - f(x) to the distance.
    hyperbolic = torch.acosh(1 + ((y - x) ** 2).sum(-1) / (2 * x[:, 1] * y[:, 1]))
    want = hyperbolic + 0.2 * torch.log(y[:, 1] / x[:, 1])
    torch.testing.assert_close(field.dist(x, y), want, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- validation and failures
def test_invalid_field_raises_naming_point_and_value():
    too_windy = RandersField(b=lambda x: x, dim=2)
    with pytest.raises(ValueError, match=r"x = \[2, 0\].*= 2 >= 1"):
        too_windy.dist(torch.zeros(2, dtype=F64), torch.tensor([2.0, 0.0], dtype=F64))
    def diagonal(x):
        return torch.diag_embed(torch.stack([torch.ones_like(x[..., 0]), x[..., 0]], -1))

    not_spd = RandersField(a=diagonal, dim=2)
    with pytest.raises(ValueError, match=r"not positive definite at x = \[-0.5, 1\].*-0.5"):
        not_spd.norm(torch.tensor([[1.0, 0.0], [-0.5, 1.0]], dtype=F64), torch.ones(2, 2, dtype=F64))
    def skew(x):
        a = torch.eye(2, dtype=x.dtype).expand(*x.shape[:-1], 2, 2).clone()
        a[..., 0, 1] = 0.3  # a[1, 0] stays 0: not symmetric
        return a

    with pytest.raises(ValueError, match=r"must be symmetric: max \|a - a\^T\| = 0.3"):
        RandersField(a=skew, dim=2).dist(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    windy_nav = RandersField.from_navigation(wind=lambda x: x, dim=2)
    with pytest.raises(ValueError, match=r"x = \[1.5, 0\].*1.5 >= 1"):
        windy_nav.norm(torch.tensor([1.5, 0.0], dtype=F64), torch.ones(2, dtype=F64))
    # a geodesic that leaves the valid region
    funk = RandersField(_funk_a, _funk_b, dim=2)
    with pytest.raises(ValueError, match="leaves the region"):
        funk.expmap(torch.zeros(1, 2, dtype=F64), torch.tensor([[1e4, 0.0]], dtype=F64))
    # validate=False skips the checks (for speed): no message, just what the numbers give
    unchecked = RandersField(b=lambda x: x, dim=2, validate=False)
    assert unchecked.norm(torch.zeros(2), torch.ones(2)).item() == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError):
        RandersField(a=3.0, dim=2)
    with pytest.raises(ValueError, match="shape"):
        _nonlinear_field().dist(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))


def test_non_convergence_raises_or_reports():
    field = _nonlinear_field(max_iter=0)
    x = torch.tensor([[0.0, 0.0], [0.5, 0.5]], dtype=F64)
    y = torch.tensor([[0.0, 0.0], [-0.5, 0.9]], dtype=F64)
    with pytest.raises(GeodesicConvergenceError, match="did not converge for 1 of 2") as err:
        field.dist(x, y)
    assert err.value.indices.tolist() == [1]
    d = field.dist(x, y, on_failure="nan")
    assert d[0].item() == 0.0 and math.isnan(d[1].item())
    v = field.logmap(x, y, on_failure="nan")
    assert torch.isnan(v[1]).all() and (v[0] == 0).all()
    report = field.solve(x, y)
    assert report.converged.tolist() == [True, False]
    assert report.residual[1] > report.tolerance[1]
    # with iterations allowed, the same pair converges
    assert field.solve(x, y, max_iter=30).converged.all()


# ---------------------------------------------------------------------------- geoopt
def test_manifold_parameter_trains_with_riemannian_sgd():
    field = _nonlinear_field(steps=8)
    target = torch.tensor([0.4, -0.3], dtype=F64)
    point = geoopt.ManifoldParameter(torch.tensor([-0.5, 0.6], dtype=F64), manifold=field)
    opt = geoopt.optim.RiemannianSGD([point], lr=0.3)
    start = field.dist(point.detach(), target).item()
    for _ in range(25):
        opt.zero_grad()
        loss = field.dist(point, target) ** 2
        loss.backward()
        opt.step()
    assert field.dist(point.detach(), target).item() < 1e-3 * start


# ---------------------------------------------------------------------------- distant points
def _bench_field(steps):
    # the nonlinear 3-D field of benchmarks/bench_field_dist.py (freq 1.5, drift 0.35)
    def a(x):
        s = 1.0 + 0.5 * torch.sin(1.5 * x).pow(2).sum(-1)
        return s[..., None, None] * torch.eye(3, dtype=x.dtype)

    def b(x):
        return 0.35 * torch.sin(1.5 * x[..., [1, 2, 0]])

    return RandersField(a, b, dim=3, steps=steps)


def _polyline_length(field, x, y, segments):
    """Independent oracle: length of the scipy-minimized energy of a fine polyline x -> y."""
    from scipy.optimize import minimize

    t = torch.linspace(0, 1, segments + 1, dtype=F64)[1:-1, None]
    start = (x + t * (y - x)).reshape(-1).numpy()

    def parts(flat):
        nodes = torch.cat([x[None], torch.as_tensor(flat).view(segments - 1, 3), y[None]])
        delta = nodes[1:] - nodes[:-1]
        return field.norm(0.5 * (nodes[1:] + nodes[:-1]), delta)

    def energy(flat):
        z = torch.tensor(flat, dtype=F64, requires_grad=True)
        e = segments * (parts(z) ** 2).sum()
        (g,) = torch.autograd.grad(e, z)
        return e.item(), g.numpy()

    res = minimize(energy, start, jac=True, method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-11})
    with torch.no_grad():
        return parts(torch.as_tensor(res.x)).sum().item()


def test_distant_pairs_converge_and_match_fine_polyline():
    # Points spread over [-2, 2]^3: shooting from the straight chord fails on many of these pairs
    # (checked below, so this test cannot pass vacuously); the polyline start makes all converge.
    from finslerlib.geodesics import solve_boundary_value

    torch.manual_seed(0)
    x = (torch.rand(256, 3, dtype=F64) * 2 - 1) * 2
    y = (torch.rand(256, 3, dtype=F64) * 2 - 1) * 2
    field = _bench_field(steps=16)
    chord = solve_boundary_value(
        field.raw_coefficients, x, y, steps=16, start="chord", initial_jacobian="chord"
    )
    hard = (~chord.converged).nonzero().squeeze(-1)
    assert hard.numel() >= 10
    d = field.dist(x, y)  # raises GeodesicConvergenceError if any pair fails
    assert torch.isfinite(d).all()
    report = field.solve(x, y)
    assert bool((report.residual <= report.tolerance).all())
    for i in hard[:3].tolist():
        oracle = _polyline_length(field, x[i], y[i], segments=64)
        assert abs(d[i].item() - oracle) / oracle < 2e-4, (i, d[i].item(), oracle)
