"""General (callable) winds on the sphere's two-chart atlas, against the exact `KillingWind` solution.

Oracle: `Navigation(Sphere, KillingWind(A))`, whose distances are checked against scipy's brentq
in `test_navigation.py`; the callable wind is the same rotation `x -> A x`, solved numerically in
stereographic charts. The pairs are ones whose true geodesic passes within reach < 0.05 of the
pole of the chart `chart_index` picks from the pair (found by sampling the exact geodesics).
"""

import geoopt
import pytest
import torch

from finslerlib import KillingWind, Navigation

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
    # the exact geodesics come within reach 0.01 / 0.03 of the pole of the chart picked from the pair
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
