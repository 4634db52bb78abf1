"""Distance maps of Randers metrics on grids (the Randers eikonal equation) and minimal paths.

* `eikonal_map(coefficients, axes, sources)`: the map of a metric given as `x -> (a, b)`;
  `distance_map(metric, axes, sources)`: the same for any object with Randers data.
* `DistanceMap`: the values and how they were computed; `grid_points`: the grid's nodes.
* `geodesic_from_map`: minimal paths by backtracking along the Legendre dual of $dT$.
"""

from finslerlib.eikonal.backtrack import geodesic_from_map, interpolate, map_gradient
from finslerlib.eikonal.solver import DistanceMap, distance_map, eikonal_map, grid_points, metric_function

__all__ = [
    "geodesic_from_map",
    "interpolate",
    "map_gradient",
    "DistanceMap",
    "distance_map",
    "eikonal_map",
    "grid_points",
    "metric_function",
]
