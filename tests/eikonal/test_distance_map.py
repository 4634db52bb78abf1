"""Distance maps against independent oracles: closed forms, HFM's published case, Killing winds.

Oracles: for a constant metric M and a closed drift b = grad v (|grad v|_{M^-1} < 1) the exact
distance is |q - p|_M + v(q) - v(p) (every curve's length is its M-length plus v(q) - v(p));
constant Randers F(q - p); FunkBall's closed-form dist; the rotational Killing wind on the plane
(Navigation over Euclidean, its exact dist); finite differences for the gradients.
"""

import math

import geoopt
import pytest
import torch

from finslerlib import FunkBall, KillingWind, Navigation, Randers
from finslerlib.eikonal import distance_map, eikonal_map, grid_points

F64 = torch.float64
_M = torch.tensor([[1.25, 0.5], [0.5, 2.0]], dtype=F64)


def _hfm_metric(dtype=F64):
    m = _M.to(dtype)

    def coef(x):
        gx = 0.8 * torch.cos(math.pi * x[..., 0]) * torch.sin(math.pi * x[..., 1])
        gy = 0.8 * torch.sin(math.pi * x[..., 0]) * torch.cos(math.pi * x[..., 1])
        return m.expand(*x.shape[:-1], 2, 2), torch.stack([gx, gy], -1)

    return coef


def _hfm_exact(x, s):
    v = lambda z: 0.8 * torch.sin(math.pi * z[..., 0]) * torch.sin(math.pi * z[..., 1]) / math.pi  # noqa: E731
    d = x - s
    return torch.sqrt(torch.einsum("...i,ij,...j->...", d, _M.to(x.dtype), d)) + v(x) - v(s)


def _hfm_errors(n, order, factor=True):
    ax = torch.linspace(-2, 2, n, dtype=F64)
    src = torch.zeros(1, 2, dtype=F64)
    m = eikonal_map(_hfm_metric(), (ax, ax), src, order=order, factor=factor)
    assert m.converged
    err = (m.values - _hfm_exact(grid_points((ax, ax)), src)).abs()
    return err.max().item(), err.mean().item()


@pytest.mark.slow
def test_hfm_case_at_its_published_resolution():
    # HFM's published figures on this case (200^2 grid on [-2, 2]^2): max error 0.0348 at first
    # order, 0.0065 at second order with factorization (mean 8.1e-4)
    first, _ = _hfm_errors(200, 1, factor=False)
    second, mean = _hfm_errors(200, 2)
    assert first <= 0.0348, first
    assert second <= 0.0065 and mean <= 8.1e-4, (second, mean)


def test_hfm_case_converges_at_the_scheme_order():
    # the errors under refinement h -> h / 2: first order halves, second order (factored) quarters
    e1 = [_hfm_errors(n, 1)[0] for n in (41, 81)]
    e2 = [_hfm_errors(n, 2)[1] for n in (41, 81)]
    rate1, rate2 = math.log2(e1[0] / e1[1]), math.log2(e2[0] / e2[1])
    assert 0.7 <= rate1, (e1, rate1)
    assert 1.6 <= rate2, (e2, rate2)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("reverse", [False, True])
def test_constant_randers_is_exact_with_factorization(dtype, reverse):
    a = torch.tensor([[1.5, -0.3], [-0.3, 0.8]], dtype=dtype)
    b = torch.tensor([0.4, -0.35], dtype=dtype)
    metric = Randers(a=a, b=b)
    ax, ay = torch.linspace(-1, 1, 31, dtype=dtype), torch.linspace(-0.5, 1.5, 26, dtype=dtype)
    src = torch.tensor([[0.123, 0.456]], dtype=dtype)  # off the grid's nodes
    m = distance_map(metric, (ax, ay), src, reverse=reverse)
    x = grid_points((ax, ay))
    want = metric.dist(x, src.expand_as(x)) if reverse else metric.dist(src.expand_as(x), x)
    # T = T0 exactly (tau = 0): only rounding, amplified by the sweeps' sums of a few terms
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(m.values, want, rtol=64 * eps, atol=64 * eps)


