"""Thin manifold classes over `finslerlib.math`: parameters, checks, geoopt plumbing."""

from finslerlib.manifolds.base import FinslerManifold
from finslerlib.manifolds.field import RandersField
from finslerlib.manifolds.funk import FunkBall
from finslerlib.manifolds.randers import Randers

__all__ = ["FinslerManifold", "FunkBall", "Randers", "RandersField"]
