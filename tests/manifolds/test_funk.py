"""FunkBall: closed forms against independent computations, geometric laws, numerics, geoopt.

Oracles used here (none of them is the code under test):
* the generic Randers formulas of `finslerlib.math.randers` fed with the Funk data a(x), b(x);
* autograd Hessians of F^2 / 2 (fundamental tensor) and of F*^2 / 2;
* the ray construction d(x -> y) = log(|x - a| / |y - a|), in numpy;
* Gauss-Legendre quadrature of F along straight and bent paths;
* the Klein arccosh formula and geoopt.PoincareBall(c=1).dist;
* scipy.optimize on the closed-form objective (numpy ray construction).
"""

from __future__ import annotations

import functools
import math

import geoopt
import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given
from hypothesis import strategies as st

from finslerlib import FunkBall
from finslerlib.math import funk as fmath
from finslerlib.math import randers as rmath

RADII = [1.0, 2.5]
# hypothesis tests take the dtype by parametrize (function-scoped fixtures are not reset per example)
by_dtype = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])


# ---------------------------------------------------------------------------- helpers
def _ball_points(seed: int, n: int, dim: int, *, radius=1.0, max_norm=0.95, dtype=torch.float64):
    """`n` points uniform in the ball of radius `max_norm * radius`, plus some on a few shells."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, dim, generator=g, dtype=torch.float64)
    z = z / z.norm(dim=-1, keepdim=True)
    r = torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1.0 / dim)
    return (z * r * max_norm * radius).to(dtype)


seeds = st.integers(0, 2**31 - 1)
dims = st.integers(1, 5)
radii = st.sampled_from(RADII)


def _np_exit_param(x, y, radius):
    """t > 1 with |x + t (y - x)| = R: the ray from x through y leaves the ball at x + t (y - x)."""
    u = y - x
    n2, p, q = u @ u, x @ u, radius**2 - x @ x
    return (-p + math.sqrt(p * p + n2 * q)) / n2


def np_funk_dist(x, y, radius=1.0):
    """Ray construction: log(|x - a| / |y - a|) with a the exit point (pure numpy, float64)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.allclose(x, y, rtol=0, atol=0):
        return 0.0
    t = _np_exit_param(x, y, radius)
    a = x + t * (y - x)
    return math.log(np.linalg.norm(x - a) / np.linalg.norm(y - a))


@functools.lru_cache
def _gauss_legendre(nodes):
    t, w = np.polynomial.legendre.leggauss(nodes)
    return torch.tensor(0.5 * (t + 1.0)), torch.tensor(0.5 * w)


def _path_length(c, dc, radius):
    """Gauss-Legendre sum of F(c(t), c'(t)) at the nodes; F from the generic Randers formula."""
    a, b = fmath.coefficients(c, radius=radius)
    return float((rmath.norm(dc, a, b) * _gauss_legendre(len(c))[1]).sum())


