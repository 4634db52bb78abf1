r"""Geodesic flow of a position-dependent Randers metric as a Hamiltonian system.

The metric is given as a **function** `coefficients(x) -> (a, b)` returning the Randers data at
the points `x` (shapes `[..., D, D]` and `[..., D]`), not as a class. Geodesics are the
projections of the flow of $H(x, p) = \tfrac12 F^*(x, p)^2$ (Bao–Chern–Shen ch. 5):

$$\dot x = \partial_p H = \ell_x^{-1}(p), \qquad \dot p = -\partial_x H,$$

where $F^*$ is the dual (co-)norm from `finslerlib.math.randers.dual_norm`, so no inverse
fundamental tensor is ever formed. The costate is the Legendre image of the velocity,
$p = \ell_x(\dot x)$, and $H$ (hence the speed $F(x, \dot x)$) is conserved along the flow.
The derivative in $x$ is one `torch.func.vjp` of `coefficients`, which also works under
`torch.no_grad()` and composes with ordinary autograd, so integrating with it is differentiable
with respect to the initial data and to any parameters that `coefficients` closes over.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import vjp

from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_div, safe_sqrt

__all__ = ["hamiltonian", "hamiltonian_vector_field", "randers_validity", "guarded"]

CoefficientFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def hamiltonian(coefficients: CoefficientFn, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    r"""The geodesic Hamiltonian $H(x, p) = \tfrac12 F^*(x, p)^2$.

    Args:
        coefficients: callable `x -> (a, b)` with `a` of shape `[..., D, D]` (SPD) and `b` of
            shape `[..., D]`.
        x: Tensor, shape `[..., D]`, points.
        p: Tensor, shape `[..., D]`, covectors (momenta) at `x`.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> euclid = lambda x: (torch.eye(2), torch.zeros(2))
        >>> hamiltonian(euclid, torch.zeros(2), torch.tensor([3.0, 4.0]))
        tensor(12.5000)
    """
    a, b = coefficients(x)
    return 0.5 * rmath.dual_norm(p, a, b) ** 2


def hamiltonian_vector_field(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    p: torch.Tensor,
    *,
    guard: bool = False,
    differentiable: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Hamilton's equations $(\dot x, \dot p) = (\partial_p H, -\partial_x H)$, batched.

    Evaluated through the Legendre duality instead of differentiating $F^*$: with
    $u = \ell_x^{-1}(p)$ (closed form) and $L(x, u) = \tfrac12 F(x, u)^2$,
    $\partial_p H = u$ and $\partial_x H = -\partial_x L(x, u)$ at fixed $u$. The latter is one
    vector-Jacobian product of `coefficients` with the closed-form cotangents
    $\partial L / \partial a = \tfrac{F}{2\alpha}\, u u^\top$, $\partial L / \partial b = F u$,
    so the reverse pass runs only through the user's `a(x), b(x)` and never through a Cholesky
    factorization. `torch.func.vjp` keeps it differentiable by outer autograd and `torch.func`
    transforms (used for the shooting Jacobian).

    Fused for speed (this is the inner loop of every geodesic): one batched solve with the two
    right-hand sides $p$ and $b$ gives $a^{-1} p$ and
    $b^\sharp = a^{-1} b$, and $F(u) = F^*(p)$, $a u = \tfrac{F^*}{s} (p - F^* b)$ come for free.

    Args:
        coefficients: callable `x -> (a, b)`; see `hamiltonian`.
        x: Tensor, shape `[B, D]` (any leading shape works).
        p: Tensor, same shape as `x`.
        guard: return NaN (instead of raising or garbage) where `(a, b)` is not strongly convex
            (the Cholesky factorization fails or $\|b\|_{a^{-1}} \ge 1$); solvers use it so that a
            trial step leaving the metric's domain is simply rejected.
        differentiable: `False` when the result needs no gradient and no `torch.func`
            transform is active (the boundary-value solver's flows): the derivative in $x$ is
            then one plain `torch.autograd.grad`, cheaper than `torch.func.vjp`.

    Returns:
        `(dx, dp)`, Tensors of the shape of `x`.

    Example:
        >>> constant = lambda x: (torch.eye(2), torch.tensor([0.5, 0.0]))
        >>> dx, dp = hamiltonian_vector_field(constant, torch.zeros(2), torch.tensor([4.5, 0.0]))
        >>> dx, dp  # velocity = inverse Legendre of p; constant metric: p does not change
        (tensor([2., 0.]), tensor([0., 0.]))
    """
    if differentiable:
        (a, b), pullback = vjp(coefficients, x)
    else:
        a, b, pullback = _plain_pullback(coefficients, x)
    d = p.shape[-1]
    shape = torch.broadcast_shapes(a.shape[:-2], b.shape[:-1], p.shape[:-1])
    small = _small_inverse(a)
    if small is not None:
        u, f, lam, scale, spd = _small_legendre_terms(small, p, b)
    else:
        rhs = torch.stack(torch.broadcast_tensors(p, b), -1)  # [..., D, 2]
        # A batched LU solve: on small matrices several times cheaper than cholesky_solve; positive
        # definiteness is checked separately (cheap cholesky_ex) only when guarding.
        sol = torch.linalg.solve(a.expand(*rhs.shape[:-2], d, d), rhs)
        a_inv_p, b_sharp = sol[..., 0], sol[..., 1]
        lam = 1.0 - (b * b_sharp).sum(-1)
        q = (p * a_inv_p).sum(-1)
        t = (p * b_sharp).sum(-1)
        s = safe_sqrt(lam * q + t * t)
        # F* = (s - t) / lam, rewritten as q / (s + t) when t > 0 to avoid cancellation as lam -> 0.
        f = torch.where(t > 0, safe_div(q, s + t), (s - t) / lam)  # F*(p) = F(u)
        ratio = safe_div(f, s).unsqueeze(-1)
        u = ratio * (a_inv_p - f.unsqueeze(-1) * b_sharp)
        alpha = f - (b * u).sum(-1)
        scale = safe_div(f, 2.0 * alpha)
        spd = None
    cot_a = (scale.unsqueeze(-1).unsqueeze(-1) * u.unsqueeze(-1) * u.unsqueeze(-2)).sum_to_size(a.shape)
    cot_b = (f.unsqueeze(-1) * u).sum_to_size(b.shape)
    (grad_x,) = pullback((cot_a, cot_b))
    if guard:
        if spd is None:
            spd = torch.linalg.cholesky_ex(a)[1] == 0
        bad = ~(spd & (lam > 0)).unsqueeze(-1)
        nan = torch.full((), float("nan"), dtype=u.dtype, device=u.device)
        u = torch.where(bad, nan, u).expand(*shape, d)
        grad_x = torch.where(bad, nan, grad_x)
    return u, grad_x


