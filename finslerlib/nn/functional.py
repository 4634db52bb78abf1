r"""Functional forms of the FAIM losses, computed through the manifold API only.

Every function takes a finslerlib manifold (anything with `dist` / `cdist`) and runs its
distance math outside `torch.autocast`, in float32 at least (float64 stays float64), so
mixed-precision training does not feed bfloat16 Gram matrices into square roots. Pairwise
terms come from `manifold.cdist`, which never materializes an `[N, M, D]` tensor on the
closed-form manifolds.

Conventions: distances are **forward** distances, $d(x \to y)$, as everywhere in finslerlib.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from finslerlib.math.validation import check_finite, value_checks_enabled

__all__ = [
    "check_features",
    "check_labels",
    "compute_dtype",
    "info_nce_loss",
    "triplet_loss",
    "margin_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype the FAIM layers compute distances in: the promoted dtype, at least float32.

    float16 and bfloat16 inputs (autocast, half-precision backbones) are computed in float32;
    float64 stays float64.

    Args:
        *tensors: floating tensors (inputs and parameters).

    Returns:
        `torch.float32` or `torch.float64`.

    Example:
        >>> compute_dtype(torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1))
        torch.float32
        >>> compute_dtype(torch.zeros(1, dtype=torch.float64))
        torch.float64
    """
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"FAIM layers compute in float32 or float64, got inputs promoting to {dtype}")
    return dtype


def _traced() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def check_labels(labels: torch.Tensor, num_classes: int, *, name: str = "labels") -> None:
    """Raise naming `name` unless `labels` are integer classes in `[0, num_classes)`.

    `TypeError` unless an int64 or int32 tensor; `ValueError` (with the measured range)
    for a class outside `[0, num_classes)`. The range check needs one host synchronization; it
    is skipped inside `with value_checks(False):`, and while `torch.compile` / `torch.export`
    trace it becomes an assertion op in the graph (a `RuntimeError` with the same message when
    it fails at run time).

    Args:
        labels: Tensor of class indices, any shape.
        num_classes: the number of classes `C`.
        name: the argument's name in the message.

    Example:
        >>> check_labels(torch.tensor([0, 3]), 3)
        Traceback (most recent call last):
        ...
        ValueError: labels must be classes in [0, 3), got values in [0, 3]
    """
    if labels.dtype not in (torch.int64, torch.int32):
        # bool, floating, complex and the small integer types (uint8, int16, ...: torch's index
        # kernels take int32/int64 only) are refused here, with the argument's name
        raise TypeError(
            f"{name} must be an integer tensor (int64 or int32) of classes in [0, {num_classes}), "
            f"got {labels.dtype} (use {name}.long())"
        )
    if not value_checks_enabled() or labels.numel() == 0:
        return
    if _traced():
        inside = ((labels >= 0) & (labels < num_classes)).all()
        torch._assert_async(inside, f"{name} must be classes in [0, {num_classes})")
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"{name} must be classes in [0, {num_classes}), got values in [{low}, {high}]")


