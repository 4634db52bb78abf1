r"""The learnable Cholesky factor $L = \operatorname{tril}(R, -1) + \operatorname{diag} \sigma$ in one pass.

Here $\sigma = \operatorname{softplus}(\operatorname{diag} R) + \epsilon$.

`Randers.learnable` (full rank) stores the factor $L$ of $a = L L^\top$ as a raw matrix $R$.
Built from torch ops (`tril` + `diag_embed` of the softplus), $L$ costs several full
$D \times D$ passes in the forward and the backward (zero-filled gradients of `tril` and
`diag_embed`, their sum); `lower_factor` writes $L$ in one pass and its backward writes the
gradient of $R$ in one pass (the strict lower part of the incoming gradient, the diagonal times
the softplus slope). Under `torch.compile` / `torch.export` it is the plain composite of torch
ops.

`factor_rows` multiplies rows by $L$ without building it: on CPU in triangular blocks
($[[L_{11}, 0], [L_{21}, L_{22}]]$, recursively down to blocks of at most 255 rows: 5/8 of a
dense product at $D = 512$), reading the off-diagonal blocks from $R$ itself and building only
the small diagonal blocks; its backward writes the gradient of $R$ directly. Building a fresh
$D \times D$ factor costs more than its two passes suggest (a new buffer of a megabyte is
mapped and faulted in on every call), so the head's per-step product uses `factor_rows`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

__all__ = ["factor_rows", "lower_factor"]

# softplus(x) = x above this threshold (torch's default), so its derivative is exactly 1 there
_SOFTPLUS_THRESHOLD = 20.0
# on CPU, blocks of at least this many rows / columns are split in two (smaller products lose
# efficiency); GPUs take one dense product (each block would be a kernel launch)
_SPLIT = 256


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


def _composite(raw: torch.Tensor, eps: float) -> torch.Tensor:
    """The same function from differentiable torch ops (double backward, traced graphs)."""
    return torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)


class _LowerFactor(torch.autograd.Function):
    # forward/setup_context split and a generated vmap rule: the curvature code differentiates
    # metrics with torch.func (jacrev, vmap), which needs both
    generate_vmap_rule = True

    @staticmethod
    def forward(raw, eps):
        out = raw.tril(-1)
        out.diagonal(dim1=-2, dim2=-1).copy_(nnf.softplus(raw.diagonal(dim1=-2, dim2=-1)) + eps)
        return out

    @staticmethod
    def setup_context(ctx, inputs, output):
        raw, eps = inputs
        ctx.eps = eps
        ctx.save_for_backward(raw)

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
        d = raw.diagonal(dim1=-2, dim2=-1)
        slope = torch.where(d > _SOFTPLUS_THRESHOLD, torch.ones_like(d), torch.sigmoid(d))
        grad_raw.diagonal(dim1=-2, dim2=-1).copy_(grad.diagonal(dim1=-2, dim2=-1) * slope)
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


def _rows_composite(x, raw, eps):
    """`x @ L` from differentiable torch ops (double backward, traced graphs)."""
    return x @ _composite(raw, eps)


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
                out = _rows_composite(x, raw, ctx.eps)
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
    `factor()` is); `Randers.learnable(D).factor_rows(x)` uses it.

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
        return _rows_composite(x, raw, float(eps))
    return _FactorRows.apply(x, raw, float(eps))