def randers_validity(a: torch.Tensor, b: torch.Tensor):
    r"""Cheap batched strong-convexity check of Randers data: `a` SPD and $\|b\|_{a^{-1}} < 1$.

    One `torch.linalg.cholesky_ex` (no exception, an `info` code per matrix) and one triangular
    solve: with $a = L L^\top$, $\|b\|_{a^{-1}} = |L^{-1} b|$. No host synchronization, so it
    can run inside `torch.func` transforms.

    Args:
        a: Tensor, shape `[..., D, D]`, symmetric.
        b: Tensor, shape `[..., D]`.

    Returns:
        `(ok, drift, spd)`: bool Tensor `[...]` (valid and finite), the drift size
        $\|b\|_{a^{-1}}$ `[...]` (meaningless where `a` is not SPD), bool Tensor `[...]`
        (`a` positive definite).

    Example:
        >>> ok, drift, spd = randers_validity(torch.eye(2), torch.tensor([[0.5, 0.0], [2.0, 0.0]]))
        >>> ok, drift
        (tensor([ True, False]), tensor([0.5000, 2.0000]))
    """
    shape = torch.broadcast_shapes(a.shape[:-2], b.shape[:-1])
    d = b.shape[-1]
    a = a.expand(*shape, d, d)
    b = b.expand(*shape, d)
    small = _small_inverse(a)
    if small is not None:
        # D <= 3: Sylvester's criterion and b^T adj(a) b / det(a), elementwise (no factorization).
        adj, det, spd = small  # a NaN/inf entry makes a minor NaN or the quadratic form non-finite
        quad = (b * _matvec_rows(adj, b)).sum(-1) / det
        drift = safe_sqrt(torch.where(spd, quad, torch.zeros_like(quad)).clamp_min(0.0))
        drift = torch.where(spd, drift, torch.full_like(drift, float("nan")))
        # safe_sqrt maps NaN to 0: a non-finite drift must fail explicitly
        finite = torch.isfinite(quad) & torch.isfinite(b).all(-1)
        drift = torch.where(finite, drift, torch.full_like(drift, float("nan")))
        ok = spd & (drift < 1) & finite
        return ok, drift, spd
    chol, info = torch.linalg.cholesky_ex(a)
    spd = (info == 0) & torch.isfinite(a).all(-1).all(-1)
    eye = torch.eye(d, dtype=a.dtype, device=a.device)
    chol = torch.where(spd.unsqueeze(-1).unsqueeze(-1), chol, eye)
    w = torch.linalg.solve_triangular(chol, b.unsqueeze(-1), upper=False).squeeze(-1)
    drift = w.norm(dim=-1)
    ok = spd & (drift < 1) & torch.isfinite(drift)
    return ok, drift, spd


def guarded(coefficients: CoefficientFn) -> CoefficientFn:
    """Wrap `coefficients` so invalid data poison the flow with NaN instead of raising.

    Where `(a, b)` fails `randers_validity`, returns `(I, NaN)`: the Hamiltonian, and so the
    trajectory through that point, becomes NaN, which a solver sees as a failed trial step
    (a Newton step leaving the domain of the metric) rather than an exception for the batch.

    Example:
        >>> bad = guarded(lambda x: (torch.eye(1), 2.0 * x))
        >>> bad(torch.tensor([[0.1], [1.0]]))[1]
        tensor([[0.2000],
                [   nan]])
    """

    def safe(x: torch.Tensor):
        a, b = coefficients(x)
        ok = randers_validity(a, b)[0]
        shape = ok.shape
        d = b.shape[-1]
        keep = ok.unsqueeze(-1)
        eye = torch.eye(d, dtype=b.dtype, device=b.device)
        a = torch.where(keep.unsqueeze(-1), a.expand(*shape, d, d), eye)
        b = torch.where(keep, b.expand(*shape, d), torch.full_like(b.expand(*shape, d), float("nan")))
        return a, b

    return safe


