"""The pluggable global start of `shortest_geodesics` (`StartProvider`).

Oracle: the triangle inequality and the straight start's own geodesic (over the bump) — the
provider's detour must be found, kept and reported, and nothing else searched by default.
"""

import torch

from finslerlib.geodesics import GeodesicSolver, shortest_geodesics

F64 = torch.float64


def _bump(x):
    c = 1 + 2.0 * torch.exp(-(x * x).sum(-1) / 0.35**2)
    return (c * c)[..., None, None] * torch.eye(2, dtype=x.dtype), torch.zeros_like(x)


class _Detour:
    """A provider that routes every pair through the point (0, 0.8) (above the bump)."""

    description = "a detour through (0, 0.8)"

    def __init__(self):
        self.calls = 0

    def __call__(self, coefficients, x, y, *, segments, solver):
        self.calls += 1
        t = torch.linspace(0, 1, segments + 1, dtype=x.dtype)[:, None]
        via = torch.tensor([0.0, 0.8], dtype=x.dtype)
        first, second = x[:, None] + 2 * t * (via - x)[:, None], via + (2 * t - 1) * (y - via)[:, None]
        path = torch.where(t <= 0.5, first, second)
        return path, torch.ones(x.shape[0], dtype=torch.bool), torch.full((x.shape[0],), 0.25, dtype=x.dtype)


def test_a_start_provider_replaces_the_graph_and_its_detour_is_kept():
    x = torch.tensor([[-1.0, 0.0]], dtype=F64)
    y = torch.tensor([[1.0, 0.0]], dtype=F64)
    provider = _Detour()
    solver = GeodesicSolver(dist_atol=1e-6, dist_rtol=1e-5)
    around = shortest_geodesics(_bump, x, y, solver, start=provider)
    # the straight start alone: the geodesic over the bump (its length only needs to be rough)
    over = shortest_geodesics(_bump, x, y, solver.replace(candidates=0, graph=False, dist_rtol=1e-3))
    assert provider.calls == 1
    assert bool(around.converged) and bool(over.converged)
    assert around.distance.item() < over.distance.item() - 0.5
    # the provider's report: its resolution and description, and no bent starts by default
    assert around.resolution.item() == 0.25 and around.starts == 2
    assert around.search.endswith(provider.description)
    # with graph=False the provider is not asked
    shortest_geodesics(_bump, x, x, solver.replace(graph=False), start=provider)
    assert provider.calls == 1
