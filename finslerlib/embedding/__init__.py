"""Embed asymmetric data: Finsler multidimensional scaling and directed-graph embeddings.

* `FinslerMDS`: scikit-learn-style estimator minimizing the stress
  $\\sum_{i \\ne j} w_{ij} (d(x_i \\to x_j) - \\Delta_{ij})^2$ in the canonical Randers space of
  Dagès et al. (CVPR 2025) by SMACOF, or in any finslerlib manifold with geoopt's optimizers.
* `graph_dissimilarities`: directed shortest-path lengths of a weighted digraph.
* `stress`, `normalized_stress`, `symmetric_floor` (the least stress of any symmetric distance),
  `mean_average_precision` and `mean_rank` (directed reconstruction scores).

Uses manifolds and geoopt; nothing in finslerlib imports it.
"""

from finslerlib.embedding.graph import graph_dissimilarities
from finslerlib.embedding.mds import FinslerMDS
from finslerlib.embedding.metrics import (
    mean_average_precision,
    mean_rank,
    normalized_stress,
    stress,
    symmetric_floor,
)

__all__ = [
    "FinslerMDS",
    "graph_dissimilarities",
    "mean_average_precision",
    "mean_rank",
    "normalized_stress",
    "stress",
    "symmetric_floor",
]
