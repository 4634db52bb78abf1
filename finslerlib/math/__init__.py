"""Pure tensor functions (no classes, no state) shared by every finslerlib manifold."""

from finslerlib.math import elementary, funk, linalg, navigation, pairwise, randers, validation

__all__ = ["elementary", "funk", "linalg", "navigation", "pairwise", "randers", "validation"]
