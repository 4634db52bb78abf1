r"""Parallel transport along geodesics, with the geodesic's velocity as reference vector.

**Which connection.** Along a geodesic $\gamma$ with reference vector $T = \dot\gamma$, the Chern
and the Berwald transports coincide: their coefficients differ by the Landsberg tensor,
$\Gamma^i{}_{jk} = G^i{}_{jk} - L^i{}_{jk}$, and $L^i{}_{jk}\, y^k = 0$, while both satisfy
$\Gamma^i{}_{jk} y^k = G^i{}_{jk} y^k = N^i{}_j := \partial G^i / \partial y^j$. The transport
equation is the linear ODE

$$\dot U^i + N^i{}_j(\gamma, \dot\gamma)\, U^j = 0 .$$

We call it the Chern transport because the property it guarantees is Chern's: the connection is
almost $g$-compatible, $\frac{d}{dt} g_T(U, V) = 2 C_T(D_T T, U, V) = 0$ along a geodesic, so
$g_{\dot\gamma}(U, V)$ is preserved (in particular the $g_{\dot\gamma}$-norm of a transported
momentum), and $\dot\gamma$ is transported to itself ($N \dot\gamma = 2G = -\ddot\gamma$). The
Berwald connection is the same map here; it differs from Chern's only along non-geodesic curves.

**How.** `geodesic_transport` integrates the geodesic as the Hamiltonian flow of
$H = \tfrac12 F^{*2}$ (`finslerlib.geodesics.hamiltonian_vector_field`, the equations behind
`RandersField.expmap`) together with $U$ by classical RK4 ($N U$ is one `jvp` of the spray);
error $O(\text{steps}^{-4})$. Integrating back (negative `time`) inverts it to that accuracy.

**Closed forms.** Constant Randers data: $N = 0$, the transport is the identity (exact). The Funk
ball is projectively flat with $G = \tfrac12 F y$, so $N = \tfrac12 (F I + y\, F_y^\top)$ and along
$\exp_x(t u)$ (velocity $e^{-F_0 t} u$, $F_0 = F(x, u)$) the solution is
$U(t) = e^{-F_0 t/2}\big(v - \tfrac{c}{F_0^2} u\big) + \tfrac{c}{F_0^2} e^{-F_0 t} u$ with
$c = g_u(u, v)$ (`funk_transport`): vectors $g_u$-orthogonal to $u$ shrink by $e^{-F_0/2}$ in the
chart, $u$ follows the velocity. Under a Killing wind $W$ of the navigation base, the flow
$\varphi_s$ of $W$ preserves $h$ and $W$, hence is an isometry of $F$, and the transport commutes
with it: $P_{\varphi_s\circ\gamma}(d\varphi_s v) = d\varphi_s P_\gamma(v)$; there is no simpler closed
form in general, so it is integrated numerically.

**Navigation.** For `finslerlib.Navigation` over every base the transport is integrated in a chart
with the chart's navigation data $(\lambda(p)^2 I, W)$ and pushed back with the chart's
differential: the identity chart on `Euclidean` and the stereographic models, the Poincaré ball
on `Lorentz`, and on `Sphere` stereographic projection after the reflection $R_x$ that sends the
start point $x$ to $e_0$ (so the chart is centred at $x$ and its pole is the antipode $-x$: a
geodesic whose $h$-length stays below $\pi$ stays inside it). The chart is an isometry of the
Randers data, so the transported vector is the chart-free one.

Scope: open subsets of $\mathbb{R}^D$ (`ambient_dim == dim`) with `coefficients(x)`, and
`Navigation` (any base); other embedded domains raise `NotImplementedError` (their curvature is
available, their geodesics come from their own manifolds).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.func import jvp

from finslerlib.curvature._chart import ambient_dim, prepare, raw_coefficient_fn, spray_in_chart
from finslerlib.geodesics import guarded, hamiltonian_vector_field
from finslerlib.math import funk as fmath
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_div

__all__ = [
    "GeodesicTransport",
    "geodesic_transport",
    "transp_follow_expmap",
    "transp_follow_retraction",
    "transp",
    "funk_transport",
]


class GeodesicTransport(NamedTuple):
    """Result of `geodesic_transport`.

    Attributes:
        point: Tensor `[..., D]`, $\\gamma(t)$.
        velocity: Tensor `[..., D]`, $\\dot\\gamma(t)$.
        vector: Tensor `[..., D]`, the transported vector $U(t)$.
    """

    point: torch.Tensor
    velocity: torch.Tensor
    vector: torch.Tensor


def _default_steps(manifold, steps):
    if steps is None:
        solver = getattr(manifold, "solver", None)  # a RandersField's GeodesicSolver
        return int(getattr(solver, "steps", None) or getattr(manifold, "steps", 16))
    if int(steps) < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    return int(steps)


def geodesic_transport(
    manifold,
    x: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    *,
    time: float = 1.0,
    steps: int | None = None,
) -> GeodesicTransport:
    r"""Parallel transport of `v` along the geodesic $t \mapsto \exp_x(t u)$ from $t = 0$ to `time`.

    Solves $\dot U + N(\gamma, \dot\gamma) U = 0$, $N = \partial G / \partial y$, jointly with the
    Hamiltonian geodesic flow by RK4 (see the module docstring: Chern = Berwald transport here).
    Preserves $g_{\dot\gamma}(U, V)$ and maps $\dot\gamma(0)$ to $\dot\gamma(t)$ up to the RK4
    error; a negative `time` runs backward (the inverse map, to the same accuracy). Rows with
    `u = 0` return `v` (the curve is constant).

    Args:
        manifold: a manifold on an open subset of $\mathbb{R}^D$ with `coefficients(x) -> (a, b)`,
            or a `Navigation` over any of its bases (points and vectors in ambient coordinates;
            `u` and `v` are projected onto $T_x M$).
        x: Tensor, shape `[..., D]`, start points.
        u: Tensor, shape `[..., D]`, initial velocities.
        v: Tensor, shape `[..., D]`, vectors at `x` to transport.
        time: end time $t$ (the point reached is $\exp_x(t u)$).
        steps: RK4 steps (default: the manifold's `steps` (`Navigation`: its `steps` option), else 16).

    Returns:
        `GeodesicTransport(point, velocity, vector)`, each `[..., D]`.

    Raises:
        ValueError: bad input (shapes, dtypes, non-finite, invalid metric at `x`), or a geodesic
            that leaves the region where the metric is strongly convex.
        NotImplementedError: embedded domains (`ambient_dim > dim`) other than `Navigation`.

    Example:
        >>> from finslerlib import RandersField
        >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
        >>> x, u = torch.zeros(2), torch.tensor([1.0, 0.5])
        >>> out = geodesic_transport(field, x, u, u)  # the velocity is transported to itself
        >>> torch.allclose(out.vector, out.velocity, atol=1e-4)
        True
    """
    from finslerlib.manifolds.navigation import Navigation  # curvature builds on manifolds

    if isinstance(manifold, Navigation):
        return _navigation_transport(manifold, x, u, v, time=time, steps=steps)
    if ambient_dim(manifold) != int(manifold.dim):
        raise NotImplementedError(
            f"parallel transport is implemented for open subsets of R^D; {type(manifold).__name__} has "
            f"ambient_dim {ambient_dim(manifold)} > dim {manifold.dim}"
        )
    steps = _default_steps(manifold, steps)
    batch, (xf, uf, vf) = prepare(manifold, ("x", "u", "v"), x, u, v)
    coef = raw_coefficient_fn(manifold)
    still = (uf == 0).all(-1, keepdim=True)
    # a placeholder direction where u = 0 (those rows return v unchanged)
    probe = torch.zeros_like(uf)
    probe[..., 0] = 1.0
    uf_safe = torch.where(still, probe, uf)
    p = rmath.legendre(uf_safe, *coef(xf))
    h = float(time) / steps

    # NaN instead of garbage where a trial point leaves the metric's domain (checked below)
    safe = guarded(coef)

    def field(x_, p_, w_):
        vel, dp = hamiltonian_vector_field(safe, x_, p_)
        nw = jvp(lambda y_: spray_in_chart(coef, x_, y_), (vel,), (w_,))[1]
        return vel, dp, -nw

    xs, ps, ws = xf, p, vf
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
            f"the geodesic from x = {xf[i].tolist()} with u = {uf[i].tolist()} leaves the region where "
            f"the metric is strongly convex (or the transport overflowed) before time {time}: "
            f"{int((~finite).sum())} of {finite.numel()} rows are not finite"
        )
    vel = rmath.inverse_legendre(ps, *coef(xs))
    xs = torch.where(still, xf, xs)
    vel = torch.where(still, torch.zeros_like(vel), vel)
    ws = torch.where(still, vf, ws)
    n = xf.shape[-1]
    return GeodesicTransport(xs.reshape(*batch, n), vel.reshape(*batch, n), ws.reshape(*batch, n))


def _sphere_frame(x: torch.Tensor) -> torch.Tensor:
    r"""Orthogonal `R` `[B, N, N]` with `R x = e_0`: the Householder reflection along
    $n = x + s e_0$, $s = \pm 1$ the sign of $x_0$ ($|n|^2 = 2(1 + |x_0|) \ge 2$, well conditioned),
    which sends $x$ to $-s e_0$, followed by flipping the sign of row 0 when $s = 1$."""
    s = torch.where(x[..., :1] > 0, 1.0, -1.0).to(x)
    n = x.clone()
    n[..., :1] = n[..., :1] + s
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    r = eye - 2.0 * n[..., :, None] * n[..., None, :] / (n * n).sum(-1)[..., None, None]
    flip = torch.ones_like(x)
    flip[..., :1] = -s
    return flip[..., :, None] * r


def _navigation_transport(manifold, x, u, v, *, time, steps) -> GeodesicTransport:
    """`geodesic_transport` for `Navigation`: RK4 in a chart (module docstring), mapped back.

    `u` and `v` are projected onto $T_x M$ first (as `Navigation.expmap` does with `u`)."""
    from finslerlib.manifolds.field import RandersField

    m = manifold
    steps = int(m._options["steps"]) if steps is None else _default_steps(m, steps)
    batch, (xf, uf, vf) = prepare(m, ("x", "u", "v"), x, u, v)
    uf, vf = m.proju(xf, uf), m.proju(xf, vf)
    rot = _sphere_frame(xf) if m.kind == "sphere" else None

    def turn(t, back=False):  # ambient coordinates <-> the frame where x is e_0
        if rot is None:
            return t
        return ((rot.mT if back else rot) @ t.unsqueeze(-1)).squeeze(-1)

    def chart_wind(p):
        y = m._chart_inv(p)
        return m._chart_push(y, turn(m.wind_at(turn(y, back=True))))

    field = RandersField.from_navigation(
        None if m.kind == "euclidean" else m._chart_metric, chart_wind, dim=m.dim
    )
    xr = turn(xf)
    out = geodesic_transport(
        field, m._chart(xr), m._chart_push(xr, turn(uf)), m._chart_push(xr, turn(vf)), time=time, steps=steps
    )
    point, vel, vec = (
        turn(t, back=True)
        for t in (
            m._chart_inv(out.point),
            m._chart_pull(out.point, out.velocity),
            m._chart_pull(out.point, out.vector),
        )
    )
    n = xf.shape[-1]
    return GeodesicTransport(point.reshape(*batch, n), vel.reshape(*batch, n), vec.reshape(*batch, n))


def transp_follow_expmap(manifold, x, u, v, *, steps: int | None = None) -> torch.Tensor:
    r"""Parallel transport of `v` from `x` to $\exp_x(u)$ along the geodesic $t \mapsto \exp_x(t u)$.

    Args:
        manifold: see `geodesic_transport`.
        x: Tensor, shape `[..., D]`.
        u: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        steps: RK4 steps (default: the manifold's).

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2), torch.tensor([0.3, 0.0]))  # flat: the identity
        >>> transp_follow_expmap(m, torch.zeros(2), torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5]))
        tensor([0.5000, 0.5000])
    """
    return geodesic_transport(manifold, x, u, v, steps=steps).vector


def transp_follow_retraction(manifold, x, u, v, *, steps: int = 1) -> torch.Tensor:
    r"""Vector transport of `v` to `retr(x, u)`: the parallel transport along $t \mapsto \exp_x(t u)$.

    On an open subset of $\mathbb{R}^D$ every tangent space is $\mathbb{R}^D$, so this linear
    isometry (for $g_{\dot\gamma}$) of $T_x$ is a valid vector transport to the retraction's end
    point; it agrees with the parallel transport to $\exp_x(u)$ and costs no boundary-value solve
    (which `transp(x, retr(x, u), v)` would). This is what geoopt's `RiemannianAdam` uses for its
    momentum through the manifolds' `retr_transp`. One RK4 step by default: optimizer steps are
    short, and the local error of one step, $O(|u|^5)$, is far below the retraction's own
    first-order error; pass more `steps` for long moves.

    Args:
        manifold: see `geodesic_transport`.
        x: Tensor, shape `[..., D]`.
        u: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        steps: RK4 steps (default 1).

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> from finslerlib import RandersField
        >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
        >>> transp_follow_retraction(field, torch.zeros(2), torch.zeros(2), torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """
    return geodesic_transport(manifold, x, u, v, steps=steps).vector


def transp(manifold, x, y, v, *, steps: int | None = None) -> torch.Tensor:
    r"""Parallel transport of `v` from `x` to `y` along the geodesic $x \to y$ (`manifold.logmap`).

    Args:
        manifold: see `geodesic_transport`; needs `logmap`.
        x: Tensor, shape `[..., D]`.
        y: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        steps: RK4 steps (default: the manifold's).

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> from finslerlib import RandersField
        >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
        >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> w = transp(field, x, y, torch.tensor([0.0, 1.0]))
        >>> w.shape
        torch.Size([2])
    """
    return geodesic_transport(manifold, x, manifold.logmap(x, y), v, steps=steps).vector


def funk_transport(
    x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0, reverse: bool = False
) -> torch.Tensor:
    r"""Closed-form parallel transport on the Funk ball along $t \mapsto \exp_x(t u)$, $t \in [0, 1]$.

    $U(1) = e^{-\sigma F_0/2}\, v + \frac{c}{F_0^2}\big(e^{-\sigma F_0} - e^{-\sigma F_0/2}\big)\, u$,
    $F_0 = F(x, u)$, $c = g_u(u, v)$, $\sigma = 1$ (for the reverse metric $F(x, -v)$, whose
    spray is $-\tfrac12 \tilde F y$: $\sigma = -1$ with $\tilde F$, $\tilde g$). From
    $G = \tfrac{\sigma}{2} F y$ and $g_{\dot\gamma}(\dot\gamma, U) = c$ constant (module docstring).

    Args:
        x: Tensor, shape `[..., D]`, points in the ball.
        u: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        radius: ball radius.
        reverse: the reverse Funk metric.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> x, u = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> funk_transport(x, u, u)  # the velocity at exp_x(u): e^{-F} u
        tensor([0.3679, 0.0000])
    """
    sign = -1.0 if reverse else 1.0
    us = sign * u
    f0 = fmath.norm(x, us, radius=radius, keepdim=True)
    c = (fmath.legendre(x, us, radius=radius) * v).sum(-1, keepdim=True) * sign
    half = torch.exp(-0.5 * sign * f0)
    # (e^{-s F} - e^{-s F/2}) / F^2 = e^{-s F/2} expm1(-s F/2) / F^2, finite as F -> 0 with c = O(F)
    coeff = safe_div(c * half * torch.expm1(-0.5 * sign * f0), f0 * f0)
    return half * v + coeff * u
