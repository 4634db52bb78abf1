"""Navigation over geoopt bases and Killing winds, against independent oracles.

Oracles: geoopt's own Sphere / Lorentz / PoincareBall / Euclidean (zero wind), the numerical
geodesic solver on the same wind given as a plain callable, the 1-D root condition solved with
scipy's brentq and scipy's matrix exponential, a discretized path-length minimization with
scipy.optimize.minimize, central finite differences along tangent curves, dense sampling of
the tangent circle for the dual norm.
"""

import math

import geoopt
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from finslerlib import KillingWind, Navigation
from finslerlib.math import navigation as nmath
from finslerlib.nn import FAIMHead
from finslerlib.testing import check_manifold
from tests.support import sized

F64 = torch.float64
J3 = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64))


def skew(n: int, size: float, seed: int = 0) -> torch.Tensor:
    """A random skew-symmetric matrix of spectral norm `size`."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(n, n, generator=g, dtype=F64)
    a = b - b.T
    return size * a / torch.linalg.matrix_norm(a, ord=2)


def lorentz_generator(size: float = 0.3, seed: int = 0) -> torch.Tensor:
    """A J-skew generator (a mix of a rotation and boosts): A^T J + J A = 0."""
    return J3 @ skew(3, size, seed)


# name -> (base, KillingWind, intrinsic dim, std of random points)
KILLING = {
    "sphere": (geoopt.Sphere, lambda: KillingWind(skew(3, 0.5)), 2, 1.2),
    "lorentz": (lambda: geoopt.Lorentz(k=1.5), lambda: KillingWind(lorentz_generator()), 2, 0.6),
    "poincare": (lambda: geoopt.PoincareBall(c=1.0), lambda: KillingWind(skew(2, 0.3)), 2, 0.6),
    "sphere-projection": (lambda: geoopt.SphereProjection(k=1.0), lambda: KillingWind(skew(3, 0.4)), 3, 0.8),
    "euclidean": (
        lambda: geoopt.Euclidean(ndim=1),
        lambda: KillingWind(skew(2, 0.4), shift=torch.tensor([0.1, -0.05], dtype=F64)),
        2,
        0.6,
    ),
}


def make(name: str) -> tuple[Navigation, float]:
    base, wind, _, std = KILLING[name]
    return Navigation(base(), wind()), std


def pairs(m: Navigation, n: int, std: float, seed: int = 0):
    torch.manual_seed(seed)
    x = m.random(n, m.ambient_dim, dtype=F64, std=std).as_subclass(torch.Tensor)
    y = m.random(n, m.ambient_dim, dtype=F64, std=std).as_subclass(torch.Tensor)
    return x, y


# ------------------------------------------------------------------ zero wind = the base
# curvatures as float64 tensors: geoopt keeps k in the default dtype (float32) otherwise
ZERO = {
    "sphere": (geoopt.Sphere(), 3, 1.0),
    "lorentz": (geoopt.Lorentz(k=torch.tensor(1.5, dtype=F64)), 3, 0.8),
    "poincare": (geoopt.PoincareBall(c=torch.tensor(0.7, dtype=F64)), 3, 0.6),
    "euclidean": (geoopt.Euclidean(ndim=1), 4, 1.0),
}


@pytest.mark.parametrize("name", list(ZERO))
def test_zero_wind_reproduces_geoopt(name):
    base, dim, std = ZERO[name]
    m = Navigation(base, None, dim=dim)
    x, y = pairs(m, 16, std)
    # far enough apart that geoopt's own clamps (acos, arcosh, norm floors) are exact
    assert bool((base.dist(x, y) > 0.05).all())
    torch.testing.assert_close(m.dist(x, y), base.dist(x, y), atol=1e-10, rtol=0)
    torch.testing.assert_close(m.logmap(x, y), base.logmap(x, y), atol=1e-10, rtol=0)
    v = base.logmap(x, y) * 0.7
    torch.testing.assert_close(m.expmap(x, v), base.expmap(x, v), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        m.norm(x, v), base.norm(x, v) if name != "lorentz" else base.norm(v), atol=1e-12, rtol=0
    )


# ------------------------------------------------------------------ exact = numerical = round trips
@pytest.mark.parametrize("name", list(KILLING))
def test_killing_geodesics_match_numerical_solver(name):
    m, std = make(name)
    numerical = Navigation(m.base, lambda x: m.wind(x), dim=m.dim, steps=32)
    assert m.exact and not numerical.exact
    x, y = pairs(m, 3, std * 0.6, seed=1)
    # the numerical solver's accuracy at 32 RK4 steps: 1e-8 to 1e-6 here (it drops 16x per doubling)
    torch.testing.assert_close(m.dist(x, y), numerical.dist(x, y), atol=1e-6, rtol=0)
    torch.testing.assert_close(m.logmap(x, y), numerical.logmap(x, y), atol=1e-6, rtol=0)
    v = 0.8 * m.logmap(x, y)
    torch.testing.assert_close(m.expmap(x, v), numerical.expmap(x, v), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", list(KILLING))
def test_killing_log_exp_roundtrip_and_norm_of_log(name):
    m, std = make(name)
    x, y = pairs(m, 32, std)
    v = m.logmap(x, y)
    d = m.dist(x, y)
    torch.testing.assert_close(m.norm(x, v), d, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(m.expmap(x, v), y, atol=1e-10, rtol=0)
    # the root is converged to dtype precision
    report = m.solve(x, y)
    assert bool(report.converged.all()) and float(report.residual.max()) < 1e-12
    # asymmetric: reverse() is navigation in -W
    torch.testing.assert_close(m.reverse().dist(y, x), d, atol=1e-10, rtol=1e-10)
    assert float((m.dist(y, x) - d).abs().max()) > 1e-3


def _numpy_flow(a: np.ndarray, t: float, y: np.ndarray) -> np.ndarray:
    return scipy.linalg.expm(t * a) @ y


def test_arrival_time_matches_brentq_on_the_sphere():
    """d(x -> y) is the root of arccos(x . e^{-TA} y) = T (scipy expm + brentq, in numpy)."""
    m, _ = make("sphere")
    a = m.wind.A.numpy()
    x, y = pairs(m, 8, 1.5, seed=3)
    d = m.dist(x, y)
    for i in range(x.shape[0]):
        xi, yi = x[i].numpy(), y[i].numpy()

        def g(t, xi=xi, yi=yi):
            return math.acos(float(np.clip(xi @ _numpy_flow(a, -t, yi), -1, 1))) - t

        hi = 1.0
        while g(hi) > 0:
            hi *= 2
        root = scipy.optimize.brentq(g, 0.0, hi, xtol=1e-14, rtol=1e-14)
        assert abs(root - d[i].item()) < 1e-9


@pytest.mark.parametrize("name", ["sphere", "lorentz"])
def test_scalar_and_vector_root_finds_agree(name):
    """The spectral scalar iteration (sphere, hyperboloid) against the flow-and-distance one."""
    m, std = make(name)
    x, y = pairs(m, 64, std, seed=4)
    spectral = m.wind.spectral(F64, x.device)
    assert spectral is not None
    fast = nmath.killing_arrival_time(m.domain, x, y, m.wind, m.wind.flow, spectral=spectral)
    slow = nmath.killing_arrival_time(m.domain, x, y, m.wind, m.wind.flow)
    assert bool(fast.converged.all()) and bool(slow.converged.all())
    torch.testing.assert_close(fast.time, slow.time, atol=1e-12, rtol=1e-12)


def test_arrival_time_matches_brentq_for_a_rotating_plane():
    """The reference's example: W(x) = w(-x2, x1) on R^2, |R(-wT) y - x| = T."""
    w = 0.6
    m = Navigation(geoopt.Euclidean(ndim=1), KillingWind(torch.tensor([[0.0, -w], [w, 0.0]], dtype=F64)))
    x = torch.tensor([[0.3, 0.1], [-0.5, 0.6], [0.0, 0.0]], dtype=F64)
    y = torch.tensor([[-0.4, 0.8], [0.9, -0.2], [0.5, 0.5]], dtype=F64)
    d = m.dist(x, y)
    for i in range(3):
        xi, yi = x[i].numpy(), y[i].numpy()

        def g(t, xi=xi, yi=yi):
            c, s = math.cos(-w * t), math.sin(-w * t)
            return float(np.hypot(c * yi[0] - s * yi[1] - xi[0], s * yi[0] + c * yi[1] - xi[1])) - t

        root = scipy.optimize.brentq(g, 0.0, 50.0, xtol=1e-14, rtol=1e-14)
        assert abs(root - d[i].item()) < 1e-10


