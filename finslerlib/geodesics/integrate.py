r"""Batched fixed-step integration of the geodesic (Hamiltonian) flow.

Classical 4th-order Runge–Kutta on $t \in [0, 1]$ with `steps` equal steps: global error
$O(\text{steps}^{-4})$, cost `4 * steps` evaluations of the vector field for the whole batch.
Plain eager torch (torch.compile can take it); differentiable by ordinary autograd.
"""

from __future__ import annotations

import functools

import torch

from finslerlib.geodesics.hamilton import CoefficientFn, hamiltonian_vector_field

__all__ = ["geodesic_flow"]


def geodesic_flow(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    p: torch.Tensor,
    *,
    steps: int = 16,
    return_path: bool = False,
    guard: bool = False,
    differentiable: bool = True,
):
    r"""Integrate Hamilton's geodesic equations from $(x, p)$ over $t \in [0, 1]$ with RK4.

    The initial velocity is $\ell_x^{-1}(p)$, so `geodesic_flow(c, x, legendre(x, v))[0]` is
    $\exp_x v$. Accuracy is controlled by `steps` (error $\propto$ `steps`$^{-4}$ times the
    fourth derivative of the geodesic; halve the error estimate by comparing with `2 * steps`).

    Args:
        coefficients: callable `x -> (a, b)` giving the Randers data at the points.
        x: Tensor, shape `[B, D]`, start points.
        p: Tensor, shape `[B, D]`, initial momenta (covectors).
        steps: number of RK4 steps (positive).
        return_path: also return the nodes of the trajectory.
        guard: NaN instead of errors where the metric is not strongly convex (see
            `hamiltonian_vector_field`).
        differentiable: `False` for a flow that no gradient or `torch.func` transform goes through
            (faster; see `hamiltonian_vector_field`).

    Returns:
        `(x1, p1)`, Tensors of shape `[B, D]`: the end point and end momentum; with
        `return_path=True`, `(x1, p1, xs, ps)` where `xs`, `ps` have shape `[steps + 1, B, D]`.

    Example:
        >>> euclid = lambda x: (torch.eye(2), torch.zeros(2))
        >>> x1, p1 = geodesic_flow(euclid, torch.zeros(1, 2), torch.tensor([[1.0, 2.0]]), steps=4)
        >>> x1
        tensor([[1., 2.]])
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    steps = int(steps)
    field = functools.partial(
        hamiltonian_vector_field, coefficients, guard=guard, differentiable=differentiable
    )
    h = 1.0 / steps
    xs, ps = [x], [p]
    for _ in range(steps):
        k1x, k1p = field(x, p)
        # `add(..., alpha=)` fuses the scaling into the addition: on the small tensors of a batch
        # of geodesics the cost is per operation, not per element.
        k2x, k2p = field(x.add(k1x, alpha=0.5 * h), p.add(k1p, alpha=0.5 * h))
        k3x, k3p = field(x.add(k2x, alpha=0.5 * h), p.add(k2p, alpha=0.5 * h))
        k4x, k4p = field(x.add(k3x, alpha=h), p.add(k3p, alpha=h))
        x = x.add(k1x.add(k2x, alpha=2.0).add(k3x, alpha=2.0).add(k4x), alpha=h / 6.0)
        p = p.add(k1p.add(k2p, alpha=2.0).add(k3p, alpha=2.0).add(k4p), alpha=h / 6.0)
        if return_path:
            xs.append(x)
            ps.append(p)
    if return_path:
        return x, p, torch.stack(xs), torch.stack(ps)
    return x, p


def flow_with_coarse(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    p: torch.Tensor,
    *,
    steps: int,
    rows: torch.Tensor | None = None,
):
    r"""`geodesic_flow(..., return_path=True, guard=True, differentiable=False)` plus the end points
    of the same flows at the comparison step count of `discretization_error` (`steps // 2`, or
    `steps + 1` when `steps` is odd).

    With an even `steps`, copies of the rows `rows` (all if `None`) ride along in the same batch
    with twice the step for the first half of the steps: on the small batches of the shooting
    solver a flow costs about the same for twice the rows, so the step-halving error estimate
    needs no flow of its own. Odd `steps`: one more flow.

    Returns:
        `(x1, p1, xs, ps, coarse)`: as `geodesic_flow`, and `coarse` `[R, D]` the end points of
        the rows `rows` at the comparison step count.

    Example:
        >>> euclid = lambda x: (torch.eye(2), torch.zeros(2))
        >>> flow_with_coarse(euclid, torch.zeros(1, 2), torch.tensor([[1.0, 2.0]]), steps=4)[-1]
        tensor([[1., 2.]])
    """
    steps = int(steps)
    rows = torch.arange(x.shape[0], device=x.device) if rows is None else rows
    if steps % 2 or steps < 2:
        fine = geodesic_flow(
            coefficients, x, p, steps=steps, return_path=True, guard=True, differentiable=False
        )
        coarse = geodesic_flow(
            coefficients, x[rows], p[rows], steps=steps + 1, guard=True, differentiable=False
        )[0]
        return (*fine, coarse)
    m = x.shape[0]
    field = functools.partial(hamiltonian_vector_field, coefficients, guard=True, differentiable=False)
    h = torch.cat([x.new_full((m, 1), 1.0 / steps), x.new_full((rows.numel(), 1), 2.0 / steps)])
    xx, pp = torch.cat([x, x[rows]]), torch.cat([p, p[rows]])
    xs, ps = [x], [p]
    coarse = None
    for i in range(steps):
        if i == steps // 2:
            coarse = xx[m:]
            xx, pp, h = xx[:m], pp[:m], h[:m]
        half = 0.5 * h
        k1x, k1p = field(xx, pp)
        k2x, k2p = field(xx + half * k1x, pp + half * k1p)
        k3x, k3p = field(xx + half * k2x, pp + half * k2p)
        k4x, k4p = field(xx + h * k3x, pp + h * k3p)
        sixth = h / 6.0
        xx = xx + sixth * k1x.add(k2x, alpha=2.0).add(k3x, alpha=2.0).add(k4x)
        pp = pp + sixth * k1p.add(k2p, alpha=2.0).add(k3p, alpha=2.0).add(k4p)
        xs.append(xx[:m])
        ps.append(pp[:m])
    return xx, pp, torch.stack(xs), torch.stack(ps), coarse


def simpson_weights(steps: int, *, dtype=None, device=None) -> torch.Tensor:
    """Quadrature weights on `steps + 1` equispaced nodes of `[0, 1]`.

    Composite Simpson (order 4) when `steps` is even, the trapezoid rule otherwise.

    Args:
        steps: number of intervals.

    Returns:
        Tensor, shape `[steps + 1]`, summing to 1.

    Example:
        >>> simpson_weights(2, dtype=torch.float64)
        tensor([0.1667, 0.6667, 0.1667], dtype=torch.float64)
    """
    w = torch.ones(steps + 1, dtype=dtype, device=device)
    if steps % 2 == 0:
        w[1:-1:2] = 4.0
        w[2:-1:2] = 2.0
        return w / (3.0 * steps)
    w[0] = w[-1] = 0.5
    return w / steps
