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
from finslerlib.math.linalg import batch_shape as _batch_shape
from finslerlib.math.linalg import dot as _dot
from finslerlib.math.linalg import rows_times as _rows_times
from finslerlib.math.linalg import small_inverse as _small_inverse
from finslerlib.math.pairwise import safe_div
from finslerlib.math.validation import nan_unless, randers_validity

__all__ = ["hamiltonian", "hamiltonian_vector_field", "guarded"]

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
    shape = _batch_shape(a.shape[:-2], b.shape[:-1], p.shape[:-1])
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
        s, f = rmath.dual_terms(q, t, lam)  # F*(p) = F(u)
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
        ok = spd & (lam > 0)
        u = nan_unless(ok, u).expand(*shape, d)
        grad_x = nan_unless(ok, grad_x)
    return u, grad_x


def guarded(coefficients: CoefficientFn) -> CoefficientFn:
    """Wrap `coefficients` so invalid data poison the flow with NaN instead of raising.

    Where `(a, b)` fails `finslerlib.math.validation.randers_validity`, returns `(I, NaN)`: the
    Hamiltonian, and so the trajectory through that point, becomes NaN, which a solver sees as a
    failed trial step (a Newton step leaving the domain of the metric) rather than an exception
    for the batch.

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
        b = nan_unless(ok, b.expand(*shape, d))
        return a, b

    return safe


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
    s, f = rmath.dual_terms(q, t, lam)
    c1 = safe_div(f, s) * inv_det
    c2 = c1 * f
    u = [c1 * wi - c2 * zi for wi, zi in zip(w, z, strict=True)]
    alpha = f - _dot(bc, u)
    scale = safe_div(f, 2.0 * alpha)
    return torch.stack(torch.broadcast_tensors(*u), -1), f, lam, scale, spd


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
