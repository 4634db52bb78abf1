r"""Elementary functions shared by the Riemannian bases: fast row sums and small-argument-stable ratios.

Not tied to any base: `rowsum` (a sum over the last dimension as a matmul, the inner loop of
the Killing root find), and the ratios $\sin z / z$, $z / \sin z$, $\sinh z / z$, $z / \sinh z$,
$\tan_k r / r$, $\operatorname{artan}_k r / r$ evaluated by their Taylor series near zero, so that
values and gradients stay finite at $z = 0$ (coincident points, zero vectors).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "rowsum",
    "dot",
    "series_ratio",
    "sin_div",
    "sinh_div",
    "div_sin",
    "div_sinh",
    "tan_k_div",
    "artan_k_div",
]


def rowsum(t: torch.Tensor, *, keepdim: bool = False, weights=None) -> torch.Tensor:
    """Sum over the last dimension as a matmul with a ones (or `weights`) column.

    On CPU, `Tensor.sum(-1)` over a short last dimension (the 3 ambient coordinates of $S^2$) is
    tens of times slower than this matmul, and it is the inner loop of every root find here.

    Args:
        t: Tensor, shape `[..., N]`.
        keepdim: keep the last dimension.
        weights: optional list of N floats (e.g. the Minkowski signature).

    Returns:
        Tensor, shape `[...]` (or `[..., 1]`).

    Example:
        >>> rowsum(torch.tensor([[1.0, 2.0, 3.0]]), weights=[-1.0, 1.0, 1.0])
        tensor([4.])
    """
    n = t.shape[-1]
    col = (
        torch.ones(n, 1, dtype=t.dtype, device=t.device)
        if weights is None
        else torch.tensor(weights, dtype=t.dtype, device=t.device).reshape(n, 1)
    )
    out = t @ col
    return out if keepdim else out.squeeze(-1)


def dot(u: torch.Tensor, v: torch.Tensor, *, keepdim: bool = True) -> torch.Tensor:
    """Euclidean $u \\cdot v$ over the last dimension (`rowsum` of the product).

    Args:
        u: Tensor, shape `[..., N]`.
        v: Tensor, shape `[..., N]`.
        keepdim: keep the last dimension (default `True`).

    Returns:
        Tensor, shape `[..., 1]` (or `[...]`).

    Example:
        >>> dot(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]))
        tensor([11.])
    """
    return rowsum(u * v, keepdim=keepdim)


def series_ratio(z: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], c2: float, c4: float):
    """`fn(z)` where `|z| >= 1e-2`, else the series `1 + c2 z^2 + c4 z^4` (finite gradients at 0).

    Args:
        z: Tensor.
        fn: the ratio away from zero.
        c2: second-order Taylor coefficient.
        c4: fourth-order Taylor coefficient.

    Returns:
        Tensor, shape of `z`.

    Example:
        >>> series_ratio(torch.tensor([0.0, 1.0]), lambda s: torch.sin(s) / s, -1 / 6, 1 / 120)
        tensor([1.0000, 0.8415])
    """
    small = z.abs() < 1e-2
    zs = torch.where(small, torch.ones_like(z), z)
    z2 = z * z
    return torch.where(small, 1.0 + c2 * z2 + c4 * z2 * z2, fn(zs))


def sin_div(z: torch.Tensor) -> torch.Tensor:
    """$\\sin z / z$ (1 at 0).

    Example:
        >>> sin_div(torch.tensor([0.0]))
        tensor([1.])
    """
    return series_ratio(z, lambda s: torch.sin(s) / s, -1.0 / 6, 1.0 / 120)


def sinh_div(z: torch.Tensor) -> torch.Tensor:
    """$\\sinh z / z$ (1 at 0).

    Example:
        >>> sinh_div(torch.tensor([0.0]))
        tensor([1.])
    """
    return series_ratio(z, lambda s: torch.sinh(s) / s, 1.0 / 6, 1.0 / 120)


def div_sin(z: torch.Tensor) -> torch.Tensor:
    """$z / \\sin z$ (1 at 0).

    Example:
        >>> div_sin(torch.tensor([0.0]))
        tensor([1.])
    """
    return series_ratio(z, lambda s: s / torch.sin(s), 1.0 / 6, 7.0 / 360)


def div_sinh(z: torch.Tensor) -> torch.Tensor:
    """$z / \\sinh z$ (1 at 0).

    Example:
        >>> div_sinh(torch.tensor([0.0]))
        tensor([1.])
    """
    return series_ratio(z, lambda s: s / torch.sinh(s), -1.0 / 6, 7.0 / 360)


def tan_k_div(k: float, r: torch.Tensor) -> torch.Tensor:
    """$\\tan_k(r) / r$: $\\tan(\\sqrt{k} r)/(\\sqrt{k} r)$ for k > 0, tanh for k < 0, 1 for k = 0.

    Example:
        >>> tan_k_div(0.0, torch.tensor([0.5]))
        tensor([1.])
    """
    if k == 0:
        return torch.ones_like(r)
    z = abs(k) ** 0.5 * r
    if k > 0:
        return series_ratio(z, lambda s: torch.tan(s) / s, 1.0 / 3, 2.0 / 15)
    return series_ratio(z, lambda s: torch.tanh(s) / s, -1.0 / 3, 2.0 / 15)


def artan_k_div(k: float, r: torch.Tensor) -> torch.Tensor:
    """$\\operatorname{artan}_k(r) / r$ (atan for k > 0, atanh for k < 0, 1 for k = 0).

    Example:
        >>> artan_k_div(0.0, torch.tensor([0.5]))
        tensor([1.])
    """
    if k == 0:
        return torch.ones_like(r)
    z = abs(k) ** 0.5 * r
    if k > 0:
        return series_ratio(z, lambda s: torch.atan(s) / s, -1.0 / 3, 1.0 / 5)
    return series_ratio(z, lambda s: torch.atanh(s) / s, 1.0 / 3, 1.0 / 5)
