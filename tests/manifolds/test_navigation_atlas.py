"""General (callable) winds on the sphere's two-chart atlas, against the exact `KillingWind` solution.

Oracle: `Navigation(Sphere, KillingWind(A))`, whose distances are checked against scipy's brentq
in `test_navigation.py`; the callable wind is the same rotation `x -> A x`, solved numerically in
stereographic charts. The pairs are ones whose true geodesic passes within reach < 0.05 of the
pole of the chart `chart_index` picks from the pair (found by sampling the exact geodesics).
"""

import re

import geoopt
import pytest
import torch

from finslerlib import KillingWind, Navigation
from tests.support import sized

F64 = torch.float64


def rotation(rate: float, i: int = 0, j: int = 1) -> torch.Tensor:
    a = torch.zeros(3, 3, dtype=F64)
    a[i, j], a[j, i] = -rate, rate
    return a


def test_callable_rotation_matches_killing_wind_for_paths_near_a_chart_pole():
    a = rotation(0.7)
    exact = Navigation(geoopt.Sphere(), KillingWind(a))
    general = Navigation(geoopt.Sphere(), lambda x: x @ a.T, dim=2)
    x = torch.tensor(
        [
            [0.45154673410508916, -0.732508149430898, 0.5094480915032943],
            [0.9632508338002039, 0.019752190846384878, 0.2678762440754688],
        ],
        dtype=F64,
    )
    y = torch.tensor(
        [
            [-0.5646244789409486, -0.05860249985651432, -0.8232648084251079],
            [-0.10113813857258046, -0.9421726634688546, -0.31950234606036615],
        ],
        dtype=F64,
    )
    # the exact geodesics come within reach 0.01 / 0.03 of the pole of the chart picked from the pair;
    # each numerical solve near a pole costs about a minute of CPU: the `ci` profile solves the first
    pairs = sized(1, 2)
    x, y = x[:pairs], y[:pairs]
    d_exact = exact.dist(x, y)
    v = exact.logmap(x, y)
    s = torch.linspace(0, 1, 65, dtype=F64)[:, None, None]
    base = v - d_exact[:, None] * (x @ a.T)
    path = exact.wind.flow(s.squeeze(-1) * d_exact, exact.domain.expmap(x, s * base))
    sign = torch.where(general.domain.chart_index(x, y) == 0, 1.0, -1.0).to(F64)
    assert bool(((1 + sign * path[..., 0]).amin(0) < 0.05).all())
    d = general.dist(x, y)
    assert torch.allclose(d, d_exact, rtol=0, atol=1e-6), (d, d_exact)


def test_no_admissible_path_between_the_caps_of_a_strong_rotation():
    # rate 1.5 about e_2: |W| = 1.5 sqrt(x_0^2 + x_1^2) < 1 only in the caps |x_2| > 0.745
    a = rotation(1.5)
    general = Navigation(geoopt.Sphere(), lambda x: x @ a.T, dim=2)
    x = torch.tensor([0.3, 0.0, 0.954], dtype=F64)
    y = torch.tensor([0.0, 0.3, -0.954], dtype=F64)
    x, y = x / x.norm(), y / y.norm()
    with pytest.raises(ValueError, match="no admissible path"):
        general.dist(x, y)


def _reported_point(message: str) -> tuple[torch.Tensor, float]:
    """The ambient point and the |W|_h an inadmissible-path message names."""
    m = re.search(r"\|W\|_h (?:= ([0-9.]+) at|reaches 1 in the integration step after) \[([^\]]+)\]", message)
    assert m, message
    point = torch.tensor([float(c) for c in m.group(2).split(",")], dtype=F64)
    value = m.group(1) or re.search(r"where \|W\|_h = ([0-9.]+)", message).group(1)
    return point, float(value)


@pytest.mark.parametrize("scale", [0.22, 1.0])
def test_general_expmap_checks_every_node_of_its_path(scale):
    """Issue 20 item 4: a callable rotation at rate 1.5 about e_2 (|W| < 1 only in the caps |x_2| > 0.745).

    Oracle: the same rotation as a `KillingWind`, whose exact geodesic is certified by a Lipschitz
    bound, leaves the domain for both steps. The general wind's `expmap` must raise too, naming
    |W|_h and a point of the base (ambient coordinates) where the path was."""
    a = rotation(1.5)
    general = Navigation(geoopt.Sphere(), lambda x: x @ a.T, dim=2)
    exact = Navigation(geoopt.Sphere(), KillingWind(a))
    x = torch.tensor([0.3, 0.0, 0.954], dtype=F64)
    x = x / x.norm()
    v = general.proju(x, torch.tensor([3.0, 0.0, 0.0], dtype=F64)) * scale
    with pytest.raises(ValueError, match="leaves the domain"):
        exact.expmap(x, v)
    with pytest.raises(ValueError, match=r"no admissible path.*\|W\|_h") as info:
        general.expmap(x, v)
    point, value = _reported_point(str(info.value))
    tol = 1e-5  # the message prints 6 significant digits
    assert abs(point.norm().item() - 1) < tol, point
    assert abs(general.wind_size(point / point.norm()).item() - value) < 1e-3, (point, value)
    # a step short enough to stay in the cap is fine, and agrees with the exact geodesic
    short = 0.1 * v
    torch.testing.assert_close(general.expmap(x, short), exact.expmap(x, short), atol=1e-6, rtol=0)


def test_general_expmap_of_a_zero_vector_is_its_point_on_the_hyperboloid():
    """`expmap(x, 0) = x` is not an error where the integrator's stand-in geodesic for a zero
    vector (`exponential_map` integrates one) would leave |W|_h < 1: boosts grow |W|_h on H^2."""
    j = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64))
    b = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = j @ (0.3 * (b - b.T) / torch.linalg.matrix_norm(b - b.T, ord=2))  # J-skew: A^T J + J A = 0
    general = Navigation(geoopt.Lorentz(k=1.5), lambda x: x @ a.T, dim=2, steps=32)
    torch.manual_seed(0)
    x = general.random(8, 3, dtype=F64, std=0.3).as_subclass(torch.Tensor)
    assert bool((general.wind_size(x) < 1).all())
    out = general.expmap(x, torch.zeros_like(x))
    torch.testing.assert_close(out, x, atol=8 * torch.finfo(F64).eps, rtol=0)
