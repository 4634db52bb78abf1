"""Pure tensor functions (no classes, no state) shared by every finslerlib manifold."""

from finslerlib.math import elementary, funk, navigation, pairwise, randers, validation

__all__ = ["elementary", "funk", "navigation", "pairwise", "randers", "validation"]
