"""Pure tensor functions (no classes, no state) shared by every finslerlib manifold."""

from finslerlib.math import pairwise, randers

__all__ = ["pairwise", "randers"]
