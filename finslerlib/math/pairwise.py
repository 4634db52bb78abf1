r"""Numerically safe primitives and Gram-matrix pairwise terms.

Pairwise distances never build an `[..., N, M, D]` difference tensor: squared distances come
from one matmul, $|y_i - z_j|^2 = |y_i|^2 - 2\, y_i \cdot z_j + |z_j|^2$, after centring both
point sets on a common mean (which reduces cancellation), clamped at zero.
"""

from __future__ import annotations

import torch

from finslerlib.math.epilogue import use_epilogue

__all__ = [
    "safe_sqrt",
    "safe_div",
    "centre",
    "pairwise_sqdist",
    "pairwise_dist",
    "pairwise_randers",
    "gram_tolerance",
    "gram_accurate",
    "matmul_roundoff",
    "target_accuracy",
    "coincident_pairs",
    "block_rows",
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


def block_rows(n: int, m: int, device: torch.device) -> int:
    """Rows per block of an `[n, m]` Gram result: about 2^23 entries (32 MB in float32).

    Blocks bound the scratch memory of the elementwise passes after a Gram matmul. They are kept
    large: measured on a busy 2-core machine (2 threads), blocks of 2^21 entries made
    `Randers.cdist` + `FunkBall.cdist` at 4096 x 4096 take 1.4x the time of 2^23 (every small
    parallel operation waits for its slowest thread), while on one thread the cache gain of small
    blocks was within the noise. On a GPU one block covers everything.

    Args:
        n: rows of the result.
        m: columns of the result.
        device: where the result lives.

    Returns:
        int, at least 1.

    Example:
        >>> block_rows(4096, 4096, torch.device("cpu"))
        2048
    """
    if device.type != "cpu":
        return max(n, 1)
    return max(1, min(n, (1 << 23) // max(m, 1)))


def gram_tolerance(dtype: torch.dtype, rank: int) -> float:
    r"""Relative bound $2 (R + 2)\,\varepsilon$ on the Gram error of $|t - s|^2$ against $|s|^2 + |t|^2$.

    The standard bound for a dot product of $R + 2$ terms (the matmul's columns) against the sum
    of their absolute values, at most $4 \max(|s|^2, |t|^2)$: a square distance below it is
    compatible with 0.

    Args:
        dtype: floating dtype of the matmul.
        rank: number of columns `R` of the points.

    Returns:
        float.

    Example:
        >>> gram_tolerance(torch.float64, 2) < 1e-14
        True
    """
    return 2.0 * (rank + 2) * torch.finfo(dtype).eps


def coincident_pairs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All index pairs `(i, j)` with `x[i] == y[j]` (every coordinate equal), without an `[N, M]` pass.

    Rows are keyed by a fixed random projection in float64; pairs whose keys agree to rounding
    are candidates (a sort and two binary searches), and the candidates are compared exactly.
    Cost `O((N + M) D + (N + M) log M)`.

    Args:
        x: Tensor, shape `[N, D]`.
        y: Tensor, shape `[M, D]`.

    Returns:
        `(rows, cols)`: int64 Tensors of equal length.

    Example:
        >>> coincident_pairs(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), torch.tensor([[2.0, 3.0]]))
        (tensor([1]), tensor([0]))
    """
    with torch.no_grad():
        x, y = x.detach(), y.detach()
        empty = torch.zeros(0, dtype=torch.long, device=x.device)
        if x.shape[0] == 0 or y.shape[0] == 0:
            return empty, empty
        gen = torch.Generator().manual_seed(20261207)
        r = torch.rand(x.shape[-1], generator=gen, dtype=torch.float64).add_(0.5).to(x.device)
        kx, ky = x.double() @ r, y.double() @ r
        scale = torch.maximum(x.abs().amax(), y.abs().amax()).double() * r.sum()
        tol = 64 * x.shape[-1] * torch.finfo(torch.float64).eps * scale
        ky, order = torch.sort(ky)
        lo = torch.searchsorted(ky, kx - tol)
        hi = torch.searchsorted(ky, kx + tol, right=True)
        counts = hi - lo
        total = int(counts.sum())
        if total == 0:
            return empty, empty
        rows = torch.repeat_interleave(torch.arange(x.shape[0], device=x.device), counts)
        starts = torch.repeat_interleave(lo - torch.cumsum(counts, 0) + counts, counts)
        cols = order[starts + torch.arange(total, device=x.device)]
        same = (x[rows] == y[cols]).all(-1)
        return rows[same], cols[same]


def target_accuracy(dtype: torch.dtype) -> float:
    """Relative accuracy of every entry of the refined Gram kernels: 1e-6 below float64, 1e-12 in float64.

    Args:
        dtype: floating dtype of the result.

    Returns:
        float.

    Example:
        >>> target_accuracy(torch.float32)
        1e-06
    """
    return 1e-12 if dtype == torch.float64 else 1e-6


def matmul_roundoff(dtype: torch.dtype) -> float:
    """Unit roundoff of a matmul in `dtype`, TF32 / bfloat16 inner products included.

    `torch.set_float32_matmul_precision("high")` (TF32, 10-bit mantissa) or `"medium"` (bfloat16)
    lets float32 matmuls drop digits; the refined kernels then flag (and recompute) accordingly.

    Args:
        dtype: floating dtype of the matmul.

    Returns:
        float.

    Example:
        >>> matmul_roundoff(torch.float64) == 2.0 ** -53
        True
    """
    u = torch.finfo(dtype).eps / 2
    if dtype == torch.float32 and not (torch.compiler.is_compiling() or torch.compiler.is_exporting()):
        precision = torch.get_float32_matmul_precision()  # a host-side query: not traceable
        if precision == "high":
            u = 2.0**-11
        elif precision == "medium":
            u = 2.0**-8
    return u


# Constants of the rounding-error model of a Gram pipeline with unit roundoff u (measured maxima on
# adversarial point sets, with a margin; tests/math/test_cdist_accuracy.py checks the results):
# a distance alpha = |t - s| from the Gram form is off by at most u (GRAM_C S^2 / alpha + LINEAR_C S),
# S^2 = |s|^2 + |t|^2 (centred points), drift terms and the final sums included. The worst-case
# bound, (R + 2) u S^2 / alpha, would flag every entry for R >= 16.
GRAM_C = 2.0
LINEAR_C = 6.0


def gram_accurate(alpha, f, size2, u: float, tau: float) -> torch.Tensor:
    r"""Where the error model keeps a Gram entry within $\tau F$: $u\,(c_g S^2/\alpha + c_l S) \le \tau F$.

    Evaluated as $\alpha\,(\tau F - u c_l S) \ge u c_g S^2$ (no division; NaN entries fail).

    Args:
        alpha: Tensor, the distance part $\alpha \ge 0$ (or a lower bound of it).
        f: Tensor broadcastable with `alpha`, the entry $F$ (or a lower bound).
        size2: Tensor broadcastable with `alpha`, $S^2$ (or an upper bound).
        u: unit roundoff of the matmul (`matmul_roundoff`).
        tau: relative accuracy wanted (`target_accuracy`).

    Returns:
        bool Tensor.

    Example:
        >>> one = torch.ones(())
        >>> bool(gram_accurate(one, one, one, 2.0**-24, 1e-6)), bool(gram_accurate(one, one, one, 1e-3, 1e-6))
        (True, False)
    """
    return alpha * (tau * f - (u * LINEAR_C) * size2.sqrt()) >= (u * GRAM_C) * size2


def _mapped_rows(v, c, lw_aug, dest, scale=1.0, chunk=4096):
    """`scale (v - c) L` into `dest` (a `[N, R]` view, its dtype), and `|(v - c) L|^2`, `w.(v - c) L`
    (wide) for `lw_aug = [L, L w]` (wide; `scale` a power of 2, exact). Computed in chunks of rows
    through reused wide buffers, with no mixed-dtype arithmetic (its casting loops are slow)."""
    n, r = v.shape[0], lw_aug.shape[1] - 1
    sq = torch.empty(n, dtype=lw_aug.dtype, device=v.device)
    drift = torch.empty(n, dtype=lw_aug.dtype, device=v.device)
    buf = torch.empty(min(chunk, n), v.shape[1], dtype=lw_aug.dtype, device=v.device)
    out = torch.empty(min(chunk, n), r + 1, dtype=lw_aug.dtype, device=v.device)
    for k in range(0, n, chunk):
        rows = min(chunk, n - k)
        b, o = buf[:rows], out[:rows]
        b.copy_(v[k : k + rows]).sub_(c)
        torch.mm(b, lw_aug, out=o)
        torch.linalg.vector_norm(o[:, :r], dim=1, out=sq[k : k + rows]).square_()
        drift[k : k + rows] = o[:, r]
        mapped = o[:, :r]
        if scale != 1.0:
            mapped = mapped.mul_(scale)
        dest[k : k + rows] = mapped
    return sq, drift


class _PairwiseRanders(torch.autograd.Function):
    """Fused forward/backward of `pairwise_randers` (see there); 2-D inputs only."""

    @staticmethod
    def forward(ctx, x, y, factor, w, exact, precise):
        dtype, device = x.dtype, x.device
        n, m = x.shape[0], y.shape[0]
        # the points in factor coordinates, centred on the common mean, in float64 (cheap next to
        # the Gram matmul; no float32 rounding of x - c or of L amplified by L's condition)
        wide = torch.float64 if device.type != "mps" else dtype
        if precise is None:
            precise = (factor.detach(), w.detach())
        lw, ww = (t.to(device=device, dtype=wide) for t in precise)
        # any centre works (x - c is exact in float64): a float32 mean is enough
        c = ((x.detach().sum(0) + y.detach().sum(0)) / max(n + m, 1)).to(wide)
        # [s, w.s] = (x - c) [L, L w] (x - c first: exact for float32 x)
        lw_aug = torch.cat([lw, (lw @ ww).unsqueeze(1)], 1)
        # |t_j - s_i|^2 = [s_i, |s_i|^2, 1] . [-2 t_j, 1, |t_j|^2]: the outer sums are two extra
        # columns of the one matmul (as in torch.cdist), so no pass adds them; the mapped points
        # are written into these buffers directly
        r = lw.shape[1]
        xa = torch.empty(n, r + 2, dtype=dtype, device=device)
        ya = torch.empty(m, r + 2, dtype=dtype, device=device)
        s2, bx = _mapped_rows(x.detach(), c, lw_aug, xa[:, :r])
        t2, by = _mapped_rows(y.detach(), c, lw_aug, ya[:, :r], scale=-2.0)
        xa[:, r], xa[:, r + 1] = s2, 1.0
        ya[:, r], ya[:, r + 1] = 1.0, t2
        xt = xa[:, :r]
        ones_x, ones_y = xt.new_ones(n, 1), xt.new_ones(m, 1)
        # the drift w.t_j - w.s_i: a rank-2 product added in place (one pass)
        bxa = torch.cat([bx.to(dtype).neg().unsqueeze(1), ones_x], 1)
        bya = torch.cat([ones_y, by.to(dtype).unsqueeze(1)], 1).mT
        out = torch.empty(n, m, dtype=dtype, device=device)
        refine = exact is not None and n > 0 and m > 0 and not torch.compiler.is_compiling()
        if refine:
            # entries that may be off by more than target_accuracy are flagged (first per row, from
            # the row minima of alpha^2 and F, with S_i^2 = |s_i|^2 + max_j |t_j|^2 >= S_ij^2; then
            # the failing rows entry by entry) and recomputed
            u, tau = matmul_roundoff(dtype), target_accuracy(dtype)
            if wide == dtype:  # |s|^2, |t|^2 summed in this dtype too: the worst-case bound
                u *= xt.shape[1] + 2
            size2 = (s2 + t2.max()).to(dtype)
            fix = _RandersRefine(exact, x.detach(), y.detach(), c, lw, s2, t2, bx, by, tau)
        step = block_rows(n, m, out.device)
        kernel = use_epilogue(out, n * m)
        if kernel is not None:
            # the fused epilogue: one pass per block for the square root, the drift and both minima
            bx_k, by_k = bx.to(dtype), by.to(dtype)
            min_a_k, min_f_k = out.new_empty(n), out.new_empty(n)
        for i in range(0, n, step):
            blk = out[i : i + step]
            torch.mm(xa[i : i + step], ya.mT, out=blk)
            if kernel is not None:
                min_a, min_f = min_a_k[i : i + step], min_f_k[i : i + step]
                kernel.randers(blk, bx_k[i : i + step], by_k, min_a, min_f, refine)
                if not refine:
                    continue
            elif not refine:
                blk.clamp_min_(0.0).sqrt_().addmm_(bxa[i : i + step], bya)
                continue
            else:
                min_a = blk.amin(1)
                blk.sqrt_().addmm_(bxa[i : i + step], bya)  # negative alpha^2: NaN, flagged below
                min_f = blk.amin(1)
            ok = gram_accurate(min_a.clamp_min_(0.0).sqrt_(), min_f, size2[i : i + step], u, tau)
            rows = ok.logical_not_().nonzero().squeeze(1)
            if rows.numel():
                fix.rows(blk, rows, i, bxa, bya, u)
        ctx.save_for_backward(x, y, factor, w, c.to(dtype), xa, ya, out)
        return out

    @staticmethod
    def backward(ctx, grad, *_):
        x, y, factor, w, c, xa, ya, out = ctx.saved_tensors
        r = factor.shape[1]
        xt, yt = xa[:, :r], ya[:, :r] * -0.5  # ya holds -2 t (exact)
        if torch.is_grad_enabled():
            # double backward: the saved intermediates carry no graph, so rebuild them as
            # differentiable functions of the inputs (only on this rare path)
            xt, yt = (x - c) @ factor, (y - c) @ factor
            alpha = safe_sqrt(pairwise_sqdist(xt, yt))
            g = safe_div(grad, alpha)
            rows, cols = grad.sum(1), grad.sum(0)
            grad_xt = xt * g.sum(1, keepdim=True) - rows.unsqueeze(1) * w - g @ yt
            grad_yt = yt * g.sum(0).unsqueeze(1) + cols.unsqueeze(1) * w - g.mT @ xt
        else:
            grad_xt, grad_yt, rows, cols = _randers_backward_blocks(grad, out, xt, yt, w)
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
        return grad_x, grad_y, grad_factor, grad_w, None, None


class _RandersRefine:
    """Recomputation of the flagged entries of `_PairwiseRanders` (the float64 data it needs)."""

    chunk = 1 << 15  # pairs per direct evaluation (bounds its [chunk, R] scratch)

    def __init__(self, exact, x, y, c, lw, s2, t2, bx, by, tau):
        self.exact, self.x, self.y, self.c, self.lw = exact, x, y, c, lw
        self.s2, self.t2, self.bx, self.by, self.tau = s2, t2, bx, by, tau
        self.full: dict[str, torch.Tensor] = {}

    def mapped(self, side, idx):
        """Rows `idx` (distinct) of the sources (`side` "x") or targets ("y") in factor coordinates
        in the wide dtype: only these rows while they are few (a few flagged pairs do not map every
        point again), else all of them once (kept)."""
        points = self.x if side == "x" else self.y
        if side not in self.full and isinstance(idx, torch.Tensor) and idx.numel() * 4 <= points.shape[0]:
            return (points[idx].to(self.lw.dtype) - self.c) @ self.lw
        if side not in self.full:
            self.full[side] = (points.to(self.lw.dtype) - self.c) @ self.lw
        return self.full[side][idx]

    @property
    def t(self):
        """All targets in factor coordinates in the wide dtype (for rows recomputed densely)."""
        return self.mapped("y", slice(None))

    def direct(self, rows, cols):
        """F(t_j - s_i) of the index pairs from their differences (in the wide dtype); exactly 0
        where x_i = y_j (every flagged pair is checked: coincident points are always flagged)."""
        parts = []
        for k in range(0, rows.numel(), self.chunk):
            r, c = rows[k : k + self.chunk], cols[k : k + self.chunk]
            ur, ri = torch.unique(r, return_inverse=True)
            uc, ci = torch.unique(c, return_inverse=True)
            f = self.exact(self.mapped("y", uc)[ci] - self.mapped("x", ur)[ri])
            parts.append(f.masked_fill_((self.x[r] == self.y[c]).all(1), 0.0))
        return torch.cat(parts) if parts else self.lw.new_zeros(0)

    def rows(self, blk, rows, i, bxa, bya, u):
        """Recheck rows `rows` of the block `blk` (rows `i + rows` of the result) entry by entry."""
        sub = blk[rows]
        grow = rows + i
        alpha = torch.addmm(sub, bxa[grow], bya, alpha=-1.0)  # F - beta
        size2 = torch.add(self.s2[grow, None].to(sub.dtype), self.t2.to(sub.dtype))
        flag = gram_accurate(alpha, sub, size2, u, self.tau).logical_not_()
        wide = self.lw.dtype != blk.dtype
        if wide and int(flag.sum()) * 32 > flag.numel():
            # many flags: the whole rows from a float64 Gram matmul, then its own (few) flags
            blk[rows] = self.dense(grow).to(blk.dtype)
            return
        r, cols = flag.nonzero(as_tuple=True)
        blk[rows[r], cols] = self.direct(grow[r], cols).to(blk.dtype)

    def dense(self, grow):
        """Rows `grow` of the result from a Gram matmul in the wide dtype, flagged entries direct."""
        s = self.mapped("x", grow)
        sq = torch.addmm(self.t2.unsqueeze(0), s, self.t.mT, alpha=-2.0).add_(self.s2[grow, None])
        size2 = torch.add(self.s2[grow, None], self.t2)
        alpha = sq.clamp_min_(0.0).sqrt_()
        f = torch.add(alpha, self.by).sub_(self.bx[grow, None])
        # the worst-case bound here ((R + 2) u; its |s|^2, |t|^2 are sums in this dtype too): in
        # float64 it flags only near-duplicate pairs
        u = matmul_roundoff(f.dtype) * (self.lw.shape[1] + 2)
        ok = gram_accurate(alpha, f, size2, u, self.tau)
        r, cols = ok.logical_not_().nonzero(as_tuple=True)
        f[r, cols] = self.direct(grow[r], cols)
        return f


def _randers_backward_blocks(grad, out, xt, yt, w):
    """Gradients in factor coordinates, block by block (see `_PairwiseRanders`).

    With alpha = F - beta (a sum of non-negative terms where beta < 0, so accurate also where F was
    recomputed): d F_ij / d s_i = (s_i - t_j) / alpha_ij - w, and 0 for the alpha part where
    alpha is 0. `g = grad / alpha` multiplies `[t, 1]` and `[s, 1]` in one matmul each, which gives
    the products and the row (column) sums of `g` together. Three passes per block before the
    matmuls: alpha (one addmm), alpha below the floor to inf (one `threshold_`), grad / alpha."""
    n, m = grad.shape
    if n == 0 or m == 0:  # no pairs: zero gradients (the bound's amax needs entries)
        return torch.zeros_like(xt), torch.zeros_like(yt), xt.new_zeros(n), yt.new_zeros(m)
    bx, by = xt @ w, yt @ w
    # pairs closer than the Gram error bound count as coincident (alpha part 0)
    size = torch.linalg.vector_norm(xt, dim=-1).amax() ** 2 + torch.linalg.vector_norm(yt, dim=-1).amax() ** 2
    floor = float((gram_tolerance(xt.dtype, xt.shape[-1]) * size).sqrt())
    ya = torch.cat([yt, torch.ones_like(by).unsqueeze(1)], 1)
    xa = torch.cat([xt, torch.ones_like(bx).unsqueeze(1)], 1)
    # alpha = F + w.s_i - w.t_j: a rank-2 update of F
    bxa = torch.stack([bx, torch.ones_like(bx)], 1)
    bya = torch.stack([torch.ones_like(by), -by], 0)
    gy = torch.empty(n, ya.shape[1], dtype=xt.dtype, device=xt.device)
    gx = torch.zeros(m, xa.shape[1], dtype=xt.dtype, device=xt.device)
    rows = torch.empty(n, dtype=xt.dtype, device=xt.device)
    cols = torch.zeros(m, dtype=xt.dtype, device=xt.device)
    step = block_rows(n, m, grad.device)
    g_buf = torch.empty(min(step, n), m, dtype=xt.dtype, device=xt.device)
    for i in range(0, n, step):
        g_blk = grad[i : i + step]
        rows_i = g_blk.shape[0]
        g = torch.addmm(out[i : i + step], bxa[i : i + step], bya, out=g_buf[:rows_i])
        # alpha <= floor (coincident to rounding): inf, so that grad / alpha is 0 there
        torch.nn.functional.threshold_(g, floor, float("inf"))
        torch.div(g_blk, g, out=g)
        torch.mm(g, ya, out=gy[i : i + step])
        gx.addmm_(g.mT, xa[i : i + step])
        torch.sum(g_blk, 1, out=rows[i : i + step])
        cols.add_(g_blk.sum(0))
    grad_xt = (xt * gy[:, -1:]).sub_(gy[:, :-1]).addr_(rows, w, alpha=-1.0)
    grad_yt = (yt * gx[:, -1:]).sub_(gx[:, :-1]).addr_(cols, w)
    return grad_xt, grad_yt, rows, cols


def pairwise_randers(
    x: torch.Tensor,
    y: torch.Tensor,
    factor: torch.Tensor,
    w: torch.Tensor,
    *,
    exact=None,
    precise: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    r"""All Minkowski–Randers distances $F(y_j - x_i)$ for $a = L L^\top$, $b = L w$.

    With $s_i = L^\top x_i$, $t_j = L^\top y_j$ (rows: `x @ factor`), the distance is
    $|t_j - s_i| + w \cdot t_j - w \cdot s_i$: one Gram matmul plus separable drift terms,
    never an `[N, M, D]` tensor. Forward and backward are fused by hand (a few passes over
    the `[N, M]` result instead of the dozens autograd makes, which dominate at classifier
    sizes; float32 CPU results of at least `finslerlib.math.epilogue.MIN_ENTRIES` entries take one
    compiled pass after the matmul, see `finslerlib.math.epilogue`); double backward (Hessians)
    works too, through a slower recomputation. The gradient is
    finite (the $\alpha$ part contributes 0) where two points coincide. Both sets are
    centred on their common mean and mapped by $L$ in float64 (against cancellation in the Gram
    trick).

    Accuracy with `exact`: a rounding-error model of the Gram pipeline (`gram_accurate`) flags
    every entry that may be off by more than `target_accuracy` (1e-6 relative in float32): pairs
    close next to the points' spread ($\alpha \ll S = \sqrt{|s_i|^2 + |t_j|^2}$) and pairs whose
    drift term cancels ($F \ll \alpha$). The flagged entries are recomputed as
    `exact(t_j - s_i)` from float64 differences (rows with many flags through a float64 Gram
    matmul first), and coincident points give exactly 0. The checks cost two row minima per
    block; inputs with many close pairs cost more (in time, not accuracy).

    Args:
        x: Tensor, shape `[N, D]`, sources.
        y: Tensor, shape `[M, D]`, targets.
        factor: Tensor, shape `[D, R]`, $L$ with $a = L L^\top$.
        w: Tensor, shape `[R]`, drift in factor coordinates, $b = L w$ (strong convexity
            needs $|w| < 1$ when $L$ is invertible).
        exact: optional callable `z -> F(z)` for rows `z` (shape `[K, R]`, float64 on CPU / CUDA)
            in factor coordinates, cancellation-free (`finslerlib.math.randers.cdist` passes
            `factor_norm` with the float64 drift). Without it the result is the plain Gram form.
        precise: optional `(factor, w)` in float64 for lower-precision inputs (factored from
            float64 data, see `Randers`); default `factor` and `w` themselves.

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
    return _PairwiseRanders.apply(x, y, factor, w, exact, precise)
