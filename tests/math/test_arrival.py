"""The compiled Killing arrival-time kernel (`finslerlib.math.arrival`): the same roots as the torch
iteration (to a few units in the last place times the conditioning 1 / (1 - w)) on the hard pairs
(strong winds, near-antipodal, coincident), float32 and float64, S^2 and S^3 (two rotation planes);
the roots against scipy's brentq; distance gradients against central finite differences; and the
torch fallback when the module cannot be built."""

from __future__ import annotations

import platform

import geoopt
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from finslerlib import KillingWind, Navigation
from finslerlib.math import arrival
from finslerlib.math import navigation as nmath

F64 = torch.float64


@pytest.fixture
def module():
    mod = arrival.load_arrival()
    if mod is None:
        pytest.skip("the compiled arrival-time kernel cannot be built here")
    return mod


def skew(n: int, rate: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, dtype=F64, generator=g)
    a = a - a.T
    return rate * a / torch.linalg.matrix_norm(a, ord=2)


def hard_pairs(m: Navigation, n: int, dim: int, seed: int, dtype=F64):
    """Random pairs, then near-antipodal ones (y = -x plus 1e-7) and coincident ones (y = x)."""
    torch.manual_seed(seed)
    x = m.random(n, dim, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    y = m.random(n, dim, dtype=F64, std=3.0).as_subclass(torch.Tensor)
    k = n // 4
    y[:k] = m.domain.projx(-x[:k] + 1e-7 * torch.randn(k, dim, dtype=F64))
    y[k : 2 * k] = x[k : 2 * k]
    return m.domain.projx(x.to(dtype)), m.domain.projx(y.to(dtype))


def solve_both(m, x, y, monkeypatch):
    """(compiled, torch) arrival times of the same pairs."""
    spectral = m.wind.spectral(x.dtype, x.device)
    assert spectral is not None
    wy = m.wind(y)
    speed = m.domain.inner(y, wy, wy).clamp_min(0).sqrt()

    def run():
        return nmath.killing_arrival_time(
            m.domain, x, y, m.wind, m.wind.flow, speed_y=speed, spectral=spectral
        )

    fast = run()
    with monkeypatch.context() as patch:
        patch.setattr(arrival, "_STATE", {"module": None})
        slow = run()
    return fast, slow, speed


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dim, rate", [(3, 0.5), (3, 0.99), (4, 0.9)])
def test_kernel_matches_the_torch_iteration(module, monkeypatch, dtype, dim, rate):
    m = Navigation(geoopt.Sphere(), KillingWind(skew(dim, rate, seed=dim)))
    x, y = hard_pairs(m, 256, dim, seed=int(100 * rate), dtype=dtype)
    fast, slow, speed = solve_both(m, x, y, monkeypatch)
    assert fast.time.dtype == dtype
    assert torch.equal(fast.converged, slow.converged)
    assert bool(fast.converged[: 2 * 64].all() if dtype == F64 else True)
    eps = torch.finfo(dtype).eps
    # both are within their tolerance of the root: |g| <= tau and |g'| >= 1 - w; near the cut locus
    # (the near-antipodal pairs) the bracket criterion, |T - T*| <= tau
    bound = (fast.tolerance + slow.tolerance) / (1.0 - speed) + 4 * eps * (1 + slow.time)
    ok = (fast.time - slow.time).abs() <= bound
    assert bool(ok[fast.converged].all()), float(((fast.time - slow.time).abs() / bound).max())
    # the coincident pairs: exactly 0 on both paths
    assert bool((fast.time[64:128] == 0).all())
    if dtype == F64:
        # away from the cut locus both land on the root to a few ulps times the conditioning
        far = slice(128, None)
        err = (fast.time[far] - slow.time[far]).abs() * (1 - speed[far]) / (eps * (1 + slow.time[far]))
        assert float(err.max()) <= 8, float(err.max())
        assert fast.iterations <= nmath._NEWTON_STEPS + 8


def brentq_arrival(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """The root of arccos(<x, expm(-T A) y>) = T by scipy (independent of finslerlib)."""

    def g(t):
        return np.arccos(np.clip(x @ scipy.linalg.expm(-t * A) @ y, -1.0, 1.0)) - t

    d0 = np.arccos(np.clip(x @ y, -1.0, 1.0))
    if d0 == 0.0:
        return 0.0
    w = np.linalg.norm(A @ y)
    return scipy.optimize.brentq(g, d0 / (1 + w) * (1 - 1e-12), d0 / (1 - w) * (1 + 1e-12), xtol=1e-15)


def test_kernel_roots_match_brentq_on_s3(module):
    rate = 0.9
    m = Navigation(geoopt.Sphere(), KillingWind(skew(4, rate, seed=11)))
    torch.manual_seed(2)
    x = m.random(24, 4, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    y = m.random(24, 4, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    d = m.dist(x, y)
    eps = torch.finfo(F64).eps
    A = m.wind.A.numpy()
    for i in range(x.shape[0]):
        ref = brentq_arrival(A, x[i].numpy(), y[i].numpy())
        bound = 64 * eps * (1 + ref) / (1 - rate) + 4 * eps**0.5 * (ref > 3.0)
        assert abs(d[i].item() - ref) <= bound, (i, d[i].item(), ref)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernel_distance_gradients_match_finite_differences(module, dtype):
    """d/ds d(x(s) -> y(s)) along great circles of S^3, central differences in float64."""
    m = Navigation(geoopt.Sphere(), KillingWind(skew(4, 0.8, seed=5)))
    torch.manual_seed(3)
    x = m.random(16, 4, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    y = m.random(16, 4, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    u = m.domain.proju(x, torch.randn_like(x))
    v = m.domain.proju(y, torch.randn_like(y))
    x_ = x.to(dtype).requires_grad_(True)
    y_ = y.to(dtype).requires_grad_(True)
    m.dist(x_, y_).sum().backward()
    analytic = (x_.grad.double() * u).sum(-1) + (y_.grad.double() * v).sum(-1)
    h = 1e-5
    with torch.no_grad():

        def at(s):
            return m.dist(m.domain.expmap(x, s * u), m.domain.expmap(y, s * v))

        numeric = (at(h) - at(-h)) / (2 * h)
    # central differences: O(h^2) truncation plus eps / h rounding; float32 inputs: their rounding
    # times the gradient's conditioning
    tol = 1e-6 if dtype == F64 else 1e3 * torch.finfo(torch.float32).eps
    torch.testing.assert_close(analytic, numeric, rtol=tol, atol=tol)


def test_torch_iteration_is_the_fallback(monkeypatch):
    """Without the module (no compiler), `use_arrival` gives None and the distances still agree
    with brentq."""
    monkeypatch.setattr(arrival, "_STATE", {"module": None})
    x = torch.zeros(2, 3, dtype=F64)
    assert arrival.use_arrival(x, 1) is None
    monkeypatch.setattr(arrival, "_STATE", {})
    monkeypatch.setattr(platform, "machine", lambda: "s390x")
    assert arrival.load_arrival() is None
    rate = 0.7
    m = Navigation(geoopt.Sphere(), KillingWind(skew(3, rate, seed=1)))
    torch.manual_seed(4)
    x = m.random(8, 3, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    y = m.random(8, 3, dtype=F64, std=1.0).as_subclass(torch.Tensor)
    d = m.dist(x, y)
    eps = torch.finfo(F64).eps
    for i in range(8):
        ref = brentq_arrival(m.wind.A.numpy(), x[i].numpy(), y[i].numpy())
        assert abs(d[i].item() - ref) <= 64 * eps * (1 + ref) / (1 - rate) + 4 * eps**0.5 * (ref > 3.0)


def test_use_arrival_applies_only_where_it_can():
    assert arrival.use_arrival(torch.zeros(2, 3, dtype=torch.float16), 1) is None
    assert arrival.use_arrival(torch.zeros(2, 3, dtype=F64), 0) is None
    assert arrival.use_arrival(torch.zeros(2, 3, dtype=F64), arrival.MAX_TERMS + 1) is None
