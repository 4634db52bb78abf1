"""Thin manifold classes over `finslerlib.math`: parameters, checks, geoopt plumbing."""

from finslerlib.manifolds.base import FinslerManifold
from finslerlib.manifolds.field import RandersField
from finslerlib.manifolds.funk import FunkBall
from finslerlib.manifolds.killing import KillingWind
from finslerlib.manifolds.navigation import Navigation
from finslerlib.manifolds.randers import Randers

__all__ = ["FinslerManifold", "FunkBall", "KillingWind", "Navigation", "Randers", "RandersField"]