def _sphere_path_length(a: np.ndarray, pts: np.ndarray) -> float:
    """Sum of F(midpoint, tangent chord) over a polyline on S^2 (numpy navigation norm)."""
    pts = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    mid = pts[:-1] + pts[1:]
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    chord = pts[1:] - pts[:-1]
    v = chord - (chord * mid).sum(1, keepdims=True) * mid
    wind = mid @ a.T
    lam = 1 - (wind * wind).sum(1)
    wv = (wind * v).sum(1)
    vv = (v * v).sum(1)
    return float(((np.sqrt(lam * vv + wv**2) - wv) / lam).sum())


@pytest.mark.parametrize("seed", [0])
def test_sphere_distance_matches_path_minimization(seed):
    """Minimize a 48-segment path's F-length with scipy; compare with the exact distance."""
    m, _ = make("sphere")
    a = m.wind.A.numpy()
    x, y = pairs(m, 1, 1.0, seed=10 + seed)
    d = m.dist(x, y).item()
    xi, yi = x[0].numpy(), y[0].numpy()
    k = 48
    # start from the Riemannian great-circle arc, free interior points in R^3 (normalized)
    t = np.linspace(0, 1, k + 1)[1:-1, None]
    theta = math.acos(float(np.clip(xi @ yi, -1, 1)))
    start = (np.sin((1 - t) * theta) * xi + np.sin(t * theta) * yi) / math.sin(theta)

    def length(flat):
        return _sphere_path_length(a, np.vstack([xi, flat.reshape(-1, 3), yi]))

    res = scipy.optimize.minimize(length, start.ravel(), method="L-BFGS-B", options={"maxiter": 2000})
    assert res.fun >= d - 2e-3 * d  # no discrete path beats the exact distance (up to discretization)
    assert abs(res.fun - d) < 2e-3 * d, (res.fun, d)
    # and the wind matters here: the Riemannian length of the arc is not the distance
    assert abs(theta - d) > 0.02


