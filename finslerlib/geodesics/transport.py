r"""Parallel transport along numerical geodesics of a Randers metric given as functions `x -> (a, b)`.

Along a geodesic $\gamma$ with reference vector $\dot\gamma$ the Chern and the Berwald transports
coincide (their coefficients differ by the Landsberg tensor, which vanishes along $y$); the
transport equation is the linear ODE $\dot U^i + N^i{}_j(\gamma, \dot\gamma)\, U^j = 0$ with
$N = \partial G / \partial y$ the nonlinear connection of the spray $G$ (`geodesic_spray`). It
preserves $g_{\dot\gamma}(U, V)$ and sends $\dot\gamma(0)$ to $\dot\gamma(t)$.

`transport_along_geodesic` integrates the geodesic as the Hamiltonian flow of
$H = \tfrac12 F^{*2}$ (`hamiltonian_vector_field`) together with $U$ by classical RK4 ($N U$ is one
`jvp` of the spray); error $O(\text{steps}^{-4})$. The metric is an argument (a function on an
open subset of $\mathbb{R}^D$), so the manifolds build on this module: `RandersField` and the
chart of `Navigation` pass theirs; `finslerlib.curvature.geodesic_transport` is the front end on
manifolds.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.func import jvp, vjp

from finslerlib.geodesics.hamilton import CoefficientFn, guarded, hamiltonian_vector_field
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_sqrt

__all__ = ["GeodesicTransport", "geodesic_spray", "transport_along_geodesic"]


class GeodesicTransport(NamedTuple):
    """Result of a parallel transport along a geodesic.

    Attributes:
        point: Tensor `[..., D]`, $\\gamma(t)$.
        velocity: Tensor `[..., D]`, $\\dot\\gamma(t)$.
        vector: Tensor `[..., D]`, the transported vector $U(t)$.
    """

    point: torch.Tensor
    velocity: torch.Tensor
    vector: torch.Tensor


def _spd_solve(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # Cholesky: nested forward-mode derivatives of torch.linalg.solve are wrong on torch 2.13
    return torch.cholesky_solve(r.unsqueeze(-1), torch.linalg.cholesky_ex(g)[0]).squeeze(-1)


def geodesic_spray(coef: CoefficientFn, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The spray $G^i = \tfrac12 g^{il}\,(\partial_{x^k}\partial_{y^l} L\, y^k - \partial_{x^l} L)$,
    $L = \tfrac12 F^2$, of the Randers metric `coef` (geodesics: $\ddot x + 2 G(x, \dot x) = 0$).

    One `jvp` of `coef` along `y` (the mixed term through the closed-form Legendre map) and one
    `vjp` with the closed-form cotangents $\partial L / \partial a = \frac{F}{2\alpha} y y^\top$,
    $\partial L / \partial b = F y$.

    Args:
        coef: `x -> (a(x), b(x))`.
        z: Tensor, shape `[B, D]`, points.
        y: Tensor, shape `[B, D]`, nonzero vectors.

    Returns:
        Tensor, shape `[B, D]`.

    Example:
        >>> coef = lambda x: (torch.eye(2).expand(*x.shape, 2), 0.1 * x)  # a closed drift b = d(|x|^2 / 20)
        >>> geodesic_spray(coef, torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))  # G = |y|^2 y / (20 F)
        tensor([[0.0500, 0.0000]])
    """
    (a, b), (da, db) = jvp(coef, (z,), (y,))
    mixed = jvp(lambda a_, b_: rmath.legendre(y, a_, b_), (a, b), (da, db))[1]
    _, pullback = vjp(coef, z)
    alpha = safe_sqrt((y * rmath.matvec(a, y)).sum(-1))
    f = alpha + (b * y).sum(-1)
    cot_a = ((f / (2.0 * alpha))[..., None, None] * y[..., :, None] * y[..., None, :]).sum_to_size(a.shape)
    cot_b = (f[..., None] * y).sum_to_size(b.shape)
    (dl_dx,) = pullback((cot_a, cot_b))
    g = rmath.fundamental_tensor(y, a, b).expand(*y.shape, y.shape[-1])
    return 0.5 * _spd_solve(g, mixed - dl_dx)


