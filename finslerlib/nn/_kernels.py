r"""The fused logits kernel of `FAIMHead` in the metric's factor coordinates.

For a constant Randers metric with $a = L L^\top$, $b = L w$, the map $y = L^\top v$ is an
isometry onto the "unit" Randers space $F(y) = |y| + w \cdot y$. With prototypes stored as
$m_k = L^\top \mu_k$ and features mapped by $s_i = L^\top x_i$ (rows: `x @ L`),

$$d(x_i \to \mu_k) = |m_k - s_i| + w \cdot m_k - w \cdot s_i,$$

so a training step transforms only the batch ($B D^2$) and pays one Gram product ($B C D$),
like an `nn.Linear`. Forward and backward are fused by hand: a few passes over the `[B, C]`
result, the logit scale folded in, no `[B, C, D]` tensor.
"""

from __future__ import annotations

import torch

from finslerlib.math.pairwise import pairwise_sqdist, safe_sqrt

__all__ = ["DIRECTION_SIGNS", "unit_randers_logits"]

# d(x -> mu) = alpha + sign * (w.m - w.s); "max" (sign 0) is alpha + |w.m - w.s|, the larger of the two
DIRECTION_SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}


def _composite(s, m, w, scale, sign):
    """The same function from differentiable torch ops (double backward, and the test oracle)."""
    c = s.mean(0).detach()
    alpha = safe_sqrt(pairwise_sqdist(s - c, m - c))
    t = (m @ w).unsqueeze(0) - (s @ w).unsqueeze(1)
    d = alpha + t.abs() if sign == 0 else alpha + sign * t
    return d if scale is None else d * scale


class _UnitRandersLogits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, m, w, scale, sign):
        batch, rank = s.shape
        # Centre both sets on the batch mean (against cancellation in the Gram trick; prototypes
        # are learned near the features) and append columns so that ONE matmul with a fresh
        # output gives |s_i - m_j|^2 = -2 s_i.m_j + |m_j|^2 + |s_i|^2:
        # left = [-2 s | 1 | |s|^2], right = [m | |m|^2 | 1]. The same matrices give the row and
        # column sums of the backward's [B, C] matrix from its two matmuls.
        c = s.mean(0)
        left = s.new_empty(batch, rank + 2)
        right = m.new_empty(m.shape[0], rank + 2)
        torch.sub(s, c, out=left[:, :rank])
        torch.sub(m, c, out=right[:, :rank])
        torch.linalg.vector_norm(left[:, :rank], dim=-1, out=left[:, rank + 1]).square_()
        torch.linalg.vector_norm(right[:, :rank], dim=-1, out=right[:, rank]).square_()
        left[:, :rank].mul_(-2.0)
        left[:, rank].fill_(1.0)
        right[:, rank + 1].fill_(1.0)
        alpha = (left @ right.mT).clamp_min_(0.0).sqrt_()
        u, v = m @ w, s @ w
        if sign == 0:
            d = (u.unsqueeze(0) - v.unsqueeze(1)).abs_().add_(alpha)
            if scale is not None:
                d.mul_(scale)
        elif scale is None:
            d = torch.add(alpha, u.unsqueeze(0), alpha=sign).sub_(v.unsqueeze(1), alpha=sign)
        else:
            # scale * (alpha + sign (u_j - v_i)) in two passes
            k = scale * sign
            d = torch.addcmul((k * u).unsqueeze(0), alpha, scale).sub_((k * v).unsqueeze(1))
        ctx.sign = sign
        ctx.save_for_backward(s, m, w, scale, left, right, alpha, u, v)
        return d

    @staticmethod
    def backward(ctx, grad):
        s, m, w, scale, left, right, alpha, u, v = ctx.saved_tensors
        sign, rank = ctx.sign, s.shape[1]
        if torch.is_grad_enabled():
            # double backward: differentiate the composite (rare path, slower)
            wanted = [t for t, need in zip((s, m, w, scale), ctx.needs_input_grad[:4], strict=True) if need]
            with torch.enable_grad():
                out = _composite(s, m, w, scale, sign)
            grads = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (*(next(grads) if need else None for need in ctx.needs_input_grad[:4]), None)
        # alpha part: d|m_j - s_i| / ds_i = (s_i - m_j) / alpha_ij, and 0 where alpha is 0
        g = torch.div(grad, alpha).masked_fill_(alpha == 0, 0.0)
        if sign == 0:
            e = grad * (u.unsqueeze(0) - v.unsqueeze(1)).sign_()
            rows, cols = e.sum(1), e.sum(0)
        else:
            rows, cols = grad.sum(1).mul_(sign), grad.sum(0).mul_(sign)
        # g @ right = [g m_c | g |m_c|^2 | g 1], g^T @ left = [-2 g^T s_c | g^T 1 | g^T |s_c|^2]
        g_right = g @ right
        g_left = g.mT @ left
        g_rows, g_cols = g_right[:, rank + 1 : rank + 2], g_left[:, rank : rank + 1]
        sc = left[:, :rank] * -0.5
        mc = right[:, :rank]
        grad_s = grad_m = grad_w = grad_scale = None
        if ctx.needs_input_grad[0]:
            grad_s = (sc * g_rows).sub_(g_right[:, :rank]).addr_(rows, w, alpha=-1.0)
            grad_s = grad_s if scale is None else grad_s.mul_(scale)
        if ctx.needs_input_grad[1]:
            grad_m = torch.addcmul(g_left[:, :rank], mc, g_cols, value=2.0).mul_(0.5).addr_(cols, w)
            grad_m = grad_m if scale is None else grad_m.mul_(scale)
        if ctx.needs_input_grad[2]:
            grad_w = torch.addmv(m.mT @ cols, s.mT, rows, alpha=-1.0)
            grad_w = grad_w if scale is None else grad_w.mul_(scale)
        if ctx.needs_input_grad[3]:
            # sum grad * alpha = sum g * alpha^2 = sum g (|s_i|^2 + |m_j|^2 - 2 s_i.m_j), from the
            # small matmul results (no pass over [B, C])
            x2 = left[:, rank + 1]
            total = x2 @ g_rows.squeeze(1) + g_right[:, rank].sum()
            total = total + (left[:, :rank] * g_right[:, :rank]).sum()
            if sign == 0:
                total = total + (grad * (u.unsqueeze(0) - v.unsqueeze(1)).abs_()).sum()
            else:
                total = total + cols @ u - rows @ v
            grad_scale = total.reshape(scale.shape)
        return grad_s, grad_m, grad_w, grad_scale, None