# ------------------------------------------------------------------ gradients
def _tangent_curve(m, x, u, s):
    return m.domain.expmap(x, s * u)


@pytest.mark.parametrize("name", ["sphere", "lorentz", "poincare"])
def test_dist_and_logmap_gradients_match_finite_differences(name):
    m, std = make(name)
    x, y = pairs(m, 4, std, seed=5)
    torch.manual_seed(6)
    ux = m.proju(x, torch.randn_like(x))
    uy = m.proju(y, torch.randn_like(y))
    eps = 1e-6
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    d = m.dist(xr, yr)
    gx, gy = torch.autograd.grad(d.sum(), (xr, yr))
    fd_x = (m.dist(_tangent_curve(m, x, ux, eps), y) - m.dist(_tangent_curve(m, x, ux, -eps), y)) / (2 * eps)
    fd_y = (m.dist(x, _tangent_curve(m, y, uy, eps)) - m.dist(x, _tangent_curve(m, y, uy, -eps))) / (2 * eps)
    torch.testing.assert_close((gx * ux).sum(-1), fd_x, atol=1e-7, rtol=1e-6)
    torch.testing.assert_close((gy * uy).sum(-1), fd_y, atol=1e-7, rtol=1e-6)
    # the log map's derivative in y along a tangent curve
    yr = y.clone().requires_grad_(True)
    v = m.logmap(x, yr)
    jv = torch.autograd.grad(v, yr, grad_outputs=torch.ones_like(v))[0]
    fd_v = (m.logmap(x, _tangent_curve(m, y, uy, eps)) - m.logmap(x, _tangent_curve(m, y, uy, -eps))) / (
        2 * eps
    )
    torch.testing.assert_close((jv * uy).sum(-1), fd_v.sum(-1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ["sphere", "lorentz", "euclidean"])
def test_gradients_finite_at_coincident_points(name):
    m, std = make(name)
    x, _ = pairs(m, 3, std)
    xr = x.clone().requires_grad_(True)
    yr = x.clone().requires_grad_(True)
    d = m.dist(xr, yr)
    assert float(d.detach().abs().max()) == 0
    gx, gy = torch.autograd.grad(d.sum(), (xr, yr))
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    v = m.logmap(xr, yr)
    assert float(v.detach().abs().max()) == 0
    g = torch.autograd.grad(v.sum(), (yr,))[0]
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", ["lorentz", "sphere"])
def test_finsler_gradient_on_embedded_bases(name):
    """finsler_gradient restricts the covector to T_x M: F*(df) = sup df(v)/F(v) over tangent v, found by
    dense sampling of the tangent circle with df(v) from central differences along h-geodesics."""
    m, std = make(name)
    x, _ = pairs(m, 3, std, seed=7)
    c = torch.tensor([0.7, -1.3, 0.4], dtype=F64)

    def f(z):
        return torch.sin(z @ c) + 0.5 * (z * z).sum(-1)

    xr = x.clone().requires_grad_(True)
    egrad = torch.autograd.grad(f(xr).sum(), xr)[0]
    grad = m.finsler_gradient(x, egrad)
    torch.testing.assert_close(m.proju(x, grad), grad, atol=1e-12, rtol=0)  # tangent
    # an orthonormal (for h) basis of the 2-D tangent plane
    torch.manual_seed(8)
    e1 = m.proju(x, torch.randn_like(x))
    e1 = e1 / m.domain.inner(x, e1, e1).sqrt()[..., None]
    e2 = m.proju(x, torch.randn_like(x))
    e2 = e2 - m.domain.inner(x, e1, e2)[..., None] * e1
    e2 = e2 / m.domain.inner(x, e2, e2).sqrt()[..., None]
    angles = torch.linspace(0, 2 * math.pi, 4001, dtype=F64)[:-1]
    vs = torch.cos(angles)[:, None, None] * e1 + torch.sin(angles)[:, None, None] * e2  # [A, 3, N]
    eps = 1e-6
    xs = x.expand_as(vs)
    df = (f(_tangent_curve(m, xs, vs, eps)) - f(_tangent_curve(m, xs, vs, -eps))) / (2 * eps)
    ratio = df / m.norm(xs, vs)
    sup = ratio.max(0).values
    dual = m.dual_norm(x, egrad)
    torch.testing.assert_close(dual, sup, atol=1e-5, rtol=1e-5)
    # the gradient attains it: F(grad) = F*(df) and df(grad) = F*(df)^2
    dfg = (f(_tangent_curve(m, x, grad, eps)) - f(_tangent_curve(m, x, grad, -eps))) / (2 * eps)
    torch.testing.assert_close(m.norm(x, grad), dual, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(dfg, dual**2, atol=1e-6, rtol=1e-6)
    if name == "lorentz":
        # the vector projection of the Euclidean gradient is a different (wrong) thing there
        assert float((m.inverse_legendre(x, m.proju(x, egrad)) - grad).abs().max()) > 1e-3


def test_legendre_is_the_derivative_of_half_f_squared_along_tangent_curves():
    m, std = make("lorentz")
    x, y = pairs(m, 4, std, seed=9)
    v = m.logmap(x, y)
    torch.manual_seed(10)
    u = m.proju(x, torch.randn_like(x))
    eps = 1e-6
    fd = (m.norm(x, v + eps * u) ** 2 - m.norm(x, v - eps * u) ** 2) / (4 * eps)
    torch.testing.assert_close((m.legendre(x, v) * u).sum(-1), fd, atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(m.inverse_legendre(x, m.legendre(x, v)), v, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", ["sphere", "lorentz"])
def test_metric_laws_on_embedded_bases(name):
    """What the conformance kit checks, on the sphere and hyperboloid with tangent samples: triangle
    inequality, d(x, exp_x v) = F(x, v) for short v, the fundamental tensor on tangent vectors is
    the Hessian of F^2/2 (autograd), F is positive, homogeneous and convex on T_x M."""
    m, std = make(name)
    x, y = pairs(m, 16, std, seed=11)
    _, z = pairs(m, 16, std, seed=12)
    dxy, dyz, dxz = m.dist(x, y), m.dist(y, z), m.dist(x, z)
    assert bool((dxz <= dxy + dyz + 1e-12).all())
    torch.manual_seed(13)
    u = m.proju(x, torch.randn_like(x))
    w = m.proju(x, torch.randn_like(x))
    v = 0.3 * u / m.norm(x, u)[..., None]
    torch.testing.assert_close(m.dist(x, m.expmap(x, v)), m.norm(x, v), atol=1e-12, rtol=1e-12)
    assert bool((m.norm(x, u) > 0).all())
    torch.testing.assert_close(m.norm(x, 2.5 * u), 2.5 * m.norm(x, u), atol=1e-13, rtol=1e-13)
    assert bool((m.norm(x, u + w) <= m.norm(x, u) + m.norm(x, w) + 1e-12).all())
    g = m.fundamental_tensor(x, u)
    for i in range(3):
        hess = torch.autograd.functional.hessian(lambda vv, i=i: 0.5 * m.norm(x[i], vv) ** 2, u[i])
        torch.testing.assert_close(w[i] @ g[i] @ w[i], w[i] @ hess @ w[i], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(m.inner(x, u), m.norm(x, u) ** 2, atol=1e-12, rtol=1e-12)
    # retraction agrees with expmap to first order; transp lands in the tangent space at y
    for t in (1e-2, 1e-3):
        assert float((m.retr(x, t * v) - m.expmap(x, t * v)).abs().max()) < 1e-12
    moved = m.transp(x, y, u)
    torch.testing.assert_close(m.proju(y, moved), moved, atol=1e-12, rtol=0)


# ------------------------------------------------------------------ flows and winds
def test_killing_flow_matches_matrix_exponential_and_integrates_the_wind():
    a = lorentz_generator(0.4, seed=2)
    w = KillingWind(a)
    y = torch.randn(5, 3, dtype=F64)
    t = torch.linspace(-2, 2, 5, dtype=F64)
    ref = torch.stack(
        [torch.from_numpy(scipy.linalg.expm(ti.item() * a.numpy())) @ yi for ti, yi in zip(t, y, strict=True)]
    )
    torch.testing.assert_close(w.flow(t, y), ref, atol=1e-12, rtol=1e-12)
    # a translation along the rotation axis (a Jordan block of the augmented field)
    a2 = torch.zeros(3, 3, dtype=F64)
    a2[0, 1], a2[1, 0] = -0.5, 0.5
    shifted = KillingWind(a2, shift=torch.tensor([0.2, 0.1, 0.3], dtype=F64))
    eps = 1e-6
    fd = (shifted.flow(t + eps, y) - shifted.flow(t - eps, y)) / (2 * eps)
    torch.testing.assert_close(fd, shifted(shifted.flow(t, y)), atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(shifted.flow(torch.zeros(5, dtype=F64), y), y, atol=1e-14, rtol=0)


def test_parabolic_lorentz_wind_uses_matrix_exp_and_stays_exact():
    # A = J S with a parabolic (nilpotent) generator: a horocyclic flow of H^2
    s = torch.tensor([[0.0, 0.0, -0.3], [0.0, 0.0, -0.3], [0.3, 0.3, 0.0]], dtype=F64)
    a = J3 @ s
    assert torch.allclose(torch.linalg.matrix_power(a, 3), torch.zeros(3, 3, dtype=F64))
    m = Navigation(geoopt.Lorentz(), KillingWind(a))
    x, y = pairs(m, 6, 0.3)
    v = m.logmap(x, y)
    torch.testing.assert_close(m.expmap(x, v), y, atol=1e-10, rtol=0)
    torch.testing.assert_close(m.norm(x, v), m.dist(x, y), atol=1e-10, rtol=1e-10)


# ------------------------------------------------------------------ validation
def test_bad_winds_and_bases_raise_clear_errors():
    with pytest.raises(ValueError, match="skew-symmetric"):
        Navigation(geoopt.Sphere(), KillingWind(torch.eye(3)))
    with pytest.raises(ValueError, match=r"A\^T J \+ J A = 0"):
        Navigation(geoopt.Lorentz(), KillingWind(skew(3, 0.3)))
    with pytest.raises(ValueError, match="shift"):
        Navigation(geoopt.Sphere(), KillingWind(skew(3, 0.3), shift=torch.ones(3, dtype=F64)))
    with pytest.raises(ValueError, match="rotations about the origin"):
        Navigation(geoopt.PoincareBall(), KillingWind(torch.eye(2)))
    with pytest.raises(ValueError, match="base must be"):
        Navigation(geoopt.Stiefel(), None, dim=2)
    with pytest.raises(ValueError, match="dim="):
        Navigation(geoopt.Sphere(), lambda x: 0 * x)
    with pytest.raises(ValueError, match="does not match"):
        Navigation(geoopt.Sphere(), KillingWind(skew(3, 0.3)), dim=3)
    exact = Navigation(geoopt.Sphere(), KillingWind(skew(3, 0.3)))
    with pytest.raises(ValueError, match="general winds only"):
        exact.dist(torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0, 1.0, 0], dtype=F64), steps=8)


def test_points_where_the_wind_is_too_strong_are_rejected_with_the_value():
    # rotation at rate 2 on R^2: the domain is |x| < 1/2
    m = Navigation(geoopt.Euclidean(ndim=1), KillingWind(torch.tensor([[0.0, -2.0], [2.0, 0.0]], dtype=F64)))
    inside = torch.tensor([0.1, 0.2], dtype=F64)
    outside = torch.tensor([0.6, 0.0], dtype=F64)
    for call in (
        lambda: m.dist(inside, outside),
        lambda: m.norm(outside, inside),
        lambda: m.logmap(outside, inside),
        lambda: m.egrad2rgrad(outside, inside),
        lambda: m.cdist(inside[None], outside[None]),
    ):
        with pytest.raises(ValueError, match=r"[xy] = \[0\.6, 0\].*\|W\(x\)\|_h = 1\.2 >= 1"):
            call()
    ok, reason = m.check_point_on_manifold(outside, explain=True)
    assert not ok and "|W(x)|_h = 1.2" in reason and "domain" in reason
    assert m.check_point_on_manifold(inside)
    # a geodesic that leaves the domain is an error, not a silent point outside it
    with pytest.raises(ValueError, match="leaves the domain"):
        m.expmap(inside, torch.tensor([5.0, 0.0], dtype=F64))
    # a general wind is checked the same way
    g = Navigation(
        geoopt.Sphere(),
        lambda x: 3.0 * torch.cross(x, torch.tensor([0.0, 0.0, 1.0], dtype=F64).expand_as(x), dim=-1),
        dim=2,
    )
    with pytest.raises(ValueError, match=r"\|W\(x\)\|_h = 3 >= 1"):
        g.norm(torch.tensor([1.0, 0.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0, 0.0], dtype=F64))


# ------------------------------------------------------------------ API, dtypes, shapes
def test_cdist_matches_dist_and_chunks():
    m, std = make("sphere")
    x, y = pairs(m, 5, std)
    full = m.cdist(x, y)
    torch.testing.assert_close(full, m.dist(x[:, None], y[None]), atol=1e-13, rtol=0)
    torch.testing.assert_close(m.cdist(x, y, chunk=3), full, atol=1e-13, rtol=0)
    torch.testing.assert_close(m.cdist(x[None].expand(2, 5, 3), y), full.expand(2, 5, 5), atol=1e-13, rtol=0)


def test_float32_follows_input_dtype():
    m, std = make("sphere")
    x, y = pairs(m, 8, std)
    x32, y32 = x.float(), y.float()
    d32 = m.dist(x32, y32)
    v32 = m.logmap(x32, y32)
    assert d32.dtype == torch.float32 and v32.dtype == torch.float32
    torch.testing.assert_close(d32.double(), m.dist(x, y), atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(m.expmap(x32, v32), y32, atol=2e-5, rtol=0)


def test_general_wind_is_differentiable_in_its_parameters_and_reverses():
    torch.manual_seed(0)
    layer = torch.nn.Linear(2, 2).double()

    def wind(x):
        return 0.2 * torch.tanh(layer(x))

    m = Navigation(geoopt.PoincareBall(c=1.0), wind, dim=2)
    x = torch.tensor([[0.1, -0.2]], dtype=F64)
    y = torch.tensor([[-0.3, 0.25]], dtype=F64)
    m.dist(x, y).sum().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    assert float(layer.weight.grad.abs().sum()) > 0
    v = torch.tensor([[0.3, -0.1]], dtype=F64)
    torch.testing.assert_close(m.reverse().norm(x, v), m.norm(x, -v), atol=1e-14, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(m.reverse().dist(y, x), m.dist(x, y), atol=1e-7, rtol=1e-7)
    report = m.solve(x, y)
    assert bool(report.converged.all())


def test_riemannian_adam_on_the_sphere_reaches_the_target():
    """RiemannianAdam carries its momentum by `retr_transp` (one RK4 step of the parallel transport
    per optimizer step, ~0.1 s here: few, longer steps); the momentum stays tangent."""
    m, _ = make("sphere")
    target = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    p = geoopt.ManifoldParameter(torch.tensor([1.0, 0.0, 0.0], dtype=F64), manifold=m)
    opt = geoopt.optim.RiemannianAdam([p], lr=0.1)
    start = float(m.dist(p.detach(), target))
    for _ in range(45):
        opt.zero_grad()
        loss = m.dist(p, target) ** 2
        loss.backward()
        opt.step()
        momentum = opt.state[p]["exp_avg"]
        torch.testing.assert_close(m.proju(p.detach(), momentum), momentum, atol=1e-12, rtol=0)
    assert start > 1.0
    assert float(m.dist(p.detach(), target)) < 0.1
    assert abs(float(p.detach().norm()) - 1) < 1e-10


def test_faim_head_over_navigation():
    m = Navigation(geoopt.PoincareBall(c=1.0), KillingWind(skew(4, 0.2)).float())
    for seed in range(6):  # random prototypes start inside the bounded domain |W|_h < 1
        torch.manual_seed(seed)
        head = FAIMHead(4, 3, manifold=m)
        assert bool((m.wind_size(head.prototypes.detach()) < 1).all())
    x = 0.2 * torch.randn(6, 4)
    logits = head(x)
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    assert head.prototypes.grad is not None and torch.isfinite(head.prototypes.grad).all()


# ------------------------------------------------------------------ the conformance kit
FLAT_KIT = {
    # bounded domains |W|_h < 1 (a rotation on R^2 / on the Poincare disk): geodesics leave them,
    # so long steps raise by design
    "euclidean": ({"scale": 0.3}, ["large_steps"]),
    "poincare": ({"scale": 0.3}, ["large_steps"]),
    "sphere-projection": ({"scale": 0.3}, []),
}


@pytest.mark.parametrize("name", list(FLAT_KIT))
def test_check_manifold_on_flat_chart_bases_with_killing_winds(name):
    m, _ = make(name)
    options, skip = FLAT_KIT[name]
    report = check_manifold(m, dtype=F64, skip=skip, **options)
    assert report.ok and set(report.skipped) == set(skip)


def test_check_manifold_float32_killing():
    m, _ = make("sphere-projection")
    assert check_manifold(m, dtype=torch.float32, scale=0.3).ok


def test_check_manifold_general_wind_euclidean():
    m = Navigation(geoopt.Euclidean(ndim=1), lambda x: 0.3 * torch.tanh(x), dim=2)
    report = check_manifold(m, dtype=F64, n=sized(4, 8), rtol=1e-4, atol=1e-6, large_steps=(3.0,), scale=0.3)
    assert report.ok and not report.skipped


def test_check_manifold_general_wind_poincare():
    """A general wind on the Poincare disk with |W|_h <= 0.3 everywhere (a complete metric), points
    from the part of the disk where 32 RK4 steps keep the solver error below the tolerances."""
    e = torch.tensor([1.0, 0.5], dtype=F64)

    def wind(x):  # 1 / lambda(x) = (1 - |x|^2) / 2, so |W|_h = 0.3 |tanh(x + e)| < 0.3 sqrt(2)
        return 0.3 * (1 - (x * x).sum(-1, keepdim=True)) / 2 * torch.tanh(x + e)

    m = Navigation(geoopt.PoincareBall(c=torch.tensor(1.0, dtype=F64)), wind, dim=2, steps=32)
    torch.manual_seed(0)
    pool = m.random(64, 2, dtype=F64, std=0.4)
    report = check_manifold(
        m, dtype=F64, n=sized(3, 6), rtol=1e-4, atol=1e-6, large_steps=(3.0,), scale=0.3, points=pool
    )
    assert report.ok and not report.skipped


@pytest.mark.parametrize("name", ["sphere", "lorentz"])
def test_check_manifold_on_embedded_bases_with_killing_winds(name):
    m, _ = make(name)
    skip = ["large_steps"] if name == "lorentz" else []
    assert check_manifold(m, dtype=F64, scale=0.3, skip=skip).ok


@pytest.mark.parametrize("name", ["sphere", "lorentz"])
def test_check_manifold_on_embedded_bases_with_general_winds(name):
    m, std = make(name)
    # 60 shooting iterations: with 30, one sphere pair of the new kit's samples stalls at 5e-8
    g = Navigation(m.base, lambda x: m.wind(x), dim=m.dim, steps=32, max_iter=60)
    torch.manual_seed(0)
    pool = m.random(64, m.ambient_dim, dtype=F64, std=0.5 * std)  # away from the sphere chart's pole
    assert check_manifold(
        g,
        points=pool,
        dtype=F64,
        n=sized(2, 4),  # each law's cost is mostly per solver call: the `ci` profile runs 2 samples
        rtol=1e-4,
        atol=1e-6,
        large_steps=(3.0,),
        scale=0.3,
        skip=["large_steps"] if name == "lorentz" else [],
    ).ok


def test_faim_head_on_the_sphere_with_a_killing_wind():
    """`FAIMHead` on S^2: 2 features (a tangent vector at e_0) land on the sphere, prototypes stay on it."""
    from finslerlib.nn import FAIMHead

    gen = torch.zeros(3, 3, dtype=torch.float64)
    gen[0, 1], gen[1, 0] = 0.3, -0.3
    m = Navigation(geoopt.Sphere(), KillingWind(gen))
    assert (m.dim, m.ambient_dim) == (2, 3) and m.domain.embedded
    head = FAIMHead(2, 4, manifold=m, dtype=torch.float64)  # the intrinsic dimension
    x = torch.randn(5, 2, dtype=torch.float64)
    logits = head(x)
    z = head.embed(x)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5, dtype=torch.float64))
    # the logits are -s * d(z -> mu_k), the manifold's own distances
    want = -head.scale * m.dist(z[:, None], head.prototypes.detach()[None])
    torch.testing.assert_close(logits, want)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 0])).backward()
    geoopt.optim.RiemannianAdam(head.parameters(), lr=0.05).step()
    torch.testing.assert_close(head.prototypes.norm(dim=-1), torch.ones(4, dtype=torch.float64))
