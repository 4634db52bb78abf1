r"""Module forms of the FAIM losses (see `finslerlib.nn.functional` for the formulas)."""

from __future__ import annotations

import geoopt
import torch
import torch.distributed
import torch.nn.functional as nnf
from torch import nn

from finslerlib.nn import functional as F
from finslerlib.nn.head import FAIMHead

__all__ = ["FAIMInfoNCELoss", "FAIMTripletLoss", "FAIMMarginLoss"]


class FAIMInfoNCELoss(nn.Module):
    r"""InfoNCE over geodesic logits $-d(a_i \to p_j)/\tau$ with in-batch negatives.

    See `finslerlib.nn.functional.info_nce_loss`. The manifold is a submodule, so a learnable
    metric is trained by this loss too.

    Args:
        manifold: a finslerlib manifold.
        temperature: $\tau > 0$.
        symmetric: average with the column-wise (positive -> anchor) cross-entropy.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Example:
        >>> from finslerlib import Randers
        >>> loss = FAIMInfoNCELoss(Randers.learnable(3), temperature=0.5)
        >>> a = torch.randn(6, 3)
        >>> loss(a, a).shape
        torch.Size([])
    """

    def __init__(self, manifold: geoopt.Manifold, temperature: float = 0.1, symmetric: bool = False, *,
                 reduction: str = "mean") -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        F._check_reduction(reduction)
        self.manifold = manifold
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)
        self.reduction = reduction

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """Loss for `anchors` `[N, D]` paired row by row with `positives` `[N, D]`."""
        return F.info_nce_loss(self.manifold, anchors, positives, temperature=self.temperature,
                               symmetric=self.symmetric, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}"


class FAIMTripletLoss(nn.Module):
    r"""Triplet loss $\max(0, d(a \to p) - d(a \to n) + m)$ with forward geodesic distances.

    Args:
        manifold: a finslerlib manifold.
        margin: $m \ge 0$.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Example:
        >>> from finslerlib import Randers
        >>> loss = FAIMTripletLoss(Randers(torch.eye(2)), margin=1.0)
        >>> a = torch.zeros(1, 2)
        >>> loss(a, a, a + 5.0)  # negative far away: no loss
        tensor(0.)
    """

    def __init__(self, manifold: geoopt.Manifold, margin: float = 1.0, *, reduction: str = "mean") -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        F._check_reduction(reduction)
        self.manifold = manifold
        self.margin = float(margin)
        self.reduction = reduction

    def forward(
        self, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """Loss for row-aligned triplets, each `[N, D]`."""
        return F.triplet_loss(self.manifold, anchors, positives, negatives, margin=self.margin,
                              reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class FAIMMarginLoss(nn.Module):
    r"""Geodesic additive-margin softmax loss for a `FAIMHead` (CosFace/ArcFace idea).

    $\mathcal{L} = \mathrm{CE}\big(-s\,(\delta(x, \mu) + m\,\mathrm{onehot}(y)),\ y\big)$ with
    $\delta$ = `head.distances` and $s$ the head's current (possibly learned) scale. With
    `margin=0` it equals `cross_entropy(head(x), y)`. The head is referenced, not owned:
    its parameters belong to the model, not to this loss.

    The margin logits come from calling `head(features, labels, margin=m)`, i.e. the head's
    forward. Under `DistributedDataParallel`, pass the **wrapped** module (a DDP-wrapped head)
    so that its forward runs through DDP, or, simpler, skip this class and compute
    `cross_entropy(ddp_model(x, labels), labels)` with a model whose forward hands the labels to
    its `FAIMHead` (whose `margin` is set). Given a bare `FAIMHead` while a multi-process
    `torch.distributed` group is initialized, the loss raises: it would bypass DDP's gradient
    synchronization and the ranks would drift apart silently.

    Args:
        head: a `FAIMHead`, or a module wrapping one whose forward accepts
            `(features, labels, margin=...)` (e.g. `DistributedDataParallel(head)`).
        margin: $m \ge 0$, in distance units.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Example:
        >>> from finslerlib.nn import FAIMHead
        >>> head = FAIMHead(8, 3)
        >>> x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
        >>> plain = torch.nn.functional.cross_entropy(head(x), y)
        >>> torch.allclose(FAIMMarginLoss(head, margin=0.0)(x, y), plain)
        True
    """

    head: nn.Module

    def __init__(self, head: nn.Module, margin: float = 0.5, *, reduction: str = "mean") -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        F._check_reduction(reduction)
        # keep the head out of this module's parameters/state_dict (a plain attribute)
        object.__setattr__(self, "head", head)
        self.margin = float(margin)
        self.reduction = reduction

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss for `features` `[B, in_features]` and integer `labels` `[B]`."""
        if _bypasses_data_parallel(self.head):
            raise RuntimeError(
                "FAIMMarginLoss was given a bare FAIMHead while torch.distributed runs several "
                "processes: its forward would bypass DistributedDataParallel and gradients would not "
                "be synchronized. Put the margin in the model's forward instead: build the head with "
                "FAIMHead(..., margin=m), pass the labels through, `logits = ddp_model(x, labels)`, "
                "and use cross_entropy(logits, labels); or give this loss the DDP-wrapped head."
            )
        logits = self.head(features, labels, margin=self.margin)
        return nnf.cross_entropy(logits, labels, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


def _bypasses_data_parallel(head: nn.Module) -> bool:
    """A bare FAIMHead (not a wrapper's module) used inside a multi-process group."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    return isinstance(head, FAIMHead) and distributed and torch.distributed.get_world_size() > 1
