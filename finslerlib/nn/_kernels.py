r"""The fused logits kernel of `FAIMHead` in the metric's factor coordinates.

For a constant Randers metric with $a = L L^\top$, $b = L w$, the map $y = L^\top v$ is an
isometry onto the "unit" Randers space $F(y) = |y| + w \cdot y$. With prototypes stored as
$m_k = L^\top \mu_k$ and features mapped by $s_i = L^\top x_i$ (rows: `x @ L`),

$$d(x_i \to \mu_k) = |m_k - s_i| + w \cdot m_k - w \cdot s_i,$$

so a training step transforms only the batch ($B D^2$) and pays one Gram product ($B C D$),
like an `nn.Linear`. Forward and backward are fused by hand: a few passes over the `[B, C]`
result, the logit scale and the geodesic margin folded in, no `[B, C, D]` tensor.

`factor_head_logits` is the whole head on its own learnable metric as one autograd node: the
projection, the factor $L$ (built once per step), the bounded drift, the scale and this kernel,
with the backward written out (autograd's bookkeeping of some twenty small nodes is what a
low-rank head paid beyond its matmuls). On CPU the products with the triangular $L$ skip its zero
blocks (`_TRI_BLOCKS` column blocks: 10 of 16 block products).

On CPU, for float32 and float64 with at least `_head_compiled.MIN_ENTRIES` logits, both nodes run
the same steps as ATen calls from C++ with fused passes over the `[B, C]` blocks
(`finslerlib.nn._head_compiled`: one pass forward and one backward instead of about five and six,
and some hundred Python-level torch calls fewer per step); the torch code here is the reference,
the path on other devices, inside traced graphs and where the C++ cannot be built.

This file is over 500 lines because the two autograd nodes, their torch forward and backward and
the composites that serve as their double backward and test oracle belong together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf

from finslerlib.math.pairwise import pairwise_sqdist, safe_sqrt
from finslerlib.nn._head_compiled import use_compiled

__all__ = ["DIRECTION_SIGNS", "factor_head_logits", "unit_randers_logits"]

# d(x -> mu) = alpha + sign * (w.m - w.s); "max" (sign 0) is alpha + |w.m - w.s|, the larger of the two
DIRECTION_SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}


def _composite(s, m, w, scale, sign, labels=None, margin=0.0):
    """The same function from differentiable torch ops (double backward, and the test oracle)."""
    c = m.mean(0).detach()
    alpha = safe_sqrt(pairwise_sqdist(s - c, m - c))
    t = (m @ w).unsqueeze(0) - (s @ w).unsqueeze(1)
    d = alpha + t.abs() if sign == 0 else alpha + sign * t
    if labels is not None and margin:
        target = torch.arange(m.shape[0], device=labels.device) == labels.unsqueeze(1)
        d = d + margin * target.to(d.dtype)
    return d if scale is None else d * scale


def _column_chunk(s: torch.Tensor, classes: int) -> int:
    """Columns per block: on CPU a `[B, chunk]` block (about 4 MiB per thread) stays in cache
    across the elementwise steps that follow its matmul, with few enough blocks that the
    threads' synchronisation per operation stays cheap; GPUs take all columns at once."""
    if s.device.type != "cpu":
        return max(classes, 1)
    return max(1024, torch.get_num_threads() * (1 << 20) // max(s.shape[0], 1))


# rows of the [rows, R] differences in `_centred_sqnorms` on CPU (a few hundred KiB: they stay in
# cache); GPUs take all rows at once
_ROWS = 256
# up to this many entries (256 KiB in float32) the differences m - c are formed at once (fewer
# calls); above, the blocks' one buffer keeps the fresh memory (page faults) small
_ONE_SHOT = 1 << 16


def _centred_sqnorms(m: torch.Tensor, c: torch.Tensor, work: torch.Tensor) -> torch.Tensor:
    """`|m_j - c|^2` exactly (differences, no cancellation), `[C]`; for large `m` on CPU in row
    blocks (they stay in cache) formed in the flat scratch buffer `work` when it is large
    enough (memory about to be used anyway: no fresh pages), otherwise in one call."""
    count, dim = m.shape
    if m.device.type != "cpu" or count <= _ROWS or m.numel() <= _ONE_SHOT:
        return torch.linalg.vector_norm(m - c, dim=1).square_()
    out = m.new_empty(count)
    if work.numel() >= _ROWS * dim:
        diff = work[: _ROWS * dim].view(_ROWS, dim)
    else:
        diff = m.new_empty(_ROWS, dim)
    for r0 in range(0, count, _ROWS):
        r1 = min(r0 + _ROWS, count)
        torch.linalg.vector_norm(torch.sub(m[r0:r1], c, out=diff[: r1 - r0]), dim=1, out=out[r0:r1])
    return out.square_()


def _acc(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    return part if total is None else total.add_(part)


def _blocks(s: torch.Tensor, classes: int) -> list[tuple[int, int]]:
    chunk = _column_chunk(s, classes)
    return [(j0, min(j0 + chunk, classes)) for j0 in range(0, max(classes, 1), chunk)]


class _UnitRandersLogits(torch.autograd.Function):
    # Memory traffic and the number of torch calls, not flops, are what cost beyond the matmuls:
    # the [B, C] work is done in column blocks whose elementwise steps run in cache right after
    # the block's matmul (five passes forward, six light ones backward; a single block, the
    # usual case, slices nothing), the [C, R] prototypes are read by the matmuls, by their mean
    # and by |m_j - c|^2, and the backward adds one pass over them for the prototypes'
    # gradient's diagonal term. The margin is added in place to the B target logits; the scale
    # and the margin get their gradient from [B]- and [C]-sized results (no pass over [B, C]).

    @staticmethod
    def forward(ctx, s, m, w, scale, sign, labels, margin):
        d, saved = _logits_forward(s, m, w, scale, sign, labels, margin)
        ctx.sign, ctx.margin = sign, margin
        ctx.save_for_backward(*saved)
        return d

    @staticmethod
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        sign, margin, needs = ctx.sign, ctx.margin, ctx.needs_input_grad
        if torch.is_grad_enabled():
            # double backward: differentiate the composite (rare path, slower)
            s, m, w, scale, labels = saved[0], saved[1], saved[2], saved[3], saved[-1]
            wanted = [t for t, need in zip((s, m, w, scale), needs[:4], strict=True) if need]
            with torch.enable_grad():
                out = _composite(s, m, w, scale, sign, labels, margin)
            grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (*(next(grads) if need else None for need in needs[:4]), None, None, None)
        return (*_logits_backward(saved, sign, margin, grad, needs[:4]), None, None, None)


def _block_view(buf: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """A contiguous `[rows, cols]` view at the start of the flat buffer `buf`."""
    return buf[: rows * cols].view(rows, cols)


def _compiled_for(x: torch.Tensor, classes: int, *tensors: torch.Tensor | None):
    """The compiled module for these operands (one dtype, contiguous-row-friendly CPU), or `None`."""
    if not classes or any(t is not None and t.dtype != x.dtype for t in tensors):
        return None
    return use_compiled(x, x.shape[0] * classes)


def _logits_forward(s, m, w, scale, sign, labels, margin):
    """The kernel's forward: `(d, saved)`, `saved` the tensors `_logits_backward` reads."""
    batch, classes = s.shape[0], m.shape[0]
    lib = _compiled_for(s, classes, m, w, scale)
    if lib is not None:  # the same passes in C++ (finslerlib.nn._head_compiled)
        d, *rest = lib.logits_forward(s, m, w, scale, sign, labels, margin, _column_chunk(s, classes))
        return d, (s, m, w, scale, *rest, labels)
    d, saved = _logits_forward_torch(s, m, w, scale, sign, labels)
    if labels is not None and margin:
        # the target class is `margin` further away: scale * margin more on B entries
        shift = torch.full((batch, 1), margin, dtype=d.dtype, device=d.device)
        d.scatter_add_(1, labels.unsqueeze(1), shift if scale is None else shift.mul_(scale))
    return d, saved


def _logits_forward_torch(s, m, w, scale, sign, labels):
    """The forward from torch operations (any device and dtype): `(d, saved)`, no margin."""
    batch, classes = s.shape[0], m.shape[0]
    # centre on the prototypes' mean c (against cancellation in the Gram trick; a centre
    # taken from the batch would make one row's logits depend on the other rows, and be
    # NaN for an empty batch): with s_c = s - c,
    # |s_i - m_j|^2 = (|s_c,i|^2 + 2 s_c,i . c) + |m_j - c|^2 - 2 s_c,i . m_j,
    # where |m_j - c|^2 is computed exactly and the product involves the centred batch
    c = m.mean(0) if classes else m.new_zeros(m.shape[1])
    # one matmul per block for the Gram term and the drift u = m w: [s_c; -w/2] (-2 m^T)
    left = torch.empty(batch + 1, s.shape[1], dtype=s.dtype, device=s.device)
    sc = torch.sub(s, c, out=left[:batch])
    torch.mul(w, -0.5, out=left[batch])
    col = torch.linalg.vector_norm(sc, dim=1).square_().add_(sc @ c, alpha=2.0).unsqueeze(1)
    v = s @ w
    vcol = v.unsqueeze(1)
    k = None if scale is None else (scale if sign != -1 else -scale)  # the drift's factor
    blocks = _blocks(s, classes)
    block = torch.empty(batch + 1, blocks[0][1], dtype=s.dtype, device=s.device)
    y2 = _centred_sqnorms(m, c, block.view(-1))
    if len(blocks) == 1:  # alpha and u stay in the block (no second [B, C] buffer)
        d = torch.empty(batch, classes, dtype=s.dtype, device=s.device)
        alpha, u = block[:batch], block[batch]
    else:
        d, u = torch.empty(batch, classes, dtype=s.dtype, device=s.device), torch.empty_like(y2)
        alpha = torch.empty_like(d)
    for j0, j1 in blocks:
        whole = j1 - j0 == classes
        tmp = block if whole else block[:, : j1 - j0]
        top, uj = (alpha, u) if whole else (tmp[:batch], tmp[batch])
        torch.add(col, y2 if whole else y2[j0:j1], out=top)
        uj.zero_()
        tmp.addmm_(left, (m if whole else m[j0:j1]).mT, alpha=-2.0)
        top.clamp_min_(0.0)
        a = top.sqrt_() if whole else torch.sqrt(top, out=alpha[:, j0:j1])
        if not whole:
            u[j0:j1] = uj
        dj = d if whole else d[:, j0:j1]
        if sign == 0:
            torch.sub(uj, vcol, out=dj).abs_().add_(a)
            if scale is not None:
                dj.mul_(scale)
        elif scale is None:
            torch.add(a, uj, alpha=sign, out=dj).sub_(vcol, alpha=sign)
        else:
            # scale * (alpha + sign (u_j - v_i)): the drift's outer difference written first
            # (no read of [B, C]), then one accumulating pass
            torch.sub(k * uj, k * vcol, out=dj).addcmul_(a, scale)
    return d, (s, m, w, scale, left, col, y2, alpha, u, v, labels)


def _backward_block_torch(tmp, gj, alpha, u, v, sign, need_abs):
    """One column block of the backward from torch operations: `g = grad / alpha` into `tmp[:B]`
    (0 where alpha is 0: there 0/0 or x/0; a NaN or an infinity in grad itself still reaches every
    result through the row and column sums), the signed column sums into `tmp[B]`; returns
    `(g's column sums, row sums, g's row sums, sum grad |t| or None)` (times sign(t) for "max")."""
    batch = gj.shape[0]
    g = torch.div(gj, alpha, out=tmp[:batch])
    g.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    cj = tmp[batch]
    abs_part = None
    if sign == 0:
        diff = u - v.unsqueeze(1)
        t = torch.sign(diff).mul_(gj)
        rows = t.sum(1)
        torch.sum(t, 0, out=cj)
        if need_abs:
            abs_part = torch.linalg.vecdot(t.view(-1), diff.view(-1))
    else:
        rows = gj.sum(1)
        torch.sum(gj, 0, out=cj)
        if sign == -1:
            cj.neg_()
    return g.sum(0), rows, g.sum(1), abs_part


def _logits_backward(saved, sign, margin, grad, needs):
    """The kernel's backward: `(grad_s, grad_m, grad_w, grad_scale)` for the four `needs`."""
    s, m, w, scale, left, col, y2, alpha, u, v, labels = saved
    batch, classes = alpha.shape
    lib = _compiled_for(s, classes, m, w, scale, grad)
    if lib is not None:  # the same steps in C++ (finslerlib.nn._head_compiled)
        chunk = _column_chunk(s, classes)
        return tuple(lib.logits_backward(grad, *saved[:-1], labels, sign, margin, list(needs), chunk))
    k = scale if scale is not None else torch.ones((), dtype=s.dtype, device=s.device)
    need_m = needs[1]
    # right = [-k s; k w]: [g; cols]^T right = -k g^T s + k cols w^T
    right = None
    if need_m:
        right = torch.empty(batch + 1, s.shape[1], dtype=s.dtype, device=s.device)
        torch.mul(s, -k, out=right[:batch])
        torch.mul(w, k, out=right[batch])
    grad_m = None
    # accumulated over the column blocks (the first block assigns):
    # rows = sum_j grad_ij (times sign(t_ij) for "max"), cols = sign * sum_i grad_ij,
    # g = grad / alpha with its sums g_rows, g_cols, gm = [g m; cols^T m],
    # abs_part = sum grad |t| ("max")
    rows = g_rows = gm = abs_part = None
    blocks = _blocks(s, classes)
    buf = s.new_empty((batch + 1) * blocks[0][1])
    g_cols = cols = None
    if len(blocks) > 1:
        g_cols, cols = torch.empty_like(u), torch.empty_like(u)
        grad_m = torch.empty_like(m) if need_m else None
    for j0, j1 in blocks:
        whole = j1 - j0 == classes
        gj = grad if whole else grad[:, j0:j1]
        aj, uj = (alpha, u) if whole else (alpha[:, j0:j1], u[j0:j1])
        tmp = _block_view(buf, batch + 1, j1 - j0)
        cj = tmp[batch]
        gc, row_sums, g_row_sums, abs_sum = _backward_block_torch(tmp, gj, aj, uj, v, sign, needs[3])
        rows, g_rows = _acc(rows, row_sums), _acc(g_rows, g_row_sums)
        abs_part = abs_part if abs_sum is None else _acc(abs_part, abs_sum)
        mj = m if whole else m[j0:j1]
        if need_m:
            # sum_i g_ij (m_j - s_i) + cols_j w, times k
            gmj = torch.mm(tmp.mT, right, out=None if whole else grad_m[j0:j1])
            gmj.addcmul_(mj, (gc * k).unsqueeze(1))
            grad_m = gmj if whole else grad_m
        if gm is not None:
            gm.addmm_(tmp, mj)
        else:  # one block: into right's memory, which is free now (fewer fresh pages)
            gm = torch.mm(tmp, mj, out=right if whole and right is not None else None)
        if whole:
            g_cols, cols = gc, cj
        else:
            g_cols[j0:j1], cols[j0:j1] = gc, cj
    if sign == -1:
        rows.neg_()
    grad_s = grad_w = grad_scale = None
    if needs[2]:
        grad_w = torch.addmv(gm[batch], s.mT, rows, alpha=-1.0).mul_(k)
    if needs[3]:
        # sum grad * alpha = sum g alpha^2 = sum g (col_i + |m_j - c|^2 - 2 s_c,i . m_j), from
        # the small results (no pass over [B, C])
        cross = torch.linalg.vecdot(left[:batch].reshape(-1), gm[:batch].reshape(-1))
        total = col.squeeze(1) @ g_rows + y2 @ g_cols - 2.0 * cross
        total = total + (abs_part if sign == 0 else cols @ u - rows @ v)
        if labels is not None and margin:
            total = total + margin * grad.gather(1, labels.unsqueeze(1)).sum()
        grad_scale = total.reshape(scale.shape)
    if needs[0]:
        # k (sum_j g_ij (s_i - m_j) - rows_i w) (the centre cancels), in place in gm (last use)
        grad_s = gm[:batch].addcmul_(s, g_rows.unsqueeze(1), value=-1.0).addr_(rows, w).mul_(-k)
    return grad_s, grad_m, grad_w, grad_scale


def unit_randers_logits(
    s: torch.Tensor,
    m: torch.Tensor,
    w: torch.Tensor,
    scale: torch.Tensor | None = None,
    *,
    sign: int = 1,
    labels: torch.Tensor | None = None,
    margin: float = 0.0,
) -> torch.Tensor:
    r"""`scale * (d + margin [k = y_i])`, $d_{ik} = |m_k - s_i| + \sigma\, w \cdot (m_k - s_i)$, unit Randers.

    $\sigma = 1$ is $d(s_i \to m_k)$, $\sigma = -1$ is $d(m_k \to s_i)$, and $\sigma = 0$ the
    larger of the two, $|m_k - s_i| + |w \cdot (m_k - s_i)|$. With `labels`, the distance to
    each row's target class grows by `margin` (the head's geodesic margin), added in place. The
    gradient is finite where two points coincide (the $|\cdot|$ part contributes 0). Double
    backward works through a slower recomputation.

    Args:
        s: Tensor, shape `[B, R]`, features in factor coordinates.
        m: Tensor, shape `[C, R]`, prototypes in factor coordinates.
        w: Tensor, shape `[R]`, the drift in factor coordinates.
        scale: scalar tensor multiplying the result, or `None`.
        sign: `1`, `-1` or `0` (see above).
        labels: optional integer Tensor, shape `[B]`, classes in `[0, C)` (not range-checked
            here: the head checks them).
        margin: the distance added to each row's target class (used only with `labels`).

    Returns:
        Tensor, shape `[B, C]`.

    Example:
        >>> s, m = torch.zeros(1, 2), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> unit_randers_logits(s, m, torch.tensor([0.5, 0.0]))
        tensor([[1.5000, 0.5000]])
        >>> unit_randers_logits(s, m, torch.tensor([0.5, 0.0]), labels=torch.tensor([1]), margin=0.25)
        tensor([[1.5000, 0.7500]])
    """
    if s.dim() != 2 or m.dim() != 2 or w.dim() != 1 or s.shape[1] != m.shape[1] or w.shape[0] != s.shape[1]:
        raise ValueError(
            "unit_randers_logits needs s [B, R], m [C, R], w [R]; got "
            f"{tuple(s.shape)}, {tuple(m.shape)}, {tuple(w.shape)}"
        )
    if sign not in (1, -1, 0):
        raise ValueError(f"sign must be 1, -1 or 0, got {sign}")
    if scale is not None and not isinstance(scale, torch.Tensor):
        raise TypeError(f"scale must be a scalar Tensor or None, got {type(scale).__name__}")
    if labels is not None:
        if labels.shape != s.shape[:1]:
            raise ValueError(f"labels must have shape [{s.shape[0]}], got {tuple(labels.shape)}")
        labels = labels.long()
    margin = float(margin)
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # traced graphs get the plain ops (the compiler fuses them; the hand-written kernel's
        # out= buffers cannot be traced with autograd)
        return _composite(s, m, w, scale, sign, labels, margin)
    return _UnitRandersLogits.apply(s, m, w, scale, sign, labels, margin)


# softplus(x) = x above this threshold (torch's default), so its slope is exactly 1 there
_SOFTPLUS_THRESHOLD = 20.0
# below this drift size the squash's tanh(r)/r is its Taylor polynomial (as the learnable metric)
_SMALL_DRIFT = 1e-4


def _squash_factors(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""`(f, f'/r)` at $r = |u|$ for $f(r) = \tanh(r) / r$ (Taylor below `_SMALL_DRIFT`): the
    learnable metric's drift is $w = \text{max\_drift}\, f(|u|)\, u$."""
    r = torch.linalg.vector_norm(u)
    small = r < _SMALL_DRIFT
    safe = torch.where(small, torch.ones_like(r), r)
    th = torch.tanh(safe)
    f = torch.where(small, 1 - r * r / 3, th / safe)
    # f'(r) / r = (r sech^2 r - tanh r) / r^3, which tends to -2/3 (the Taylor part's slope / r)
    slope = torch.where(small, torch.full_like(r, -2.0 / 3.0), (safe * (1 - th * th) - th) / safe**3)
    return f, slope


def _lower(raw: torch.Tensor, eps: float) -> torch.Tensor:
    """The learnable factor `L = tril(raw, -1) + diag(softplus(diag raw) + eps)`, one fresh buffer."""
    # a copy zeroed in place above the diagonal (on CPU about twice as fast as `raw.tril(-1)`)
    chol = raw.clone(memory_format=torch.contiguous_format).tril_(-1)
    torch.add(nnf.softplus(raw.diagonal()), eps, out=chol.diagonal())
    return chol


# on CPU, products with the triangular factor L (R x R) skip its zero blocks: L's columns in blocks
# of at least this many, up to _TRI_BLOCKS blocks (4 blocks: 10 of the 16 block products, at
# matmul speed); GPUs take one dense product
_TRI_WIDTH = 128
_TRI_BLOCKS = 4


def _tri_splits(x: torch.Tensor, dim: int) -> list[tuple[int, int]]:
    count = 1 if x.device.type != "cpu" else max(1, min(_TRI_BLOCKS, dim // _TRI_WIDTH))
    edges = [dim * k // count for k in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _times_lower(z: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """`z @ chol` for a lower-triangular `chol`: column block j of the result reads rows >= j."""
    splits = _tri_splits(z, chol.shape[0])
    if len(splits) == 1:
        return z @ chol
    out = z.new_empty(z.shape[0], chol.shape[1])
    for j0, j1 in splits:
        torch.mm(z[:, j0:], chol[j0:, j0:j1], out=out[:, j0:j1])
    return out


def _times_upper(g: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """`g @ chol.mT` for a lower-triangular `chol`: column block i of the result reads columns < i1."""
    splits = _tri_splits(g, chol.shape[0])
    if len(splits) == 1:
        return g @ chol.mT
    out = g.new_empty(g.shape[0], chol.shape[0])
    for i0, i1 in splits:
        torch.mm(g[:, :i1], chol[i0:i1, :i1].mT, out=out[:, i0:i1])
    return out


def _lower_outer(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """`tril(z.mT @ g)`: row block i computed up to its last column only."""
    splits = _tri_splits(z, z.shape[1])
    if len(splits) == 1:
        return torch.mm(z.mT, g).tril_()
    out = z.new_empty(z.shape[1], g.shape[1])
    for i0, i1 in splits:
        torch.mm(z[:, i0:i1].mT, g[:, :i1], out=out[i0:i1, :i1])
    return out.tril_()  # also zeroes the blocks never written


def _head_composite(x, proj, raw, drift, m, log_scale, eps, max_drift, scale_sign, sign, labels, margin):
    """`_FactorHeadLogits` from differentiable torch ops (double backward, traced graphs, tests)."""
    z = x if proj is None else x @ proj.mT
    chol = torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)
    r = torch.linalg.vector_norm(drift)
    small = r < _SMALL_DRIFT
    safe = torch.where(small, torch.ones_like(r), r)
    w = max_drift * torch.where(small, 1 - r * r / 3, torch.tanh(safe) / safe) * drift
    scale = None if log_scale is None else scale_sign * log_scale.exp()
    return _composite(z @ chol, m, w, scale, sign, labels, margin)


class _FactorHeadLogits(torch.autograd.Function):
    # The whole factor-coordinates head as one autograd node: the projection z = x P^T (when
    # there is one), s = z L with L built once, the drift w = squash(u), the scale
    # scale_sign * exp(log_scale) and the logits kernel, forward and backward by hand (one node
    # instead of about twenty small ones: autograd bookkeeping is what a small head pays for).

    @staticmethod
    def forward(ctx, x, proj, raw, drift, m, log_scale, eps, max_drift, scale_sign, sign, labels, margin):
        ctx.consts = (eps, max_drift, scale_sign, sign, margin)
        lib = _compiled_for(x, m.shape[0], proj, raw, drift, m, log_scale)
        ctx.compiled, ctx.lib = lib is not None, lib
        if lib is not None:  # the same steps in C++ (finslerlib.nn._head_compiled)
            ctx.sizes = (_column_chunk(x, m.shape[0]), len(_tri_splits(x, raw.shape[0])))
            d, z, chol, f, slope, s, w, scale, *rest = lib.head_forward(
                x, proj, raw, drift, m, log_scale, eps, max_drift, scale_sign, sign, labels, margin,
                *ctx.sizes,
            )
            saved = (s, m, w, scale, *rest, labels)
            ctx.save_for_backward(x, proj, raw, drift, log_scale, z, chol, f, slope, *saved)
            return d
        z = x if proj is None else x @ proj.mT
        chol = _lower(raw, eps)
        s = _times_lower(z, chol)
        f, slope = _squash_factors(drift)
        w = (f * max_drift) * drift
        scale = None if log_scale is None else log_scale.exp().mul_(scale_sign)
        d, saved = _logits_forward(s, m, w, scale, sign, labels, margin)
        ctx.save_for_backward(x, proj, raw, drift, log_scale, z, chol, f, slope, *saved)
        return d

    @staticmethod
    def backward(ctx, grad):
        x, proj, raw, drift, log_scale, z, chol, f, slope, *saved = ctx.saved_tensors
        eps, max_drift, scale_sign, sign, margin = ctx.consts
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            # double backward: differentiate the composite (rare path, slower)
            inputs = (x, proj, raw, drift, saved[1], log_scale)
            wanted = [t for t, need in zip(inputs, needs[:6], strict=True) if need]
            with torch.enable_grad():
                out = _head_composite(*inputs, eps, max_drift, scale_sign, sign, saved[-1], margin)
            grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (*(next(grads) if need else None for need in needs[:6]), *(None,) * 6)
        if ctx.compiled:
            grads = ctx.lib.head_backward(
                grad, x, proj, raw, drift, z, chol, f, slope, *saved[:-1], saved[-1], max_drift, sign, margin,
                list(needs[:6]), *ctx.sizes,
            )
            return (*grads, *(None,) * 6)
        need_x, need_proj, need_raw, need_drift, need_m, need_scale = needs[:6]
        need_s = need_x or need_proj or need_raw
        grad_s, grad_m, grad_w, grad_scale = _logits_backward(
            saved, sign, margin, grad, (need_s, need_m, need_drift, need_scale)
        )
        grad_x = grad_proj = grad_raw = grad_drift = grad_ls = None
        if need_scale:
            grad_ls = grad_scale.mul_(saved[3])  # d scale / d log_scale = scale
        if need_drift:
            # w = max_drift f(r) u: grad_u = max_drift (f grad_w + f'(r)/r (u . grad_w) u)
            grad_drift = torch.addcmul(grad_w * f, drift, (drift @ grad_w) * slope).mul_(max_drift)
        if need_raw:
            grad_raw = _lower_outer(z, grad_s)
            d = raw.diagonal()
            dslope = torch.where(d > _SOFTPLUS_THRESHOLD, torch.ones_like(d), torch.sigmoid(d))
            grad_raw.diagonal().mul_(dslope)
        if need_x or need_proj:
            grad_z = _times_upper(grad_s, chol)
            if proj is None:
                grad_x = grad_z
            else:
                grad_x = grad_z @ proj if need_x else None
                grad_proj = grad_z.mT @ x if need_proj else None
        return grad_x, grad_proj, grad_raw, grad_drift, grad_m, grad_ls, *(None,) * 6


def factor_head_logits(
    x: torch.Tensor,
    proj: torch.Tensor | None,
    raw: torch.Tensor,
    drift: torch.Tensor,
    m: torch.Tensor,
    log_scale: torch.Tensor | None,
    *,
    eps: float,
    max_drift: float,
    scale_sign: float = -1.0,
    sign: int = 1,
    labels: torch.Tensor | None = None,
    margin: float = 0.0,
) -> torch.Tensor:
    r"""The logits of a head on a learnable full-rank Randers metric, in its factor coordinates.

    With $z = x P^\top$ (or $z = x$ without a projection), $L = \operatorname{tril}(R, -1) +
    \operatorname{diag}(\operatorname{softplus}(\operatorname{diag} R) + \epsilon)$,
    $w = \text{max\_drift} \tanh(|u|)\, u / |u|$ and $\sigma$ = `scale_sign` $e^{\ell}$:
    `unit_randers_logits(z @ L, m, w, sigma, sign=sign, labels=labels, margin=margin)` (no
    scale for `log_scale=None`), as one autograd node with a hand-written backward. Double
    backward works through a slower recomputation.

    Args:
        x: Tensor, shape `[B, D]`.
        proj: Tensor, shape `[R, D]`, or `None` (then `R = D`).
        raw: Tensor, shape `[R, R]`, the factor's raw parameter $R$.
        drift: Tensor, shape `[R]`, the drift's raw parameter $u$.
        m: Tensor, shape `[C, R]`, prototypes in factor coordinates.
        log_scale: scalar Tensor $\ell$, or `None`.
        eps: the factor diagonal's floor $\epsilon$.
        max_drift: the bound on $|w|$.
        scale_sign: the sign (or factor) of the scale.
        sign: `1`, `-1` or `0` (as in `unit_randers_logits`).
        labels: optional integer Tensor, shape `[B]`.
        margin: the distance added to each row's target class (only with `labels`).

    Returns:
        Tensor, shape `[B, C]`.

    Example:
        >>> x, raw, m = torch.tensor([[1.0, 0.0]]), torch.zeros(2, 2), torch.zeros(1, 2)
        >>> factor_head_logits(x, None, raw, torch.zeros(2), m, None, eps=0.0, max_drift=0.9)  # L = log(2) I
        tensor([[0.6931]])
    """
    if labels is not None:
        labels = labels.long()
    margin = float(margin)
    consts = (float(eps), float(max_drift), float(scale_sign), sign, labels, margin)
    args = (x, proj, raw, drift, m, log_scale, *consts)
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return _head_composite(*args)
    return _FactorHeadLogits.apply(*args)