# ---------------------------------------------------------------------------- pointwise closed forms
@by_dtype
@given(seed=seeds, dim=dims, radius=radii)
def test_pointwise_closed_forms_match_generic_randers(seed, dim, radius, dtype):
    x = _ball_points(seed, 16, dim, radius=radius, max_norm=0.97, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    v = torch.randn(16, dim, generator=g, dtype=dtype) * 3
    xi = torch.randn(16, dim, generator=g, dtype=dtype)
    m = FunkBall(dim, radius=radius)
    # the generic formulas run in float64 from the independently written a(x), b(x) of the reference
    x64 = x.double()
    q = radius**2 - (x64 * x64).sum(-1, keepdim=True)
    a = torch.eye(dim, dtype=torch.float64) / q.unsqueeze(-1) + (x64 / q).unsqueeze(-1) * (x64 / q).unsqueeze(
        -2
    )
    b = x64 / q
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    checks = {
        "norm": (m.norm(x, v), rmath.norm(v.double(), a, b)),
        "dual_norm": (m.dual_norm(x, xi), rmath.dual_norm(xi.double(), a, b)),
        "legendre": (m.legendre(x, v), rmath.legendre(v.double(), a, b)),
        "inverse_legendre": (m.inverse_legendre(x, xi), rmath.inverse_legendre(xi.double(), a, b)),
        "fundamental_tensor": (m.fundamental_tensor(x, v), rmath.fundamental_tensor(v.double(), a, b)),
        "coefficients.a": (m.coefficients(x)[0], a),
        "coefficients.b": (m.coefficients(x)[1], b),
    }
    for name, (got, want) in checks.items():
        assert got.dtype == dtype, name
        scale = want.abs().amax().clamp_min(1.0)
        err = ((got.double() - want).abs() / scale).max().item()
        assert err < rtol * 10, f"{name}: relative error {err:.3g}"


def test_pointwise_memory_is_linear():
    """norm / dual / legendre / inverse never build [..., D, D]: they run at N = 2e5, D = 256."""
    m = FunkBall(256)
    x = m.random(2000, 256, dtype=torch.float32) * 0.5
    v = torch.randn(2000, 256)
    for f in (m.norm, m.dual_norm, m.legendre, m.inverse_legendre):
        assert torch.isfinite(f(x, v)).all()


@pytest.mark.parametrize("radius", RADII)
def test_fundamental_tensor_is_hessian_of_half_F_squared(radius):
    torch.manual_seed(0)
    m = FunkBall(3, radius=radius)
    x = m.random(5, 3, dtype=torch.float64, max_norm=0.95)
    v = torch.randn(5, 3, dtype=torch.float64)
    g = m.fundamental_tensor(x, v)
    for i in range(5):
        hess = torch.autograd.functional.hessian(lambda w, i=i: 0.5 * m.norm(x[i], w) ** 2, v[i])
        torch.testing.assert_close(g[i], hess, rtol=1e-8, atol=1e-10)
        assert torch.linalg.eigvalsh(g[i]).min() > 0
        # and the inverse Legendre map is the gradient of F*^2 / 2
        xi = torch.randn(3, dtype=torch.float64)
        grad = torch.func.grad(lambda c, i=i: 0.5 * m.dual_norm(x[i], c) ** 2)(xi)
        torch.testing.assert_close(m.inverse_legendre(x[i], xi), grad)


def test_dual_norm_is_numerical_sup():
    """F*(x, xi) = sup over the F-unit circle of xi(v): dense sampling of directions in 2D."""
    m = FunkBall(2, radius=1.5)
    theta = torch.linspace(0, 2 * math.pi, 40001, dtype=torch.float64)
    dirs = torch.stack([theta.cos(), theta.sin()], -1)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        x = _ball_points(int(torch.randint(0, 999, (1,), generator=g)), 1, 2, radius=1.5)[0]
        xi = torch.randn(2, generator=g, dtype=torch.float64)
        sup = ((dirs @ xi) / m.norm(x.expand_as(dirs), dirs)).max()
        dual = m.dual_norm(x, xi)
        assert dual >= sup - 1e-12
        torch.testing.assert_close(dual, sup, rtol=1e-6, atol=0)


@by_dtype
@given(seed=seeds, dim=dims, radius=radii, scale=st.floats(0.01, 100.0))
def test_norm_laws(seed, dim, radius, scale, dtype):
    """Positivity, positive homogeneity, asymmetry bounds; Legendre round trip and Fenchel-Young."""
    m = FunkBall(dim, radius=radius)
    x = _ball_points(seed, 8, dim, radius=radius, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 7)
    v = torch.randn(8, dim, generator=g, dtype=dtype)
    xi = torch.randn(8, dim, generator=g, dtype=dtype)
    rtol, atol = (2e-4, 1e-5) if dtype == torch.float32 else (1e-9, 1e-12)
    f = m.norm(x, v)
    assert (f > 0).all()
    torch.testing.assert_close(m.norm(x, scale * v), scale * f, rtol=rtol, atol=atol)
    # x + v / F(x, v) lies on the sphere (F is the Minkowski functional of the ball seen from x)
    torch.testing.assert_close(
        (x + v / f.unsqueeze(-1)).norm(dim=-1), torch.full_like(f, radius), rtol=rtol, atol=0
    )
    # Legendre round trip and F*(l(v)) = F(v)
    ell = m.legendre(x, v)
    torch.testing.assert_close(m.inverse_legendre(x, ell), v, rtol=rtol * 10, atol=atol * 10)
    torch.testing.assert_close(m.dual_norm(x, ell), f, rtol=rtol, atol=atol)
    torch.testing.assert_close(m.legendre(x, m.inverse_legendre(x, xi)), xi, rtol=rtol * 10, atol=atol * 10)
    # g_v(v, v) = F^2 and Fenchel-Young: xi(v) <= F*(xi) F(v), equality at xi = l(v)
    torch.testing.assert_close(m.inner(x, v, v), f * f, rtol=rtol, atol=atol)
    assert ((xi * v).sum(-1) <= m.dual_norm(x, xi) * f * (1 + rtol) + atol).all()
    torch.testing.assert_close((ell * v).sum(-1), f * f, rtol=rtol, atol=atol)
    # Finsler gradient: F(grad) = F*(df), df(grad) = F*(df)^2
    grad = m.finsler_gradient(x, xi)
    dual = m.dual_norm(x, xi)
    torch.testing.assert_close(m.norm(x, grad), dual, rtol=rtol * 10, atol=atol * 10)
    torch.testing.assert_close((xi * grad).sum(-1), dual * dual, rtol=rtol * 10, atol=atol * 10)


# ---------------------------------------------------------------------------- distance
@by_dtype
@given(seed=seeds, dim=dims, radius=radii)
def test_dist_matches_ray_construction(seed, dim, radius, dtype):
    m = FunkBall(dim, radius=radius)
    x = _ball_points(seed, 6, dim, radius=radius, max_norm=0.999)
    y = _ball_points(seed + 1, 6, dim, radius=radius, max_norm=0.999)
    want = torch.tensor(
        [np_funk_dist(a, b, radius) for a, b in zip(x.numpy(), y.numpy(), strict=True)], dtype=torch.float64
    )
    got = m.dist(x.to(dtype), y.to(dtype)).double()
    if dtype == torch.float64:
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    else:
        # float32 rounding of the inputs alone moves d by ~ eps |y| / Q_y
        q = radius**2 - (y * y).sum(-1)
        assert ((got - want).abs() <= 1e-5 + 2e-7 * radius**2 / q).all()
    # a second formula: -log(1 - F(x, y - x)), and the scale law d_R(x, y) = d_1(x / R, y / R)
    torch.testing.assert_close(m.dist(x, y), -torch.log1p(-m.norm(x, y - x)), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        m.dist(x, y), FunkBall(dim).dist(x / radius, y / radius), rtol=1e-9, atol=1e-12
    )


def test_dist_simple_values():
    m = FunkBall(1)
    t = lambda *a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    # from the centre: d(0 -> y) = -log(1 - |y|); back: d(y -> 0) = log(1 + |y|)
    # (bounded as |y| -> 1: backward incomplete)
    torch.testing.assert_close(m.dist(t(0.0), t(0.9)), t(-math.log(0.1))[0])
    for r in (0.9, 1 - 1e-6, 1 - 1e-12):
        torch.testing.assert_close(m.dist(t(r), t(0.0)), t(math.log1p(r))[0])
    assert m.dist(t(1 - 1e-12), t(0.0)) < math.log(2)


@pytest.mark.parametrize("radius", RADII)
def test_straight_segment_length_by_quadrature_and_bent_path_is_longer(radius):
    g = torch.Generator().manual_seed(11)
    m = FunkBall(3, radius=radius)
    for _ in range(4):
        x, y = _ball_points(int(torch.randint(0, 999, (1,), generator=g)), 2, 3, radius=radius, max_norm=0.85)
        u = y - x
        t = _gauss_legendre(300)[0][:, None]
        straight = _path_length(x + t * u, u.expand(len(t), 3), radius)
        assert straight == pytest.approx(m.dist(x, y).item(), rel=1e-9)
        # bend it inside the ball: add sin(pi t) n with n orthogonal to u
        n = torch.randn(3, generator=g, dtype=torch.float64)
        n = n - (n @ u) / (u @ u) * u
        n = 0.05 * radius * n / n.norm()
        bent = _path_length(
            x + t * u + torch.sin(math.pi * t) * n, u + math.pi * torch.cos(math.pi * t) * n, radius
        )
        assert bent > straight + 1e-4
        # going back along the straight segment costs d(y -> x)
        back = _path_length(y - t * u, (-u).expand(len(t), 3), radius)
        assert back == pytest.approx(m.dist(y, x).item(), rel=1e-9)


@by_dtype
@given(seed=seeds, dim=dims, radius=radii)
def test_dist_laws(seed, dim, radius, dtype):
    """d >= 0, d(x, x) = 0, triangle inequality, d(x->y) - d(y->x) = log(Q_x / Q_y)."""
    m = FunkBall(dim, radius=radius)
    x, y, z = (_ball_points(seed + k, 10, dim, radius=radius, max_norm=0.98, dtype=dtype) for k in range(3))
    slack = 1e-4 if dtype == torch.float32 else 1e-10
    dxy, dyz, dxz = m.dist(x, y), m.dist(y, z), m.dist(x, z)
    assert (dxy >= 0).all()
    assert (m.dist(x, x) == 0).all()
    assert (dxz <= dxy + dyz + slack).all()
    qx, qy = fmath.gap(x, radius=radius), fmath.gap(y, radius=radius)
    rtol, atol = (1e-4, 1e-4) if dtype == torch.float32 else (1e-9, 1e-10)
    torch.testing.assert_close(dxy - m.dist(y, x), torch.log(qx / qy), rtol=rtol, atol=atol)


@pytest.mark.parametrize("radius", RADII)
def test_cdist_matches_dist(radius, dtype):
    m = FunkBall(5, radius=radius)
    x = _ball_points(0, 40, 5, radius=radius, max_norm=0.95, dtype=dtype)
    y = _ball_points(1, 30, 5, radius=radius, max_norm=0.95, dtype=dtype)
    y = torch.cat([y, x[:5]])  # include exact coincidences
    want = m.dist(x.unsqueeze(-2), y.unsqueeze(-3))
    # Gram form: absolute error ~ sqrt(eps) / Q near the diagonal
    atol = 2e-3 if dtype == torch.float32 else 1e-6
    got = m.cdist(x, y)
    assert got.shape == (40, 35) and got.dtype == dtype
    torch.testing.assert_close(got, want, rtol=1e-4 if dtype == torch.float32 else 1e-9, atol=atol)
    assert (got >= 0).all()
    # batched input, and the autograd path gives the same values
    xb, yb = torch.stack([x, x.flip(0)]), torch.stack([y, y.flip(0)])
    torch.testing.assert_close(m.cdist(xb, yb)[1], m.cdist(x.flip(0), y.flip(0)), rtol=1e-5, atol=atol)
    xg = x.clone().requires_grad_()
    torch.testing.assert_close(m.cdist(xg, y), got, rtol=1e-5, atol=atol)
    # reverse metric: d~(x_i -> y_j) = d(y_j -> x_i)
    torch.testing.assert_close(m.reverse().cdist(x, y), m.cdist(y, x).mT, rtol=1e-4, atol=atol)


# ---------------------------------------------------------------------------- hyperbolic symmetrization
@pytest.mark.parametrize("radius", RADII)
def test_hilbert_distance_is_klein_and_poincare(radius, dtype):
    m = FunkBall(4, radius=radius)
    x = _ball_points(5, 50, 4, radius=radius, max_norm=0.99, dtype=dtype)
    y = _ball_points(6, 50, 4, radius=radius, max_norm=0.99, dtype=dtype)
    x64, y64 = x.double(), y.double()
    klein = torch.acosh(
        (radius**2 - (x64 * y64).sum(-1))
        / torch.sqrt((radius**2 - (x64 * x64).sum(-1)) * (radius**2 - (y64 * y64).sum(-1)))
    )
    poincare = geoopt.PoincareBall(c=1.0)
    px, py = m.to_poincare(x), m.to_poincare(y)
    rtol, atol = (1e-3, 1e-4) if dtype == torch.float32 else (1e-9, 1e-10)
    h = m.hilbert_dist(x, y)
    torch.testing.assert_close(h.double(), klein, rtol=rtol, atol=atol)
    torch.testing.assert_close(poincare.dist(px, py).double(), klein, rtol=rtol, atol=atol)
    torch.testing.assert_close(h, 0.5 * (m.dist(x, y) + m.dist(y, x)))
    # conversions are inverse to each other and match the textbook Klein <-> Poincare maps
    torch.testing.assert_close(m.from_poincare(px), x, rtol=rtol, atol=atol * radius)
    k = x64 / radius
    torch.testing.assert_close(
        px.double(), k / (1 + torch.sqrt(1 - (k * k).sum(-1, keepdim=True))), rtol=rtol, atol=atol
    )
    assert (px.norm(dim=-1) < 1).all()


# ---------------------------------------------------------------------------- exp / log
@by_dtype
@given(seed=seeds, dim=dims, radius=radii)
def test_exp_log_laws(seed, dim, radius, dtype):
    m = FunkBall(dim, radius=radius)
    x = _ball_points(seed, 10, dim, radius=radius, max_norm=0.97, dtype=dtype)
    y = _ball_points(seed + 1, 10, dim, radius=radius, max_norm=0.97, dtype=dtype)
    rtol, atol = (1e-4, 5e-5) if dtype == torch.float32 else (1e-9, 1e-11)
    v = m.logmap(x, y)
    torch.testing.assert_close(m.expmap(x, v), y, rtol=rtol, atol=atol * radius)
    torch.testing.assert_close(m.norm(x, v), m.dist(x, y), rtol=rtol, atol=atol)
    # log o exp = id and dist(x, exp(x, v)) = F(x, v) for moderate steps
    g = torch.Generator().manual_seed(seed + 2)
    w = torch.randn(10, dim, generator=g, dtype=dtype)
    w = w / m.norm(x, w).unsqueeze(-1) * torch.rand(10, 1, generator=g, dtype=dtype) * 4
    e = m.expmap(x, w)
    torch.testing.assert_close(m.dist(x, e), m.norm(x, w), rtol=rtol * 10, atol=atol * 10)
    torch.testing.assert_close(m.logmap(x, e), w, rtol=rtol * 10, atol=atol * 10 * radius)
    assert (m.logmap(x, x) == 0).all()
    # the reverse metric: same laws with d~(x -> y) = d(y -> x)
    r = m.reverse()
    rv = r.logmap(x, y)
    torch.testing.assert_close(r.norm(x, rv), m.dist(y, x), rtol=rtol, atol=atol)
    torch.testing.assert_close(r.expmap(x, rv), y, rtol=rtol, atol=atol * radius)


def test_geodesics_are_unit_speed_straight_lines():
    """t -> exp_x(t v) for F(v) = 1 is straight and d(x -> exp_x(t v)) = t (also compose: s then t)."""
    m = FunkBall(3)
    x = torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64)
    v = torch.tensor([0.3, 0.5, -0.2], dtype=torch.float64)
    v = v / m.norm(x, v)
    ts = torch.linspace(0.0, 6.0, 13, dtype=torch.float64)
    pts = m.expmap(x.expand(13, 3), ts[:, None] * v)
    torch.testing.assert_close(m.dist(x.expand(13, 3), pts), ts)
    # straight: all points on the line through x with direction v
    off = (pts - x) - ((pts - x) @ v)[:, None] * v / (v @ v)
    assert off.abs().max() < 1e-12
    # the geodesic continues: exp(exp(x, s v), t v') = exp(x, (s + t) v) with v' the velocity there
    p1 = m.expmap(x, 1.0 * v)
    v1 = m.logmap(p1, pts[-1])
    torch.testing.assert_close(m.norm(p1, v1), torch.tensor(5.0, dtype=torch.float64))


