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
The integrator is `finslerlib.geodesics.transport_along_geodesic` (below the manifolds, the metric
as a function); this module is its front end on manifolds.

**Closed forms.** Constant Randers data: $N = 0$, the transport is the identity (exact). The Funk
ball is projectively flat with $G = \tfrac12 F y$, so $N = \tfrac12 (F I + y\, F_y^\top)$ and along
$\exp_x(t u)$ (velocity $e^{-F_0 t} u$, $F_0 = F(x, u)$) the solution is
$U(t) = e^{-F_0 t/2}\big(v - \tfrac{c}{F_0^2} u\big) + \tfrac{c}{F_0^2} e^{-F_0 t} u$ with
$c = g_u(u, v)$ (`funk_transport`, i.e. `finslerlib.math.funk.transport`): vectors
$g_u$-orthogonal to $u$ shrink by $e^{-F_0/2}$ in the
chart, $u$ follows the velocity. Under a Killing wind $W$ of the navigation base, the flow
$\varphi_s$ of $W$ preserves $h$ and $W$, hence is an isometry of $F$, and the transport commutes
with it: $P_{\varphi_s\circ\gamma}(d\varphi_s v) = d\varphi_s P_\gamma(v)$; there is no simpler closed
form in general, so it is integrated numerically.

**Navigation.** A manifold with its own `geodesic_transport(x, u, v, time=, steps=)` method
(`finslerlib.Navigation`) is delegated to: it integrates in a chart of its base with the chart's
navigation data $(\lambda(p)^2 I, W)$ and pushes back with the chart's differential: the
identity chart on `Euclidean` and the stereographic models, the Poincaré ball on `Lorentz`, and
on `Sphere` stereographic projection after the isometry of the base (`Domain.centring`) that
sends the start point $x$ to $e_0$ (so the chart is centred at $x$ and its pole is the antipode
$-x$: a geodesic whose $h$-length stays below $\pi$ stays inside it). The chart is an isometry of
the Randers data, so the transported vector is the chart-free one.

Scope: open subsets of $\mathbb{R}^D$ (`ambient_dim == dim`) with `coefficients(x)`, and
manifolds with a `geodesic_transport` method (`Navigation`, any base); other embedded domains
raise `NotImplementedError` (their curvature is available, their geodesics come from their own
manifolds).
"""

from __future__ import annotations

import torch

from finslerlib.curvature._chart import ambient_dim, prepare, raw_coefficient_fn
from finslerlib.geodesics.transport import GeodesicTransport, transport_along_geodesic
from finslerlib.math.funk import transport as funk_transport

__all__ = [
    "GeodesicTransport",
    "geodesic_transport",
    "transp_follow_expmap",
    "transp_follow_retraction",
    "transp",
    "funk_transport",
]


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
            or one with its own `geodesic_transport` method (`Navigation` over any of its bases:
            points and vectors in ambient coordinates;
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
    own = getattr(manifold, "geodesic_transport", None)
    if callable(own):
        return own(x, u, v, time=time, steps=steps)
    if ambient_dim(manifold) != int(manifold.dim):
        raise NotImplementedError(
            f"parallel transport is implemented for open subsets of R^D; {type(manifold).__name__} has "
            f"ambient_dim {ambient_dim(manifold)} > dim {manifold.dim}"
        )
    steps = _default_steps(manifold, steps)
    batch, (xf, uf, vf) = prepare(manifold, ("x", "u", "v"), x, u, v)
    out = transport_along_geodesic(raw_coefficient_fn(manifold), xf, uf, vf, time=time, steps=steps)
    n = xf.shape[-1]
    return GeodesicTransport(*(t.reshape(*batch, n) for t in out))


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
