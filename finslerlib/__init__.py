"""finslerlib: Randers (Finsler) geometry for PyTorch.

Closed-form Randers manifolds that plug into geoopt's optimizers, and the FAIM layers built on
them. See the documentation site for concepts, how-to guides and the API reference.
"""

from finslerlib.manifolds import (
    Domain,
    EuclideanDomain,
    FinslerManifold,
    FunkBall,
    HyperboloidDomain,
    KillingWind,
    Navigation,
    Randers,
    RandersField,
    Reversed,
    SphereDomain,
)

__version__ = "0.1.0"

__all__ = [
    "Domain",
    "EuclideanDomain",
    "FinslerManifold",
    "FunkBall",
    "HyperboloidDomain",
    "KillingWind",
    "Navigation",
    "Randers",
    "RandersField",
    "Reversed",
    "SphereDomain",
    "__version__",
]