@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
def test_huge_steps_stay_strictly_inside(dt):
    for radius in RADII:
        m = FunkBall(3, radius=radius)
        x = m.random(64, 3, dtype=dt, max_norm=0.99)
        g = torch.Generator().manual_seed(0)
        d = torch.randn(64, 3, generator=g).to(dt)
        d = d / d.norm(dim=-1, keepdim=True)
        for size in (1e4, 1e10, float(torch.finfo(dt).max) / 4):
            for mm in (m, m.reverse()):
                for step in (mm.expmap, mm.retr):
                    y = step(x, size * d)
                    assert torch.isfinite(y).all()
                    assert (y.norm(dim=-1) < radius).all()
                    m.assert_check_point_on_manifold(y)
        # steps of norm 1e4 land in the working ball, which the next call accepts
        y = m.expmap(x, 1e4 * d)
        assert (
            y.norm(dim=-1) <= radius * (1 - fmath.boundary_margin(dt)) * (1 + 4 * torch.finfo(dt).eps)
        ).all()
        assert torch.isfinite(m.dist(x, y)).all()
    # expmap(x, 0) = x exactly, even for x in the thin shell beyond the working ball
    x = torch.tensor([1 - 1e-12, 0.0], dtype=torch.float64)
    assert torch.equal(FunkBall(2).expmap(x, torch.zeros(2, dtype=torch.float64)), x)


