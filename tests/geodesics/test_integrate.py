"""`flow_with_coarse` (the fine flow and the step-halving comparison flow in one batch) and the ball-limited
Dijkstra of the grid-graph start, against independent runs."""

import pytest
import torch

from finslerlib.geodesics.integrate import flow_with_coarse, geodesic_flow
from finslerlib.geodesics.search import discretization_error


def _swirl(x):
    s = 1.0 + 0.5 * torch.sin(1.5 * x).pow(2).sum(-1)
    a = s[..., None, None] * torch.eye(x.shape[-1], dtype=x.dtype)
    return a, 0.3 * torch.sin(1.5 * x.roll(1, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("steps", [2, 7, 16])
def test_flow_with_coarse_matches_two_separate_flows(dtype, steps):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(9, 3, generator=gen, dtype=dtype) * 2 - 1
    p = torch.rand(9, 3, generator=gen, dtype=dtype) * 2 - 1
    rows = torch.tensor([0, 4, 8])
    x1, p1, xs, ps, coarse = flow_with_coarse(_swirl, x, p, steps=steps, rows=rows)
    ref = geodesic_flow(_swirl, x, p, steps=steps, return_path=True, guard=True, differentiable=False)
    other = steps // 2 if steps % 2 == 0 else steps + 1
    ref_coarse = geodesic_flow(_swirl, x[rows], p[rows], steps=other, guard=True, differentiable=False)[0]
    # the same RK4 arithmetic up to the order of a few roundings per step
    tol = 100 * steps * torch.finfo(dtype).eps
    for got, want in zip((x1, p1, xs, ps, coarse), (*ref, ref_coarse), strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_discretization_error_with_given_coarse_end_is_the_same():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    p = torch.rand(5, 3, generator=gen, dtype=torch.float64)
    x1, p1, _, _, coarse = flow_with_coarse(_swirl, x, p, steps=8)
    given = discretization_error(_swirl, x, p, x1, p1, steps=8, coarse=coarse)
    computed = discretization_error(_swirl, x, p, x1, p1, steps=8)
    tol = 1e3 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(given[0], computed[0], rtol=0, atol=tol)  # a difference of end points
    torch.testing.assert_close(given[1], computed[1], rtol=0, atol=0)


def test_limited_dijkstra_gives_the_unlimited_distances_and_chains():
    """The ball-limited Dijkstra of the grid-graph start against scipy's unlimited runs."""
    import numpy as np
    from scipy.sparse.csgraph import dijkstra

    from finslerlib.geodesics.candidates import _grid_graph, _limited_dijkstra

    lo = torch.full((3,), -2.0, dtype=torch.float64)
    nodes, matrix = _grid_graph(_swirl, lo, -lo, 9)
    rng = np.random.default_rng(0)
    src, dst = rng.integers(0, 9**3, 40), rng.integers(0, 9**3, 40)
    dst[:3] = src[:3]  # trivial pairs
    dist, pred, rows = _limited_dijkstra(dijkstra, _swirl, matrix, nodes, src, dst)
    full, full_pred = dijkstra(matrix, directed=True, indices=src, return_predecessors=True)
    idx = np.arange(src.size)
    np.testing.assert_array_equal(dist[rows, dst], full[idx, dst])
    for i in range(src.size):
        a, b = [dst[i]], [dst[i]]
        while a[-1] != src[i]:
            a.append(pred[rows[i], a[-1]])
            b.append(full_pred[i, b[-1]])
        assert a == b
