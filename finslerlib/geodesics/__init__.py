"""Numerical geodesics of position-dependent Randers metrics given as functions `x -> (a, b)`.

* `CoefficientFn`: the type of the metric argument, `x -> (a(x), b(x))`.
* `hamiltonian`, `hamiltonian_vector_field`: Hamilton's equations for $H = \\tfrac12 F^{*2}$.
* `geodesic_flow`: batched fixed-step RK4 integration; `exponential_map` on top of it.
* `polyline_momentum`: batched discrete-energy minimization, the robust start for shooting.
* `solve_boundary_value`: batched (quasi-)Newton shooting from one start per pair.
* `bent_polylines`, `graph_polylines`: more starting paths for the global search.
* `shortest_geodesics`: the shortest geodesic over several starts, with an error estimate
  (`discretization_error`, `adaptive_steps`: the error estimate and the step doubling).
* `GeodesicSolver`: the solver options; `GeodesicSolution`: the per-pair report.
* `transport_along_geodesic`, `geodesic_spray`: parallel transport along a geodesic (RK4).
* `distance_with_gradient`, `logmap_with_gradient`: gradients attached to solved geodesics.
"""

from finslerlib.geodesics.candidates import bent_polylines, graph_polylines
from finslerlib.geodesics.gradients import distance_with_gradient, logmap_with_gradient
from finslerlib.geodesics.hamilton import (
    CoefficientFn as CoefficientFn,
)
from finslerlib.geodesics.hamilton import (
    guarded,
    hamiltonian,
    hamiltonian_vector_field,
    randers_validity,
)
from finslerlib.geodesics.integrate import geodesic_flow, simpson_weights
from finslerlib.geodesics.options import GeodesicSolver, default_distance_tolerances, default_tolerances
from finslerlib.geodesics.polyline import polyline_momentum
from finslerlib.geodesics.search import (
    GeodesicSolution,
    adaptive_steps,
    discretization_error,
    exponential_map,
    raise_unconverged,
    shortest_geodesics,
)
from finslerlib.geodesics.shooting import (
    BoundarySolution,
    GeodesicConvergenceError,
    endpoint_jacobian,
    solve_boundary_value,
)
from finslerlib.geodesics.transport import GeodesicTransport, geodesic_spray, transport_along_geodesic

__all__ = [
    "GeodesicTransport",
    "geodesic_spray",
    "transport_along_geodesic",
    "hamiltonian",
    "hamiltonian_vector_field",
    "randers_validity",
    "guarded",
    "geodesic_flow",
    "simpson_weights",
    "polyline_momentum",
    "BoundarySolution",
    "GeodesicConvergenceError",
    "default_tolerances",
    "default_distance_tolerances",
    "endpoint_jacobian",
    "solve_boundary_value",
    "bent_polylines",
    "graph_polylines",
    "GeodesicSolver",
    "GeodesicSolution",
    "shortest_geodesics",
    "discretization_error",
    "adaptive_steps",
    "raise_unconverged",
    "exponential_map",
    "distance_with_gradient",
    "logmap_with_gradient",
]