# ---------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("dt", [torch.float32, torch.float64])
def test_gradients_finite_at_coincidence_and_near_boundary(dt):
    edge = 1 - 1e-3 if dt == torch.float32 else 1 - 1e-6
    for radius in RADII:
        m = FunkBall(3, radius=radius)
        base = _ball_points(2, 8, 3, radius=radius, max_norm=0.9, dtype=dt)
        near = base / base.norm(dim=-1, keepdim=True) * (edge * radius)
        for pts in (base, near):
            x = pts.clone().requires_grad_()
            y = pts.clone().requires_grad_()
            other = near.flip(0).clone().requires_grad_()
            losses = [
                m.dist(x, y).sum(),  # x = y
                m.dist(x, other).sum() + m.dist(other, x).sum(),
                m.cdist(x, y).sum(),
                m.hilbert_dist(x, y).sum() + m.hilbert_dist(x, other).sum(),
                m.logmap(x, y).sum() + m.logmap(x, other).sum(),
                m.expmap(x, torch.zeros_like(x)).sum() + m.expmap(x, 0.1 * other).sum(),
                m.norm(x, other).sum() + m.dual_norm(x, other).sum(),
                m.egrad2rgrad(x, other).sum() + m.legendre(x, other).sum(),
                m.reverse().dist(x, other).sum() + m.reverse().cdist(x, y).sum(),
            ]
            for loss in losses:
                assert torch.isfinite(loss)
                grads = torch.autograd.grad(loss, [x, y, other], allow_unused=True)
                for gr in grads:
                    assert gr is None or torch.isfinite(gr).all()
    # at x = y the Jacobian of logmap is the identity and of expmap(x, .) at 0 too
    x = torch.tensor([0.3, -0.5], dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda y: FunkBall(2).logmap(x, y), x)
    torch.testing.assert_close(jac, torch.eye(2, dtype=torch.float64))
    jac = torch.autograd.functional.jacobian(
        lambda v: FunkBall(2).expmap(x, v), torch.zeros(2, dtype=torch.float64)
    )
    torch.testing.assert_close(jac, torch.eye(2, dtype=torch.float64))