def test_constant_randers_first_order_without_factorization():
    # the scheme is exact on linear data; the error comes from the source's kink, first order in h
    metric = Randers(a=torch.eye(2, dtype=F64), b=torch.tensor([0.6, 0.0], dtype=F64))
    errs = []
    for n in (21, 41):
        ax = torch.linspace(-1, 1, n, dtype=F64)
        m = distance_map(metric, (ax, ax), torch.zeros(1, 2, dtype=F64), order=1, factor=False)
        x = grid_points((ax, ax))
        errs.append((m.values - metric.dist(torch.zeros_like(x), x)).abs().max().item())
    assert errs[1] <= 0.7 * errs[0] and errs[1] <= 2.0 / 40, errs


def test_funk_ball_map_matches_its_dist_and_is_inf_outside():
    funk = FunkBall(2)
    ax = torch.linspace(-1.1, 1.1, 89, dtype=F64)
    src = torch.tensor([[0.2, -0.1]], dtype=F64)
    m = distance_map(funk, (ax, ax), src)
    x = grid_points((ax, ax))
    r = x.norm(dim=-1)
    assert bool(torch.isinf(m.values[r >= 1]).all())  # outside the ball: no admissible metric
    inner = r <= 0.7
    want = funk.dist(src.expand(int(inner.sum()), 2), x[inner])
    err = (m.values[inner] - want).abs()
    assert err.max().item() <= 0.02, err.max()


def test_rotation_wind_matches_the_killing_dist_and_is_inf_where_the_wind_is_too_strong():
    omega = 0.6
    nav = Navigation(
        geoopt.Euclidean(ndim=1), KillingWind(torch.tensor([[0.0, -omega], [omega, 0.0]], dtype=F64)), dim=2
    )
    ax = torch.linspace(-1.25, 1.25, 81, dtype=F64)
    src = torch.tensor([[0.5, -0.3]], dtype=F64)
    m = distance_map(nav, (ax, ax), src)
    x = grid_points((ax, ax))
    r = x.norm(dim=-1)
    assert bool(torch.isinf(m.values[omega * r >= 1]).all())  # |W| >= 1 in the corners
    inner = r <= 1.0
    want = nav.dist(src.expand(int(inner.sum()), 2), x[inner])
    err = (m.values[inner] - want).abs()
    assert err.max().item() <= 0.01, err.max()


def test_three_dimensional_constant_randers():
    a = torch.tensor([[1.2, 0.2, 0.0], [0.2, 1.0, -0.1], [0.0, -0.1, 0.9]], dtype=F64)
    b = torch.tensor([0.3, -0.2, 0.25], dtype=F64)
    metric = Randers(a=a, b=b)
    ax = torch.linspace(-1, 1, 17, dtype=F64)
    src = torch.tensor([[0.1, 0.0, -0.2]], dtype=F64)
    m = distance_map(metric, (ax, ax, ax), src, order=1, factor=False)
    x = grid_points((ax, ax, ax))
    want = metric.dist(src.expand_as(x), x)
    # first order on the 6-neighbour stencil (its diagonal error is O(h log 1/h), large constant)
    h = 2 / 16
    assert (m.values - want).abs().max().item() <= 1.5 * h
    exact = distance_map(metric, (ax, ax, ax), src)
    torch.testing.assert_close(exact.values, want, rtol=1e-12, atol=1e-12)


def test_bad_input_names_the_argument():
    ax = torch.linspace(-1, 1, 11, dtype=F64)
    coef = _hfm_metric()
    with pytest.raises(ValueError, match="sources"):
        eikonal_map(coef, (ax, ax), torch.tensor([[3.0, 0.0]], dtype=F64))
    with pytest.raises(ValueError, match="axes"):
        eikonal_map(coef, (ax,), torch.zeros(1, 1, dtype=F64))
    with pytest.raises(ValueError, match="order"):
        eikonal_map(coef, (ax, ax), torch.zeros(1, 2, dtype=F64), order=3)
    with pytest.raises(ValueError, match="uniformly"):
        eikonal_map(coef, (ax, ax**3), torch.zeros(1, 2, dtype=F64))
