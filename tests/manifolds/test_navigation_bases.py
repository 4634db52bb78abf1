"""`Navigation` on its bases: point checks, the safeguarded Killing root find, admissible paths,
empty batches, fixed poles, one rule for normal components, and the sphere's atlas.

Every expected value comes from an independent computation: scipy's `brentq` with
`scipy.linalg.expm` for arrival times, geoopt's own distances, closed forms.
"""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from finslerlib import KillingWind, Navigation
from finslerlib.manifolds.domains import SphereDomain, default_tolerance, domain_of
from finslerlib.math import navigation as nmath
from tests.support import sized

F64 = torch.float64


def rotation(axis, rate: float, n: int = 3) -> torch.Tensor:
    """The skew generator of a rotation of R^3 about `axis` at `rate`."""
    a = torch.as_tensor(axis, dtype=F64)
    a = a / a.norm()
    return rate * torch.tensor([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]], dtype=F64)


def random_skew(rate: float, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, dtype=F64, generator=g)
    a = a - a.T
    return rate * a / torch.linalg.matrix_norm(a, ord=2)


def sphere_arrival_brentq(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The root T of d(x, e^{-TA} y) = T on the unit sphere, by scipy (independent of finslerlib)."""

    def g(t):
        z = scipy.linalg.expm(-t * A) @ y
        return np.arccos(np.clip(x @ z, -1.0, 1.0)) - t

    w = np.linalg.norm(A @ y)
    d0 = np.arccos(np.clip(x @ y, -1.0, 1.0))
    return scipy.optimize.brentq(
        g, d0 / (1 + w) * (1 - 1e-12), d0 / (1 - w) * (1 + 1e-12) + 1e-15, xtol=1e-15
    )


# ------------------------------------------------------------------ point checks (issue 20, item 1)
def _sphere():
    return Navigation(geoopt.Sphere(), KillingWind(rotation([0.0, 0.0, 1.0], 0.5)))


def _lorentz():
    A = torch.zeros(3, 3, dtype=F64)
    A[0, 1] = A[1, 0] = 0.3  # a boost: A^T J + J A = 0
    return Navigation(geoopt.Lorentz(), KillingWind(A))


def test_off_base_targets_are_rejected_with_the_argument_named():
    m = _sphere()
    x = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    for bad in (1.001 * y, torch.zeros(3, dtype=F64)):
        with pytest.raises(ValueError, match=r"Sphere\(\): y is not a point of the base"):
            m.dist(x, bad)
        with pytest.raises(ValueError, match="y is not a point"):
            m.logmap(x, bad)
        with pytest.raises(ValueError, match="x is not a point"):
            m.expmap(bad, y)
        with pytest.raises(ValueError, match="x is not a point"):
            m.norm(bad, y)
        with pytest.raises(ValueError, match="y is not a point"):
            m.cdist(x[None], bad[None])
    # the message gives the measured value
    with pytest.raises(ValueError, match=r"max \|\|x\| - 1\| = 0.001"):
        m.dist(x, 1.001 * y)
    # the true distance is unchanged for points on the sphere (geoopt: pi/2 with no wind;
    # the doc example's 1.047198 = pi/3 with the wind)
    assert abs(m.dist(x, y).item() - torch.pi / 3) < 1e-12


def test_lorentz_lower_sheet_and_scaled_points_are_rejected():
    m = _lorentz()
    x = m.domain.origin(3, dtype=F64)
    y = m.projx(torch.tensor([0.0, 0.5, -0.7], dtype=F64))
    assert m.check_point_on_manifold(y)
    lower = y * torch.tensor([-1.0, 1.0, 1.0], dtype=F64)
    with pytest.raises(ValueError, match="lower sheet"):
        m.dist(x, lower)
    with pytest.raises(ValueError, match="not on the hyperboloid"):
        m.dist(x, 1.01 * y)
    ok, reason = m.check_point_on_manifold(lower, explain=True)
    assert not ok and "lower sheet" in reason


def test_poincare_point_outside_the_ball_is_rejected_not_a_nan_residual():
    m = Navigation(geoopt.PoincareBall(), KillingWind(rotation([0, 0, 1], 0.2)[:2, :2].contiguous()))
    x = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match="not inside the ball"):
        m.dist(x, torch.tensor([3.0, 0.0], dtype=F64))


def test_general_wind_checks_points_before_solving():
    A = rotation([0.0, 0.0, 1.0], 0.5)
    m = Navigation(geoopt.Sphere(), lambda p: p @ A.T, dim=2)
    x = torch.tensor([1.0, 0.0, 0.0], dtype=F64)
    y = torch.tensor([0.0, 0.6, 0.8], dtype=F64)
    with pytest.raises(ValueError, match="y is not a point"):
        m.dist(x, 0.5 * y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_point_tolerance_follows_the_dtype(dtype):
    m = _sphere()
    x = m.random(64, 3, dtype=dtype).as_subclass(torch.Tensor)  # made by projx in this dtype
    y = m.random(64, 3, dtype=dtype).as_subclass(torch.Tensor)
    assert torch.isfinite(m.dist(x, y)).all()
    off = 1.0 + 20 * default_tolerance(dtype)
    with pytest.raises(ValueError, match="not a point of the base"):
        m.dist(x, y * off)
    # float32 points cast to float64 (off by a few float32 ulps) are accepted in float64
    if dtype == torch.float32:
        x32 = torch.nn.functional.normalize(torch.tensor([[0.3, 0.4, 0.5]]), dim=-1) * (1 + 3e-7)
        assert torch.isfinite(m.dist(x32.double(), y[:1].double())).all()


# ------------------------------------------------------------------ the root find (items 5, and 23)
@pytest.mark.parametrize("rate", [0.5, 0.8, 0.9, 0.99])
def test_killing_root_find_converges_on_every_pair_of_the_sphere(rate):
    """2000 random pairs (the old clamped Newton failed on 1-6 % of them at rates 0.7-0.99)."""
    A = random_skew(rate, 3, seed=int(100 * rate))
    m = Navigation(geoopt.Sphere(), KillingWind(A))
    torch.manual_seed(int(1000 * rate))
    x = m.random(2000, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    y = m.random(2000, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    sol = m.solve(x, y)
    assert bool(sol.converged.all()), int((~sol.converged).sum())
    # an independent residual: arccos <x, expm(-T A) y> = T with scipy's expm
    An, xn, yn, tn = A.numpy(), x.numpy(), y.numpy(), sol.time.numpy()
    res = [
        abs(np.arccos(np.clip(xn[i] @ scipy.linalg.expm(-tn[i] * An) @ yn[i], -1, 1)) - tn[i])
        for i in range(0, 2000, 10)
    ]
    assert max(res) < 1e-6  # arccos near 0 / pi loses half the digits; brentq below checks T itself
    for i in range(0, 2000, 97):
        t_ref = sphere_arrival_brentq(An, xn[i], yn[i])
        assert abs(tn[i] - t_ref) < 1e-9 * (1 + t_ref), (i, tn[i], t_ref)


def test_killing_root_find_on_the_stereographic_sphere_at_rate_0_9():
    """SphereProjection(k=1) at rate 0.9 (the old root find failed on 182 of 4000 pairs)."""
    A = random_skew(0.9, 2, seed=3)
    m = Navigation(geoopt.SphereProjection(k=torch.tensor(1.0, dtype=F64)), KillingWind(A))
    torch.manual_seed(5)
    x = m.random(2000, 2, dtype=F64, std=2.0, max_wind=1 - 1e-9).as_subclass(torch.Tensor)
    y = m.random(2000, 2, dtype=F64, std=2.0, max_wind=1 - 1e-9).as_subclass(torch.Tensor)
    sol = m.solve(x, y)
    assert bool(sol.converged.all()), int((~sol.converged).sum())
    # geoopt's own distance on the base at the root: d_h(x, e^{-TA} y) = T
    z = m.wind.flow(-sol.time, y)
    d = geoopt.SphereProjection(k=torch.tensor(1.0, dtype=F64)).dist(x, z)
    assert (d - sol.time).abs().max().item() < 1e-8


def test_killing_distance_on_failure_nan_and_raise():
    m = _sphere()
    torch.manual_seed(0)
    x = m.random(64, 3, dtype=F64).as_subclass(torch.Tensor)
    y = m.random(64, 3, dtype=F64).as_subclass(torch.Tensor)
    spec = m.wind.spectral(F64, x.device)
    with pytest.raises(RuntimeError, match="did not converge"):
        nmath.killing_distance(m.domain, x, y, m.wind, m.wind.flow, max_iter=1, spectral=spec)
    d = nmath.killing_distance(
        m.domain, x, y, m.wind, m.wind.flow, max_iter=1, spectral=spec, on_failure="nan"
    )
    full = m.dist(x, y)
    ok = torch.isfinite(d)
    assert bool((~ok).any())
    torch.testing.assert_close(d[ok], full[ok], atol=1e-12, rtol=0)
    # the option is accepted by Navigation for Killing winds too (per call and at construction)
    torch.testing.assert_close(m.dist(x, y, on_failure="nan"), full)
    with pytest.raises(ValueError, match="on_failure"):
        m.dist(x, y, on_failure="ignore")
    with pytest.raises(ValueError, match="general winds only"):
        m.dist(x, y, steps=8)


# ------------------------------------------------------------------ admissible paths (item 4)
def test_no_admissible_path_between_the_polar_caps_is_an_error():
    """A rotation at rate 1.5 about e_2: |W| < 1 only in two caps |x_2| > 0.745."""
    m = Navigation(geoopt.Sphere(), KillingWind(rotation([0.0, 0.0, 1.0], 1.5)))
    x = SphereDomain(2).projx(torch.tensor([0.1, 0.0, 1.0], dtype=F64))
    y = SphereDomain(2).projx(torch.tensor([0.0, 0.1, -1.0], dtype=F64))
    assert m.wind_size(x) < 1 and m.wind_size(y) < 1
    with pytest.raises(ValueError, match="no admissible path"):
        m.dist(x, y)
    with pytest.raises(ValueError, match="no admissible path"):
        m.logmap(x, y)
    # expmap: a vector whose geodesic crosses the band |x_2| < 0.745 and ends in the other cap
    v = m.proju(x, torch.tensor([1.0, 0.0, 0.0], dtype=F64)) * 3.0
    with pytest.raises(ValueError, match="leaves the domain"):
        m.expmap(x, v)
    # pairs inside one cap are fine
    y2 = SphereDomain(2).projx(torch.tensor([0.0, 0.2, 1.0], dtype=F64))
    assert torch.isfinite(m.dist(x, y2))


# ------------------------------------------------------------------ empty batches (item 8)
@pytest.mark.parametrize("exact", [True, False])
def test_cdist_with_no_rows_or_no_columns(exact):
    A = rotation([0.0, 0.0, 1.0], 0.5)
    m = _sphere() if exact else Navigation(geoopt.Sphere(), lambda p: p @ A.T, dim=2)
    x = m.random(3, 3, dtype=F64).as_subclass(torch.Tensor)
    empty = x[:0]
    assert m.cdist(empty, x).shape == (0, 3)
    assert m.cdist(x, empty).shape == (3, 0)
    assert m.cdist(empty[None], empty[None]).shape == (1, 0, 0)


# ------------------------------------------------------------------ fixed poles (item 9)
def test_logmap_between_the_fixed_poles_of_a_rotation():
    m = Navigation(geoopt.Sphere(), KillingWind(rotation([0.0, 0.0, 1.0], 0.5)))
    x = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    y = -x
    d_ref = np.pi  # the wind vanishes at both poles, which are antipodal (geoopt's arccos: 3.14114)
    assert abs(m.dist(x, y).item() - d_ref) < 1e-12
    v = m.logmap(x, y)
    assert abs(m.norm(x, v).item() - d_ref) < 1e-12
    torch.testing.assert_close(m.expmap(x, v), y, atol=1e-12, rtol=0)


# ------------------------------------------------------------------ normal components (item 10)
def test_every_method_projects_tangent_vectors_first():
    m = _sphere()
    x = torch.tensor([0.6, 0.0, 0.8], dtype=F64)
    u = m.proju(x, torch.tensor([0.1, 0.2, -0.05], dtype=F64))
    noisy = u + 0.5 * x  # a normal component
    # Zermelo's formula on the projected vector (closed form, numpy)
    w = (m.wind.A @ x).numpy()
    un = u.numpy()
    lam = 1 - w @ w
    f_ref = (np.sqrt(lam * (un @ un) + (w @ un) ** 2) - w @ un) / lam
    assert abs(m.norm(x, noisy).item() - f_ref) < 1e-14
    assert abs(m.norm(x, u).item() - f_ref) < 1e-14
    torch.testing.assert_close(m.expmap(x, noisy), m.expmap(x, u), atol=1e-14, rtol=0)
    torch.testing.assert_close(m.legendre(x, noisy), m.legendre(x, u), atol=1e-14, rtol=0)


# ------------------------------------------------------------------ domains vs geoopt
@pytest.mark.parametrize(
    "base",
    [
        geoopt.Sphere(),
        geoopt.Lorentz(k=torch.tensor(1.5, dtype=F64)),
        geoopt.PoincareBall(c=torch.tensor(0.7, dtype=F64)),
        geoopt.SphereProjection(k=torch.tensor(0.8, dtype=F64)),
    ],
    ids=["sphere", "lorentz", "poincare", "sphere-projection"],
)
def test_domain_geometry_matches_geoopt(base):
    dom = domain_of(base, 3)
    torch.manual_seed(0)
    x = dom.random(32, dom.ambient_dim, dtype=F64, std=0.4)
    y = dom.random(32, dom.ambient_dim, dtype=F64, std=0.4)
    v = dom.proju(x, torch.randn_like(x)) * 0.3
    torch.testing.assert_close(dom.dist(x, y), base.dist(x, y), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(dom.logmap(x, y), base.logmap(x, y), atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(dom.expmap(x, v), base.expmap(x, v), atol=1e-10, rtol=1e-10)
    ok, reason = dom.check_point(x)
    assert ok, reason
    # parallel transport (geoopt's Sphere.transp is a projection, not a parallel transport):
    # an isometry T_x -> T_y that sends log_x y to -log_y x
    pt = dom.transp(x, y, v)
    torch.testing.assert_close(dom.proju(y, pt), pt, atol=1e-12, rtol=0)
    torch.testing.assert_close(dom.inner(y, pt, pt), dom.inner(x, v, v), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(dom.transp(x, y, dom.logmap(x, y)), -dom.logmap(y, x), atol=1e-10, rtol=0)
    if not isinstance(base, geoopt.Sphere):
        torch.testing.assert_close(pt, base.transp(x, y, v), atol=1e-10, rtol=1e-10)


def test_sphere_atlas_charts_are_inverse_and_conformal():
    dom = SphereDomain(2)
    torch.manual_seed(1)
    x = dom.random(64, 3, dtype=F64, std=1.0)
    u = dom.proju(x, torch.randn_like(x))
    for chart in dom.atlas:
        keep = chart.reach(x) > 0.2
        p = chart.to_chart(x[keep])
        torch.testing.assert_close(chart.from_chart(p), x[keep], atol=1e-12, rtol=0)
        pu = chart.push(x[keep], u[keep])
        torch.testing.assert_close(chart.pull(p, pu), u[keep], atol=1e-12, rtol=0)
        lam = chart.conformal(p)
        torch.testing.assert_close(lam * pu.norm(dim=-1), u[keep].norm(dim=-1), atol=1e-12, rtol=0)
    # a pair on one hemisphere gets the chart whose pole is on the other
    y = dom.random(64, 3, dtype=F64, std=1.0)
    north = (x[:, 0] > 0.1) & (y[:, 0] > 0.1)
    south = (x[:, 0] < -0.1) & (y[:, 0] < -0.1)
    idx = dom.chart_index(x, y)
    assert bool((idx[north] == 0).all()) and bool((idx[south] == 1).all())
    assert dom.atlas[0].reach(-dom.origin(3, dtype=F64)) == 0  # chart 0's pole is -e_0


# ------------------------------------------------------------------ the sphere's atlas (item 3)
@pytest.mark.slow
def test_callable_killing_wind_matches_the_exact_solver_through_either_polar_region():
    """A rotation passed as a plain callable, on pairs whose geodesic passes close to -e_0 or +e_0
    (the poles of the two stereographic charts): the atlas keeps the chart's pole away."""
    A = random_skew(0.6, 3, seed=11)
    exact = Navigation(geoopt.Sphere(), KillingWind(A))
    general = Navigation(geoopt.Sphere(), lambda p: p @ A.T, dim=2, steps=64)
    torch.manual_seed(2)
    x = exact.random(3000, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    y = exact.random(3000, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    d = exact.dist(x, y)
    v = exact.logmap(x, y)
    path0 = torch.stack([exact.expmap(x, s * v)[:, 0] for s in torch.linspace(0, 1, 17, dtype=F64)])
    chosen, per_pole = [], sized(1, 2)  # the numerical solve costs seconds a pair: one per pole in `ci`
    for near_pole in (path0.min(0).values < -0.95, path0.max(0).values > 0.95):
        ok = near_pole & (x[:, 0].abs() < 0.6) & (y[:, 0].abs() < 0.6) & (d < 2.8)
        chosen.append(ok.nonzero().squeeze(-1)[:per_pole])
    idx = torch.cat(chosen)
    assert idx.numel() == 2 * per_pole
    # the exact distances against scipy (brentq on expm), then the numerical solver against them
    for i in idx.tolist():
        t_ref = sphere_arrival_brentq(A.numpy(), x[i].numpy(), y[i].numpy())
        assert abs(d[i].item() - t_ref) < 1e-9
    # never a certified wrong number: each pair matches the exact distance or is reported unsolved
    # (the old single chart from -e_0 certified 81 % too long on such a pair)
    dn = general.dist(x[idx], y[idx], on_failure="nan")
    solved = torch.isfinite(dn)
    assert int(solved.sum()) >= 2, dn
    torch.testing.assert_close(dn[solved], d[idx][solved], atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sphere_point_check_fast_path_keeps_the_exact_rule(dtype):
    """The matmul fast path of `SphereDomain.check_point` accepts what the exact rule
    ||x| - 1| <= atol + rtol accepts near the bound, and still names NaN and off-sphere points."""
    dom = SphereDomain(2)
    tol = 2 * default_tolerance(dtype)
    x = torch.nn.functional.normalize(torch.randn(64, 3, dtype=torch.float64), dim=-1)
    # |x| - 1 at 0.9 of the bound: ||x|^2 - 1| is above the bound (fast path fails), exact rule passes
    near = (x * (1.0 + 0.9 * tol)).to(dtype)
    assert dom.check_point(near)[0]
    off = (x * (1.0 + 4.0 * tol)).to(dtype)
    ok, reason = dom.check_point(off)
    assert not ok and "not on the unit sphere" in reason
    bad = x.to(dtype).clone()
    bad[3, 1] = float("nan")
    ok, reason = dom.check_point(bad)
    assert not ok and "non-finite" in reason


def test_killing_wind_check_skipped_only_where_the_whole_sphere_is_admissible():
    """|A|_2 < 1: every point of S^2 has |W| < 1 (the per-point check is skipped); |A|_2 > 1: a
    point where |A x| >= 1 is still reported."""
    weak = Navigation(geoopt.Sphere(), KillingWind(0.9 * torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0],
                                                                       [0.0, 0.0, 0.0]])))
    assert weak._everywhere
    strong = Navigation(geoopt.Sphere(), KillingWind(1.5 * torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0],
                                                                         [0.0, 0.0, 0.0]])))
    assert not strong._everywhere
    x = torch.tensor([[0.0, 0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0, 0.0]])  # |A y| = 1.5
    with pytest.raises(ValueError, match="outside the domain"):
        strong.dist(x, y)
