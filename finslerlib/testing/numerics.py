r"""Numerical oracles of the conformance kit: autograd derivatives, a minimizer over unit tangent
directions and a Newton solve of the dual norm's supremum, all computed from `norm` alone.

Functions of tangent vectors are evaluated in coordinates `c` of an orthonormal tangent basis
`E` (`[K, N, n]`, from `sampling.tangent_basis`): $v = E c$, so embedded domains are optimized
over their tangent spaces. Plain torch on purpose (`torch.optim` imports the compiler stack,
seconds on first use).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["batched_jacobian", "half_sq_grad", "minimize_on_unit_sphere", "dual_norm_sup", "DualSup"]


def batched_jacobian(fn: Callable, v: torch.Tensor) -> torch.Tensor:
    """`J[k, i, j] = d fn(v)[k, i] / d v[k, j]` for a sample-wise map `[K, n] -> [K, m]`."""
    v = v.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(v)
        rows = [torch.autograd.grad(out[:, i].sum(), v, retain_graph=True)[0] for i in range(out.shape[-1])]
    return torch.stack(rows, dim=-2)


def half_sq_grad(norm_fn: Callable, v: torch.Tensor, *, create_graph=False) -> torch.Tensor:
    r"""Autograd $\partial_v \tfrac12 F(v)^2$, sample-wise."""
    v = v if v.requires_grad else v.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad((0.5 * norm_fn(v) ** 2).sum(), v, create_graph=create_graph)
    return grad


def minimize_on_unit_sphere(fn: Callable, starts: torch.Tensor, *, iters: int):
    """Minimize a sample-wise `fn(c)` over unit `c` from candidate starts `[C, K, n]`.

    Best candidate per sample, then Riemannian gradient descent on the sphere along the
    normalized gradient (steps are angles, so the scale of `fn` does not matter) with a
    per-sample backtracking step (never accepts an increase). Returns `(min_value [K], argmin [K, n])`.
    """
    starts = starts / starts.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        values = torch.nan_to_num(torch.stack([fn(s) for s in starts.unbind(0)]), nan=math.inf)
        u = starts[values.argmin(0), torch.arange(starts.shape[1])]
        val = fn(u)
    step = torch.ones_like(val)
    for _ in range(iters):
        w = u.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(fn(w).sum(), w)
        g = torch.nan_to_num(g - (g * u).sum(-1, keepdim=True) * u)
        g = g / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        with torch.no_grad():
            step = (step * 2).clamp_max(1.0)
            for _ in range(30):
                trial = u - step.unsqueeze(-1) * g
                trial = trial / trial.norm(dim=-1, keepdim=True)
                new = fn(trial)
                better = new < val
                if bool((better | (step < 1e-8)).all()):  # converged samples stop shrinking
                    break
                step = torch.where(better, step, 0.5 * step)
            u = torch.where(better.unsqueeze(-1), trial, u)
            val = torch.where(better, new, val)
            if not bool(better.any()):  # no sample moves by more than 1e-8 rad: converged
                break
    return val, u


class DualSup(NamedTuple):
    """Result of `dual_norm_sup`."""

    value: torch.Tensor
    r"""$\xi(v)/F(v)$ at the best `v`, `[K]`: a lower bound of $F^*(\xi)$."""
    argmax: torch.Tensor
    """The best `v`, coordinates `[K, n]`."""
    converged: torch.Tensor
    """bool `[K]`: the estimated relative gap is below `gap_rtol`."""
    gap: torch.Tensor
    r"""Estimated relative gap $1 - \text{value} / F^*$ from the last Newton decrement, `[K]`."""


def dual_norm_sup(norm_fn: Callable, xi: torch.Tensor, starts: torch.Tensor, *, iters: int,
                  gap_rtol: float) -> DualSup:
    r"""$\sup_{v \ne 0} \xi(v) / F(v)$ computed from `norm_fn(c)` alone (no dual norm, no Legendre map).

    The sup is attained where $\psi(v) = \xi(v) - \tfrac12 F(v)^2$ is maximal (strongly concave:
    its maximum is $\tfrac12 F^*(\xi)^2$ at $v = \ell^{-1}(\xi)$). Start from the best candidate
    direction of `starts` (`[C, K, n]`), at the optimal length along it, and take damped Newton
    steps with the autograd gradient and Hessian of $\tfrac12 F^2$ until the Newton decrement
    $\lambda^2 = r^\top H^{-1} r$ (an estimate of $F^{*2} - \text{value}^2$) is below
    `gap_rtol` relative, for every sample, or `iters` steps. Whatever the iterate, the value
    $\xi(v)/F(v)$ is a lower bound of $F^*(\xi)$ (for a convex `F`).

    Args:
        norm_fn: sample-wise `F` of coordinates `[K, n] -> [K]`.
        xi: covector coordinates, `[K, n]`.
        starts: candidate directions `[C, K, n]`.
        iters: most Newton steps.
        gap_rtol: relative gap at which a sample counts as converged.
    """
    k = torch.arange(starts.shape[1])
    with torch.no_grad():
        ratios = torch.stack([(xi * s).sum(-1) / norm_fn(s) for s in starts.unbind(0)])
        u = starts[torch.nan_to_num(ratios, nan=-math.inf).argmax(0), k]
        # along a fixed direction u, psi(c u) is maximal at c = xi(u) / F(u)^2
        v = u * ((xi * u).sum(-1) / norm_fn(u) ** 2).clamp_min(0).unsqueeze(-1)
        v = torch.where(torch.isfinite(v) & (v.norm(dim=-1, keepdim=True) > 0), v, u)

    def psi(w):
        return (xi * w).sum(-1) - 0.5 * norm_fn(w) ** 2

    gap = torch.full(xi.shape[:-1], math.inf, dtype=xi.dtype, device=xi.device)
    for _ in range(iters):
        grad = half_sq_grad(norm_fn, v).detach()
        hess = batched_jacobian(lambda w: half_sq_grad(norm_fn, w, create_graph=True), v).detach()
        hess = 0.5 * (hess + hess.mT)
        rhs = xi - grad
        chol, info = torch.linalg.cholesky_ex(hess)
        newton = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
        pd = info == 0
        # where the Hessian is not positive definite (a broken norm), take a gradient step
        newton = torch.nan_to_num(torch.where(pd.unsqueeze(-1), newton, rhs))
        with torch.no_grad():
            value = (xi * v).sum(-1) / norm_fn(v)
            decrement = (rhs * newton).sum(-1)
            gap = torch.where(pd, decrement.abs() / (2 * value.abs() ** 2).clamp_min(1e-300),
                              torch.full_like(gap, math.inf))
            if bool((gap <= gap_rtol).all()):
                break
            base = psi(v)
            scale = torch.ones_like(base)
            for _ in range(40):  # backtracking: never accept a step that lowers psi
                better = psi(v + scale.unsqueeze(-1) * newton) >= base
                if bool((better | (scale < 1e-12)).all()):  # converged samples stop shrinking
                    break
                scale = torch.where(better, scale, 0.5 * scale)
            trial = v + scale.unsqueeze(-1) * newton
            v = torch.where((psi(trial) >= base).unsqueeze(-1), trial, v)
    with torch.no_grad():
        value = (xi * v).sum(-1) / norm_fn(v)
    return DualSup(value, v, gap <= gap_rtol, gap)
