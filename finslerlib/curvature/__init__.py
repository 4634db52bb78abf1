r"""Curvature and parallel transport of Randers manifolds.

Pure functions of a manifold that exposes its Randers data through `coefficients(x) -> (a, b)`
(`Randers`, `FunkBall`, `RandersField`, and embedded domains with `ambient_dim > dim`):

* `spray`, `riemann_curvature`, `flag_curvature`, `ricci_curvature`, `s_curvature`
  (Busemann–Hausdorff volume);
* `geodesic_transport`, `transp_follow_expmap`, `transp_follow_retraction`, `transp`,
  `funk_transport`: parallel transport along geodesics (Chern = Berwald there, see
  `finslerlib.curvature.transport`).

Property checks for user metrics (plain functions returning `(ok, message)`) are in
`finslerlib.curvature.checks`.
"""

from finslerlib.curvature.quantities import (
    flag_curvature,
    ricci_curvature,
    riemann_curvature,
    s_curvature,
    spray,
)
from finslerlib.curvature.transport import (
    GeodesicTransport,
    funk_transport,
    geodesic_transport,
    transp,
    transp_follow_expmap,
    transp_follow_retraction,
)

__all__ = [
    "spray",
    "riemann_curvature",
    "flag_curvature",
    "ricci_curvature",
    "s_curvature",
    "GeodesicTransport",
    "geodesic_transport",
    "transp_follow_expmap",
    "transp_follow_retraction",
    "transp",
    "funk_transport",
]