def test_dist_gradient_matches_finite_differences():
    m = FunkBall(3, radius=2.0)
    x = torch.tensor([0.5, -1.2, 0.3], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-0.9, 0.4, 1.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: m.dist(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: m.cdist(a[None], b[None]), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: m.expmap(a, b), (x, y))


# ---------------------------------------------------------------------------- checks and errors
def test_points_outside_raise_value_error():
    m = FunkBall(2)
    inside = torch.tensor([[0.1, 0.2]])
    outside = torch.tensor([[0.8, 0.7]])
    for call in (
        lambda: m.dist(inside, outside),
        lambda: m.dist(outside, inside),
        lambda: m.cdist(inside, outside),
        lambda: m.logmap(outside, inside),
        lambda: m.expmap(outside, inside),
        lambda: m.norm(outside, inside),
        lambda: m.egrad2rgrad(outside, inside),
        lambda: m.hilbert_dist(inside, outside),
        lambda: m.to_poincare(outside),
        lambda: m.reverse().dist(inside, outside),
        lambda: m.dist(inside, torch.tensor([[float("nan"), 0.0]])),
        lambda: m.dist(inside, torch.tensor([[1.0, 0.0]])),  # on the sphere
    ):
        with pytest.raises(ValueError, match="not strictly inside"):
            call()
    with pytest.raises(ValueError, match="1.063"):
        m.dist(inside, outside)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 2\]"):
        m.dist(inside, torch.zeros(1, 3))
    with pytest.raises(ValueError, match="dtype"):
        m.dist(inside, inside.double())
    with pytest.raises(ValueError, match="radius"):
        FunkBall(2, radius=0.0)
    ok, reason = m.check_point_on_manifold(outside, explain=True)
    assert not ok and "norm >= radius 1" in reason and "1.063" in reason
    assert m.check_point_on_manifold(inside)