def unit_randers_logits(
    s: torch.Tensor, m: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None, *, sign: int = 1
) -> torch.Tensor:
    r"""`scale * d` for the unit Randers distances $d_{ik} = |m_k - s_i| + \sigma\, w \cdot (m_k - s_i)$.

    $\sigma = 1$ is $d(s_i \to m_k)$, $\sigma = -1$ is $d(m_k \to s_i)$, and $\sigma = 0$ the
    larger of the two, $|m_k - s_i| + |w \cdot (m_k - s_i)|$. The gradient is finite where two
    points coincide (the $|\cdot|$ part contributes 0). Double backward works through a slower
    recomputation.

    Args:
        s: Tensor, shape `[B, R]`, features in factor coordinates.
        m: Tensor, shape `[C, R]`, prototypes in factor coordinates.
        w: Tensor, shape `[R]`, the drift in factor coordinates.
        scale: scalar tensor multiplying the result, or `None`.
        sign: `1`, `-1` or `0` (see above).

    Returns:
        Tensor, shape `[B, C]`.

    Example:
        >>> s, m = torch.zeros(1, 2), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> unit_randers_logits(s, m, torch.tensor([0.5, 0.0]))
        tensor([[1.5000, 0.5000]])
    """
    if s.dim() != 2 or m.dim() != 2 or w.dim() != 1 or s.shape[1] != m.shape[1] or w.shape[0] != s.shape[1]:
        raise ValueError(
            "unit_randers_logits needs s [B, R], m [C, R], w [R]; got "
            f"{tuple(s.shape)}, {tuple(m.shape)}, {tuple(w.shape)}"
        )
    if sign not in (1, -1, 0):
        raise ValueError(f"sign must be 1, -1 or 0, got {sign}")
    return _UnitRandersLogits.apply(s, m, w, scale, sign)
