r"""Classifier-swap math: prototypes that reproduce a linear layer's ranking, class means.

Why the ranking can be reproduced exactly: for a constant Riemannian metric $a$ (drift 0),
$d(x, \mu_k)^2 = \mu_k^\top a \mu_k - 2 \mu_k^\top a x + x^\top a x$, and the last term is the
same for every class. With $\mu_k = \tfrac{\lambda}{2} a^{-1} w_k + e$ the class-dependent part is
$-\lambda (w_k \cdot x) + \tfrac{\lambda^2}{4} |w_k|^2_{a^{-1}} + \lambda\, w_k \cdot e$, so the
nearest-prototype ordering is the ordering of $w_k \cdot x + c_k$ for every $x$ exactly when
$w_k \cdot e - \kappa = -c_k - \tfrac{\lambda}{4} |w_k|^2_{a^{-1}}$ for all $k$ (unknowns $e$,
$\kappa$): $C$ linear equations in $D' + 1$ unknowns, solvable when $[W, -1]$ has full row rank
(so at most $D' + 1$ classes). Otherwise $e$ is the least-squares solution.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["HeadSizeWarning", "replace_classifier"]

# a head with more than this many times the parameters of the Linear it replaces is reported
GROWTH_WARNING = 4.0


class HeadSizeWarning(UserWarning):
    """A replacement head has many times the parameters of the `nn.Linear` it replaces."""


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def warn_if_much_larger(linear: nn.Linear, head: nn.Module, *, stacklevel: int = 3) -> bool:
    r"""Warn (`HeadSizeWarning`) when `head` has over `GROWTH_WARNING` times `linear`'s parameters.

    A full-rank FAIM head holds a $D \times D$ metric factor: for few classes ($C \ll D$, say 10
    classes on 512 features: 267,777 parameters against 5,130, and about 14x the Linear's time)
    it dwarfs the Linear. `rank=r` (with $r \approx C$) keeps it near the Linear's size.
    Returns whether it warned.
    """
    small, big = _count(linear), _count(head)
    if big <= GROWTH_WARNING * max(small, 1):
        return False
    d, c = linear.in_features, linear.out_features
    warnings.warn(
        f"the replacement head has {big:,} parameters, {big / max(small, 1):.0f}x the nn.Linear({d}, {c})'s "
        f"{small:,} (a full-rank metric holds {d}x{d} entries); for few classes pass rank=r, e.g. "
        f"FAIMHead.from_linear(linear, rank={min(c, d)}), or a fixed manifold",
        HeadSizeWarning,
        stacklevel=stacklevel,
    )
    return True


def linear_prototypes(
    weight: torch.Tensor, bias: torch.Tensor | None, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chart coordinates `[C, D']` of prototypes reproducing `weight`/`bias`'s ranking under `a`.

    Returns the prototypes and the residual `[C]` of the bias equations (zero: exact ranking).
    """
    w = weight.to(torch.float64)
    c = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device) if bias is None else bias.double()
    a = a.to(w)
    ainv_w = torch.linalg.solve(a, w.mT).mT  # rows a^{-1} w_k
    sq = (w * ainv_w).sum(-1)  # |w_k|^2_{a^{-1}}
    # lambda: the part lambda/2 a^{-1} w_k of the prototypes has mean a-norm 1 (the default init's size)
    lam = 2.0 / sq.clamp_min(1e-30).sqrt().mean()
    system = torch.cat([w, -torch.ones_like(w[:, :1])], dim=1)
    rhs = -c - 0.25 * lam * sq
    solution = torch.linalg.pinv(system) @ rhs
    residual = system @ solution - rhs
    e = solution[:-1]
    return 0.5 * lam * ainv_w + e, residual


