r"""pytorch-metric-learning (PML) integration: `FinslerDistance`, a `BaseDistance` for any manifold.

Every PML loss, miner and `AccuracyCalculator` takes a `distance=`; with `FinslerDistance` they
use forward geodesic distances. PML's `ArcFaceLoss`/`CosFaceLoss` are cosine-only (they
normalize embeddings and class weights onto the sphere); the geodesic analogue for a
`FAIMHead` is `FAIMHead(..., margin=m)` with `head(x, labels)` (or
`finslerlib.nn.FAIMMarginLoss`).

Requires `pytorch-metric-learning` (`pip install "finslerlib[pml]"`); importing this module
without it works, constructing `FinslerDistance` then raises `ImportError`.
"""

from __future__ import annotations

from typing import Any

import geoopt
import torch

from finslerlib.nn.functional import compute_dtype

try:
    from pytorch_metric_learning.distances import BaseDistance as _Base
except ImportError:  # optional dependency

    class _Base(torch.nn.Module):  # type: ignore[no-redef]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(
                "finslerlib.integrations.pml needs pytorch-metric-learning: "
                'pip install "finslerlib[pml]" (or pip install pytorch-metric-learning)'
            )


__all__ = ["FinslerDistance"]


class FinslerDistance(_Base):  # type: ignore[misc]  # PML is untyped
    r"""Forward geodesic distance as a pytorch-metric-learning distance.

    `compute_mat(q, r)[i, j]` $= d(q_i \to r_j)$, from one `manifold.cdist` (no `[N, M, D]`
    tensor on the closed-form manifolds); `pairwise_distance(q, r)[i]` $= d(q_i \to r_i)$.
    A distance, not a similarity (`is_inverted=False`): smaller is closer. PML calls it as
    `distance(embeddings, ref_emb)`, so a loss's anchor is always the source: a triplet costs
    $d(a \to p) - d(a \to n)$, a retrieval ranks references by $d(\text{query} \to r)$.

    Embeddings are used as they are: they must be points of the manifold (for a `FunkBall`, map
    a network's outputs with `manifold.expmap0` first). `normalize_embeddings` defaults to
    `False`: PML's default L2 normalization would put every point on the unit sphere (the
    boundary of the unit Funk ball, and a needless constraint for a Randers space). The
    distance math runs outside autocast, in float32 at least. A learnable metric is a
    submodule: add the loss's (or this distance's) parameters to the optimizer to train it.

    Args:
        manifold: a finslerlib manifold.
        normalize_embeddings: L2-normalize embeddings first (PML's option; off by default).
        **kwargs: further `BaseDistance` options (`power`, `collect_stats`).

    Raises:
        ValueError: `is_inverted=True` (a geodesic distance is not a similarity).
        ImportError: pytorch-metric-learning is not installed.

    Example:
        >>> from finslerlib import Randers
        >>> from pytorch_metric_learning.losses import TripletMarginLoss
        >>> dist = FinslerDistance(Randers(torch.eye(2), torch.tensor([0.5, 0.0])))
        >>> dist(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))  # d(0 -> e1) = 1 + 0.5
        tensor([[1.5000]])
        >>> loss = TripletMarginLoss(margin=0.2, distance=dist)
        >>> loss(torch.randn(8, 2), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])).shape
        torch.Size([])
    """

    def __init__(
        self, manifold: geoopt.Manifold, *, normalize_embeddings: bool = False, **kwargs: Any
    ) -> None:
        if kwargs.get("is_inverted", False):
            raise ValueError("FinslerDistance is a distance (smaller is closer): is_inverted must be False")
        kwargs["is_inverted"] = False
        super().__init__(normalize_embeddings=normalize_embeddings, **kwargs)
        self.manifold = manifold

    def compute_mat(self, query_emb: torch.Tensor, ref_emb: torch.Tensor | None) -> torch.Tensor:
        """`[N, M]` forward distances $d(q_i \\to r_j)$ (`ref_emb=None`: the query set itself)."""
        ref = query_emb if ref_emb is None else ref_emb
        dtype = compute_dtype(query_emb, ref)
        with torch.autocast(device_type=query_emb.device.type, enabled=False):
            mat: torch.Tensor = self.manifold.cdist(query_emb.to(dtype), ref.to(dtype))
        return mat

    def pairwise_distance(self, query_emb: torch.Tensor, ref_emb: torch.Tensor) -> torch.Tensor:
        """`[N]` forward distances $d(q_i \\to r_i)$ of row-aligned pairs."""
        dtype = compute_dtype(query_emb, ref_emb)
        with torch.autocast(device_type=query_emb.device.type, enabled=False):
            dist: torch.Tensor = self.manifold.dist(query_emb.to(dtype), ref_emb.to(dtype))
        return dist
