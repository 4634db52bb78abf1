"""Embed asymmetric data: Finsler multidimensional scaling and directed-graph embeddings.

* `FinslerMDS`: scikit-learn-style estimator minimizing the stress
  $\\sum_{i \\ne j} w_{ij} (d(x_i \\to x_j) - \\Delta_{ij})^2$ in the canonical Randers space of
  Dagès et al. (CVPR 2025) by SMACOF, or in any finslerlib manifold with geoopt's optimizers.
* `graph_dissimilarities`: directed shortest-path lengths of a weighted digraph.
* `DirectedGraphEmbedding`: link prediction on a directed graph (one point per node, a decoder of
  $d(u \to v)$) on Randers, Funk, navigation or symmetric geometries; `split_edges`,
  `link_prediction_scores` and `roc_auc` (MagNet's protocol); `datasets`: directed graphs built
  at run time (the standard library's imports, installed distributions, dpkg, generators).
* `stress`, `normalized_stress`, `symmetric_floor` (the least stress of any symmetric distance),
  `mean_average_precision` and `mean_rank` (directed reconstruction scores).

Uses manifolds and geoopt; nothing in finslerlib imports it.
"""

from finslerlib.embedding import datasets
from finslerlib.embedding.directed import DirectedGraphEmbedding
from finslerlib.embedding.graph import graph_dissimilarities
from finslerlib.embedding.links import (
    EdgeSplit,
    edge_order,
    link_prediction_scores,
    roc_auc,
    split_edges,
    transitive_pairs,
)
from finslerlib.embedding.mds import FinslerMDS
from finslerlib.embedding.metrics import (
    mean_average_precision,
    mean_rank,
    normalized_stress,
    stress,
    symmetric_floor,
)
from finslerlib.embedding.wind import (
    BoostWind,
    HyperboloidRotation,
    RotationWind,
    ball_to_hyperboloid,
    hyperboloid_navigation_dist,
    lorentz_boost_navigation,
    lorentz_points,
    poincare_points,
    poincare_rotation_navigation,
)

__all__ = [
    "BoostWind",
    "DirectedGraphEmbedding",
    "HyperboloidRotation",
    "ball_to_hyperboloid",
    "EdgeSplit",
    "FinslerMDS",
    "datasets",
    "edge_order",
    "hyperboloid_navigation_dist",
    "link_prediction_scores",
    "lorentz_boost_navigation",
    "lorentz_points",
    "poincare_points",
    "poincare_rotation_navigation",
    "RotationWind",
    "roc_auc",
    "split_edges",
    "transitive_pairs",
    "graph_dissimilarities",
    "mean_average_precision",
    "mean_rank",
    "normalized_stress",
    "stress",
    "symmetric_floor",
]