def class_means(z: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class means `[C, D]` of `z` `[N, D]` and the class counts `[C]`."""
    counts = torch.bincount(labels, minlength=num_classes).to(z.dtype)
    sums = torch.zeros(num_classes, z.shape[-1], dtype=z.dtype, device=z.device).index_add_(0, labels, z)
    return sums / counts.clamp_min(1).unsqueeze(-1), counts


def projection_from_weight(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""`(P, W')`: $P = g V_r^\top$ from the top-`rank` right singular vectors of `weight`, with the
    default projection's gain $g = \sqrt{D/r}$, and the weights $W' = W V_r / g$ acting on $P x$
    ($W' P = W$ when `weight` has rank at most `rank`)."""
    w = weight.to(torch.float64)
    gain = math.sqrt(w.shape[1] / rank)
    _, _, vh = torch.linalg.svd(w, full_matrices=True)
    basis = vh[:rank]  # [r, D], orthonormal rows
    return gain * basis, (w @ basis.mT) / gain


_TORCHVISION_NAMES = ("fc", "classifier", "head", "heads")


def _last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            found = (name, sub)
    return found


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """Dotted name and module of a timm or torchvision model's final `nn.Linear`."""
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):  # timm
        classifier = get_classifier()
        if isinstance(classifier, nn.Linear):
            for name, sub in model.named_modules():
                if sub is classifier:
                    return name, classifier
        raise ValueError(
            f"model.get_classifier() returned {type(classifier).__name__}, not an nn.Linear "
            "(timm models built with num_classes=0 have none: call model.reset_classifier(n) first)"
        )
    for attr in _TORCHVISION_NAMES:
        sub = getattr(model, attr, None)
        if isinstance(sub, nn.Module):
            found = _last_linear(sub)
            if found is not None:
                inner, linear = found
                return (f"{attr}.{inner}" if inner else attr), linear
    raise ValueError(
        f"no classifier found on {type(model).__name__}: expected timm's get_classifier() or an "
        f"nn.Linear under one of the attributes {_TORCHVISION_NAMES}"
    )


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, module)


def replace_classifier(model: nn.Module, head_factory: Callable[[nn.Linear], nn.Module]) -> nn.Module:
    """Swap a timm or torchvision model's final `nn.Linear` for `head_factory(linear)`, in place.

    The classifier is found as timm's `model.get_classifier()`, or else the last `nn.Linear`
    under torchvision's attribute `fc` (ResNet), `classifier` (VGG, MobileNet, EfficientNet,
    ConvNeXt, DenseNet), `head` (Swin) or `heads` (ViT). The model's forward then calls the new
    head wherever it called the old layer. On a timm model, a later `model.reset_classifier(n)`
    keeps a FAIM head: timm's new `nn.Linear` is replaced by `head_factory` again. A head with
    over four times the Linear's parameters (a full-rank metric for few classes) raises a
    `HeadSizeWarning` naming the `rank` that avoids it.

    Args:
        model: the network (changed in place).
        head_factory: called with the old `nn.Linear`, returns its replacement, e.g.
            `FAIMHead.from_linear` or `lambda linear: FAIMHead(linear.in_features, linear.out_features)`.

    Returns:
        The new head (the module now inside `model`).

    Raises:
        ValueError: no classifier found (the message says where it looked).

    Example:
        >>> from finslerlib.nn import FAIMHead
        >>> net = torch.nn.Sequential()
        >>> net.fc = torch.nn.Linear(16, 10)  # torchvision-style attribute
        >>> head = replace_classifier(net, FAIMHead.from_linear)
        >>> net.fc is head, head.out_features
        (True, 10)
    """
    name, linear = find_classifier(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        head = head_factory(linear)
    for w in caught:  # passed on, once each
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(head, nn.Module):
        raise ValueError(f"head_factory must return an nn.Module, got {type(head).__name__}")
    if not any(issubclass(w.category, HeadSizeWarning) for w in caught):
        warn_if_much_larger(linear, head)
    set_submodule(model, name, head)
    timm_like = callable(getattr(model, "get_classifier", None))
    if timm_like and callable(getattr(model, "reset_classifier", None)):
        # timm: `model.reset_classifier(n)` would put an nn.Linear back; keep a head built by
        # the same factory instead
        object.__setattr__(model, "_faim_head_factory", head_factory)
        keeping = types.MethodType(_reset_classifier_keeping_the_head, model)
        object.__setattr__(model, "reset_classifier", keeping)
    return head


def _reset_classifier_keeping_the_head(model: nn.Module, *args: Any, **kwargs: Any) -> None:
    """timm's `reset_classifier`, then the new `nn.Linear` (if any) replaced by the model's factory."""
    getattr(type(model), "reset_classifier")(model, *args, **kwargs)  # noqa: B009 (timm's, untyped)
    linear = getattr(model, "get_classifier")()  # noqa: B009
    if not isinstance(linear, nn.Linear):  # num_classes=0: no classifier
        return
    factory: Callable[[nn.Linear], nn.Module] = model.__dict__["_faim_head_factory"]
    for name, sub in model.named_modules():
        if sub is linear:
            set_submodule(model, name, factory(linear))
            return
