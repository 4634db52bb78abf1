"""Manifolds: a domain (`domain`) plus Randers data, as thin classes over `finslerlib.math`.

`FinslerManifold` (base.py) is the API and what comes for free; `Reversed` (base.py) the one
reversal wrapper; `Randers`, `FunkBall`, `RandersField` the metrics; `EuclideanDomain` and
`SphereDomain` (domains/, one file per base) the domains. See `docs/how-to/new-manifold.md`.
"""

from finslerlib.manifolds.base import FinslerManifold, Reversed
from finslerlib.manifolds.domains import Domain, EuclideanDomain, HyperboloidDomain, SphereDomain
from finslerlib.manifolds.field import RandersField, renormalized_transport
from finslerlib.manifolds.funk import FunkBall
from finslerlib.manifolds.killing import KillingWind
from finslerlib.manifolds.map_start import MapStart
from finslerlib.manifolds.navigation import Navigation
from finslerlib.manifolds.randers import Randers

__all__ = [
    "Domain",
    "EuclideanDomain",
    "FinslerManifold",
    "FunkBall",
    "HyperboloidDomain",
    "KillingWind",
    "MapStart",
    "Navigation",
    "Randers",
    "RandersField",
    "Reversed",
    "SphereDomain",
    "renormalized_transport",
]