def test_projx_pulls_points_inside():
    for dt in (torch.float32, torch.float64):
        m = FunkBall(2, radius=2.0)
        pts = torch.tensor([[3.0, 4.0], [2.0, 0.0], [0.3, 0.4], [0.0, 0.0]], dtype=dt)
        p = m.projx(pts)
        limit = 2.0 * (1 - fmath.boundary_margin(dt))
        assert (p.norm(dim=-1) < 2.0).all()
        torch.testing.assert_close(p[:2].norm(dim=-1), torch.full((2,), limit, dtype=dt))
        torch.testing.assert_close(p[2:], pts[2:], rtol=0, atol=0)  # identity inside
        torch.testing.assert_close(m.projx(p), p)  # idempotent
        torch.testing.assert_close(p[0] / p[0].norm(), pts[0] / pts[0].norm())  # radial
        assert m.check_point_on_manifold(p)


def test_results_follow_device_and_dtype(device, dtype):
    m = FunkBall(3, radius=2.0)
    x = m.random(5, 3, dtype=dtype, device=device)
    y = m.random(4, 3, dtype=dtype, device=device)
    for out in (
        m.dist(x[:4], y),
        m.cdist(x, y),
        m.expmap(x, x),
        m.logmap(x[:4], y),
        m.egrad2rgrad(x, x),
        m.fundamental_tensor(x, x),
        m.hilbert_dist(x[:4], y),
        m.to_poincare(x),
        m.reverse().cdist(x, y),
    ):
        assert out.device == x.device and out.dtype == dtype


