"""Numerical geodesics of position-dependent Randers metrics given as functions `x -> (a, b)`.

The API (what `finslerlib.manifolds` and users call):

* `CoefficientFn`: the type of the metric argument, `x -> (a(x), b(x))`.
* `hamiltonian`, `hamiltonian_vector_field`: Hamilton's equations for $H = \\tfrac12 F^{*2}$;
  `guarded`: the metric made NaN where its data are not strongly convex.
* `geodesic_flow`: batched fixed-step RK4 integration; `exponential_map` on top of it.
* `polyline_momentum`: batched discrete-energy minimization, the robust start for shooting.
* `solve_boundary_value`: batched (quasi-)Newton shooting from one start per pair.
* `shortest_geodesics`: the shortest geodesic over several starts, with an error estimate;
  `StartProvider`: its pluggable global start (a grid graph or roadmap by default).
* `GeodesicSolver`: the solver options; `GeodesicSolution`, `BoundarySolution`: the per-pair
  reports; `GeodesicConvergenceError` and `raise_unconverged`: the failure;
  `SearchResolutionWarning`: minimality in $D \\ge 4$ searched at a roadmap's resolution only.
* `transport_along_geodesic`, `geodesic_spray`, `GeodesicTransport`: parallel transport along
  a geodesic (RK4), the spray.
* `distance_with_gradient`, `logmap_with_gradient`: gradients attached to solved geodesics.

The building blocks stay in their modules: `candidates` (`bent_polylines`, `graph_polylines`,
`roadmap_polylines`, `resample_polyline`), `search` (`discretization_error`, `adaptive_steps`, `path_length`),
`integrate` (`simpson_weights`), `options` (`default_tolerances`, ...), `shooting`
(`endpoint_jacobian`).
"""

from finslerlib.geodesics.gradients import distance_with_gradient, logmap_with_gradient
from finslerlib.geodesics.hamilton import guarded, hamiltonian, hamiltonian_vector_field
from finslerlib.geodesics.integrate import geodesic_flow
from finslerlib.geodesics.options import GeodesicSolver
from finslerlib.geodesics.polyline import polyline_momentum
from finslerlib.geodesics.search import (
    GeodesicSolution,
    SearchResolutionWarning,
    StartProvider,
    exponential_map,
    raise_unconverged,
    shortest_geodesics,
)
from finslerlib.geodesics.shooting import (
    BoundarySolution,
    GeodesicConvergenceError,
    end_point_shift,
    solve_boundary_value,
)
from finslerlib.geodesics.transport import GeodesicTransport, geodesic_spray, transport_along_geodesic

__all__ = [
    "SearchResolutionWarning",
    "StartProvider",
    "GeodesicTransport",
    "geodesic_spray",
    "transport_along_geodesic",
    "hamiltonian",
    "hamiltonian_vector_field",
    "guarded",
    "geodesic_flow",
    "exponential_map",
    "polyline_momentum",
    "solve_boundary_value",
    "end_point_shift",
    "shortest_geodesics",
    "GeodesicSolver",
    "GeodesicSolution",
    "BoundarySolution",
    "GeodesicConvergenceError",
    "raise_unconverged",
    "distance_with_gradient",
    "logmap_with_gradient",
]
