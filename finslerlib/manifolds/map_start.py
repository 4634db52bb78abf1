r"""`MapStart`: the global start of the geodesic search from eikonal distance maps (`D = 2, 3`).

`finslerlib.geodesics.shortest_geodesics` refines and shoots from starting paths; which geodesic
it finds depends on them. `MapStart` gives each pair $x \to y$ the minimal path of a distance map
(`finslerlib.eikonal`), so the search starts next to the globally shortest path at the map's
resolution, not next to the straight line:

* the pairs are grouped by their distinct start points (one forward map from each, $T = d(s \to
  \cdot)$), or by their distinct end points when those are fewer (one reverse map to each,
  $T = d(\cdot \to s)$): `cdist`'s `N * M` pairs need `min(N, M)` maps;
* each map covers the cube around its point and the pair ends of its group, enlarged by `margin`
  times its largest side on every side (detours of that size are seen), with `points` nodes per
  axis;
* all paths of a group are backtracked in one vectorized call (`geodesic_from_map`), their
  end nodes set to the exact `x` and `y`, and resampled to the search's segments.

"Minimal at resolution $h$": the map's arrival times converge to the distance as the grid step
$h$ goes to 0, and its backtracked path lies near a globally minimal one wherever the competing
paths differ in length by more than the map's error, which is $O(h)$ at first order. A shorter
geodesic through a gap narrower than a few cells, or outside the map's cube, can be missed; the
step is reported per pair as `GeodesicSolution.resolution`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finslerlib.eikonal import eikonal_map, geodesic_from_map, interpolate
from finslerlib.geodesics import GeodesicSolver
from finslerlib.geodesics.candidates import resample_polyline
from finslerlib.math import randers as rmath

__all__ = ["MapStart"]


@dataclass(frozen=True)
class MapStart:
    r"""Starting paths of the geodesic search: minimal paths of eikonal distance maps (`D = 2, 3`).

    A `finslerlib.geodesics.StartProvider`; `RandersField` passes it to `shortest_geodesics`.

    Attributes:
        points: grid nodes per axis (`None`: the solver's `grid`, else 33 for `D = 2`, 13 for
            `D = 3`).
        order: the maps' order (1: the start needs the path, not an accurate value).
        margin: each map's cube extends this fraction of its points' largest extent beyond them.
        slack: a traced path longer than `1 + slack` times the map's value at its end ran along
            the cut locus (where two minimal paths meet): it is traced again from half a cell to
            either side, and the shorter path kept.

    Example:
        >>> from finslerlib.geodesics import GeodesicSolver
        >>> bump = lambda x: ((1 + 8 * torch.exp(-(x * x).sum(-1) / 0.1))[..., None, None] ** 2
        ...                   * torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)
        >>> y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> paths, found, h = MapStart()(bump, x, y, segments=8, solver=GeodesicSolver())
        >>> bool(found[0]), bool(paths[0, 4].abs()[1] > 0.3), round(h[0].item(), 4)  # around the bump
        (True, True, 0.125)
    """

    points: int | None = None
    order: int = 1
    margin: float = 0.5
    slack: float = 0.1

    @property
    def description(self) -> str:
        size = "grid" if self.points is None else f"{self.points}^D"
        return (
            f"the minimal path of an eikonal distance map ({size} nodes, order {self.order}, one map per "
            f"distinct start or end point, its cube {1 + 2 * self.margin:g}x the extent of its pairs; "
            "grid step in `resolution`)"
        )

    def grid_points(self, solver: GeodesicSolver, dim: int) -> int:
        """Grid nodes per axis for a solver and dimension."""
        return int(self.points or solver.grid or (33 if dim <= 2 else 13))

    @torch.no_grad()
    def __call__(
        self, coefficients, x: torch.Tensor, y: torch.Tensor, *, segments: int, solver: GeodesicSolver
    ):
        """`(paths [B, K + 1, D], found [B], resolution [B])` for the pairs `x -> y` (see the class)."""
        n, d = x.shape
        t = torch.linspace(0.0, 1.0, segments + 1, dtype=x.dtype, device=x.device)[:, None]
        out = x[:, None] + t * (y - x)[:, None]
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        resolution = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
        if n == 0 or d not in (2, 3):
            return out, found, resolution
        points = self.grid_points(solver, d)
        xs, x_inv = torch.unique(x, dim=0, return_inverse=True)
        ys, y_inv = torch.unique(y, dim=0, return_inverse=True)
        reverse = ys.shape[0] < xs.shape[0]  # maps to the end points: d(. -> y)
        centers, inverse = (ys, y_inv) if reverse else (xs, x_inv)
        others = x if reverse else y
        for g in range(centers.shape[0]):
            rows = (inverse == g).nonzero().squeeze(-1)
            source = centers[g : g + 1]
            ends = others[rows]
            both = torch.cat([source, ends])
            lo, hi = both.amin(0), both.amax(0)
            extent = float((hi - lo).max())
            if extent <= 0:
                continue  # only x == y pairs: the straight (constant) path is exact
            half = (0.5 + self.margin) * extent
            center = 0.5 * (lo + hi)
            axes = tuple(
                torch.linspace(float(center[k]) - half, float(center[k]) + half, points, dtype=x.dtype,
                               device=x.device)
                for k in range(d)
            )
            dmap = eikonal_map(coefficients, axes, source, reverse=reverse, order=self.order)
            step = 2.0 * half / (points - 1)
            paths, reached = geodesic_from_map(dmap, coefficients, ends)
            length = _length(coefficients, paths, reached)
            value = interpolate(dmap.values.detach(), axes, ends)
            for sign in (1.0, -1.0):
                # a trace can stall on, or run along, the map's cut locus (two minimal paths meet, as
                # behind an obstacle): there its path is longer than the map's value. Start it again
                # half a cell to either side, across the direction to the source; keep the shorter.
                miss = (~(length <= (1.0 + self.slack) * value)).nonzero().squeeze(-1)
                if miss.numel() == 0:
                    break
                shifted = ends[miss] + sign * 0.5 * step * _normal(ends[miss] - source)
                shifted = shifted.clamp(center - half, center + half)
                more, ok = geodesic_from_map(dmap, coefficients, shifted)
                more_length = _length(coefficients, more, ok)
                better = more_length < length[miss]
                paths, more = _pad(paths, more.shape[1]), _pad(more, paths.shape[1])
                paths[miss[better]] = more[better]
                length[miss[better]] = more_length[better]
                reached[miss[better]] = True
            resolution[rows] = step
            for j in reached.nonzero().squeeze(-1).tolist():
                path = paths[j]
                moved = (path[1:] != path[:-1]).any(-1)
                last = int(moved.nonzero().max()) + 2 if bool(moved.any()) else 1
                path = path[:last].clone()
                i = int(rows[j])
                path[0], path[-1] = x[i], y[i]  # the exact end points
                out[i] = resample_polyline(path, segments)
                found[i] = True
        return out, found, resolution


def _normal(direction: torch.Tensor) -> torch.Tensor:
    """Unit vectors `[B, D]` orthogonal to `direction` `[B, D]` (the axis least along it, projected)."""
    unit = direction / direction.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(direction.dtype).tiny)
    axis = torch.nn.functional.one_hot(unit.abs().argmin(-1), direction.shape[-1]).to(direction)
    normal = axis - (axis * unit).sum(-1, keepdim=True) * unit
    return normal / normal.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(direction.dtype).tiny)


def _pad(paths: torch.Tensor, count: int) -> torch.Tensor:
    """`paths` `[B, P, D]` with the last node repeated up to `count` nodes (at least `P`)."""
    extra = count - paths.shape[1]
    return torch.cat([paths, paths[:, -1:].expand(-1, extra, -1)], 1) if extra > 0 else paths


def _length(coefficients, paths: torch.Tensor, reached: torch.Tensor) -> torch.Tensor:
    """Midpoint-rule lengths `[B]` of the polylines `[B, P, D]` (`inf` where not `reached` or invalid)."""
    a, b = coefficients(0.5 * (paths[:, 1:] + paths[:, :-1]))
    f = rmath.norm(paths[:, 1:] - paths[:, :-1], a, b).sum(-1)
    return torch.where(reached & torch.isfinite(f), f, torch.full_like(f, float("inf")))
