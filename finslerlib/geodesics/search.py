r"""The shortest geodesic over several candidates, with an estimated discretization error.

`shortest_geodesics(coefficients, x, y, solver)` is what `RandersField.dist`, `logmap` and
`solve` run, for all pairs at once:

1. starting paths per pair (`finslerlib.geodesics.candidates`): the straight line and, with
   `solver.graph`, a global start: the paths of a `StartProvider` if one is given (`RandersField`
   can pass the minimal paths of eikonal distance maps, `finslerlib.manifolds.map_start.MapStart`),
   else a graph shortest path: on a grid for `D <= 3`, on a probabilistic
   roadmap for `D >= 4` (`solver.roadmap` quasi-random nodes in the ellipsoid
   $|z - x| + |z - y| \le$ `solver.reach` $|y - x|$, `solver.neighbours` nearest neighbours each),
   so that a detour in any direction (diagonal ones too) wider than the graph's edges is among the
   starts; plus `solver.candidates` bent polylines (by default none with a grid or map start,
   $2(D - 1)$ otherwise: both ways along every direction orthogonal to the chord);
2. each refined by discrete-energy minimization (`polyline_momentum`); refined paths that
   coincide with an earlier one, or whose discrete length exceeds the shortest by more than
   `solver.prune`, are dropped;
3. the rest shot to convergence (`solve_boundary_value`), and per pair the shortest converged
   geodesic kept; the report counts the converged candidates and the gap to the next distinct one;
4. the discretization error of the kept geodesic's length estimated by step halving
   (`discretization_error`); steps are doubled (up to `max_steps`, as often as the $O(N^{-4})$
   error needs) and the batch solved again until that estimate is within
   `dist_atol + dist_rtol * d`.

What is certified: a converged pair's geodesic connects $x$ to $y$ within the residual tolerance,
its estimated length error is within the distance tolerance, and it is the shortest of the
geodesics found from the starting paths. A shorter geodesic that none of them leads to (a detour
outside the graph's region, or through a gap narrower than its edges: `resolution`) can be missed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Protocol

import torch

from finslerlib.geodesics.candidates import bent_polylines, graph_polylines, roadmap_polylines
from finslerlib.geodesics.hamilton import CoefficientFn, guarded
from finslerlib.geodesics.integrate import geodesic_flow, simpson_weights
from finslerlib.geodesics.options import GeodesicSolver
from finslerlib.geodesics.polyline import polyline_momentum
from finslerlib.geodesics.shooting import (
    BoundarySolution,
    GeodesicConvergenceError,
    end_point_shift,
    solve_boundary_value,
)
from finslerlib.math import randers as rmath
from finslerlib.math.validation import format_values

__all__ = ["GeodesicSolution", "StartProvider", "shortest_geodesics", "exponential_map", "raise_unconverged"]


@dataclass
class GeodesicSolution(BoundarySolution):
    r"""`BoundarySolution` of the kept geodesic of each pair, with the search and error report.

    Attributes:
        distance: Tensor `[B]`, the length $F(x, \\ell_x^{-1}(p_0))$ of the kept geodesic.
        error: Tensor `[B]`, its estimated error: the discretization error (`discretization_error`)
            plus the first-order effect of the end-point residual, $|p(1) \cdot (x(1) - y)| / d$.
        error_tolerance: Tensor `[B]`, `dist_atol + dist_rtol * distance`.
        steps: RK4 steps of the returned trajectories (after doubling).
        candidates: Tensor `[B]`, candidate geodesics shot per pair (after pruning).
        candidates_converged: Tensor `[B]`, how many of them converged.
        gap: Tensor `[B]`, length of the next shortest distinct converged candidate minus the
            kept one (`inf` when no other distinct geodesic was found).
        starts: starting paths refined per pair before pruning (straight, bent, graph).
        search: the searched family in words (which bends, which graph, its region).
        resolution: Tensor `[B]`, the global start's resolution: the grid step for `D <= 3`, the
            median roadmap edge for `D >= 4`, a start provider's own (`MapStart`: its map's grid
            step); `inf` without a global start. A detour through a gap much narrower than this
            can be missed.
        upper_bound: Tensor `[B]`, the length of the shortest refined starting path (an accurate
            quadrature plus its error estimate): the distance is at most this. Where it is below
            `distance - error_tolerance`, a path shorter than the kept geodesic exists but no
            geodesic along it converged, and `converged` is `False`.

    `converged` is `True` where the residual AND the estimated error are within tolerance AND no
    path shorter than the kept geodesic was found (`upper_bound`).
    """

    distance: torch.Tensor | None = None
    error: torch.Tensor | None = None
    error_tolerance: torch.Tensor | None = None
    steps: int = 0
    candidates: torch.Tensor | None = None
    candidates_converged: torch.Tensor | None = None
    gap: torch.Tensor | None = None
    starts: int = 0
    search: str = ""
    resolution: torch.Tensor | None = None
    upper_bound: torch.Tensor | None = None


def _length(coefficients: CoefficientFn, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    a, b = coefficients(x)
    return rmath.norm(rmath.inverse_legendre(p, a, b), a, b)


def _polyline_length(coefficients: CoefficientFn, nodes: torch.Tensor) -> torch.Tensor:
    a, b = coefficients(0.5 * (nodes[..., 1:, :] + nodes[..., :-1, :]))
    f = rmath.norm(nodes[..., 1:, :] - nodes[..., :-1, :], a, b).sum(-1)
    return torch.where(torch.isfinite(f), f, torch.full_like(f, float("inf")))


def path_length(
    coefficients: CoefficientFn, nodes: torch.Tensor, *, sub: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The length of the polylines `nodes` `[..., K + 1, D]` by composite Simpson rules, with its error.

    Each segment is integrated with `2 sub` Simpson panels; the error estimate is the difference
    from `sub` panels (Simpson's error is $O(h^4)$, so the finer value is within it when the metric
    is resolved). A polyline is a path from its first to its last node, so its length bounds the
    distance between them from above.

    Returns:
        `(length, error)`: Tensors `[...]` (`inf` where the metric is invalid on the path).

    Example:
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype).expand(*x.shape, 2), torch.zeros_like(x))
        >>> path_length(euclid, torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]))[0]
        tensor(6.)
    """
    delta = nodes[..., 1:, :] - nodes[..., :-1, :]  # [..., K, D]
    fine = 4 * sub  # the points of 2 sub panels: t_j = j / fine, j = 0 .. fine
    t = torch.linspace(0.0, 1.0, fine + 1, dtype=nodes.dtype, device=nodes.device)
    points = nodes[..., :-1, None, :] + t[:, None] * delta[..., None, :]  # [..., K, fine + 1, D]
    a, b = coefficients(points)
    f = rmath.norm(delta[..., None, :].expand_as(points), a, b)  # [..., K, fine + 1]

    fine_len = (f * simpson_weights(fine, dtype=f.dtype, device=f.device)).sum((-1, -2))
    coarse_len = (f[..., ::2] * simpson_weights(fine // 2, dtype=f.dtype, device=f.device)).sum((-1, -2))
    ok = torch.isfinite(fine_len) & torch.isfinite(coarse_len)
    inf = torch.full_like(fine_len, float("inf"))
    return torch.where(ok, fine_len, inf), torch.where(ok, (fine_len - coarse_len).abs(), inf)


def bend_count(solver: GeodesicSolver, dim: int, start: StartProvider | None = None) -> int:
    """Bent starts per pair: `solver.candidates`, or if `None`: none where a global start certifies
    minimality at a grid's resolution (`solver.graph` with a start provider, or the grid graph of
    `D <= 3`), else $2(D - 1)$ (both ways along every normal)."""
    if dim < 2:
        return 0
    if solver.candidates is None:
        return 0 if (solver.graph and (start is not None or dim <= 3)) else 2 * (dim - 1)
    return int(solver.candidates)


class StartProvider(Protocol):
    r"""The global start of `shortest_geodesics`: one starting polyline per pair, pluggable.

    A callable `start(coefficients, x, y, *, segments, solver)` returning `(paths, found, resolution)`:
    polylines `[B, K + 1, D]` from `x` to `y` (`K = segments`), a bool Tensor `[B]` (`False`:
    no path found, the entry is ignored) and a Tensor `[B]`, the scale below which the provider
    can miss a shorter path (its grid step; `inf` if it certifies nothing). An optional
    attribute `description` (a string) says what it searched, for `GeodesicSolution.search`.
    Without one, `shortest_geodesics` uses a grid graph (`D <= 3`) or a roadmap (`D >= 4`);
    `RandersField` passes the shortest paths of an eikonal distance map
    (`finslerlib.manifolds.map_start.MapStart`).
    """

    def __call__(
        self, coefficients: CoefficientFn, x: torch.Tensor, y: torch.Tensor, *, segments: int,
        solver: GeodesicSolver,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class SearchResolutionWarning(UserWarning):
    """Minimality of a geodesic is certified only at the search's resolution, and it is coarse.

    In $D \\le 3$ it is shown when a pair is shorter than the step of the grid its batch was
    searched on (after such pairs got a grid of their own box, where that is finer).

    The search for the shortest geodesic starts from a probabilistic roadmap whose edges (the
    report's `resolution`, about a sixth of $|y - x|$ at the default size in $D = 7, 8$) bound
    the gaps it can pass: a detour through a narrower gap (a small hole in a wall across the
    chord) is not among the starts, and no finite sample of a $D$-dimensional region can rule it
    out. Shown once per dimension and size (Python's default warning filter).

    Example:
        >>> import warnings
        >>> issubclass(SearchResolutionWarning, UserWarning)
        True
    """


def roadmap_size(solver: GeodesicSolver, dim: int) -> int:
    """Roadmap nodes per pair: `solver.roadmap`, or `min(4000, 1000 (D - 2))` if `None`."""
    return min(4000, 1000 * (dim - 2)) if solver.roadmap is None else int(solver.roadmap)


def _grid_points(solver: GeodesicSolver, dim: int) -> int:
    return solver.grid or (33 if dim <= 2 else 13)


_OWN_GRIDS = 16  # pairs that get a grid each when their batch's grid is coarser than they are


def _own_points(points: int, dim: int) -> int:
    """Nodes per axis of a grid of one pair's own box: the batch grid's count, in 3-D too (audit 9:
    a 7^3 own grid, step a third of the pair's extent, missed a fast tube at offset 0.5 that the
    13^3 grid's edge midpoints cross, and returned 2.0 for a distance of at most 1.427 with
    converged=True)."""
    return points


def _grid_step(x: torch.Tensor, y: torch.Tensor, points: int) -> float:
    """The step of `graph_polylines`' grid for these points: its box is twice their largest extent."""
    both = torch.cat([x, y])
    extent = (both.amax(0) - both.amin(0)).max().clamp_min(1e-6)
    return 2.0 * extent.item() / (points - 1)


def search_description(solver: GeodesicSolver, dim: int, start: StartProvider | None = None) -> str:
    """The family of starting paths `shortest_geodesics` searches in dimension `dim`, in words."""
    count = bend_count(solver, dim, start)
    normals = min(dim - 1, (count + 1) // 2) if dim > 1 else 0
    parts = ["the straight line"]
    if count:
        parts.append(
            f"{count} bent paths (bend {solver.bend:g} |y - x|, along {normals} of the {dim - 1} directions "
            "orthogonal to the chord)"
        )
    if solver.graph and start is not None:
        parts.append(getattr(start, "description", "a global start path (a user start provider)"))
    elif solver.graph and dim <= 3:
        points = _grid_points(solver, dim)
        parts.append(f"a grid-graph shortest path ({points}^{dim} nodes, box 2x the points' extent)")
    elif solver.graph:
        parts.append(
            f"a roadmap shortest path ({roadmap_size(solver, dim)} quasi-random nodes per pair, "
            f"{solver.neighbours} nearest neighbours each, in the ellipsoid |z - x| + |z - y| <= "
            f"{solver.reach:g} |y - x|; edge length in `resolution`)"
        )
    return ", ".join(parts)


def _starts(coefficients, x, y, solver: GeodesicSolver, start: StartProvider | None = None):
    """Starting polylines `[C, B, K + 1, D]` and which of them exist `[C, B]`."""
    n, d = x.shape
    k = solver.segments
    t = torch.linspace(0.0, 1.0, k + 1, dtype=x.dtype, device=x.device)[:, None]
    paths = [(x[:, None] + t * (y - x)[:, None]).unsqueeze(0)]
    present = [torch.ones(1, n, dtype=torch.bool, device=x.device)]
    nontrivial = ~(x == y).all(-1)
    bent = bent_polylines(x, y, segments=k, count=bend_count(solver, d, start), bend=solver.bend)
    paths.append(bent)
    present.append(nontrivial.expand(bent.shape[0], n))
    resolution = torch.full((n,), float("inf"), dtype=x.dtype, device=x.device)
    if solver.graph and start is not None and n:
        graph, found, resolution = start(coefficients, x, y, segments=k, solver=solver)
        paths.append(graph.to(x).unsqueeze(0))
        present.append((found & nontrivial).unsqueeze(0))
        resolution = torch.where(nontrivial, resolution.to(x), torch.zeros_like(resolution, dtype=x.dtype))
    elif solver.graph and d <= 3 and n:
        points = _grid_points(solver, d)
        graph, found = graph_polylines(coefficients, x, y, segments=k, points=points)
        resolution = resolution.fill_(_grid_step(x, y, points))
        # The grid covers the whole batch: a pair shorter than its cells (next to a far pair in the
        # same call) would get no detour search at all. Such pairs get a grid of their own box: one
        # for all of them where that is finer, else one each (at most _OWN_GRIDS of them, with
        # `_own_points` nodes per axis).
        chord = (y - x).abs().amax(-1)
        own = torch.full_like(nontrivial, n == 1)  # pairs searched on a grid of their own box
        coarse = nontrivial & (resolution > chord) & ~own
        if bool(coarse.any()):
            sub = coarse.nonzero().squeeze(-1)
            step = _grid_step(x[sub], y[sub], points)
            groups = [sub] if step < 0.5 * resolution[sub].min().item() else (
                [sub[i : i + 1] for i in range(len(sub))] if len(sub) <= _OWN_GRIDS else []
            )
            for g in groups:
                count = points if len(g) > 1 else _own_points(points, d)
                graph[g], found[g] = graph_polylines(coefficients, x[g], y[g], segments=k, points=count)
                resolution[g] = _grid_step(x[g], y[g], count)
                own[g] = len(g) == 1
            coarse = nontrivial & (resolution > chord) & ~own
        if bool(coarse.any()):
            i = int(torch.argmax(torch.where(coarse, resolution / chord, torch.zeros_like(chord))))
            warnings.warn(
                f"geodesics: for {int(coarse.sum())} of {n} pairs the grid step of the minimality "
                f"search ({resolution[i].item():.3g}) exceeds the pair's own extent (down to "
                f"{chord[i].item():.3g}): a detour at that scale is not searched. Solve such pairs in a "
                "separate call, or use GeodesicSolver(grid=...).",
                SearchResolutionWarning,
                stacklevel=2,
            )
        paths.append(graph.unsqueeze(0))
        present.append((found & nontrivial).unsqueeze(0))
    elif solver.graph and n:
        warnings.warn(
            f"geodesics in D = {d}: minimality is searched on a probabilistic roadmap of "
            f"{roadmap_size(solver, d)} nodes per pair; a shorter path through a gap narrower than its "
            f"edges (`solve().resolution`) is not seen. A finer search: GeodesicSolver(roadmap=...).",
            SearchResolutionWarning,
            stacklevel=2,
        )
        graph, found, resolution = roadmap_polylines(
            coefficients, x, y, segments=k, nodes=roadmap_size(solver, d), neighbours=solver.neighbours,
            reach=solver.reach,
        )
        paths.append(graph.unsqueeze(0))
        present.append((found & nontrivial).unsqueeze(0))
        resolution = torch.where(nontrivial, resolution, torch.zeros_like(resolution))
    return torch.cat(paths), torch.cat(present), resolution


def _select(sol: BoundarySolution, index: torch.Tensor) -> dict:
    return dict(
        momentum=sol.momentum[index], end_point=sol.end_point[index], end_momentum=sol.end_momentum[index],
        path=sol.path[:, index], path_momentum=sol.path_momentum[:, index], residual=sol.residual[index],
        tolerance=sol.tolerance[index], iterations=sol.iterations, jacobian=sol.jacobian[index],
        coarse_end=None if sol.coarse_end is None else sol.coarse_end[index], steps=sol.steps,
    )


def _search(coefficients, x, y, solver: GeodesicSolver, atol, rtol, start: StartProvider | None = None):
    """Shoot the surviving candidates; per pair keep the shortest converged one.

    The shooting starts at `solver.steps`; where the error estimate after its first Newton
    iteration (`discretization_error` of the candidates near their targets) asks for more steps,
    it goes on at the steps `_next_steps` gives (`solve_boundary_value`'s `more_steps`).
    """
    n, d = x.shape
    safe = guarded(coefficients)
    starts, present, resolution = _starts(safe, x, y, solver, start)  # [C, B, K+1, D], [C, B], [B]
    c = starts.shape[0]
    flat = present.reshape(-1).nonzero().squeeze(-1)  # candidate c of pair b at c * n + b
    pair = flat % n
    # graph paths are jagged: the first Gauss-Newton steps may need many halvings. The refinement
    # stops at a relative energy decrease of 1e-4: a start for the shooting, which removes the
    # rest together with the polyline's own O(segments^-2) error (on the bench's field 7
    # iterations instead of 12, the same Newton iterations and distances)
    momenta, nodes = polyline_momentum(
        safe, x[pair], y[pair], segments=solver.segments, initial=starts.reshape(c * n, -1, d)[flat],
        max_backtracks=10, rtol=1e-4,
    )
    chord = (y - x).norm(dim=-1)
    with torch.no_grad():
        lengths = torch.full((c * n,), float("inf"), dtype=x.dtype, device=x.device)
        lengths[flat] = _polyline_length(safe, nodes)
        lengths = lengths.view(c, n)
        # the refined paths bound the distance from above: the shortest (plus its quadrature error)
        upper = torch.full((c * n,), float("inf"), dtype=x.dtype, device=x.device)
        accurate, quadrature = path_length(safe, nodes, sub=2)
        upper[flat] = accurate + quadrature
        upper_bound = upper.view(c, n).amin(0)
        keep = present & torch.isfinite(lengths)
        keep[0] = True  # the straight start always runs (the fallback of every pair)
        if solver.prune is not None:
            keep &= lengths <= (1.0 + solver.prune) * lengths.amin(0) + 0.0
            keep[0] = True
        all_nodes = torch.zeros(c * n, solver.segments + 1, d, dtype=x.dtype, device=x.device)
        all_nodes[flat] = nodes
        all_nodes = all_nodes.view(c, n, -1, d)
        # a refined path that coincides with an earlier kept one leads to the same geodesic
        close = 1e-3 * chord.clamp_min(torch.finfo(x.dtype).eps)
        for j in range(1, c):
            for i in range(j):
                same = (all_nodes[j] - all_nodes[i]).norm(dim=-1).amax(-1) <= close
                keep[j] &= ~(same & keep[i])
        all_p = torch.zeros(c * n, d, dtype=x.dtype, device=x.device)
        all_p[flat] = momenta
        shot = keep.reshape(-1).nonzero().squeeze(-1)
        idx = shot % n
    _, _, dist_atol, dist_rtol = solver.tolerances(x.dtype)
    xi, yi = x[idx], y[idx]

    def more_steps(p, end, end_momentum, coarse, steps):
        # the candidates whose end point is near the target (a geodesic near the converged one)
        error, length = discretization_error(
            coefficients, xi, p, end, end_momentum, steps=steps, coarse=coarse
        )
        tol = dist_atol + dist_rtol * length
        near = (end - yi).norm(dim=-1) <= 0.1 * (yi - xi).norm(dim=-1)
        short = near & torch.isfinite(error) & ~(error <= tol)
        if not bool(short.any()) or 2 * steps > solver.max_steps:
            return steps
        return _next_steps(steps, (error / tol)[short].max().item(), solver.max_steps)

    sol = solve_boundary_value(
        coefficients, xi, yi, steps=solver.steps, atol=atol, rtol=rtol, max_iter=solver.max_iter,
        jacobian=solver.jacobian, start=all_p[shot], coarse_end=True, more_steps=more_steps,
    )
    with torch.no_grad():
        length = _length(safe, x[idx], sol.momentum)
        inf = torch.full((c * n,), float("inf"), dtype=x.dtype, device=x.device)
        conv_len = inf.clone()
        conv_len[shot] = torch.where(sol.converged & torch.isfinite(length), length, inf[: len(shot)])
        conv_len = conv_len.view(c, n)
        res = inf.clone()
        res[shot] = sol.residual
        res = res.view(c, n)
        any_conv = torch.isfinite(conv_len).any(0)
        best = torch.where(any_conv, conv_len.argmin(0), res.argmin(0))  # [B]
        cols = torch.arange(n, device=x.device)
        best_len = conv_len[best, cols]
        # position of each (c, b) in the shot batch
        where = torch.full((c * n,), -1, dtype=torch.long, device=x.device)
        where[shot] = torch.arange(len(shot), device=x.device)
        where = where.view(c, n)
        p_best = sol.momentum[where[best, cols]]
        p_all = torch.zeros(c, n, d, dtype=x.dtype, device=x.device)
        p_all.view(-1, d)[shot] = sol.momentum
        distinct = (p_all - p_best).norm(dim=-1) > 1e-6 * (1.0 + p_best.norm(dim=-1))
        others = torch.where(distinct & torch.isfinite(conv_len), conv_len, torch.inf)
        gap = others.amin(0) - best_len
        gap = torch.where(any_conv, gap, torch.full_like(gap, float("nan")))
        report = dict(
            candidates=keep.sum(0), candidates_converged=torch.isfinite(conv_len).sum(0), gap=gap, starts=c,
            resolution=resolution, upper_bound=upper_bound,
        )
    pick = where[best, cols]
    return BoundarySolution(**_select(sol, pick), converged=sol.converged[pick]), report


_SAFETY = 2.0  # see discretization_error


def discretization_error(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    p: torch.Tensor,
    end: torch.Tensor,
    end_momentum: torch.Tensor,
    *,
    steps: int,
    coarse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Estimated error of the length of RK4 geodesics, by step halving and the first variation.

    The exact geodesic with initial momentum $p_0$ has length $d = F(x, \ell_x^{-1}(p_0))$ and ends
    near $x_N(1)$ (`end`, RK4 with `N = steps` steps). RK4's error is $O(N^{-4})$, so with $N / 2$
    steps (end $x_{N/2}(1)$) its exact end point is about $x_N(1) + (x_N(1) - x_{N/2}(1)) / 15$.
    Moving the end point by $\delta$ changes the distance by $p(1) \cdot \delta / d$, so the
    estimated error of $d$ as the distance to $x_N(1)$ is $|p(1) \cdot (x_N(1) - x_{N/2}(1))| / (15 d)$,
    doubled here as a safety factor: before RK4's asymptotic regime the coarse error is less than
    16 times the fine one, and the plain estimate fell short of the measured error (up to 1.26x on
    about 10% of the pairs of `benchmarks/bench_field_dist.py`). (Odd `steps` compare with
    `steps + 1` instead.)

    Args:
        coefficients: callable `x -> (a, b)`.
        x: Tensor, shape `[B, D]`.
        p: Tensor, shape `[B, D]`, initial momenta.
        end: Tensor, shape `[B, D]`, $x_N(1)$.
        end_momentum: Tensor, shape `[B, D]`, $p_N(1)$.
        steps: `N`.
        coarse: Tensor `[B, D]`, $x_{N/2}(1)$ (odd `N`: $x_{N+1}(1)$) if already integrated
            (`BoundarySolution.coarse_end`); `None`: integrated here.

    Returns:
        `(error, length)`: Tensors `[B]` (error `inf` where a flow failed, 0 where `p = 0`).

    Example:
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x, p = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
        >>> discretization_error(euclid, x, p, p, p, steps=4)[0]  # straight lines: exact
        tensor([0.])
    """
    safe = guarded(coefficients)
    length = _length(safe, x, p)
    other = steps // 2 if steps % 2 == 0 else steps + 1
    # Richardson's 1/15 assumes the coarse error is 16x the fine one; before RK4's asymptotic
    # regime it is less, and the plain estimate fell short of the measured error by up to 1.26x on
    # 10% of the pairs of `bench_field_dist.py`. The safety factor 2 covers observed orders >= 3.1.
    factor = _SAFETY * (1.0 / 15.0 if steps % 2 == 0 else 16.0 / 15.0)
    if coarse is None:
        coarse = geodesic_flow(coefficients, x, p, steps=other, guard=True, differentiable=False)[0]
    err = (end_momentum * (end - coarse)).sum(-1).abs() * factor / length.clamp_min(torch.finfo(x.dtype).tiny)
    err = torch.where(length > 0, err, torch.zeros_like(err))
    return torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf"))), length


def predicted_momentum(sol: BoundarySolution, y: torch.Tensor, steps: int, new_steps: int) -> torch.Tensor:
    r"""The start of the shooting at `new_steps` after a solve at `steps`: one Newton step on the
    end point predicted at `new_steps` (`finslerlib.geodesics.shooting.end_point_shift`).

    The step $-J^{-1} (x_M(1) - y)$ with the solve's Jacobian $J$ removes most of the end point's
    move, so the shooting at $M$ steps usually starts within its tolerance (no Newton iteration,
    one flow instead of two). Its accuracy does not matter for the result: the shooting at $M$
    steps checks its residual. Odd `steps` (no halved comparison), or a non-finite prediction:
    `sol.momentum`.

    Args:
        sol: the solve at `steps` (with `coarse_end` and `jacobian`), `[B]` problems.
        y: Tensor `[B, D]`, the targets.
        steps: `N`, even for a prediction.
        new_steps: `M`.

    Returns:
        Tensor `[B, D]`, initial momenta.
    """
    if steps % 2 or sol.coarse_end is None or sol.jacobian is None or sol.momentum.shape[0] == 0:
        return sol.momentum
    residual = sol.end_point + end_point_shift(sol.end_point, sol.coarse_end, steps, new_steps) - y
    step = torch.linalg.solve_ex(sol.jacobian, residual.unsqueeze(-1))[0].squeeze(-1)
    p = sol.momentum - step
    return torch.where(torch.isfinite(p).all(-1, keepdim=True), p, sol.momentum)


def _next_steps(steps: int, ratio: float, max_steps: int) -> int:
    """Double `steps` as often as an O(steps^-4) error `ratio` times the tolerance needs (at least once)."""
    while True:
        steps, ratio = 2 * steps, ratio / 16.0
        if ratio <= 0.5 or 2 * steps > max_steps:
            return steps


@torch.no_grad()
def adaptive_steps(
    coefficients: CoefficientFn, x: torch.Tensor, p: torch.Tensor, solver: GeodesicSolver
) -> int:
    """RK4 steps for geodesics from `(x, p)`: doubled until `discretization_error` is within tolerance.

    Starts at `solver.steps` and stops at `max_steps`; the tolerance is
    `dist_atol + dist_rtol * length`.

    The same rule as the step doubling of `shortest_geodesics`, so that `expmap` of a `logmap`
    result integrates with the steps the log map was solved with.

    Example:
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> adaptive_steps(euclid, torch.zeros(1, 2), torch.ones(1, 2), GeodesicSolver(steps=4))
        4
    """
    _, _, dist_atol, dist_rtol = solver.tolerances(x.dtype)
    steps = solver.steps
    if x.shape[0] == 0:
        return steps
    end, end_p = geodesic_flow(coefficients, x, p, steps=steps, guard=True, differentiable=False)
    while 2 * steps <= solver.max_steps:
        error, length = discretization_error(coefficients, x, p, end, end_p, steps=steps)
        ok = (error <= dist_atol + dist_rtol * length) | ~torch.isfinite(end).all(-1)
        if bool(ok.all()):
            break
        ratio = (error / (dist_atol + dist_rtol * length))[~ok].max().item()
        steps = _next_steps(steps, ratio, solver.max_steps)
        end, end_p = geodesic_flow(coefficients, x, p, steps=steps, guard=True, differentiable=False)
    return steps


@torch.no_grad()
def shortest_geodesics(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    y: torch.Tensor,
    solver: GeodesicSolver | None = None,
    *,
    start: StartProvider | None = None,
) -> GeodesicSolution:
    r"""The shortest geodesic $x_i \to y_i$ found over several starts, with its estimated error, batched.

    Args:
        coefficients: callable `x -> (a, b)` giving the Randers data at the points.
        x: Tensor, shape `[B, D]`, start points.
        y: Tensor, shape `[B, D]`, targets.
        solver: the options (`GeodesicSolver()` by default).
        start: the global start (`StartProvider`), used when `solver.graph`; `None`: a grid
            graph for `D <= 3`, a roadmap for `D >= 4`. With a provider, `solver.candidates=None`
            adds no bent starts.

    Returns:
        `GeodesicSolution`; inspect `converged` (nothing is raised here).

    Example:
        >>> bump = lambda x: ((1 + 2 * torch.exp(-(x * x).sum(-1) / 0.35**2))[..., None, None] ** 2
        ...                   * torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)
        >>> y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> around = shortest_geodesics(bump, x, y)
        >>> over = shortest_geodesics(bump, x, y, GeodesicSolver(candidates=0, graph=False))
        >>> bool(around.converged), bool(around.distance < over.distance - 0.5)
        (True, True)
    """
    solver = GeodesicSolver() if solver is None else solver
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must both have shape [B, D], got {tuple(x.shape)}, {tuple(y.shape)}")
    atol, rtol, dist_atol, dist_rtol = solver.tolerances(x.dtype)
    # the residual's effect on the length counts in the error: shoot at least 10x below its tolerance
    atol, rtol = min(atol, 0.1 * dist_atol), min(rtol, 0.1 * dist_rtol)
    x, y = x.detach(), y.detach()
    n, d = x.shape
    if n == 0:
        empty = x.new_zeros(0)
        nodes = x.new_zeros(solver.steps + 1, 0, d)
        count = torch.zeros(0, dtype=torch.long, device=x.device)
        return GeodesicSolution(
            momentum=x.clone(), end_point=x.clone(), end_momentum=x.clone(), path=nodes,
            path_momentum=nodes.clone(), residual=empty, tolerance=empty, converged=empty.bool(),
            iterations=0, jacobian=x.new_zeros(0, d, d), distance=empty, error=empty,
            error_tolerance=empty, steps=solver.steps, candidates=count, candidates_converged=count,
            gap=empty, starts=0, search=search_description(solver, d, start), resolution=empty,
            upper_bound=empty,
        )
    sol, report = _search(coefficients, x, y, solver, atol, rtol, start)
    upper_bound = report["upper_bound"]
    steps = sol.steps
    while True:
        error, distance = discretization_error(
            coefficients, x, sol.momentum, sol.end_point, sol.end_momentum, steps=steps, coarse=sol.coarse_end
        )
        error_tolerance = dist_atol + dist_rtol * distance
        short = sol.converged & ~(error <= error_tolerance)
        if not bool(short.any()) or 2 * steps > solver.max_steps:
            break
        previous = steps
        steps = _next_steps(steps, (error / error_tolerance)[short].max().item(), solver.max_steps)
        sol = solve_boundary_value(
            coefficients, x, y, steps=steps, atol=atol, rtol=rtol, max_iter=solver.max_iter,
            jacobian=solver.jacobian, start=predicted_momentum(sol, y, previous, steps),
            initial_jacobian=sol.jacobian, coarse_end=True,
        )
    # the residual moves the end point too: its first-order effect on the length counts as error
    tiny = torch.finfo(x.dtype).tiny
    miss = (sol.end_momentum * (sol.end_point - y)).sum(-1).abs() / distance.clamp_min(tiny)
    error = error + torch.where(distance > 0, miss, torch.zeros_like(miss))
    fields = {k: getattr(sol, k) for k in BoundarySolution.__dataclass_fields__ if k != "steps"}
    # a refined start shorter than the kept geodesic even allowing for its error: that geodesic is
    # not the distance (the error estimate is trusted only after the step doubling above)
    beaten = upper_bound < distance - error - error_tolerance
    fields["converged"] = sol.converged & (error <= error_tolerance) & ~beaten
    return GeodesicSolution(
        **fields, distance=distance, error=error, error_tolerance=error_tolerance, steps=steps,
        search=search_description(solver, d, start), **report,
    )


def exponential_map(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    u: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    solver: GeodesicSolver,
    steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""$\exp_x u$ by RK4, differentiable, with the identity Jacobian in `u` at $u = 0$.

    $\exp_x$ is $C^1$ at $u = 0$ with derivative $I$, but the Legendre map that turns $u$ into the
    initial momentum is not differentiable there: zero rows return $x + u$ (value $x$, derivative
    $I$) and integrate a harmless dummy geodesic.

    Args:
        coefficients: callable `x -> (a, b)` for the flow.
        x: Tensor, shape `[B, D]`.
        u: Tensor, shape `[B, D]`.
        a: Tensor, `a(x)`, shape `[B, D, D]` (or broadcastable).
        b: Tensor, `b(x)`, shape `[B, D]` (or broadcastable).
        solver: its `steps`, `max_steps` and distance tolerances choose the steps
            (`adaptive_steps`) unless `steps` is given.
        steps: RK4 steps (no adaptation).

    Returns:
        `(end, path)`: Tensors `[B, D]` and `[steps + 1, B, D]` (the trajectory nodes).

    Example:
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x, u = torch.zeros(1, 2), torch.tensor([[1.0, 2.0]])
        >>> exponential_map(euclid, x, u, *euclid(x), solver=GeodesicSolver(), steps=4)[0]
        tensor([[1., 2.]])
    """
    zero = (u.detach() == 0).all(-1, keepdim=True)
    p = rmath.legendre(torch.where(zero, torch.ones_like(u), u), a, b)
    if steps is None:
        still = torch.where(zero, torch.zeros_like(p), p).detach()  # zero rows: length 0, no error
        steps = adaptive_steps(coefficients, x.detach(), still, solver)
    end, _, path, _ = geodesic_flow(coefficients, x, p, steps=steps, return_path=True)
    return torch.where(zero, x + u, end), path


def raise_unconverged(solution: GeodesicSolution, x: torch.Tensor, y: torch.Tensor, *, name: str) -> None:
    """Raise `GeodesicConvergenceError` describing the pairs of `solution` that did not converge.

    Args:
        solution: the report of `shortest_geodesics` for the flat batch `x -> y`.
        x: Tensor, shape `[B, D]`.
        y: Tensor, shape `[B, D]`.
        name: the manifold's name, for the message.
    """
    failed = ~solution.converged
    if not bool(failed.any()):
        return
    idx = failed.nonzero().squeeze(-1)
    i = idx[0]
    beaten = ""
    if solution.upper_bound is not None:
        bound, d = solution.upper_bound[i].item(), solution.distance[i].item()
        if bound < d - solution.error[i].item() - solution.error_tolerance[i].item():
            beaten = (
                f" A path of length {bound:.6g} from x to y was found, shorter than the geodesic found "
                f"({d:.6g}), but no geodesic along it converged: the distance is at most {bound:.6g}."
            )
    raise GeodesicConvergenceError(
        f"{name}: the geodesic solve did not converge for {idx.numel()} of {failed.numel()} pairs (first: "
        f"x = {format_values(x[i])} -> y = {format_values(y[i])}, residual "
        f"{solution.residual[i].item():.3g} (tolerance "
        f"{solution.tolerance[i].item():.3g}) after {solution.iterations} iterations, estimated distance "
        f"error {solution.error[i].item():.3g} (tolerance {solution.error_tolerance[i].item():.3g}) at "
        f"{solution.steps} RK4 steps).{beaten} Increase max_iter or max_steps, loosen the tolerances, "
        "bring the points closer, or pass on_failure='nan' to get NaN for these pairs.",
        idx,
        solution.residual[idx],
    )
