"""Domains: the Riemannian bases as objects (`Domain`, one subclass per base, with charts).

`domain_of(base, dim)` builds the domain of a geoopt base; a new base is one new file here and
one line in `domain_of`.
"""

from __future__ import annotations

import geoopt

from finslerlib.manifolds.domains.base import Chart, Domain, default_tolerance
from finslerlib.manifolds.domains.euclidean import EuclideanDomain, IdentityChart
from finslerlib.manifolds.domains.hyperboloid import HyperboloidDomain, PoincareChart
from finslerlib.manifolds.domains.sphere import SphereDomain, StereographicChart
from finslerlib.manifolds.domains.stereographic import StereographicDomain

__all__ = [
    "Chart",
    "Domain",
    "EuclideanDomain",
    "HyperboloidDomain",
    "IdentityChart",
    "PoincareChart",
    "SphereDomain",
    "StereographicChart",
    "StereographicDomain",
    "default_tolerance",
    "domain_of",
]


def domain_of(base, dim: int) -> Domain:
    """The `Domain` of a geoopt base with intrinsic dimension `dim`.

    Args:
        base: `geoopt.Euclidean(ndim=1)`, `geoopt.Sphere()`, `geoopt.Lorentz(k)`,
            `geoopt.PoincareBall(c)`, `geoopt.SphereProjection(k)` or `geoopt.Stereographic(k)`.
        dim: the intrinsic dimension `n` (points have `n + 1` entries on the sphere and the hyperboloid).

    Returns:
        `Domain`.

    Raises:
        ValueError: an unsupported base or parameter.

    Example:
        >>> domain_of(geoopt.Sphere(), 2)
        SphereDomain(dim=2, ambient_dim=3)
    """
    if isinstance(base, geoopt.Stereographic):
        return StereographicDomain(dim, float(base.k))
    if isinstance(base, geoopt.Lorentz):
        k = float(base.k)
        if not k > 0:
            raise ValueError(f"Lorentz base needs k > 0, got {k}")
        return HyperboloidDomain(dim, k)
    if isinstance(base, geoopt.Sphere):
        if getattr(base, "projector", None) is not None:
            raise ValueError("Sphere with intersection/complement is not supported")
        return SphereDomain(dim)
    if isinstance(base, geoopt.Euclidean):
        if base.ndim != 1:
            raise ValueError(f"the Euclidean base must have ndim=1, got ndim={base.ndim}")
        return EuclideanDomain(dim)
    raise ValueError(
        "base must be geoopt's Euclidean(ndim=1), Sphere(), Lorentz(k), PoincareBall(c), "
        f"SphereProjection(k) or Stereographic(k); got {type(base).__name__}"
    )
