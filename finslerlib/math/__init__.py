"""Pure tensor functions (no classes, no state) shared by every finslerlib manifold."""

from finslerlib.math import funk, linalg, navigation, pairwise, randers, riemannian, validation

__all__ = ["funk", "linalg", "navigation", "pairwise", "randers", "riemannian", "validation"]
