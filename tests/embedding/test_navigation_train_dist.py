"""`hyperboloid_navigation_dist`: the training distance of the navigation geometries.

Oracles: `Navigation(geoopt.Lorentz(), wind).dist` (the certified root find on the flowed points,
its gradients by the implicit function theorem through `base.dist` and `dist_slope`), central
finite differences in float64, and the definition $d_h(x, e^{-TA} y) = T$ checked with the
wind's own flow.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from finslerlib.embedding import (
    BoostWind,
    HyperboloidRotation,
    RotationWind,
    hyperboloid_navigation_dist,
    lorentz_points,
)
from finslerlib.manifolds import Navigation

RADIUS = 1.0
SPEED = 0.9


def strong_wind(kind: str, dim: int):
    """A wind near its largest speed `SPEED` at hyperbolic radius `RADIUS`."""
    gen = torch.Generator().manual_seed(3)
    if kind == "boost":
        wind = BoostWind(dim, SPEED / torch.cosh(torch.tensor(RADIUS)).item())
        with torch.no_grad():
            wind.raw.copy_(3.0 * torch.randn(dim, generator=gen))  # |c| = bound tanh(|raw|) ~ bound
        return wind.double()
    rot = RotationWind(dim, SPEED / torch.sinh(torch.tensor(RADIUS)).item(), generator=gen)
    with torch.no_grad():
        rot.raw_rate.fill_(3.0)
    return HyperboloidRotation(rot.double())


def root_bound(want, dtype=torch.float64):
    """How far two roots within the solvers' tolerance can be: each solver stops at
    $|g| \\le \\tau = 64\\,\\varepsilon\\,(1 + d_0 / (1 - w))$ ($d_0 \\le T (1 + w)$), and
    $|g'| \\ge 1 - w$, so each root is within $\\tau / (1 - w)$ of the exact one."""
    eps = torch.finfo(dtype).eps
    tau = 64 * eps * (1 + want * (1 + SPEED) / (1 - SPEED))
    return 2 * tau / (1 - SPEED)


