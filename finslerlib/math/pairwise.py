r"""Numerically safe primitives and Gram-matrix pairwise terms.

Pairwise distances never build an `[..., N, M, D]` difference tensor: squared distances come
from one matmul, $|y_i - z_j|^2 = |y_i|^2 - 2\, y_i \cdot z_j + |z_j|^2$, after centring both
point sets on a common mean (which reduces cancellation), clamped at zero.
"""

from __future__ import annotations

import torch

__all__ = ["safe_sqrt", "safe_div", "centre", "pairwise_sqdist", "pairwise_dot"]


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root that is 0 with a zero (finite) gradient where `x <= 0`.

    Plain `torch.sqrt` has an infinite gradient at 0, which turns `dist(x, x)` backward into NaN.

    Args:
        x: Tensor of any shape.

    Returns:
        Tensor of the same shape.

    Example:
        >>> x = torch.tensor([0.0, 4.0], requires_grad=True)
        >>> safe_sqrt(x).sum().backward()
        >>> x.grad
        tensor([0.0000, 0.2500])
    """
    pos = x > 0
    ones = torch.ones_like(x)
    return torch.where(pos, torch.sqrt(torch.where(pos, x, ones)), torch.zeros_like(x))


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """`num / den` where `den != 0`, else 0, with finite gradients everywhere.

    Args:
        num: Tensor.
        den: Tensor broadcastable with `num`.

    Returns:
        Tensor with the broadcast shape.

    Example:
        >>> safe_div(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 0.0]))
        tensor([0.5000, 0.0000])
    """
    nonzero = den != 0
    den_safe = torch.where(nonzero, den, torch.ones_like(den))
    return torch.where(nonzero, num / den_safe, torch.zeros_like(num / den_safe))


def centre(x: torch.Tensor, y: torch.Tensor):
    """Shift two point sets by their common mean (pairwise differences are unchanged).

    Args:
        x: Tensor, shape `[..., N, D]`.
        y: Tensor, shape `[..., M, D]`.

    Returns:
        `(x - c, y - c)` with `c` the mean of all `N + M` points (per batch).

    Example:
        >>> xc, yc = centre(torch.tensor([[10.0]]), torch.tensor([[12.0]]))
        >>> xc, yc
        (tensor([[-1.]]), tensor([[1.]]))
    """
    n, m = x.shape[-2], y.shape[-2]
    c = (x.sum(-2, keepdim=True) + y.sum(-2, keepdim=True)) / (n + m)
    # detach: the shift cancels exactly in every difference, so it carries no gradient anyway
    c = c.detach()
    return x - c, y - c


def pairwise_sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Squared Euclidean distances $|y_j - x_i|^2$ through one matmul, clamped at 0.

    Inputs should already be centred (see `centre`) when they are far from the origin.

    Args:
        x: Tensor, shape `[..., N, R]`.
        y: Tensor, shape `[..., M, R]`.

    Returns:
        Tensor, shape `[..., N, M]`.

    Example:
        >>> pairwise_sqdist(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
        tensor([[25.,  1.]])
    """
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    if x.dim() == 2 and y.dim() == 2:
        # one fused BLAS call: y2^T - 2 x y^T, then + x2
        sq = torch.addmm(y2.mT, x, y.mT, alpha=-2.0).add_(x2)
    else:
        sq = torch.matmul(x, y.mT).mul(-2.0) + x2 + y2.mT
    return sq.clamp_min(0.0)


def pairwise_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """All inner products `x_i . y_j` (a thin wrapper that documents intent).

    Args:
        x: Tensor, shape `[..., N, R]`.
        y: Tensor, shape `[..., M, R]`.

    Returns:
        Tensor, shape `[..., N, M]`.

    Example:
        >>> pairwise_dot(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0]]))
        tensor([[11.]])
    """
    return x @ y.mT
