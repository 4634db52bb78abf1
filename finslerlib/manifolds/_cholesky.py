r"""Rows times the learnable factor: $x L$, $L = \operatorname{tril}(R, -1) + \operatorname{diag} \sigma$.

Here $\sigma = \operatorname{softplus}(\operatorname{diag} R) + \epsilon$.

`Randers.learnable` (full rank) stores the factor $L$ of $a = L L^\top$ as a raw matrix $R$.
Building $L$ with torch ops and multiplying costs several full $D \times D$ passes in the
backward (zero-filled gradients of `tril` and `diag_embed`, their sum) and a full product, while
$L$ is lower triangular: $x L$ needs half the multiply-adds. `factor_rows` multiplies (on CPU) in
triangular blocks ($[[L_{11}, 0], [L_{21}, L_{22}]]$, recursively down to blocks of at most 255
rows: 5/8 of a dense product at $D = 512$), reading the off-diagonal blocks from $R$ itself and
building only the small diagonal blocks, and its backward writes the gradient of $R$ directly.
Under `torch.compile` / `torch.export` it is the plain composite of torch ops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

__all__ = ["factor_rows"]

# on CPU, blocks of at least this many rows / columns are split in two (smaller products lose
# efficiency); GPUs take one dense product (each block would be a kernel launch)
_SPLIT = 256
# softplus(x) = x above this threshold (torch's default), so its derivative is exactly 1 there
_SOFTPLUS_THRESHOLD = 20.0


def _leaf(raw, diag):
    """A diagonal block of `L`: the strict lower part of `raw` and the diagonal `diag`."""
    block = raw.tril(-1)
    block.diagonal().copy_(diag)
    return block


def _rows_times_lower(x, raw, diag, out):
    """`out = x @ L`, `L` lower triangular (strict lower part from `raw`, diagonal `diag`)."""
    n = raw.shape[0]
    if n < _SPLIT or x.device.type != "cpu":
        torch.mm(x, _leaf(raw, diag), out=out)
        return
    h = n // 2
    _rows_times_lower(x[:, :h], raw[:h, :h], diag[:h], out[:, :h])
    out[:, :h].addmm_(x[:, h:], raw[h:, :h])
    _rows_times_lower(x[:, h:], raw[h:, h:], diag[h:], out[:, h:])


def _rows_times_upper(g, raw, diag, out):
    """`out = g @ L^T` (`L` as in `_rows_times_lower`)."""
    n = raw.shape[0]
    if n < _SPLIT or g.device.type != "cpu":
        torch.mm(g, _leaf(raw, diag).mT, out=out)
        return
    h = n // 2
    _rows_times_upper(g[:, :h], raw[:h, :h], diag[:h], out[:, :h])
    _rows_times_upper(g[:, h:], raw[h:, h:], diag[h:], out[:, h:])
    out[:, h:].addmm_(g[:, :h], raw[h:, :h].mT)


def _lower_gram(x, g, out):
    """`out = tril(x^T g)` (the upper part set to zero)."""
    n = out.shape[0]
    if n < _SPLIT or x.device.type != "cpu":
        torch.mm(x.mT, g, out=out)
        out.tril_()
        return
    h = n // 2
    _lower_gram(x[:, :h], g[:, :h], out[:h, :h])
    torch.mm(x[:, h:].mT, g[:, :h], out=out[h:, :h])
    out[:h, h:].zero_()
    _lower_gram(x[:, h:], g[:, h:], out[h:, h:])


def _composite(x, raw, eps):
    """The same function from differentiable torch ops (double backward)."""
    chol = torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)
    return x @ chol


class _FactorRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, raw, eps):
        diag = nnf.softplus(raw.diagonal()) + eps
        out = torch.empty(x.shape[0], raw.shape[1], dtype=x.dtype, device=x.device)
        _rows_times_lower(x, raw, diag, out)
        ctx.eps = eps
        ctx.save_for_backward(x, raw, diag)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, raw, diag = ctx.saved_tensors
        if torch.is_grad_enabled():
            wanted = [t for t, need in zip((x, raw), ctx.needs_input_grad[:2], strict=True) if need]
            with torch.enable_grad():
                out = _composite(x, raw, ctx.eps)
            grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (*(next(grads) if need else None for need in ctx.needs_input_grad[:2]), None)
        grad = grad.contiguous()
        grad_x = grad_raw = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            _rows_times_upper(grad, raw, diag, grad_x)
        if ctx.needs_input_grad[1]:
            grad_raw = torch.empty_like(raw)
            _lower_gram(x, grad, grad_raw)
            # the diagonal entries are softplus(raw) + eps: chain rule through softplus
            d = raw.diagonal()
            slope = torch.where(d > _SOFTPLUS_THRESHOLD, torch.ones_like(d), torch.sigmoid(d))
            grad_raw.diagonal().mul_(slope)
        return grad_x, grad_raw, None


def factor_rows(x: torch.Tensor, raw: torch.Tensor, eps: float) -> torch.Tensor:
    r"""$x L$ for rows `x`, $L = \operatorname{tril}(R, -1) + \operatorname{diag} \sigma$.

    The diagonal is $\sigma = \operatorname{softplus}(\operatorname{diag} R) + \epsilon$.

    Exact gradients with respect to `x` and `raw` (the product is done in triangular blocks,
    only the reduction order differs from `x @ L`); double backward goes through a slower
    recomputation with torch ops. Not `torch.func`-transformable (the learnable metric's
    `factor()` is), so only `FAIMHead`'s forward uses it.

    Args:
        x: Tensor, shape `[B, D]`.
        raw: Tensor, shape `[D, D]`, same dtype and device as `x`.
        eps: the diagonal's floor $\epsilon$.

    Returns:
        Tensor, shape `[B, D]`.

    Example:
        >>> raw = torch.tensor([[0.0, 5.0], [2.0, 0.0]])
        >>> factor_rows(torch.tensor([[1.0, 1.0]]), raw, 0.0)  # L = [[log 2, 0], [2, log 2]]
        tensor([[2.6931, 0.6931]])
    """
    if x.dim() != 2 or raw.dim() != 2 or raw.shape != (x.shape[1], x.shape[1]):
        raise ValueError(
            f"factor_rows needs x [B, D] and raw [D, D]; got {tuple(x.shape)}, {tuple(raw.shape)}"
        )
    if x.dtype != raw.dtype or x.device != raw.device:
        raise ValueError(
            f"x and raw must share dtype and device; got {x.dtype}/{x.device}, {raw.dtype}/{raw.device}"
        )
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # traced graphs get the plain ops (the hand-written out= products cannot be traced with autograd)
        return _composite(x, raw, float(eps))
    return _FactorRows.apply(x, raw, float(eps))
