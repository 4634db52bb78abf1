r"""The learnable Cholesky factor $L = \operatorname{tril}(R, -1) + \operatorname{diag} \sigma$ in one pass.

Here $\sigma = \operatorname{softplus}(\operatorname{diag} R) + \epsilon$.

`Randers.learnable` (full rank) stores the factor $L$ of $a = L L^\top$ as a raw matrix $R$.
Built from torch ops (`tril` + `diag_embed` of the softplus), $L$ costs several full
$D \times D$ passes in the forward and the backward (zero-filled gradients of `tril` and
`diag_embed`, their sum); `lower_factor` writes $L$ in one pass and its backward writes the
gradient of $R$ in one pass (the strict lower part of the incoming gradient, the diagonal times
the softplus slope). Under `torch.compile` / `torch.export` it is the plain composite of torch
ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

__all__ = ["lower_factor"]

# softplus(x) = x above this threshold (torch's default), so its derivative is exactly 1 there
_SOFTPLUS_THRESHOLD = 20.0


def _composite(raw: torch.Tensor, eps: float) -> torch.Tensor:
    """The same function from differentiable torch ops (double backward, traced graphs)."""
    return torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)


class _LowerFactor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, raw, eps):
        out = raw.tril(-1)
        out.diagonal().copy_(nnf.softplus(raw.diagonal()) + eps)
        ctx.eps = eps
        ctx.save_for_backward(raw)
        return out

    @staticmethod
    def backward(ctx, grad):
        (raw,) = ctx.saved_tensors
        if torch.is_grad_enabled():
            # double backward: differentiate the composite (rare path)
            with torch.enable_grad():
                out = _composite(raw, ctx.eps)
            (g,) = torch.autograd.grad(out, raw, grad, create_graph=True)
            return g, None
        grad_raw = grad.tril(-1)
        d = raw.diagonal()
        slope = torch.where(d > _SOFTPLUS_THRESHOLD, torch.ones_like(d), torch.sigmoid(d))
        grad_raw.diagonal().copy_(grad.diagonal() * slope)
        return grad_raw, None


def lower_factor(raw: torch.Tensor, eps: float) -> torch.Tensor:
    r"""The learnable factor $L = \operatorname{tril}(R, -1) + \operatorname{diag} \sigma$.

    Here $\sigma = \operatorname{softplus}(\operatorname{diag} R) + \epsilon$.

    Exact gradient with respect to `raw` (one pass forward, one backward); double backward goes
    through the composite of torch ops.

    Args:
        raw: Tensor, shape `[D, D]`.
        eps: the diagonal's floor $\epsilon$.

    Returns:
        Tensor, shape `[D, D]`, lower triangular with a positive diagonal.

    Example:
        >>> lower_factor(torch.tensor([[0.0, 5.0], [2.0, 0.0]]), 0.0)  # softplus(0) = log 2
        tensor([[0.6931, 0.0000],
                [2.0000, 0.6931]])
    """
    if raw.dim() != 2 or raw.shape[0] != raw.shape[1]:
        raise ValueError(f"raw must be a square matrix [D, D], got {tuple(raw.shape)}")
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return _composite(raw, float(eps))
    return _LowerFactor.apply(raw, float(eps))
