r"""Gradients of geodesic solutions, attached after the (gradient-free) solve.

The solvers run without an autograd graph; these functions return tensors with the solved values
and the exact first derivatives with respect to the end points and to any parameters the
`coefficients` callable closes over (first order only: no double backward).

* `distance_with_gradient`: the first variation formula,
  $\partial_y d = \ell_y(\dot\gamma(1)) / d$, $\partial_x d = -\ell_x(\dot\gamma(0)) / d$ and
  $\partial_\theta d = \int_0^1 \partial_\theta F(\gamma, \dot\gamma)\, dt$ (Simpson on the
  trajectory nodes). At $x = y$, where $d$ has a kink, the gradient is that of $F(x, y - x)$
  computed like the closed-form `Randers` distance: $\partial_y d = b(x)$, $\partial_x d = -b(x)$.
* `logmap_with_gradient`: the implicit function theorem on the shooting equation
  $x(1; x, p_0) = y$; at $x = y$ the log map is $y - x$ to first order.
"""

from __future__ import annotations

import torch

from finslerlib.geodesics.hamilton import CoefficientFn
from finslerlib.geodesics.integrate import geodesic_flow, simpson_weights
from finslerlib.geodesics.shooting import BoundarySolution, endpoint_jacobian
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_div

__all__ = ["distance_with_gradient", "logmap_with_gradient"]


def distance_with_gradient(
    coefficients: CoefficientFn, x: torch.Tensor, y: torch.Tensor, solution: BoundarySolution
) -> torch.Tensor:
    r"""$d(x \to y) = F(x, \ell_x^{-1}(p_0))$ of solved geodesics, differentiable by the first variation.

    Args:
        coefficients: callable `x -> (a, b)` (its parameters receive gradients).
        x: Tensor, shape `[B, D]`, start points (may require grad).
        y: Tensor, shape `[B, D]`, end points (may require grad).
        solution: the solve of `x -> y` (its `momentum`, `end_momentum`, `path`, `path_momentum`).

    Returns:
        Tensor, shape `[B]`.

    Example:
        >>> from finslerlib.geodesics import shortest_geodesics
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x = torch.zeros(1, 2, dtype=torch.float64)
        >>> y = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
        >>> d = distance_with_gradient(euclid, x, y, shortest_geodesics(euclid, x, y))
        >>> d.backward(); d.detach(), y.grad
        (tensor([5.], dtype=torch.float64), tensor([[0.6000, 0.8000]], dtype=torch.float64))
    """
    with torch.no_grad():
        a0, b0 = coefficients(x.detach())
        d = rmath.norm(rmath.inverse_legendre(solution.momentum, a0, b0), a0, b0)
    if not torch.is_grad_enabled():
        return d
    nodes, moms = solution.path, solution.path_momentum  # [K + 1, B, D]
    # rows whose solve left non-finite data (a failed pair, NaN to the caller): their terms are
    # built from finite stand-ins (the start point, zero momenta), so that a zero upstream gradient
    # stays zero instead of 0 * NaN poisoning the metric parameters' gradient of the other rows
    bad = ~(
        torch.isfinite(nodes).all(-1).all(0)
        & torch.isfinite(moms).all(-1).all(0)
        & torch.isfinite(solution.momentum).all(-1)
        & torch.isfinite(solution.end_momentum).all(-1)
        & torch.isfinite(d)
    )
    p0, p1 = solution.momentum, solution.end_momentum
    if bool(bad.any()):
        nodes = torch.where(bad[None, :, None], x.detach().unsqueeze(0), nodes)
        moms = torch.where(bad[None, :, None], torch.zeros_like(moms), moms)
        p0 = torch.where(bad[:, None], torch.zeros_like(p0), p0)
        p1 = torch.where(bad[:, None], torch.zeros_like(p1), p1)
    scale = torch.where(bad, torch.ones_like(d), d).unsqueeze(-1)
    start = safe_div(p0, scale)
    end = safe_div(p1, scale)
    term = (end * (y - y.detach())).sum(-1) - (start * (x - x.detach())).sum(-1)
    a, b = coefficients(nodes)
    if a.requires_grad or b.requires_grad:
        with torch.no_grad():
            vel = rmath.inverse_legendre(moms, a.detach(), b.detach())
        weights = simpson_weights(nodes.shape[0] - 1, dtype=d.dtype, device=d.device)
        length = (weights.unsqueeze(-1) * rmath.norm(vel, a, b)).sum(0)
        term = term + (length - length.detach())
    trivial = (y.detach() == x.detach()).all(-1)
    if bool(trivial.any()):
        # d(x -> y) = F(x, y - x) + o(|y - x|): its closed-form (safe) gradient at the kink
        ax, bx = coefficients(x)
        kink = rmath.norm(y - x, ax, bx)
        term = torch.where(trivial, kink - kink.detach(), term)
    return d + term


def logmap_with_gradient(
    coefficients: CoefficientFn, x: torch.Tensor, y: torch.Tensor, solution: BoundarySolution, *, steps: int
) -> torch.Tensor:
    r"""$\log_x y = \ell_x^{-1}(p_0)$ of solved geodesics, differentiable by the implicit function theorem.

    $p = p_0 - J^{-1} (x(1; x, p_0, \theta) - y)$ with $J = \partial x(1) / \partial p_0$ (forward-mode
    autograd, `endpoint_jacobian`) has the value $p_0$ and the exact first derivatives of the
    solution of $x(1) = y$.

    Args:
        coefficients: callable `x -> (a, b)`.
        x: Tensor, shape `[B, D]`.
        y: Tensor, shape `[B, D]`.
        solution: the solve of `x -> y`.
        steps: the RK4 steps the solution was computed with.

    Returns:
        Tensor, shape `[B, D]`.

    Example:
        >>> from finslerlib.geodesics import shortest_geodesics
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x, y = torch.zeros(1, 2, dtype=torch.float64), torch.tensor([[3.0, 4.0]], dtype=torch.float64)
        >>> logmap_with_gradient(euclid, x, y, shortest_geodesics(euclid, x, y), steps=16)
        tensor([[3., 4.]], dtype=torch.float64)
    """
    p = solution.momentum
    a, b = coefficients(x)
    chord = y - x
    trivial = (chord.detach() == 0).all(-1)
    needs_grad = any(t.requires_grad for t in (x, y, a, b))
    if torch.is_grad_enabled() and needs_grad:
        with torch.no_grad():
            jac = endpoint_jacobian(coefficients, x.detach(), p, steps=steps)
            eye = torch.eye(x.shape[-1], dtype=jac.dtype, device=jac.device)
            bad = trivial | ~torch.isfinite(jac).all(-1).all(-1)
            jac = torch.where(bad[:, None, None], eye, jac)
        end = geodesic_flow(coefficients, x, p, steps=steps)[0]
        p = p - torch.linalg.solve(jac, (end - y).unsqueeze(-1)).squeeze(-1)
    v = rmath.inverse_legendre(p, a, b)
    # At y = x the log map is 0 with derivative dv/dy = I (exp is C^1 at 0 with d exp = I),
    # while the shooting Jacobian degenerates there (the Legendre map is not differentiable at 0).
    return torch.where(trivial.unsqueeze(-1), chord - chord.detach(), v)