def test_random_inside_and_follows_dtype():
    m = FunkBall(4, radius=3.0)
    x = m.random(500, 4, dtype=torch.float64)
    assert isinstance(x, geoopt.ManifoldTensor) and x.dtype == torch.float64 and x.shape == (500, 4)
    assert (x.norm(dim=-1) < 0.9 * 3.0).all() and x.norm(dim=-1).max() > 0.8 * 3.0
    # uniform in the ball: P(|x| < R/2 * 0.9) = 2^-D
    frac = (x.norm(dim=-1) < 0.45 * 3.0).double().mean().item()
    assert abs(frac - 1 / 16) < 0.05
    assert m.origin(2, 4).abs().sum() == 0


# ---------------------------------------------------------------------------- geoopt
def _contract(m, x, y, v, rtol, atol):
    """geoopt's generic manifold contract (see the core issue)."""
    torch.testing.assert_close(m.projx(x), x)
    torch.testing.assert_close(m.proju(x, v), v)
    torch.testing.assert_close(m.proju(x, m.proju(x, v)), m.proju(x, v))
    # broadcasting: one point against a batch
    torch.testing.assert_close(m.retr(x[:1], v), torch.stack([m.retr(x[0], vi) for vi in v]))
    torch.testing.assert_close(
        m.transp_follow_retr(x[:1], v, v), torch.stack([m.transp_follow_retr(x[0], vi, vi) for vi in v])
    )
    torch.testing.assert_close(m.dist(x[:1], y), m.dist(x[:1].expand_as(y), y))
    assert m.projx(x[:1]).shape == (1, x.shape[-1])
    # exp o log, log(x, x) = 0, dist(x, exp(x, v)) = norm(x, v)
    torch.testing.assert_close(m.expmap(x, m.logmap(x, y)), y, rtol=rtol, atol=atol)
    assert m.logmap(x, x).abs().max() == 0
    torch.testing.assert_close(m.dist(x, m.expmap(x, v)), m.norm(x, v), rtol=rtol, atol=atol)
    torch.testing.assert_close(m.dist0(y), m.dist(torch.zeros_like(y), y))
    torch.testing.assert_close(m.expmap0(m.logmap0(y)), y, rtol=rtol, atol=atol)
    torch.testing.assert_close(m.cdist(x, y).diagonal(), m.dist(x, y), rtol=rtol, atol=atol)
    y2, v2 = m.retr_transp(x, v, v)
    torch.testing.assert_close(y2, m.retr(x, v))
    torch.testing.assert_close(v2, m.transp_follow_retr(x, v, v))


