"""finslerlib: Randers (Finsler) geometry for PyTorch.

Closed-form Randers manifolds that plug into geoopt's optimizers, and the FAIM layers built on
them. See the documentation site for concepts, how-to guides and the API reference.

`value_checks(False)` (a context manager) turns off the data-dependent input checks, for
`torch.compile(fullgraph=True)` and `torch.export` (see `finslerlib.math.validation.value_checks`).
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
from finslerlib.math.validation import value_checks

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
    "value_checks",
    "__version__",
]
