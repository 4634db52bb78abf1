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
    tol = dict(dist_atol=1e-7, dist_rtol=1e-6)
    around = field.solve(x, y, **tol)
    over = field.solve(x, y, candidates=0, graph=False, **tol)  # the straight start alone
    oracle = _multistart_oracle(x[0], y[0])
    assert bool(around.converged) and bool(over.converged)
    assert over.distance.item() > oracle + 0.5  # a geodesic, but over the bump
    # the polyline's midpoint rule is O(h^2) (h = 1/96): about 1e-4 of the length here
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
    y = torch.tensor([1.0, 0.3], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(field.dist(x, y), y)
    h = 1e-4
    with torch.no_grad():
        fd = torch.stack([
            (field.dist(x, y + h * e) - field.dist(x, y - h * e)) / (2 * h) for e in torch.eye(2, dtype=F64)
        ])
    # central differences: O(h^2) truncation plus the solver's distance tolerance over h
    torch.testing.assert_close(grad, fd, rtol=0, atol=1e-5)