def _small_inverse(a: torch.Tensor):
    r"""Adjugate, determinant and positive definiteness of symmetric `a` `[..., D, D]`, D <= 3.

    Reads the lower triangle only (as a Cholesky factorization does), so `adj[i][j]` are the
    cofactors of the symmetric matrix and $a^{-1} = \mathrm{adj} / \det$. Positive definiteness
    by Sylvester's criterion (leading principal minors, NaN counts as not positive). Returns
    `None` for D > 3 and for complex or integer input.
    """
    d = a.shape[-1]
    if d > 3 or not a.is_floating_point():
        return None
    e = a.flatten(-2).unbind(-1)
    if d == 1:
        (a00,) = e
        one = torch.ones_like(a00)
        return [[one]], a00, a00 > 0
    if d == 2:
        a00, _, a10, a11 = e
        det = a00 * a11 - a10 * a10
        return [[a11, -a10], [-a10, a00]], det, (a00 > 0) & (det > 0)
    a00, _, _, a10, a11, _, a20, a21, a22 = e
    c00 = a11 * a22 - a21 * a21
    c10 = a20 * a21 - a10 * a22
    c20 = a10 * a21 - a11 * a20
    c11 = a00 * a22 - a20 * a20
    c21 = a10 * a20 - a00 * a21
    c22 = a00 * a11 - a10 * a10
    det = a00 * c00 + a10 * c10 + a20 * c20
    adj = [[c00, c10, c20], [c10, c11, c21], [c20, c21, c22]]
    return adj, det, (a00 > 0) & (c22 > 0) & (det > 0)


def _matvec_rows(rows, v: torch.Tensor) -> torch.Tensor:
    """`M v` for a small matrix given as nested lists of `[...]` tensors, `v` `[..., D]`."""
    return torch.stack(torch.broadcast_tensors(*_rows_times(rows, v.unbind(-1))), -1)


def _small_legendre_terms(small, p: torch.Tensor, b: torch.Tensor):
    r"""Inverse Legendre map and Lagrangian cotangent weights from a `_small_inverse` result.

    The same formulas as the generic path of `hamiltonian_vector_field`, written per component
    on `[...]` tensors: for D <= 3 a dozen elementwise operations on `[B]` tensors cost less than
    reductions over a length-3 last dimension.

    Returns:
        `(u, f, lam, scale, spd)`: $u = \ell^{-1}(p)$ `[..., D]`, $F^*(p)$, $1 - \|b\|^2_{a^{-1}}$,
        $F / (2 \alpha)$ and positive definiteness, each `[...]`.
    """
    adj, det, spd = small
    pc, bc = p.unbind(-1), b.unbind(-1)
    w = _rows_times(adj, pc)  # det * a^{-1} p
    z = _rows_times(adj, bc)  # det * a^{-1} b
    inv_det = 1.0 / det
    lam = 1.0 - _dot(bc, z) * inv_det
    q = _dot(pc, w) * inv_det
    t = _dot(pc, z) * inv_det
    s = safe_sqrt(lam * q + t * t)
    # F* = (s - t) / lam, rewritten as q / (s + t) when t > 0 to avoid cancellation as lam -> 0.
    f = torch.where(t > 0, safe_div(q, s + t), (s - t) / lam)
    c1 = safe_div(f, s) * inv_det
    c2 = c1 * f
    u = [c1 * wi - c2 * zi for wi, zi in zip(w, z, strict=True)]
    alpha = f - _dot(bc, u)
    scale = safe_div(f, 2.0 * alpha)
    return torch.stack(torch.broadcast_tensors(*u), -1), f, lam, scale, spd


def _rows_times(rows, comps):
    """Components of `M v` for a small matrix `M` (nested lists) and the components of `v`."""
    return [_dot(row, comps) for row in rows]


def _dot(xs, ys):
    acc = xs[0] * ys[0]
    for xi, yi in zip(xs[1:], ys[1:], strict=True):
        acc = acc + xi * yi
    return acc


def _plain_pullback(coefficients: CoefficientFn, x: torch.Tensor):
    """`(a, b, pullback)` like `torch.func.vjp`, by one `torch.autograd.grad` (not differentiable)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        a, b = coefficients(xg)
    outputs = [(t, i) for i, t in enumerate((a, b)) if t.requires_grad]

    def pullback(cotangents):
        if not outputs:
            return (torch.zeros_like(x),)
        grads = torch.autograd.grad(
            [t for t, _ in outputs], xg, [cotangents[i] for _, i in outputs], allow_unused=True
        )[0]
        return (torch.zeros_like(x) if grads is None else grads,)

    return a.detach(), b.detach(), pullback
