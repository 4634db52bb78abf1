"""The eikonal-map global start of the geodesic search (`MapStart`, `RandersField.global_start`).

Oracles, independent of the solver: scipy L-BFGS minimization of a fine polyline's discrete
energy started from many paths (the shortest result), and central finite differences for the
gradients.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from finslerlib import RandersField
from finslerlib.geodesics import GeodesicSolver
from finslerlib.manifolds import MapStart
from tests.support import sized

F64 = torch.float64
HEIGHT, WIDTH = 2.0, 0.35


def _bump(x):
    return 1 + HEIGHT * torch.exp(-(x * x).sum(-1) / WIDTH**2)


def _bump_field(dim):
    """A costly round bump at the origin: F(x, v) = c(x) |v|, c = 1 + 2 exp(-|x|^2 / 0.35^2)."""
    return RandersField(a=lambda x: (_bump(x) ** 2)[..., None, None] * torch.eye(dim, dtype=x.dtype), dim=dim)


def _multistart_oracle(x, y, segments=96, offsets=(-1.0, -0.6, -0.3, 0.3, 0.6, 1.0)):
    """The shortest scipy-minimized polyline x -> y (energy form, autograd gradient) over starts bent
    by each offset along every axis orthogonal to the chord (the chord is along e_0 here)."""
    d = x.numel()
    t = torch.linspace(0, 1, segments + 1, dtype=F64)[1:-1, None]

    def energy(flat):
        inner = torch.tensor(flat, dtype=F64, requires_grad=True)
        nodes = torch.cat([x[None], inner.view(-1, d), y[None]])
        f = _bump(0.5 * (nodes[1:] + nodes[:-1])) * (nodes[1:] - nodes[:-1]).norm(dim=-1)
        e = segments * (f * f).sum()
        (g,) = torch.autograd.grad(e, inner)
        return e.item(), g.numpy()

    best = float("inf")
    for axis in range(1, d):
        for s in offsets:
            start = x + t * (y - x) + s * torch.sin(np.pi * t) * torch.eye(d, dtype=F64)[axis]
            res = minimize(energy, start.reshape(-1).numpy(), jac=True, method="L-BFGS-B",
                           options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15})
            nodes = torch.cat([x[None], torch.tensor(res.x, dtype=F64).view(-1, d), y[None]])
            length = (_bump(0.5 * (nodes[1:] + nodes[:-1])) * (nodes[1:] - nodes[:-1]).norm(dim=-1)).sum()
            best = min(best, length.item())
    return best


@pytest.mark.parametrize("dim", [2, 3])
def test_map_start_finds_the_detour_the_straight_start_misses(dim):
    field = _bump_field(dim)
    field.global_start = MapStart()
    x = torch.zeros(1, dim, dtype=F64)
    y = torch.zeros(1, dim, dtype=F64)
    x[0, 0], y[0, 0] = -1.0, 1.0
    around = field.solve(x, y, dist_atol=1e-6, dist_rtol=1e-5)
    # the straight start alone: a geodesic over the bump (its length only needs to be rough)
    over = field.solve(x, y, candidates=0, graph=False, dist_atol=1e-4, dist_rtol=1e-3)
    offsets = sized((-0.6, 0.6), (-1.0, -0.6, -0.3, 0.3, 0.6, 1.0))
    oracle = _multistart_oracle(x[0], y[0], segments=sized(64, 128), offsets=offsets)
    assert bool(around.converged) and bool(over.converged)
    assert over.distance.item() > oracle + 0.5  # a geodesic, but over the bump
    # the polyline's midpoint rule is O(h^2) (h = 1/64): about 1e-4 of the length here
    assert abs(around.distance.item() - oracle) <= 1e-3 * oracle
    # only the straight start and the map's path are refined: no bent starts by default
    assert around.starts == 2 and around.candidates.item() <= 2
    # the reported resolution is the map's grid step: its cube is twice the pair's extent
    points = MapStart().grid_points(field.solver, dim)
    assert around.resolution.item() == pytest.approx(4.0 / (points - 1))
    assert "eikonal distance map" in around.search


def test_map_start_groups_pairs_by_their_distinct_ends_and_keeps_the_direction():
    # one start and three ends: forward maps; three starts and one end: a reverse map (d(. -> y)).
    fn = _bump_field(2).raw_coefficients
    many = torch.tensor([[1.0, 0.05], [1.0, -0.4], [0.8, 0.6]], dtype=F64)
    one = torch.tensor([[-1.0, 0.0]], dtype=F64)
    for x, y in ((one.expand(3, 2), many), (many, one.expand(3, 2))):
        paths, found, resolution = MapStart()(fn, x, y, segments=8, solver=GeodesicSolver())
        assert bool(found.all())
        torch.testing.assert_close(paths[:, 0], x)
        torch.testing.assert_close(paths[:, -1], y)
        # around the bump, never over its top
        assert bool((_bump(paths) < 1 + 0.9 * HEIGHT).all())
        assert bool(torch.isfinite(resolution).all())


def test_map_start_dist_gradients_match_finite_differences():
    field = _bump_field(2)
    field.global_start = MapStart()
    x = torch.tensor([-1.0, 0.1], dtype=F64)
    h = 1e-3
    eye = torch.eye(2, dtype=F64)
    # one batch: one map (all pairs start at x) and one step count, so that the discretization
    # error is a smooth function of y and cancels in the differences
    y = (torch.tensor([1.0, 0.3], dtype=F64) + torch.cat([torch.zeros(1, 2, dtype=F64), h * eye, -h * eye]))
    y.requires_grad_(True)
    d = field.dist(x, y)
    (grad,) = torch.autograd.grad(d[0], y)
    fd = (d[1:3] - d[3:5]).detach() / (2 * h)
    # central differences: truncation h^2 / 6 times the third derivative (of order 1 here)
    torch.testing.assert_close(grad[0], fd, rtol=0, atol=1e-6)