def transport_along_geodesic(
    coef: CoefficientFn,
    x: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    *,
    time: float = 1.0,
    steps: int = 16,
) -> GeodesicTransport:
    r"""Parallel transport of `v` along $t \mapsto \exp_x(t u)$ from $t = 0$ to `time` (RK4).

    Solves $\dot U + N(\gamma, \dot\gamma) U = 0$ jointly with the Hamiltonian geodesic flow. A
    negative `time` runs backward (the inverse map, to the RK4 accuracy). Rows with `u = 0` return
    `v` (the curve is constant). No input checks beyond finiteness of the result: callers
    validate (`finslerlib.curvature.geodesic_transport` does).

    Args:
        coef: `x -> (a(x), b(x))`, the Randers data on an open subset of $\mathbb{R}^D$.
        x: Tensor, shape `[B, D]`, start points.
        u: Tensor, shape `[B, D]`, initial velocities.
        v: Tensor, shape `[B, D]`, vectors at `x`.
        time: end time.
        steps: RK4 steps.

    Returns:
        `GeodesicTransport(point, velocity, vector)`, each `[B, D]`.

    Raises:
        ValueError: the geodesic leaves the region where the metric is strongly convex (or overflows).

    Example:
        >>> coef = lambda x: (torch.eye(2).expand(*x.shape, 2), 0.2 * torch.sin(x))
        >>> x, u = torch.zeros(1, 2), torch.tensor([[1.0, 0.5]])
        >>> out = transport_along_geodesic(coef, x, u, u)  # the velocity is transported to itself
        >>> torch.allclose(out.vector, out.velocity, atol=1e-4)
        True
    """
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    steps = int(steps)
    still = (u == 0).all(-1, keepdim=True)
    # a placeholder direction where u = 0 (those rows return v unchanged)
    probe = torch.zeros_like(u)
    probe[..., 0] = 1.0
    u_safe = torch.where(still, probe, u)
    p = rmath.legendre(u_safe, *coef(x))
    h = float(time) / steps

    # NaN instead of garbage where a trial point leaves the metric's domain (checked below)
    safe = guarded(coef)

    def field(x_, p_, w_):
        vel, dp = hamiltonian_vector_field(safe, x_, p_)
        nw = jvp(lambda y_: geodesic_spray(coef, x_, y_), (vel,), (w_,))[1]
        return vel, dp, -nw

    xs, ps, ws = x, p, v
    for _ in range(steps):
        k1 = field(xs, ps, ws)
        k2 = field(*(s.add(k, alpha=0.5 * h) for s, k in zip((xs, ps, ws), k1, strict=True)))
        k3 = field(*(s.add(k, alpha=0.5 * h) for s, k in zip((xs, ps, ws), k2, strict=True)))
        k4 = field(*(s.add(k, alpha=h) for s, k in zip((xs, ps, ws), k3, strict=True)))
        xs, ps, ws = (
            s.add(a.add(b, alpha=2.0).add(c, alpha=2.0).add(d), alpha=h / 6.0)
            for s, a, b, c, d in zip((xs, ps, ws), k1, k2, k3, k4, strict=True)
        )
    finite = torch.isfinite(torch.cat([xs, ps, ws], -1)).all(-1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise ValueError(
            f"the geodesic from x = {x[i].tolist()} with u = {u[i].tolist()} leaves the region where "
            f"the metric is strongly convex (or the transport overflowed) before time {time}: "
            f"{int((~finite).sum())} of {finite.numel()} rows are not finite"
        )
    vel = rmath.inverse_legendre(ps, *coef(xs))
    xs = torch.where(still, x, xs)
    vel = torch.where(still, torch.zeros_like(vel), vel)
    ws = torch.where(still, v, ws)
    return GeodesicTransport(xs, vel, ws)
