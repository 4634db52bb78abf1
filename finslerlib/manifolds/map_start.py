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
* each first-order map stops at $10^{-3}$ of a cell's cost at its source (the start needs $dT$,
  not the last digits), after two rounds of sweeps where that settles it;
* the paths of all pairs are traced together, one vectorized backtracking over the stacked maps
  (the algorithm of `finslerlib.eikonal.geodesic_from_map`), their end nodes set to the exact `x`
  and `y`, and resampled to the search's segments.

"Minimal at resolution $h$": the map's arrival times converge to the distance as the grid step
$h$ goes to 0, and its backtracked path lies near a globally minimal one wherever the competing
paths differ in length by more than the map's error, which is $O(h)$ at first order. A shorter
geodesic through a gap narrower than a few cells, or outside the map's cube, can be missed; the
step is reported per pair as `GeodesicSolution.resolution`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finslerlib.eikonal import eikonal_map
from finslerlib.geodesics import GeodesicSolver
from finslerlib.geodesics.candidates import resample_polylines
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
        # each group's cube: around its center and its pairs' other ends, `margin` wider on each side
        count = centers.shape[0]
        index = inverse[:, None].expand(-1, d)
        lo = centers.scatter_reduce(0, index, others, "amin")
        hi = centers.scatter_reduce(0, index, others, "amax")
        extent = (hi - lo).amax(-1)  # [G]
        half = (0.5 + self.margin) * extent
        mid = 0.5 * (lo + hi)
        corner = mid - half[:, None]  # [G, D], the cube's lower corner
        step = 2.0 * half / (points - 1)  # [G]
        # the maps' stopping tolerance: the start needs the map's gradient, not its last digits; a
        # change below 1e-3 of one cell's cost at the source moves dT by 1e-3 of its size (measured
        # on the bench's field, 13^3: 3 rounds of sweeps instead of 6, values within 3e-5 of the
        # map converged to rounding)
        cost = _cell_cost(coefficients, centers, step)
        unit = torch.linspace(0.0, 1.0, points, dtype=x.dtype, device=x.device)
        maps = []
        groups = [g for g in range(count) if float(extent[g]) > 0]  # else only x == y pairs: exact
        for g in groups:
            axes = tuple(corner[g, k] + 2.0 * half[g] * unit for k in range(d))
            options = dict(reverse=reverse, order=self.order, tol=1e-3 * float(cost[g]))
            # two rounds of the 2^D sweeps and the Jacobi check settle a smooth metric's map within
            # that tolerance (the bench's field: 17 sweeps instead of 25); where they do not, the
            # map is run again without the cap
            dmap = eikonal_map(coefficients, axes, centers[g : g + 1], max_iter=2 * 2**d, **options)
            if not dmap.converged:
                dmap = eikonal_map(coefficients, axes, centers[g : g + 1], **options)
            maps.append(dmap.values)
        if not maps:
            return out, found, resolution
        chosen = torch.tensor(groups, dtype=torch.long, device=x.device)
        slot = torch.full((count,), -1, dtype=torch.long, device=x.device)
        slot[chosen] = torch.arange(len(groups), device=x.device)
        rows = (slot[inverse] >= 0).nonzero().squeeze(-1)  # the pairs with a map
        grids = _Grids(torch.stack(maps), corner[chosen], step[chosen])
        which = slot[inverse[rows]]
        ends = others[rows]
        source = centers[inverse[rows]]
        fn = _reversed(coefficients) if reverse else coefficients

        def trace(maps, targets, to):
            # in the direction of travel: a reverse map's trace already is (target x to source y)
            paths, reached = _backtrack(grids, fn, maps, targets, to)
            return (paths if reverse else _flip(paths)), reached

        paths, reached = trace(which, ends, source)
        length = _length(coefficients, paths, reached)
        value = grids.interpolate(grids.values, which, ends)
        for sign in (1.0, -1.0):
            # a trace can stall on, or run along, the map's cut locus (two minimal paths meet, as
            # behind an obstacle): there its path is longer than the map's value. Start it again
            # half a cell to either side, across the direction to the source; keep the shorter.
            miss = (~(length <= (1.0 + self.slack) * value)).nonzero().squeeze(-1)
            if miss.numel() == 0:
                break
            g = which[miss]
            shifted = ends[miss] + sign * 0.5 * grids.step[g, None] * _normal(ends[miss] - source[miss])
            shifted = torch.minimum(torch.maximum(shifted, grids.lo[g]), grids.hi[g])
            more, ok = trace(g, shifted, source[miss])
            more_length = _length(coefficients, more, ok)
            better = more_length < length[miss]
            paths, more = _pad(paths, more.shape[1]), _pad(more, paths.shape[1])
            paths[miss[better]] = more[better]
            length[miss[better]] = more_length[better]
            reached[miss[better]] = True
        resolution[rows] = step[inverse[rows]]
        keep = reached.nonzero().squeeze(-1)
        pairs = rows[keep]
        out[pairs] = _resample(paths[keep], x[pairs], y[pairs], segments)
        found[pairs] = True
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