def check_features(x: torch.Tensor, like: torch.Tensor, *, name: str = "x") -> None:
    """Raise naming `name` unless `x` holds finite floating features usable with parameters `like`.

    `TypeError` for integer, bool or complex features (they are not cast silently);
    `ValueError` for features on the meta device when the parameters are not (and the
    reverse), and for NaN or infinite entries (a value check: see `check_labels`).

    Args:
        x: the features.
        like: a parameter of the layer (its device is compared).
        name: the argument's name in the message.

    Example:
        >>> check_features(torch.tensor([[1, 2]]), torch.zeros(1))
        Traceback (most recent call last):
        ...
        TypeError: x must be a floating tensor (float16, bfloat16, float32 or float64), got torch.int64
    """
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), got {x.dtype}"
        )
    if x.is_meta != like.is_meta:
        where = "the meta device" if x.is_meta else f"device {x.device}"
        params = "the meta device" if like.is_meta else f"device {like.device}"
        hint = ""
        if like.is_meta:
            hint = " (materialize the layer: to_empty(device=...) then reset_parameters())"
        raise ValueError(f"{name} is on {where} but the layer's parameters are on {params}{hint}")
    if not x.is_meta:
        check_finite(reason="features must be finite", **{name: x})


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_pairs(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must both have shape [N, D], got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def info_nce_loss(
    manifold,
    anchors: torch.Tensor,
    positives: torch.Tensor,
    *,
    temperature: float = 0.1,
    symmetric: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""InfoNCE with in-batch negatives and geodesic logits $-d(a_i \to p_j) / \tau$.

    Row $i$ is a softmax over all positives $p_j$ with target $j = i$:
    $\mathcal{L}_i = -\log \frac{\exp(-d(a_i \to p_i)/\tau)}{\sum_j \exp(-d(a_i \to p_j)/\tau)}$.
    With `symmetric=True` the loss is averaged with the column-wise (positive -> anchor
    retrieval) cross-entropy of the **same** distance matrix, as in CLIP; the metric direction
    stays anchor $\to$ positive. The `[N, N]` distance matrix comes from one `manifold.cdist`.

    Args:
        manifold: a finslerlib manifold of dimension `D`.
        anchors: Tensor, shape `[N, D]`, points on the manifold.
        positives: Tensor, shape `[N, D]`, `positives[i]` pairs with `anchors[i]`.
        temperature: $\tau > 0$.
        symmetric: also average the column-wise cross-entropy.
        reduction: `"mean"`, `"sum"` or `"none"` (per pair, shape `[N]`).

    Returns:
        Tensor: a scalar, or shape `[N]` for `reduction="none"`; float32 at least.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2), torch.tensor([0.3, 0.0]))
        >>> a = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
        >>> info_nce_loss(m, a, a + 0.1, temperature=1.0) < 0.01  # positives are the nearest
        tensor(True)
    """
    _check_pairs("anchors", anchors, "positives", positives)
    _check_reduction(reduction)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    dtype = compute_dtype(anchors, positives)
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        logits = manifold.cdist(anchors.to(dtype), positives.to(dtype)).div(-temperature)
        targets = torch.arange(logits.shape[0], device=logits.device)
        loss = nnf.cross_entropy(logits, targets, reduction="none")
        if symmetric:
            loss = 0.5 * (loss + nnf.cross_entropy(logits.mT, targets, reduction="none"))
    return _reduce(loss, reduction)


def triplet_loss(
    manifold,
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    *,
    margin: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Triplet margin loss with forward geodesic distances.

    $\mathcal{L}_i = \max(0,\ d(a_i \to p_i) - d(a_i \to n_i) + m)$.

    Args:
        manifold: a finslerlib manifold of dimension `D`.
        anchors: Tensor, shape `[N, D]`.
        positives: Tensor, shape `[N, D]`.
        negatives: Tensor, shape `[N, D]`.
        margin: $m \ge 0$, in distance units.
        reduction: `"mean"`, `"sum"` or `"none"` (shape `[N]`).

    Returns:
        Tensor: a scalar, or shape `[N]`.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(1), torch.tensor([0.5]))
        >>> a, p, n = torch.zeros(1, 1), torch.ones(1, 1), -torch.ones(1, 1)
        >>> triplet_loss(m, a, p, n, margin=0.1)  # d(a->p) = 1.5, d(a->n) = 0.5
        tensor(1.1000)
    """
    _check_pairs("anchors", anchors, "positives", positives)
    _check_pairs("anchors", anchors, "negatives", negatives)
    _check_reduction(reduction)
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    dtype = compute_dtype(anchors, positives, negatives)
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        a, p, n = anchors.to(dtype), positives.to(dtype), negatives.to(dtype)
        loss = torch.relu(manifold.dist(a, p) - manifold.dist(a, n) + margin)
    return _reduce(loss, reduction)


def margin_loss(
    distances: torch.Tensor,
    labels: torch.Tensor,
    *,
    scale,
    margin: float = 0.5,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Additive geodesic-margin softmax loss (the CosFace/ArcFace idea on distances).

    The true class is pushed `margin` further away before the softmax, so training must pull
    a sample closer to its own prototype than to any other by at least the margin:
    $\mathcal{L} = \mathrm{CE}\big(-s\,(d + m\,\mathbb{1}[k = y]),\ y\big)$.

    Args:
        distances: Tensor, shape `[B, C]`, e.g. `FAIMHead.distances(x)`.
        labels: Tensor, shape `[B]`, integer classes in `[0, C)`.
        scale: $s > 0$ (float or scalar tensor; a learnable scale gets gradients).
        margin: $m \ge 0$, in distance units.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Returns:
        Tensor: a scalar, or shape `[B]`.

    Example:
        >>> d = torch.tensor([[1.0, 2.0]])
        >>> y = torch.tensor([0])
        >>> bool(margin_loss(d, y, scale=1.0, margin=0.5) > margin_loss(d, y, scale=1.0, margin=0.0))
        True
    """
    _check_reduction(reduction)
    if distances.dim() != 2 or labels.shape != distances.shape[:1]:
        raise ValueError(
            f"distances must be [B, C] and labels [B], got {tuple(distances.shape)} and {tuple(labels.shape)}"
        )
    check_labels(labels, distances.shape[1])
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    dtype = compute_dtype(distances)
    with torch.autocast(device_type=distances.device.type, enabled=False):
        d = distances.to(dtype)
        # scatter_add instead of a dense one-hot: the margin touches one entry per row
        shifted = d.scatter_add(1, labels.unsqueeze(1), torch.full_like(d[:, :1], margin))
        scale = torch.as_tensor(scale, device=d.device).to(dtype)
        loss = nnf.cross_entropy(shifted * -scale, labels, reduction="none")
    return _reduce(loss, reduction)
