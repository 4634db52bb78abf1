"""Numerical geodesics of position-dependent Randers metrics given as functions `x -> (a, b)`.

* `CoefficientFn`: the type of the metric argument, `x -> (a(x), b(x))`.
* `hamiltonian`, `hamiltonian_vector_field`: Hamilton's equations for $H = \\tfrac12 F^{*2}$.
* `geodesic_flow`: batched fixed-step RK4 integration (the exponential map).
* `polyline_momentum`: batched discrete-energy minimization, the robust start for shooting.
* `solve_boundary_value`: batched (quasi-)Newton shooting with autograd Jacobians (the log map).
"""

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
from finslerlib.geodesics.polyline import polyline_momentum
from finslerlib.geodesics.shooting import (
    BoundarySolution,
    GeodesicConvergenceError,
    default_tolerances,
    endpoint_jacobian,
    solve_boundary_value,
)

__all__ = [
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
    "endpoint_jacobian",
    "solve_boundary_value",
]