def test_geoopt_contract_plain_and_scaled(dtype):
    torch.manual_seed(1)
    m = FunkBall(3, radius=1.5)
    x = m.random(6, 3, dtype=dtype)
    y = m.random(6, 3, dtype=dtype)
    v = torch.randn(6, 3, dtype=dtype)
    # steps of F-length <= 3: the geodesic ends inside the working ball (float32 included)
    v = v * (3.0 / m.norm(x, v)).clamp_max(1.0).unsqueeze(-1)
    rtol, atol = (1e-4, 1e-4) if dtype == torch.float32 else (1e-9, 1e-10)
    _contract(m, x, y, v, rtol, atol)
    # parallel transport maps the initial velocity to the final one, e^{-F(x, v)} v on a Funk geodesic
    v2 = m.retr_transp(x, v, v)[1]
    torch.testing.assert_close(v2, torch.exp(-m.norm(x, v, keepdim=True)) * v, rtol=rtol, atol=atol)
    scaled = geoopt.Scaled(m, 2.0)
    _contract(scaled, x, y, v, rtol, atol)
    torch.testing.assert_close(scaled.dist(x, y), 2 * m.dist(x, y))
    torch.testing.assert_close(scaled.cdist(x, y), 2 * m.cdist(x, y))
    torch.testing.assert_close(scaled.hilbert_dist(x, y), 2 * m.hilbert_dist(x, y))
    # the reverse metric is forward incomplete: keep its steps short of the sphere
    # (F(x, +-v) <= 1/2: the sphere is at parameter >= 2 > (e^{1/2} - 1) / (1/2))
    short = v * 0.5 / torch.maximum(m.norm(x, v), m.norm(x, -v)).unsqueeze(-1)
    _contract(m.reverse(), x, y, short, rtol, atol)


def _np_objective(x, targets):
    if x @ x >= 1:
        return 1e9
    return sum(np_funk_dist(x, t) ** 2 + np_funk_dist(t, x) for t in targets)


def test_riemannian_sgd_stays_inside_and_converges():
    torch.manual_seed(0)
    m = FunkBall(2)
    targets = torch.tensor([[0.5, 0.1], [-0.2, 0.6], [0.1, -0.7]], dtype=torch.float64)
    ref = scipy.optimize.minimize(
        _np_objective,
        np.zeros(2),
        args=(targets.numpy(),),
        method="Nelder-Mead",
        options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 4000},
    ).x

    def loss_of(p):
        return (m.dist(p, targets) ** 2).sum() + m.dist(targets, p).sum()

    # a huge learning rate: every iterate stays strictly inside (and finite)
    p = geoopt.ManifoldParameter(torch.tensor([0.9, -0.3], dtype=torch.float64), manifold=m)
    opt = geoopt.optim.RiemannianSGD([p], lr=1e3, momentum=0.5)
    for _ in range(30):
        opt.zero_grad()
        loss_of(p).backward()
        opt.step()
        assert torch.isfinite(p).all() and p.norm() < 1
    # a (decaying) learning rate converges to the independently computed minimizer. The d(t -> p)
    # term is steep at the sphere (F*(-df) ~ 1/(1 - |p|)): the steepest descent of F (default)
    # needs lr <= ~0.02 there (lr 0.1 ends on the working sphere), the reverse metric's descent,
    # whose inward steps shrink like (1 - |p|)^2, takes lr = 5 (docs/concepts/duality.md)
    for descent, lr in (("forward", 0.02), ("reverse", 5.0)):
        m.descent = descent
        p = geoopt.ManifoldParameter(torch.tensor([0.9, -0.3], dtype=torch.float64), manifold=m)
        opt = geoopt.optim.RiemannianSGD([p], lr=lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.99)
        for _ in range(600):
            opt.zero_grad()
            loss_of(p).backward()
            opt.step()
            sched.step()
            assert p.norm() < 1
        np.testing.assert_allclose(p.detach().numpy(), ref, atol=1e-6)
