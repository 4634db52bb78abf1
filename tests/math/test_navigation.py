"""The Killing-wind arrival time (`finslerlib.math.navigation.killing_arrival_time`, scalar path):
the fixed Newton phase and its safeguarded fallback against scipy's brentq on the arrival-time
equation, on the hard pairs (strong winds, near-antipodal, coincident, float32), and its gradients
against central finite differences along the sphere.
"""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from finslerlib import KillingWind, Navigation
from finslerlib.math import navigation as nmath

F64 = torch.float64


def skew(rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 3, dtype=F64, generator=g)
    a = a - a.T
    return rate * a / torch.linalg.matrix_norm(a, ord=2)


def brentq_arrival(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The root of arccos(<x, expm(-T A) y>) = T by scipy (independent of finslerlib)."""

    def g(t):
        return np.arccos(np.clip(x @ scipy.linalg.expm(-t * A) @ y, -1.0, 1.0)) - t

    d0 = np.arccos(np.clip(x @ y, -1.0, 1.0))
    if d0 == 0.0:
        return 0.0
    w = np.linalg.norm(A @ y)
    return scipy.optimize.brentq(g, d0 / (1 + w) * (1 - 1e-12), d0 / (1 - w) * (1 + 1e-12), xtol=1e-15)


def hard_pairs(m: Navigation, n: int, seed: int):
    """Random pairs, then near-antipodal ones (y = -x plus 1e-7) and coincident ones (y = x)."""
    torch.manual_seed(seed)
    x = m.random(n, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    y = m.random(n, 3, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    k = n // 4
    y[:k] = m.domain.projx(-x[:k] + 1e-7 * torch.randn(k, 3, dtype=F64))
    y[k : 2 * k] = x[k : 2 * k]
    return x, y


@pytest.mark.parametrize("rate", [0.5, 0.99])
def test_arrival_time_matches_brentq_on_hard_pairs(rate):
    m = Navigation(geoopt.Sphere(), KillingWind(skew(rate, seed=7)))
    x, y = hard_pairs(m, 48, seed=int(100 * rate))
    sol = m.solve(x, y)
    assert bool(sol.converged.all())
    An = m.wind.A.numpy()
    eps = torch.finfo(F64).eps
    for i in range(x.shape[0]):
        ref = brentq_arrival(An, x[i].numpy(), y[i].numpy())
        # the root's error: the residual tolerance over |g'| >= 1 - w, plus brentq's arccos near pi
        # (half the digits: sqrt(eps))
        bound = 64 * eps * (1 + ref) / (1 - rate) + 4 * eps**0.5 * (ref > 3.0)
        assert abs(sol.time[i].item() - ref) <= bound, (i, sol.time[i].item(), ref)
    assert bool((sol.time[12:24] == 0).all())  # coincident pairs: exactly 0


def test_float32_distances_match_the_float64_root():
    m = Navigation(geoopt.Sphere(), KillingWind(skew(0.9, seed=3)))
    x, y = hard_pairs(m, 64, seed=1)
    x32, y32 = m.domain.projx(x.float()), m.domain.projx(y.float())
    d32 = m.dist(x32, y32)
    assert d32.dtype == torch.float32
    d64 = m.dist(x32.double(), y32.double())  # the same float32 points, solved in float64
    eps32 = torch.finfo(torch.float32).eps
    torch.testing.assert_close(d32.double(), d64, rtol=2 * eps32, atol=2 * eps32)


def test_newton_phase_converges_without_the_fallback_at_moderate_winds():
    """At rate 0.5 the fixed Newton phase converges on nearly every pair; converged pairs are
    never moved again (a converged pair sent to its bracket's midpoint cost 50 iterations)."""
    m = Navigation(geoopt.Sphere(), KillingWind(skew(0.5, seed=2)))
    torch.manual_seed(0)
    x = m.random(4096, 3, dtype=F64, std=0.6).as_subclass(torch.Tensor)
    y = m.random(4096, 3, dtype=F64, std=0.6).as_subclass(torch.Tensor)
    sol = m.solve(x, y)
    assert bool(sol.converged.all())
    assert sol.iterations <= nmath._NEWTON_STEPS + 4, sol.iterations
    # the safeguarded iteration alone (no spectrum: the flow-and-distance path) finds the same roots
    slow = nmath.killing_arrival_time(m.domain, x, y, m.wind, m.wind.flow)
    torch.testing.assert_close(sol.time, slow.time, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rate", [0.5, 0.95])
def test_distance_gradients_match_finite_differences(rate):
    """d/ds d(x(s) -> y(s)) along great circles, central differences (float64)."""
    m = Navigation(geoopt.Sphere(), KillingWind(skew(rate, seed=5)))
    torch.manual_seed(3)
    x = m.random(16, 3, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    y = m.random(16, 3, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    u = m.domain.proju(x, torch.randn_like(x))
    v = m.domain.proju(y, torch.randn_like(y))
    x_ = x.clone().requires_grad_(True)
    y_ = y.clone().requires_grad_(True)
    m.dist(x_, y_).sum().backward()
    analytic = (x_.grad * u).sum(-1) + (y_.grad * v).sum(-1)
    h = 1e-5
    with torch.no_grad():
        def at(s):
            return m.dist(m.domain.expmap(x, s * u), m.domain.expmap(y, s * v))

        numeric = (at(h) - at(-h)) / (2 * h)
    # central differences: O(h^2) truncation plus eps / h rounding
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-6)
