r"""Numerically safe primitives and Gram-matrix pairwise terms.

Pairwise distances never build an `[..., N, M, D]` difference tensor: squared distances come
from one matmul, $|y_i - z_j|^2 = |y_i|^2 - 2\, y_i \cdot z_j + |z_j|^2$, after centring both
point sets on a common mean (which reduces cancellation), clamped at zero.
"""

from __future__ import annotations

import torch

__all__ = [
    "safe_sqrt",
    "safe_div",
    "centre",
    "pairwise_sqdist",
    "pairwise_dist",
    "pairwise_randers",
]


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
    ratio = num / den_safe
    return torch.where(nonzero, ratio, torch.zeros((), dtype=ratio.dtype, device=ratio.device))


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
    c = (x.sum(-2, keepdim=True) + y.sum(-2, keepdim=True)) / max(n + m, 1)  # 0 when both are empty
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


class _PairwiseDist(torch.autograd.Function):
    """`|y_j - x_i|` from one Gram matmul with a hand-written, zero-safe backward.

    Autograd through `safe_sqrt(pairwise_sqdist(x, y))` makes about a dozen passes over the
    `[N, M]` matrix (masks, `where`s, broadcast sums); this makes four in the forward (all in
    place on one buffer) and about five in the backward, which matters because `N M` is the
    size of a classifier's logits. The backward is written with differentiable torch ops, so
    double backward (Hessians) still works.
    """

    @staticmethod
    def forward(ctx, x, y):
        x2 = (x * x).sum(-1, keepdim=True)
        y2 = (y * y).sum(-1, keepdim=True)
        if x.dim() == 2 and y.dim() == 2:
            out = torch.addmm(y2.mT, x, y.mT, alpha=-2.0)
        else:
            out = torch.matmul(x, y.mT).mul_(-2.0).add_(y2.mT)
        out = out.add_(x2).clamp_min_(0.0).sqrt_()
        ctx.save_for_backward(x, y, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, out = ctx.saved_tensors
        # d|y_j - x_i| / dx_i = (x_i - y_j) / |y_j - x_i|; 0 where the distance is 0
        g = (grad / out).masked_fill(out == 0, 0.0)
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = x * g.sum(-1, keepdim=True) - g @ y
        if ctx.needs_input_grad[1]:
            grad_y = y * g.sum(-2).unsqueeze(-1) - g.mT @ x
        # broadcast batch dimensions back to the inputs' shapes
        if grad_x is not None and grad_x.shape != x.shape:
            grad_x = grad_x.sum_to_size(x.shape)
        if grad_y is not None and grad_y.shape != y.shape:
            grad_y = grad_y.sum_to_size(y.shape)
        return grad_x, grad_y


def pairwise_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Euclidean distances $|y_j - x_i|$ via the Gram trick, with a finite gradient at 0.

    Equals `safe_sqrt(pairwise_sqdist(x, y))` (same values, same zero gradient where the
    distance is 0), computed with far fewer passes over the `[..., N, M]` result. Inputs should
    already be centred (see `centre`) when they are far from the origin.

    Args:
        x: Tensor, shape `[..., N, R]`.
        y: Tensor, shape `[..., M, R]`.

    Returns:
        Tensor, shape `[..., N, M]`.

    Example:
        >>> x = torch.tensor([[0.0, 0.0]], requires_grad=True)
        >>> d = pairwise_dist(x, torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
        >>> d
        tensor([[5., 0.]], grad_fn=<_PairwiseDistBackward>)
        >>> d.sum().backward()
        >>> x.grad  # the zero distance contributes no (and no NaN) gradient
        tensor([[-0.6000, -0.8000]])
    """
    return _PairwiseDist.apply(x, y)


class _PairwiseRanders(torch.autograd.Function):
    """Fused forward/backward of `pairwise_randers` (see there); 2-D inputs only."""

    @staticmethod
    def forward(ctx, x, y, factor, w):
        # centre on the common mean inside the kernel (t = (v - c) L = v L - c L, one fused
        # addmm each): no centred copies of the inputs are made or kept for backward
        c = (x.sum(0) + y.sum(0)).div_(max(x.shape[0] + y.shape[0], 1))  # 0 when both are empty
        shift = (c @ factor).unsqueeze(0)
        xt = torch.addmm(shift, x, factor, beta=-1.0)
        yt = torch.addmm(shift, y, factor, beta=-1.0)
        # squared norms via vector_norm: one read pass, no [N, R] temporary
        y2 = torch.linalg.vector_norm(yt, dim=-1).square_()
        x2 = torch.linalg.vector_norm(xt, dim=-1).square_()
        # |s_i|^2 + |t_j|^2 written once, then the Gram product accumulated into it in place
        alpha = (x2.unsqueeze(1) + y2.unsqueeze(0)).addmm_(xt, yt.mT, alpha=-2.0)
        alpha.clamp_min_(0.0).sqrt_()
        out = (alpha + (yt @ w).unsqueeze(0)).sub_((xt @ w).unsqueeze(1))
        ctx.save_for_backward(x, y, factor, w, c, xt, yt, alpha)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, factor, w, c, xt, yt, alpha = ctx.saved_tensors
        if torch.is_grad_enabled():
            # double backward: the saved intermediates carry no graph, so rebuild them as
            # differentiable functions of the inputs (only on this rare path)
            xt, yt = (x - c) @ factor, (y - c) @ factor
            alpha = safe_sqrt(pairwise_sqdist(xt, yt))
        # alpha part: d|t_j - s_i| / ds_i = (s_i - t_j) / alpha_ij, and 0 where alpha is 0
        g = (grad / alpha).masked_fill_(alpha == 0, 0.0)
        # drift part: d(w.t_j - w.s_i) / ds_i = -w, summed over j (and the reverse for t_j)
        rows, cols = grad.sum(1), grad.sum(0)
        # in place on fresh buffers (their producers do not save them): no extra passes
        grad_xt = (xt * g.sum(1, keepdim=True)).addr_(rows, w, alpha=-1.0).addmm_(g, yt, alpha=-1.0)
        grad_yt = (yt * g.sum(0).unsqueeze(1)).addr_(cols, w).addmm_(g.mT, xt, alpha=-1.0)
        grad_x = grad_y = grad_factor = grad_w = None
        # the result does not depend on the centre c, so c is held constant
        if ctx.needs_input_grad[0]:
            grad_x = grad_xt @ factor.mT
        if ctx.needs_input_grad[1]:
            grad_y = grad_yt @ factor.mT
        if ctx.needs_input_grad[2]:
            # (x - c)^T grad_xt + (y - c)^T grad_yt, without forming x - c
            grad_factor = torch.addmm(x.mT @ grad_xt, y.mT, grad_yt)
            grad_factor = grad_factor.addr_(c, grad_xt.sum(0) + grad_yt.sum(0), alpha=-1.0)
        if ctx.needs_input_grad[3]:
            grad_w = yt.mT @ cols - xt.mT @ rows
        return grad_x, grad_y, grad_factor, grad_w


def pairwise_randers(x: torch.Tensor, y: torch.Tensor, factor: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""All Minkowski–Randers distances $F(y_j - x_i)$ for $a = L L^\top$, $b = L w$.

    With $s_i = L^\top x_i$, $t_j = L^\top y_j$ (rows: `x @ factor`), the distance is
    $|t_j - s_i| + w \cdot t_j - w \cdot s_i$: one Gram matmul plus separable drift terms,
    never an `[N, M, D]` tensor. Forward and backward are fused by hand (a few passes over
    the `[N, M]` result instead of the dozens autograd makes, which dominate at classifier
    sizes); double backward (Hessians) works too, through a slower recomputation. The gradient is
    finite (the $\alpha$ part contributes 0) where two points coincide. Both sets are
    centred on their common mean inside the kernel (against cancellation in the Gram trick).

    Args:
        x: Tensor, shape `[N, D]`, sources.
        y: Tensor, shape `[M, D]`, targets.
        factor: Tensor, shape `[D, R]`, $L$ with $a = L L^\top$.
        w: Tensor, shape `[R]`, drift in factor coordinates, $b = L w$ (strong convexity
            needs $|w| < 1$ when $L$ is invertible).

    Returns:
        Tensor, shape `[N, M]`: `[i, j]` $= d(x_i \to y_j)$.

    Example:
        >>> x, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> pairwise_randers(x, y, torch.eye(2), torch.tensor([0.5, 0.0]))
        tensor([[1.5000, 0.5000]])
    """
    if x.dim() != 2 or y.dim() != 2 or factor.dim() != 2 or w.dim() != 1:
        raise ValueError(
            "pairwise_randers needs x [N, D], y [M, D], factor [D, R], w [R]; got "
            f"{tuple(x.shape)}, {tuple(y.shape)}, {tuple(factor.shape)}, {tuple(w.shape)}"
        )
    return _PairwiseRanders.apply(x, y, factor, w)