def points(n: int, dim: int, seed: int, dtype=torch.float64):
    """`n` pairs within radius `RADIUS`, a third on its boundary, a few coincident."""
    gen = torch.Generator().manual_seed(seed)
    u = 0.6 * torch.randn(2, n, dim, dtype=torch.float64, generator=gen)
    u[:, : n // 3] *= 10.0  # clamped to the boundary, where the wind is strongest
    u[1, -3:] = u[0, -3:]  # coincident pairs
    return lorentz_points(u[0], RADIUS).to(dtype), lorentz_points(u[1], RADIUS).to(dtype)


@pytest.mark.parametrize("kind", ["boost", "rotation"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_distance_is_the_certified_navigation_distance(kind, dtype):
    wind = strong_wind(kind, 5)
    x, y = points(400, 5, seed=1, dtype=dtype)
    want = Navigation(geoopt.Lorentz(), wind).dist(x.double(), y.double())
    got = hyperboloid_navigation_dist(x, y, wind.to(dtype))
    assert got.dtype == dtype
    eps = torch.finfo(dtype).eps
    # float32: the coefficients' rounding (a few eps relative), amplified by cosh^2 R <= 2.4 and
    # 1 / (1 - w) <= 10
    bound = root_bound(want) if dtype == torch.float64 else 256 * eps * (1 + want)
    assert torch.all((got.double() - want).abs() <= bound)
    assert torch.all(got[-3:] == 0)
    # the definition, with the wind's own flow: d_h(x, phi_{-T} y) = T
    if dtype == torch.float64:
        # (geoopt's acosh is 3e-8 at coincident points: those are left out)
        z = wind.flow(-got, y)[:-3]
        dh = geoopt.Lorentz().dist(x[:-3], z)
        assert torch.all((dh - got[:-3]).abs() <= 1e3 * eps * (1 + want[:-3]))


@pytest.mark.parametrize("kind", ["boost", "rotation"])
def test_gradients_are_the_certified_distances_and_finite_differences(kind):
    wind = strong_wind(kind, 4)
    gen = torch.Generator().manual_seed(2)
    u = 0.6 * torch.randn(2, 60, 4, dtype=torch.float64, generator=gen)
    u[:, :20] *= 10.0
    u.requires_grad_(True)
    weights = torch.randn(60, dtype=torch.float64, generator=gen)
    params = [p for p in wind.parameters() if p.requires_grad]
    ref = Navigation(geoopt.Lorentz(), wind)

    def loss(fn):
        return (fn(lorentz_points(u[0], RADIUS), lorentz_points(u[1], RADIUS)) * weights).sum()

    got = torch.autograd.grad(loss(lambda x, y: hyperboloid_navigation_dist(x, y, wind)), [u, *params])
    want = torch.autograd.grad(loss(ref.dist), [u, *params])
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-9, atol=1e-11)
    # central differences on the points inside the ball (the chart clamps the others) and on
    # the wind's parameters
    inside = u[:, 20:].detach()
    h = 1e-6
    with torch.no_grad():
        for idx in [(0, 3, 1), (1, 7, 0), (0, 11, 3)]:
            e = torch.zeros_like(inside)
            e[idx] = h

            def f(v):
                return (
                    hyperboloid_navigation_dist(
                        lorentz_points(v[0], RADIUS), lorentz_points(v[1], RADIUS), wind
                    )
                    * weights[20:]
                ).sum()

            fd = (f(inside + e) - f(inside - e)) / (2 * h)
            assert abs(fd - got[0][(idx[0], idx[1] + 20, idx[2])]) <= 1e-6 * (1 + abs(fd))
        p = params[0]
        e = torch.zeros_like(p)
        e.view(-1)[0] = h
        p.add_(e)
        up = loss(lambda x, y: hyperboloid_navigation_dist(x, y, wind))
        p.sub_(2 * e)
        down = loss(lambda x, y: hyperboloid_navigation_dist(x, y, wind))
        p.add_(e)
        fd = (up - down) / (2 * h)
        assert abs(fd - got[1].view(-1)[0]) <= 1e-6 * (1 + abs(fd))


@pytest.mark.parametrize("kind", ["boost", "rotation"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_is_finite_and_zero_at_coincident_points(kind, dtype):
    wind = strong_wind(kind, 3).to(dtype)
    u = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]], dtype=dtype, requires_grad=True)
    x = lorentz_points(u, RADIUS)
    d = hyperboloid_navigation_dist(x, x, wind)
    assert torch.all(d == 0)
    (g,) = torch.autograd.grad(d.sum(), u)
    assert torch.all(g == 0)


def test_rejects_other_winds():
    from finslerlib.manifolds import KillingWind

    A = torch.tensor([[0.0, 0.1, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, 0.0]])
    x = lorentz_points(torch.zeros(1, 2), 1.0)
    with pytest.raises(TypeError, match="BoostWind or a HyperboloidRotation"):
        hyperboloid_navigation_dist(x, x, KillingWind(A))


@pytest.mark.parametrize("kind", ["boost", "rotation"])
def test_safeguarded_iteration_takes_over_unconverged_pairs(kind, monkeypatch):
    import finslerlib.embedding.wind as wind_module

    wind = strong_wind(kind, 5)
    x, y = points(200, 5, seed=4)
    want = Navigation(geoopt.Lorentz(), wind).dist(x, y)
    # one Newton step leaves most pairs unconverged: the safeguarded iteration finishes them
    monkeypatch.setattr(wind_module, "_NEWTON_STEPS", 1)
    got = hyperboloid_navigation_dist(x, y, wind)
    assert torch.all((got - want).abs() <= root_bound(want))
    with pytest.raises(RuntimeError, match="did not converge"):
        hyperboloid_navigation_dist(x, y, wind, max_iter=2)


def test_gradient_reaches_a_zero_boost():
    # at c = 0 the rate |c| has no derivative; the distance's first order in c still has one
    wind = BoostWind(3, 0.5).double()
    with torch.no_grad():
        wind.raw.zero_()
    x, y = points(30, 3, seed=7)
    hyperboloid_navigation_dist(x, y, wind).sum().backward()
    got = wind.raw.grad.clone()
    wind.zero_grad()
    Navigation(geoopt.Lorentz(), wind).dist(x, y).sum().backward()
    want = wind.raw.grad
    assert want.abs().max() > 0.1
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("size", [1e-10, 1e-14, 1e-17])
def test_gradient_is_continuous_at_a_small_boost(size):
    # sinh(rT/2) from exp(h) - exp(-h) loses its relative accuracy as rT -> 0, and the gradient
    # to the wind divides by the rate: a small nonzero boost must give Navigation's gradient
    wind = BoostWind(3, 0.5).double()
    direction = torch.tensor([0.48, -0.6, 0.64], dtype=torch.float64)
    with torch.no_grad():
        wind.raw.copy_(size * direction)
    x, y = points(30, 3, seed=7)
    hyperboloid_navigation_dist(x, y, wind).sum().backward()
    got = wind.raw.grad.clone()
    wind.zero_grad()
    Navigation(geoopt.Lorentz(), wind).dist(x, y).sum().backward()
    want = wind.raw.grad
    assert want.abs().max() > 0.1
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["boost", "rotation"])
def test_batch_of_several_dimensions_in_the_fallback(kind, monkeypatch):
    import finslerlib.embedding.wind as wind_module

    wind = strong_wind(kind, 3)
    x, y = points(13, 3, seed=5)
    x, y = x[:4], y[:9]
    nav = Navigation(geoopt.Lorentz(), wind).dist
    want = torch.stack([nav(xi.expand(9, 4), y) for xi in x])
    # one Newton step leaves pairs unconverged: the safeguarded iteration runs on a [4, 9] batch
    monkeypatch.setattr(wind_module, "_NEWTON_STEPS", 1)
    got = hyperboloid_navigation_dist(x[:, None], y[None], wind)
    flat = hyperboloid_navigation_dist(x.repeat_interleave(9, 0), y.repeat(4, 1), wind)
    assert got.shape == (4, 9)
    assert torch.all((got - want).abs() <= root_bound(want))
    assert torch.equal(got.reshape(-1), flat)


