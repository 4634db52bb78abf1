"""Thin manifold classes over `finslerlib.math`: parameters, checks, geoopt plumbing."""

from finslerlib.manifolds.base import FinslerManifold
from finslerlib.manifolds.field import RandersField
from finslerlib.manifolds.randers import Randers

__all__ = ["FinslerManifold", "Randers", "RandersField"]
