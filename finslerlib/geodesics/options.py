r"""`GeodesicSolver`: the options of the numerical geodesic solvers, in one object.

A `RandersField` holds one (its defaults) and every call can override single fields
(`field.dist(x, y, steps=32)`) or pass a whole object (`field.dist(x, y, solver=...)`).

What the tolerances mean (for every returned pair that reports `converged`):

* the end point of the computed trajectory is within `atol + rtol * |y - x|` of the target
  (the shooting residual; the solvers shoot to the tighter of `(atol, rtol)` and
  `(dist_atol, dist_rtol) / 10`, so that the residual's effect on the distance stays small);
* the estimated RK4 discretization error of the returned distance (comparing with half the steps,
  carried to the distance by the first variation formula: `discretization_error`), plus the
  first-order effect of the residual, is at most `dist_atol + dist_rtol * d`. Steps are doubled
  (up to `max_steps`) until the discretization part is;
* the distance is the shortest over the searched candidate geodesics (the straight start, plus,
  when `graph` is on, a global start: a grid-graph shortest path for `D <= 3`, or the minimal path
  of an eikonal distance map with `RandersField.global_start = MapStart()`, a probabilistic roadmap
  of `roadmap` nodes in the ellipsoid of `reach` for `D >= 4`; plus `candidates` bent starts, by
  default only without a grid start; `solve()` reports the search in `starts`, `search` and
  `resolution`). A global minimum is certified only on that family, at the grid's, map's or
  roadmap's resolution: a shorter geodesic through a gap narrower than that, or outside its
  region, can be missed. A refined start shorter than the kept geodesic beyond its error makes the
  pair not converged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

__all__ = ["GeodesicSolver"]

_ON_FAILURE = ("raise", "nan")


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """`(atol, rtol)` on the end-point residual for a dtype: tight in float64, loose in float32.

    Example:
        >>> default_tolerances(torch.float64)
        (1e-10, 1e-09)
    """
    if dtype == torch.float64:
        return 1e-10, 1e-9
    return 1e-5, 1e-5


def default_distance_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """`(dist_atol, dist_rtol)` on the estimated error of a distance for a dtype.

    Example:
        >>> default_distance_tolerances(torch.float64)
        (1e-08, 1e-06)
    """
    if dtype == torch.float64:
        return 1e-8, 1e-6
    return 1e-5, 1e-4


@dataclass(frozen=True)
class GeodesicSolver:
    r"""Options of the geodesic boundary-value and distance solvers.

    Attributes:
        steps: RK4 steps per unit-time geodesic at the start (error $O(\text{steps}^{-4})$);
            `expmap` uses exactly this many.
        max_steps: the step doubling of `dist`/`logmap`/`solve` stops here.
        atol: absolute tolerance of the end-point residual $|x(1) - y|$ (`None`: by dtype,
            `default_tolerances`).
        rtol: residual tolerance relative to $|y - x|$.
        dist_atol: absolute tolerance of the estimated distance error (`None`: by dtype,
            `default_distance_tolerances`).
        dist_rtol: distance error tolerance relative to the distance.
        max_iter: maximum (quasi-)Newton shooting iterations per solve.
        jacobian: `"broyden"` or `"newton"` (see `solve_boundary_value`).
        segments: segments of the discrete paths that start the shooting.
        candidates: bent starting paths per pair besides the straight one (`0`: straight only;
            `None`: none where `graph` gives a grid or eikonal-map start (`D <= 3`, or a start
            provider), else $2(D - 1)$, the chord bent both ways along every direction orthogonal to it).
        bend: size of the bend, as a fraction of $|y - x|$ at the middle of the path.
        graph: add a graph shortest path (Dijkstra) as a start: on a grid for `D <= 3`, on a
            probabilistic roadmap for `D >= 4` (`finslerlib.geodesics.candidates.roadmap_polylines`).
        grid: grid points per axis of that graph (`None`: 33 for `D <= 2`, 13 for `D = 3`).
        roadmap: roadmap nodes per pair for `D >= 4` (`None`: `min(4000, 1000 (D - 2))`).
        neighbours: nearest neighbours joined to each roadmap node.
        reach: the roadmap fills the ellipsoid $|z - x| + |z - y| \le$ `reach` $|y - x|$: it
            holds every path of Euclidean length up to `reach` $|y - x|$.
        prune: drop a refined candidate whose discrete length exceeds the shortest by more than
            this fraction before shooting it (`None`: shoot them all).
        on_failure: `"raise"` or `"nan"`: what `dist`/`logmap` do with a pair that did not converge.

    Example:
        >>> solver = GeodesicSolver(steps=8)
        >>> solver.replace(candidates=0, graph=False).candidates
        0
    """

    steps: int = 16
    max_steps: int = 256
    atol: float | None = None
    rtol: float | None = None
    dist_atol: float | None = None
    dist_rtol: float | None = None
    max_iter: int = 30
    jacobian: str = "broyden"
    segments: int = 16
    candidates: int | None = None
    bend: float = 0.5
    graph: bool = True
    grid: int | None = None
    roadmap: int | None = None
    neighbours: int = 12
    reach: float = 1.5
    prune: float | None = 0.1
    on_failure: str = "raise"

    def __post_init__(self):
        if int(self.steps) < 1 or int(self.max_steps) < int(self.steps):
            raise ValueError(f"steps must be >= 1 and max_steps >= steps, got {self.steps}, {self.max_steps}")
        bad_candidates = self.candidates is not None and int(self.candidates) < 0
        if int(self.max_iter) < 0 or bad_candidates or int(self.segments) < 2:
            raise ValueError(
                f"max_iter and candidates must be >= 0 and segments >= 2, got {self.max_iter}, "
                f"{self.candidates}, {self.segments}"
            )
        if self.jacobian not in ("broyden", "newton"):
            raise ValueError(f"jacobian must be 'broyden' or 'newton', got {self.jacobian!r}")
        if self.on_failure not in _ON_FAILURE:
            raise ValueError(f"on_failure must be one of {_ON_FAILURE}, got {self.on_failure!r}")
        if self.grid is not None and int(self.grid) < 3:
            raise ValueError(f"grid must be >= 3 points per axis, got {self.grid}")
        if self.roadmap is not None and int(self.roadmap) < 3:
            raise ValueError(f"roadmap must be >= 3 nodes per pair, got {self.roadmap}")
        if int(self.neighbours) < 1 or not float(self.reach) > 1.0:
            raise ValueError(f"neighbours must be >= 1 and reach > 1, got {self.neighbours}, {self.reach}")

    def replace(self, **overrides) -> GeodesicSolver:
        """A copy with the given fields changed; `None` values leave a field as it is.

        Raises:
            ValueError: an unknown option name (the message lists the known ones).
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"unknown solver options {unknown}; the options are {names}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def tolerances(self, dtype: torch.dtype) -> tuple[float, float, float, float]:
        """`(atol, rtol, dist_atol, dist_rtol)` with the dtype defaults filled in."""
        atol, rtol = default_tolerances(dtype)
        dist_atol, dist_rtol = default_distance_tolerances(dtype)
        pick = lambda value, default: default if value is None else float(value)  # noqa: E731
        return (
            pick(self.atol, atol), pick(self.rtol, rtol), pick(self.dist_atol, dist_atol),
            pick(self.dist_rtol, dist_rtol),
        )