class _Grids:
    """`G` maps of one shape `points^D` on cubes with lower corners `lo` `[G, D]` and steps `[G]`:
    their values, their node gradients, and multilinear interpolation of either at points of chosen
    maps (one vectorized gather for all of them)."""

    def __init__(self, values: torch.Tensor, lo: torch.Tensor, step: torch.Tensor):
        self.count, *shape = values.shape
        self.dim, self.points = len(shape), shape[0]
        self.lo, self.step = lo, step
        self.hi = lo + (step * (self.points - 1))[:, None]
        self.size = self.points**self.dim
        self.strides = [self.points ** (self.dim - 1 - k) for k in range(self.dim)]
        self.values = values.reshape(-1)
        self.grad = _gradients(values, step).reshape(-1, self.dim)  # [G * N, D]

    def interpolate(self, field: torch.Tensor, which: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """`field` (`[G * N]` or `[G * N, C]`) at `points` `[B, D]` of the maps `which` `[B]`
        (`inf` where a corner of positive weight is `inf`; points outside use the nearest cell)."""
        u = (points - self.lo[which]) / self.step[which, None]
        i = u.floor().clamp(0, self.points - 2)
        f = (u - i).clamp(0, 1)
        i = i.long()
        base = which * self.size
        for k in range(self.dim):
            base = base + i[:, k] * self.strides[k]
        out = 0
        for corner in range(2**self.dim):
            bits = [(corner >> k) & 1 for k in range(self.dim)]
            idx = base + sum(b * s for b, s in zip(bits, self.strides, strict=True))
            w = torch.ones_like(f[:, 0])
            for k in range(self.dim):
                w = w * (f[:, k] if bits[k] else 1 - f[:, k])
            v = field[idx]
            if v.dim() > 1:
                w = w[:, None]
            finite = torch.isfinite(v)
            out = out + w * torch.where(finite, v, torch.zeros_like(v))
            out = torch.where((w > 0) & ~finite, torch.full_like(out, float("inf")), out)
        return out


def _gradients(values: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Node gradients `[G, *grid, D]` of maps `[G, *grid]` with steps `[G]`: central differences,
    one-sided next to `inf` or the edge (as `finslerlib.eikonal.map_gradient`, per map)."""
    grads = []
    zero = torch.zeros_like(values)
    finite = torch.isfinite(values)
    for k in range(1, values.dim()):
        n = values.shape[k]
        pos = torch.arange(n, device=values.device).view([-1 if j == k else 1 for j in range(values.dim())])
        fwd, bwd = values.roll(-1, k), values.roll(1, k)
        has_f = torch.isfinite(fwd) & (pos < n - 1)
        has_b = torch.isfinite(bwd) & (pos > 0)
        fwd_d = torch.where(has_f, fwd - values, zero)
        bwd_d = torch.where(has_b, values - bwd, zero)
        g = torch.where(has_f & has_b, 0.5 * (fwd_d + bwd_d), torch.where(has_f, fwd_d, bwd_d))
        grads.append(torch.where(finite, g, zero))
    return torch.stack(grads, -1) / step.view(-1, *([1] * values.dim()))


def _backtrack(
    grids: _Grids,
    fn,
    which: torch.Tensor,
    targets: torch.Tensor,
    source: torch.Tensor,
    *,
    step: float = 0.5,
    radius: float = 1.5,
):
    r"""Traced minimal paths `[B, P, D]` (target to source, then repeats of the last node) and
    `reached` `[B]`: `finslerlib.eikonal.geodesic_from_map` for many maps at once (path `b` on the map
    `which[b]` of the metric `fn` (already reversed for a reverse map), its source `source[b]`).

    Midpoint steps of `step` cells along $-a^{-1}(dT - b)$, halved where one does not decrease $T$,
    until within `radius` cells of the source."""
    h = grids.step[which]  # [B]
    ds = step * h
    lo, hi = grids.lo[which], grids.hi[which]
    max_steps = int(4 * grids.dim * grids.points / step) + 8
    y = targets.clone()
    nodes = [y.clone()]
    current = grids.interpolate(grids.values, which, y)
    done = ~torch.isfinite(current)
    reached = torch.zeros_like(done)
    size = ds.clone()
    tiny = torch.finfo(y.dtype).tiny

    def velocity(z):
        a, b = fn(z)
        p = grids.interpolate(grids.grad, which, z)
        v = torch.linalg.solve(a, (p - b).unsqueeze(-1)).squeeze(-1)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(tiny)

    for _ in range(max_steps):
        arrive = ~done & (((y - source) / h[:, None]).abs().amax(-1) <= radius)
        reached |= arrive
        done |= arrive | (size < ds / 1024)  # stuck: no descending step of 1/1024 cell
        if bool(done.all()):
            break
        v1 = velocity(y)
        half = torch.minimum(torch.maximum(y - 0.5 * size[:, None] * v1, lo), hi)
        v2 = velocity(half)
        new = torch.minimum(torch.maximum(y - size[:, None] * v2, lo), hi)
        value = grids.interpolate(grids.values, which, new)
        better = ~done & (value < current)
        y = torch.where(better[:, None], new, y)
        current = torch.where(better, value, current)
        size = torch.where(better, (2 * size).clamp(max=ds), 0.5 * size)
        if bool(better.any()) or bool(arrive.any()):
            nodes.append(torch.where(reached[:, None], source, y))
    nodes.append(torch.where(reached[:, None], source, y))
    return torch.stack(nodes, 1), reached


def _flip(paths: torch.Tensor) -> torch.Tensor:
    """Each path `[B, P, D]` reversed up to its last move; the repeats (now of its first node) stay
    at the end."""
    count = paths.shape[1]
    moved = (paths[:, 1:] != paths[:, :-1]).any(-1)  # [B, P - 1]
    pos = torch.arange(1, count, device=paths.device).expand_as(moved)
    length = torch.where(moved, pos, torch.zeros_like(pos)).amax(-1) + 1  # nodes up to the last move
    j = torch.arange(count, device=paths.device)[None]
    idx = torch.where(j < length[:, None], length[:, None] - 1 - j, torch.zeros_like(j))
    return paths.gather(1, idx[..., None].expand(-1, -1, paths.shape[-1]))


def _reversed(coefficients):
    """The reversed metric's coefficients `x -> (a, -b)`."""

    def fn(x):
        a, b = coefficients(x)
        return a, -b

    return fn


def _cell_cost(coefficients, points: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """The largest cost $|h e_k|_a + |b \\cdot h e_k|$ of an axis step `h = step` `[G]` at `points`."""
    a, b = coefficients(points)
    d = points.shape[-1]
    a = a.expand(*points.shape[:-1], d, d)
    b = b.expand(*points.shape)
    return step * (a.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt() + b.abs()).amax(-1)


def _resample(paths: torch.Tensor, x: torch.Tensor, y: torch.Tensor, segments: int) -> torch.Tensor:
    """`segments + 1` nodes equally spaced in Euclidean arc length along each path `[B, P, D]` (its
    repeated last nodes dropped), its end nodes set to the exact `x` and `y` `[B, D]`
    (`finslerlib.geodesics.candidates.resample_polylines`)."""
    count = paths.shape[1]
    moved = (paths[:, 1:] != paths[:, :-1]).any(-1)  # [B, P - 1]
    pos = torch.arange(1, count, device=paths.device).expand_as(moved)
    last = torch.where(moved, pos, torch.zeros_like(pos)).amax(-1)  # the index of the last node
    j = torch.arange(count, device=paths.device)[None, :, None]
    paths = torch.where(j >= last[:, None, None], y[:, None], paths)  # y, then zero-length repeats
    paths[:, 0] = torch.where(last[:, None] > 0, x, y)
    return resample_polylines(paths, segments)
