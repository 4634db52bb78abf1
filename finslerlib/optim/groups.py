r"""Parameter groups that keep geometry out of weight decay, and an optimizer check.

Weight decay pulls a parameter towards 0 in its coordinates. For prototypes and base points
(points on a manifold) that is a drift towards the chart's origin, not a regularizer; for a
learnable metric's raw parameters it is a drift towards an arbitrary metric. Like timm's
`param_groups_weight_decay`, biases and other 1-D parameters (norm weights, the head's
`log_scale`) are not decayed either.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import geoopt
import torch
from torch import nn

__all__ = ["param_groups", "check_optimizer"]


def _metric_parameter_ids(model: nn.Module) -> set[int]:
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, geoopt.Manifold):
            ids.update(id(p) for p in module.parameters())
    return ids


def param_groups(
    model: nn.Module, weight_decay: float, *, no_decay: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Two optimizer parameter groups: decayed weights, and everything that must not be decayed.

    Not decayed: `geoopt.ManifoldParameter`s (FAIMHead prototypes, FAIMBlock base points),
    parameters of manifolds (a learnable metric's factor and drift), 1-D parameters and biases
    (as timm does: norm weights, `log_scale`), the names in `model.no_weight_decay()` if the
    model defines it (timm's convention) and the names in `no_decay`. Frozen parameters
    (`requires_grad=False`) are left out. Empty groups are dropped.

    Args:
        model: the network.
        weight_decay: decay of the first group (the other group gets 0).
        no_decay: further parameter names (as in `model.named_parameters()`) not to decay.

    Returns:
        `[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]`,
        for any `torch.optim` or `geoopt.optim` optimizer (or timm's `create_optimizer_v2`).

    Example:
        >>> from finslerlib.nn import FAIMHead
        >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4), FAIMHead(4, 3))
        >>> decay, rest = param_groups(model, 0.05)
        >>> len(decay["params"]), len(rest["params"])  # Linear weight; bias, prototypes, log_scale, metric
        (1, 5)
        >>> opt = geoopt.optim.RiemannianAdam(param_groups(model, 0.05), lr=1e-3)
    """
    if not float(weight_decay) >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    skip = set(no_decay)
    own = getattr(model, "no_weight_decay", None)
    if callable(own):
        skip |= set(own())
    metric = _metric_parameter_ids(model)
    decay: list[nn.Parameter] = []
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        keep = (
            isinstance(p, geoopt.ManifoldParameter)
            or id(p) in metric
            or p.ndim <= 1
            or name.endswith(".bias")
            or name in skip
        )
        (rest if keep else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": rest, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def _is_bounded(manifold: geoopt.Manifold, p: torch.Tensor) -> bool:
    """Whether `projx` moves a far-away point: the manifold is a proper subset of its chart."""
    with torch.no_grad():
        far = torch.full(p.shape[-1:], 1e6, dtype=p.dtype, device=p.device)
        try:
            return not torch.equal(manifold.projx(far), far)
        except (ValueError, RuntimeError):
            return True


def check_optimizer(optimizer: torch.optim.Optimizer, *, warn: bool = True) -> list[str]:
    """Find manifold parameters on bounded manifolds that a non-Riemannian optimizer steps.

    A plain `torch.optim` step moves a point in a straight line in its chart, so a point of a
    bounded manifold (e.g. a `FunkBall` prototype) can leave the domain; geoopt's
    `RiemannianSGD`/`RiemannianAdam` step along the manifold and stay on it. Unbounded manifolds
    (`Randers`, whose chart is all of $\\mathbb{R}^D$) are fine with any optimizer.

    Args:
        optimizer: any optimizer.
        warn: emit a `UserWarning` listing the offending parameters.

    Returns:
        Descriptions (manifold, shape) of the offending parameters; empty if none.

    Example:
        >>> from finslerlib import FunkBall
        >>> from finslerlib.nn import FAIMHead
        >>> head = FAIMHead(4, 3, FunkBall(4))
        >>> check_optimizer(geoopt.optim.RiemannianSGD(head.parameters(), lr=0.1))
        []
        >>> len(check_optimizer(torch.optim.SGD(head.parameters(), lr=0.1), warn=False))
        1
    """
    if isinstance(optimizer, geoopt.optim.mixin.OptimMixin):
        return []
    found = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            manifold = getattr(p, "manifold", None)
            if isinstance(p, geoopt.ManifoldParameter) and manifold is not None and _is_bounded(manifold, p):
                found.append(f"{type(manifold).__name__} parameter of shape {tuple(p.shape)}")
    if found and warn:
        warnings.warn(
            f"{type(optimizer).__name__} is not a Riemannian optimizer but steps points of bounded "
            f"manifolds ({'; '.join(found)}): they can leave the domain. Use geoopt.optim.RiemannianSGD "
            "or RiemannianAdam (same arguments) for these parameters.",
            UserWarning,
            stacklevel=2,
        )
    return found
