"""`Reversed`, the reverse metric of any finslerlib manifold (defined in `finslerlib.manifolds.base`).

Kept as a module so that `from finslerlib.manifolds.reversed import Reversed` goes on working;
`Reversed` lives next to `FinslerManifold.reverse()`, which returns it (no import circle).
"""

from finslerlib.manifolds.base import Reversed

__all__ = ["Reversed"]
