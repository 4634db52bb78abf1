r"""`ShardedFAIMHead`: a `FAIMHead` whose class prototypes are split over `torch.distributed` ranks.

For $10^5$–$10^7$ classes the prototypes no longer fit one device (model-parallel class centres,
as in insightface's PartialFC). Each rank keeps a contiguous block of prototypes; every step

1. all-gathers the features and labels of the global batch (autograd-aware: a feature's
   gradient goes back to the rank that produced it),
2. computes its block of logits $-s\, d(x_i \to \mu_k)$ with `FAIMHead`'s fused kernels,
3. evaluates the softmax cross-entropy of the global batch with three all-reduces over rows
   (maxima; sums of exponentials and the target logit), never gathering the `[B, C]` logits.

The backward pass of the cross-entropy is local; one all-reduce then sums, over ranks, the
gradients of the gathered features and of the parameters every rank shares (the metric, the
projection, the logit scale), so every rank's copy of them stays identical.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as nnf
from torch import nn

from finslerlib.nn.functional import check_labels, margin_loss
from finslerlib.nn.head import FAIMHead

__all__ = ["ShardedFAIMHead", "shard_range"]

_REDUCTIONS = ("mean", "sum", "none")

# dtypes by code, for the collective pre-check (a dtype outside the list is code -1)
_DTYPES = (
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
)


def _dtype_code(dtype: torch.dtype) -> int:
    return _DTYPES.index(dtype) if dtype in _DTYPES else -1


def _dtype_name(code: int) -> str:
    return str(_DTYPES[code]) if code >= 0 else "another dtype"


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous block `[start, stop)` of classes held by `rank`; sizes differ by at most one.

    Args:
        num_classes: total number of classes `C`.
        rank: the rank, in `[0, world_size)`.
        world_size: number of ranks.

    Returns:
        `(start, stop)`.

    Example:
        >>> [shard_range(7, r, 3) for r in range(3)]
        [(0, 3), (3, 5), (5, 7)]
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    base, extra = divmod(int(num_classes), int(world_size))
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _group_info(group) -> tuple[object, int, int]:
    if group is None:
        if not (dist.is_available() and dist.is_initialized()):
            return None, 0, 1
        group = dist.group.WORLD
    return group, dist.get_rank(group), dist.get_world_size(group)


class _ShardInputs(torch.autograd.Function):
    """All-gather the features; pass the shared tensors through. Backward: ONE all-reduce sums
    the gathered features' gradient and the shared tensors' gradients over ranks."""

    @staticmethod
    def forward(ctx, group, rank, world, feature_grad_scale, features, *shared):
        ctx.group, ctx.rank, ctx.rows = group, rank, features.shape[0]
        ctx.feature_grad_scale = feature_grad_scale
        ctx.shapes = [t.shape for t in shared]
        parts = [torch.empty_like(features) for _ in range(world)]
        dist.all_gather(parts, features.contiguous(), group=group)
        return (torch.cat(parts), *(t.view_as(t) for t in shared))

    @staticmethod
    def backward(ctx, grad_all, *grad_shared):
        grads = [grad_all] + [
            torch.zeros(shape, dtype=grad_all.dtype, device=grad_all.device) if g is None else g
            for g, shape in zip(grad_shared, ctx.shapes, strict=True)
        ]
        flat = torch.cat([g.reshape(-1).to(grad_all.dtype) for g in grads])
        dist.all_reduce(flat, group=ctx.group)
        pieces = list(flat.split([g.numel() for g in grads]))
        rows = ctx.rows
        grad_features = pieces[0].view(grad_all.shape)[ctx.rank * rows : (ctx.rank + 1) * rows]
        if ctx.feature_grad_scale != 1:
            grad_features = grad_features * ctx.feature_grad_scale
        shared = [p.view(g.shape).to(g.dtype) for p, g in zip(pieces[1:], grads[1:], strict=True)]
        return (None, None, None, None, grad_features, *shared)


class _ShardedCrossEntropy(torch.autograd.Function):
    """Per-row softmax cross-entropy over classes split across ranks; `[N]` losses.

    Forward: all-reduce of row maxima, then one all-reduce of the sums of exponentials and the
    target logits. Backward is local: $\\partial \\ell_i / \\partial z_{ik} = p_{ik} - [k = y_i]$.
    """

    @staticmethod
    def forward(ctx, logits, local_targets, group):
        # local_targets: index of the target within this block, or -1 when another rank owns it
        rows = torch.arange(logits.shape[0], device=logits.device)
        owned = local_targets >= 0
        row_max = logits.max(dim=1).values if logits.shape[1] else logits.new_full(rows.shape, -torch.inf)
        dist.all_reduce(row_max, op=dist.ReduceOp.MAX, group=group)
        probs = logits.sub(row_max.unsqueeze(1)).exp_()
        target = torch.where(owned, logits[rows, local_targets.clamp_min(0)], torch.zeros_like(row_max))
        sums = torch.cat([probs.sum(dim=1), target])
        dist.all_reduce(sums, group=group)
        total, target = sums.split(logits.shape[0])
        probs.div_(total.unsqueeze(1))
        ctx.save_for_backward(probs, local_targets)
        return total.log() + row_max - target

    @staticmethod
    def backward(ctx, grad):
        probs, local_targets = ctx.saved_tensors
        out = probs * grad.unsqueeze(1)
        owned = torch.nonzero(local_targets >= 0).squeeze(1)
        out[owned, local_targets[owned]] -= grad[owned]
        return out, None, None


class _LocalLogits(nn.Module):
    """Calls `FAIMHead.forward` on a head (for `torch.func.functional_call` with substitutions)."""

    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, x):
        return FAIMHead.forward(self.head, x)


class ShardedFAIMHead(FAIMHead):
    r"""`FAIMHead` + softmax cross-entropy with the class prototypes sharded over ranks.

    Rank $r$ of the process group holds the contiguous block `shard_range(C, r, W)` of
    prototypes (sizes differ by at most one) as its `geoopt.ManifoldParameter`
    (`prototype_coords` for the learnable metric, in factor coordinates as in `FAIMHead`, or
    `prototypes` on a given manifold). Every other parameter (the metric, the projection, the
    logit scale) is replicated: broadcast from the group's first rank at construction, and its
    gradient is summed over ranks in the backward pass, so plain optimizers keep the replicas
    identical. `forward(features, labels)` returns the loss of the **global** batch (every
    rank's features), the same value on every rank:

    $$\mathcal{L} = \frac{1}{N} \sum_i -\log \frac{e^{z_{i y_i}}}{\sum_k e^{z_{ik}}},\qquad
      z_{ik} = -s\,\big(\delta(x_i, \mu_k) + m\,[k = y_i]\big)$$

    with the optional geodesic margin $m$ of `FAIMMarginLoss`. With `sample_rate < 1` each
    rank keeps, per step, every class of its block that is a label in the global batch plus
    random others up to `ceil(sample_rate * block)` classes (PartialFC's negative sampling);
    the softmax then runs over the kept classes only.

    Without a process group (or with world size 1) it is exactly `FAIMHead` followed by
    `nn.functional.cross_entropy` (or `functional.margin_loss`). Backbones wrapped in
    `DistributedDataParallel` compose with it: keep the head out of DDP, and pass
    `ddp_mean_grads=True` so the features' gradients are multiplied by the world size (DDP
    averages the backbone's gradients over ranks; the loss here is already the global mean).
    `state_dict()` is collective (call it on every rank; it returns the full prototypes, with
    the same keys as a `FAIMHead` of all `C` classes); `load_state_dict` takes such a full
    state (from any world size, or from a `FAIMHead`) and keeps this rank's block.
    `distances(x)` and `FAIMHead.forward(head, x)` give this rank's block of distances and
    logits, `[..., local_classes]` (for inference; or load the state into a `FAIMHead`).

    Args:
        in_features: feature dimension `D`.
        num_classes: total number of classes `C` (at least the world size).
        manifold: as in `FAIMHead`.
        margin: geodesic margin $m \ge 0$ added to the target's distance.
        sample_rate: fraction of each block's classes used per step, in `(0, 1]`.
        reduction: `"mean"`, `"sum"` or `"none"` (per sample of the global batch, `[N]`).
        process_group: the `torch.distributed` group (default: the world, if initialized).
        ddp_mean_grads: multiply the features' gradients by the world size (see above).
        **kwargs: `scale`, `learn_scale`, `direction`, `rank`, `dtype`, `device` of `FAIMHead`.

    Attributes:
        class_start, class_stop: this rank's block of classes.
        num_classes: `C` (all ranks); `local_classes`: the block size.
        last_sampled: global ids of the classes this rank used in the last step (`None`
            without sampling).

    Example:
        >>> head = ShardedFAIMHead(8, 5)  # no process group: FAIMHead + cross-entropy
        >>> x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 4])
        >>> loss = head(x, y)
        >>> bool(torch.isclose(loss, nn.functional.cross_entropy(FAIMHead.forward(head, x), y)))
        True
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        manifold=None,
        *,
        margin: float = 0.0,
        sample_rate: float = 1.0,
        reduction: str = "mean",
        process_group=None,
        ddp_mean_grads: bool = False,
        **kwargs,
    ):
        group, rank, world = _group_info(process_group)
        if int(num_classes) < world:
            raise ValueError(f"num_classes must be >= the world size {world}, got {num_classes}")
        if not float(margin) >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0 < float(sample_rate) <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        start, stop = shard_range(num_classes, rank, world)
        # read by `_global_rows` while the constructor draws the prototypes (by global class
        # index: every world size gets the prototypes of `FAIMHead(D, C)` under the same seed)
        self._block = (start, int(num_classes))
        super().__init__(in_features, stop - start, manifold, **kwargs)
        self.num_classes = int(num_classes)
        self.local_classes = stop - start
        self.class_start, self.class_stop = start, stop
        self.margin = float(margin)
        self.sample_rate = float(sample_rate)
        self.reduction = reduction
        self.ddp_mean_grads = bool(ddp_mean_grads)
        self.last_sampled = None
        self._group, self._rank, self._world = group, rank, world
        self._register_state_dict_hook(_gather_prototypes)
        self._register_load_state_dict_pre_hook(_keep_local_block, with_module=True)
        if world > 1:
            src = dist.get_global_rank(group, 0)
            with torch.no_grad():
                for t in self._shared_tensors(include_buffers=True):
                    dist.broadcast(t.data, src=src, group=group)

    def _global_rows(self) -> tuple[int, int]:
        return self._block

    @property
    def world_size(self) -> int:
        """Number of ranks sharing the prototypes."""
        return self._world

    def _storage_name(self) -> str:
        return "prototype_coords" if self.factor_coordinates else "prototypes"

    def _shared_tensors(self, include_buffers=False):
        stored = self._stored_prototypes()
        out = [p for p in self.parameters() if p is not stored]
        return out + list(self.buffers()) if include_buffers else out

    def _sample(self, labels_all: torch.Tensor) -> torch.Tensor | None:
        """Indices (within the block) of the classes used this step: every positive, then random."""
        if self.sample_rate >= 1:
            return None
        block = self.local_classes
        keep = min(block, max(1, int(-(-self.sample_rate * block // 1))))
        local = labels_all - self.class_start
        positives = torch.unique(local[(local >= 0) & (local < block)])
        if positives.numel() >= keep:
            return positives
        score = torch.rand(block, device=labels_all.device)
        score[positives] = 2.0  # positives first
        return torch.topk(score, keep).indices.sort().values

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of the global batch.

        Args:
            features: Tensor, shape `[B, in_features]`, this rank's features (the same `B` on
                every rank).
            labels: Tensor, shape `[B]`, integer classes in `[0, num_classes)`.

        Returns:
            Tensor: the loss (the same on every rank), or `[W B]` losses for `reduction="none"`,
            rows ordered by rank.
        """
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                "features must be [B, D] and labels [B], got "
                f"{tuple(features.shape)} and {tuple(labels.shape)}"
            )
        if self._world == 1 and self.sample_rate >= 1:
            check_labels(labels, self.num_classes)
            if self.margin == 0:
                return nnf.cross_entropy(FAIMHead.forward(self, features), labels, reduction=self.reduction)
            d = self.distances(features)
            return margin_loss(d, labels, scale=self.scale, margin=self.margin, reduction=self.reduction)
        return self._sharded_loss(features, labels)

    def _sharded_loss(self, features, labels):
        group, world = self._group, self._world
        if world > 1:
            # shapes and dtypes first, so that a mismatch raises the same error on every rank
            # (no hang, and no gloo abort on buffers of different sizes)
            codes = [_dtype_code(features.dtype), _dtype_code(labels.dtype)]
            meta = torch.tensor([*features.shape, *codes], device=features.device)
            metas = [torch.empty_like(meta) for _ in range(world)]
            dist.all_gather(metas, meta, group=group)
            rows = [m.tolist() for m in metas]
            if any(r[:2] != rows[0][:2] for r in rows):
                shapes = [tuple(r[:2]) for r in rows]
                raise ValueError(f"every rank needs features of the same shape, got {shapes} (by rank)")
            for what, col in (("features", 2), ("labels", 3)):
                if any(r[col] != rows[0][col] for r in rows):
                    dtypes = [_dtype_name(r[col]) for r in rows]
                    raise ValueError(f"every rank needs {what} of the same dtype, got {dtypes} (by rank)")
            parts = [torch.empty_like(labels) for _ in range(world)]
            dist.all_gather(parts, labels.contiguous(), group=group)
            labels_all = torch.cat(parts)
        else:
            labels_all = labels
        check_labels(labels_all, self.num_classes)
        names = [n for n, p in self.named_parameters() if p is not self._stored_prototypes()]
        shared = [p for p in self.parameters() if p is not self._stored_prototypes()]
        if world > 1:
            scale = world if self.ddp_mean_grads else 1
            x_all, *shared = _ShardInputs.apply(group, self._rank, world, scale, features, *shared)
        else:
            x_all = features
        substitute = {"head." + n: t for n, t in zip(names, shared, strict=True)}
        index = self._sample(labels_all)
        local = labels_all - self.class_start
        owned = (local >= 0) & (local < self.local_classes)
        if index is None:
            self.last_sampled = None
            targets = torch.where(owned, local, torch.full_like(local, -1))
        else:
            self.last_sampled = index + self.class_start
            stored_name = self._storage_name()
            substitute["head." + stored_name] = self._stored_prototypes()[index]
            position = torch.searchsorted(index, local.clamp(0, self.local_classes - 1))
            hit = owned & (index[position.clamp_max(index.numel() - 1)] == local)
            targets = torch.where(hit, position, torch.full_like(local, -1))
        logits = torch.func.functional_call(_LocalLogits(self), substitute, (x_all,))
        if self.margin:
            rows = torch.nonzero(targets >= 0).squeeze(1)
            scale = substitute["head.log_scale"].exp() if "head.log_scale" in substitute else self.scale
            shift = (-self.margin * scale).to(logits.dtype).expand(rows.shape)
            logits = logits.index_put((rows, targets[rows]), shift, accumulate=True)
        if world > 1:
            losses = _ShardedCrossEntropy.apply(logits, targets, group)
        else:
            losses = nnf.cross_entropy(logits, targets, reduction="none")
        if self.reduction == "mean":
            return losses.mean()
        return losses.sum() if self.reduction == "sum" else losses

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", block=[{self.class_start}, {self.class_stop}), world_size={self._world}"
            + (f", margin={self.margin}" if self.margin else "")
            + (f", sample_rate={self.sample_rate}" if self.sample_rate < 1 else "")
        )


def _gather_prototypes(module, state_dict, prefix, local_metadata):
    """State-dict hook: replace this rank's block by all `C` prototypes (collective)."""
    key = prefix + module._storage_name()
    block = state_dict[key]
    if module._world == 1:
        return
    sizes = [shard_range(module.num_classes, r, module._world) for r in range(module._world)]
    padded = block.new_zeros(max(stop - start for start, stop in sizes), *block.shape[1:])
    padded[: block.shape[0]] = block.detach()
    parts = [torch.empty_like(padded) for _ in range(module._world)]
    dist.all_gather(parts, padded, group=module._group)
    state_dict[key] = torch.cat([p[: stop - start] for p, (start, stop) in zip(parts, sizes, strict=True)])


def _keep_local_block(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    """Load pre-hook: keep this rank's block of a full (`C`-row) prototype entry."""
    for name in ("prototype_coords", "prototypes"):
        key = prefix + name
        value = state_dict.get(key)
        if value is not None and value.dim() >= 1 and value.shape[0] == module.num_classes:
            state_dict[key] = value[module.class_start : module.class_stop]