def test_rejects_points_outside_the_winds_domain():
    # a boost along e1 of size |c|: |W(p)|_h = |c| sqrt(p_0^2 - p_1^2) grows across e1
    wind = BoostWind(3, 0.9 / torch.cosh(torch.tensor(1.0)).item()).double()
    with torch.no_grad():
        wind.raw.copy_(torch.tensor([30.0, 0.0, 0.0]))
    inside = lorentz_points(torch.tensor([[0.0, 0.3, 0.0]], dtype=torch.float64), 10.0)
    outside = lorentz_points(torch.tensor([[0.0, 0.0, 1.5]], dtype=torch.float64), 10.0)
    size = wind.c.norm().item() * torch.cosh(torch.tensor(1.5)).item()
    assert size > 1
    with pytest.raises(ValueError, match=rf"y is outside the wind's domain: \|W\(y\)\|_h up to {size:.4g}"):
        hyperboloid_navigation_dist(inside, outside, wind)
    with pytest.raises(ValueError, match=r"x is outside the wind's domain"):
        hyperboloid_navigation_dist(outside, inside, wind)
    with pytest.raises(ValueError, match=r"outside the domain.*1\.372"):
        Navigation(geoopt.Lorentz(), wind).dist(inside, outside)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rejects_points_off_the_hyperboloid_or_not_finite(dtype):
    wind = strong_wind("rotation", 3).to(dtype)
    x, y = points(6, 3, seed=8, dtype=dtype)
    hyperboloid_navigation_dist(x, y, wind)  # on the sheet within rounding
    with pytest.raises(ValueError, match=r"x is not a point of the hyperboloid \(row 0: <x, x>_L = -4"):
        hyperboloid_navigation_dist(2 * x, y, wind)
    with pytest.raises(ValueError, match=r"y is not a point of the hyperboloid .* x_0 = -"):
        hyperboloid_navigation_dist(x, -y, wind)
    for bad in (float("nan"), float("inf")):
        z = y.clone()
        z[2, 1] = bad
        with pytest.raises(ValueError, match=r"y is not finite \(row 2"):
            hyperboloid_navigation_dist(x, z, wind)


def test_without_value_checks_still_rejects_non_finite_points_and_the_winds_outside():
    from finslerlib.math.validation import value_checks

    wind = strong_wind("boost", 3)
    x, y = points(6, 3, seed=8)
    z = y.clone()
    z[2, 1] = float("nan")
    with value_checks(False):
        with pytest.raises(ValueError, match=r"y is not finite \(row 2"):
            hyperboloid_navigation_dist(x, z, wind)
        far = lorentz_points(torch.full((1, 3), 5.0, dtype=torch.float64), 5.0)
        with pytest.raises(ValueError, match="outside the wind's domain"):
            hyperboloid_navigation_dist(x, far, wind)
