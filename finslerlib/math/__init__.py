"""Pure tensor functions (no classes, no state) shared by every finslerlib manifold."""

from finslerlib.math import funk, pairwise, randers, validation

__all__ = ["funk", "pairwise", "randers", "validation"]
