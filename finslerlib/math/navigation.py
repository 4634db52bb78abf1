r"""Zermelo navigation over a Riemannian base, and the exact geodesics of Killing winds.

Pure tensor functions (no state). The Riemannian base is an argument `base`: any object with the
methods of `finslerlib.manifolds.domains.Domain` these functions call (`inner`, `dist`, `expmap`,
`logmap`, `dist_slope`, and for quadrics `has_form`, `form_covector`, `form_chord`,
`form_distance`); this module imports none of them.

The navigation norm, with $\lambda = 1 - |W|_h^2$ and $t = \langle W, v\rangle_h$:
$F(v) = (\sqrt{\lambda |v|_h^2 + t^2} - t)/\lambda$, evaluated as $|v|_h^2 / (s + t)$ when $t > 0$
(no cancellation). Killing winds (isometric flows $\varphi_t$) have exact geodesics
$\exp_x(v) = \varphi_{F(v)}(\exp^h_x(v - F(v) W(x)))$, and $d(x \to y)$ is the root $T$ of
$d_h(x, \varphi_{-T}(y)) = T$ (`killing_arrival_time`); see docs/concepts/navigation-curved.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from finslerlib.math.arrival import use_arrival
from finslerlib.math.elementary import rowsum
from finslerlib.math.pairwise import safe_div, safe_sqrt

__all__ = [
    "norm",
    "dual_norm",
    "legendre",
    "inverse_legendre",
    "ArrivalTime",
    "Spectrum",
    "reduce_spectrum",
    "killing_arrival_time",
    "failure_message",
    "killing_distance",
    "killing_expmap",
    "killing_logmap",
]


# ------------------------------------------------------------------ the navigation norm
def norm(vv: torch.Tensor, wv: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
    r"""Navigation norm from $h$-inner products: $F = (\sqrt{\lambda |v|^2 + t^2} - t)/\lambda$.

    $\lambda = 1 - |W|_h^2$, $t = \langle W, v\rangle_h$; computed as $|v|^2 / (s + t)$ when $t > 0$.

    Args:
        vv: Tensor, $|v|_h^2$.
        wv: Tensor, $\langle W, v\rangle_h$.
        ww: Tensor, $|W|_h^2 < 1$.

    Returns:
        Tensor, $F(v)$, broadcast shape.

    Example:
        >>> norm(torch.tensor(2.25), torch.tensor(0.75), torch.tensor(0.25))  # v = 1.5 W, |W| = 0.5
        tensor(1.)
    """
    lam = 1.0 - ww
    s = safe_sqrt(lam * vv + wv * wv)
    return torch.where(wv > 0, safe_div(vv, s + wv), (s - wv) / lam)


def dual_norm(xi_xi: torch.Tensor, xi_w: torch.Tensor) -> torch.Tensor:
    r"""Dual norm $F^*(\xi) = |\xi|_{h^{-1}} + \xi(W)$ from $|\xi|_{h^{-1}}^2$ and $\xi(W)$.

    Args:
        xi_xi: Tensor, $|\xi|_{h^{-1}}^2$ of a restricted covector.
        xi_w: Tensor, $\xi(W)$.

    Returns:
        Tensor.

    Example:
        >>> dual_norm(torch.tensor(1.0), torch.tensor(0.5))
        tensor(1.5000)
    """
    return safe_sqrt(xi_xi) + xi_w


def legendre(v_flat: torch.Tensor, w_flat: torch.Tensor, vv, wv, ww) -> torch.Tensor:
    r"""Legendre map $\ell(v) = F\,(v - F W)^\flat / s$, $s = \sqrt{\lambda |v|_h^2 + t^2}$.

    (From $\tfrac12 \partial_v F^2$ of the implicit equation $|v - F W|_h = F$.) $\ell(0) = 0$.

    Args:
        v_flat: Tensor, shape `[..., N]`, $h v$.
        w_flat: Tensor, shape `[..., N]`, $h W$.
        vv: Tensor, shape `[..., 1]`, $|v|_h^2$.
        wv: Tensor, shape `[..., 1]`, $\langle W, v\rangle_h$.
        ww: Tensor, shape `[..., 1]`, $|W|_h^2$.

    Returns:
        Tensor, shape `[..., N]`: a covector.

    Example:
        >>> one = torch.ones(1)
        >>> legendre(torch.tensor([1.0, 0.0]), torch.zeros(2), one, 0 * one, 0 * one)
        tensor([1., 0.])
    """
    f = norm(vv, wv, ww)
    s = safe_sqrt((1.0 - ww) * vv + wv * wv)
    return safe_div(f, s) * (v_flat - f * w_flat)


def inverse_legendre(xi_sharp: torch.Tensor, wind: torch.Tensor, xi_xi, xi_w) -> torch.Tensor:
    r"""Inverse Legendre map $\ell^{-1}(\xi) = F^*(\xi)\,(\xi^\sharp / |\xi|_{h^{-1}} + W)$.

    Args:
        xi_sharp: Tensor, shape `[..., N]`, $h^{-1}\xi$ of a restricted covector.
        wind: Tensor, shape `[..., N]`, $W$.
        xi_xi: Tensor, shape `[..., 1]`, $|\xi|_{h^{-1}}^2$.
        xi_w: Tensor, shape `[..., 1]`, $\xi(W)$.

    Returns:
        Tensor, shape `[..., N]`: a tangent vector.

    Example:
        >>> one = torch.ones(1)
        >>> inverse_legendre(torch.tensor([1.0, 0.0]), torch.zeros(2), one, 0 * one)
        tensor([1., 0.])
    """
    n = safe_sqrt(xi_xi)
    return (1.0 + safe_div(xi_w, n)) * xi_sharp + (n + xi_w) * wind


# ------------------------------------------------------------------ Killing winds: exact geodesics
class ArrivalTime(NamedTuple):
    """Per-pair report of `killing_arrival_time` (flat batch `[B]`).

    Attributes:
        time: the root $T = d(x \\to y)$.
        residual: $|d_h(x, \\varphi_{-T} y) - T|$ at the returned root.
        tolerance: the residual bound the pair had to meet.
        converged: bool, `residual <= tolerance` or the root bracketed within `tolerance`.
        iterations: the number of iterations run.
    """

    time: torch.Tensor
    residual: torch.Tensor
    tolerance: torch.Tensor
    converged: torch.Tensor
    iterations: int


class Spectrum(NamedTuple):
    """A linear flow's generator $A = V \\Lambda V^{-1}$ reduced for `killing_arrival_time`.

    One eigenvalue per conjugate pair (its coefficient doubled) and the real ones; zero
    eigenvalues are dropped (they add nothing to $\\langle x, e^{-TA} y\\rangle - \\langle x, y\\rangle$).

    Attributes:
        lam_a: Tensor `[m]`, real parts of the kept eigenvalues.
        lam_b: Tensor `[m]`, imaginary parts (0 for real eigenvalues).
        left: Tensor `[N, 2m]`, real and imaginary parts of the kept columns of $V$ times their
            weight (1 or 2), side by side.
        right: Tensor `[N, 2m]`, real and imaginary parts of the kept rows of $V^{-1}$, transposed.
        rotation: whether every kept eigenvalue is purely imaginary.
    """

    lam_a: torch.Tensor
    lam_b: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    rotation: bool


def reduce_spectrum(lam: torch.Tensor, vec: torch.Tensor, inv: torch.Tensor) -> Spectrum:
    """Reduce an eigen-decomposition `(lam, V, V^{-1})` (complex) to a `Spectrum`.

    Args:
        lam: complex Tensor `[N]`.
        vec: complex Tensor `[N, N]`, eigenvectors as columns.
        inv: complex Tensor `[N, N]`, the inverse of `vec`.

    Returns:
        `Spectrum`.

    Example:
        >>> A = torch.tensor([[0.0, -0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
        >>> lam, vec = torch.linalg.eig(A)
        >>> spec = reduce_spectrum(lam, vec, torch.linalg.inv(vec))
        >>> spec.lam_b, spec.rotation
        (tensor([0.5000], dtype=torch.float64), True)
    """
    eps = torch.finfo(lam.real.dtype).eps
    tiny = 64 * eps * (1.0 + float(lam.abs().max()))
    pair = lam.imag > tiny
    real = lam.imag.abs() <= tiny
    keep = (lam.abs() > tiny) & (pair | real)
    weight = torch.where(pair, 2.0, 1.0)[keep].to(vec.dtype)
    lam_a = lam.real[keep]
    lam_b = torch.where(pair, lam.imag, torch.zeros_like(lam.imag))[keep]
    left = vec[:, keep] * weight
    right = inv[keep].mT
    return Spectrum(
        lam_a, lam_b, torch.cat([left.real, left.imag], -1), torch.cat([right.real, right.imag], -1),
        bool((lam_a.abs() <= tiny).all()),
    )


def _step(t, g, slope, lo, hi, smin, smax, g_prev):
    """One safeguarded Newton step per pair: `(t_new, lo, hi)`.

    The bracket shrinks to the side of the root that `g`'s sign shows; the Newton step (slope
    clamped to its known bounds) is taken when it lands strictly inside the bracket and the last
    step at least halved $|g|$; otherwise the bracket's midpoint (bisection). So the bracket
    halves at least every other step: convergence for every pair, fast (quadratic) near the root.
    """
    lo = torch.where(g > 0, t, lo)
    hi = torch.where(g < 0, t, hi)
    newton = t - g / torch.clamp(slope - 1.0, min=smin, max=smax)
    slow = g.abs() > 0.5 * g_prev.abs()
    take = (newton > lo) & (newton < hi) & ~slow
    return torch.where(take, newton, 0.5 * (lo + hi)), lo, hi


class _Increment(NamedTuple):
    r"""Per-pair coefficients of $s(T) - s(0) = \mathrm{Re} \sum_i c_i (e^{-\lambda_i T} - 1)$.

    $c = c_r + i c_i$ (each `[B, m]`), $\lambda = a + ib$ (each `[m]`). For rotations ($a = 0$)
    `rot` holds $(-2 c_r, b c_i, -2 b c_i, -b c_r)$: then
    $s(T) - s(0) = -2 c_r \sin^2(bT/2) + c_i \sin bT$ (no cancellation at small $T$) and
    $s'(T) = b c_i - 2 b c_i \sin^2(bT/2) - b c_r \sin bT$.
    """

    cr: torch.Tensor
    ci: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    rot: tuple | None

    @staticmethod
    def of(cr, ci, a, b, rotation: bool):
        """The coefficients, with the rotation terms precomputed when `rotation`."""
        rot = None
        if rotation:
            bci = b * ci
            rot = (-2.0 * cr, bci, -2.0 * bci, -b * cr)
        return _Increment(cr, ci, a, b, rot)

    def at(self, t):
        """`(s(T) - s(0), s'(T))` at times `t` `[B, 1]`, shapes `[B, 1]`."""
        cr, ci, a, b, rot = self
        bt = t * b
        sn = torch.sin(bt)
        hs2 = torch.sin(bt.mul_(0.5)).square_()  # (1 - cos bT) / 2
        if rot is not None:
            cr2, bci, bci2, bcr = rot
            s_delta = torch.addcmul(ci * sn, cr2, hs2)
            ds = torch.addcmul(bci, bci2, hs2).addcmul_(bcr, sn)
        else:
            cm1 = -2.0 * hs2  # cos bT - 1
            em = torch.expm1(-t * a)
            e = em + 1.0
            rc = torch.addcmul(cr * (1.0 + cm1), ci, sn)  # Re(c e^{-ibT})
            s_delta = cr * (em * (1.0 + cm1) + cm1) + ci * e * sn
            ds = -e * (a * rc + b * (cr * sn - ci * (1.0 + cm1)))
        if cr.shape[-1] != 1:
            s_delta, ds = rowsum(s_delta, keepdim=True), rowsum(ds, keepdim=True)
        return s_delta, ds

    def take(self, idx):
        """The coefficients of the pairs `idx`."""
        rot = None if self.rot is None else tuple(c[idx] for c in self.rot)
        return _Increment(self.cr[idx], self.ci[idx], self.a, self.b, rot)


# Newton steps taken from the first-order start before the one convergence check; the pairs not
# converged then (strong winds, the cut locus) go on with the safeguarded iteration
_NEWTON_STEPS = 4


def _scalar_arrival(base, x, y, w, spec: Spectrum, max_iter: int) -> ArrivalTime:
    """`killing_arrival_time` on a quadric base with a `Spectrum`: per-pair state `[B, 1]`.

    `_NEWTON_STEPS` plain Newton steps (slope clamped to its bounds, the iterate to the bracket)
    with no host synchronization, one check, then the safeguarded iteration (`_step`) on the
    pairs not converged yet.
    """
    sphere = float(getattr(base, "form_curvature", 0.0)) == 1.0
    kernel = use_arrival(x, spec.lam_b.shape[0]) if sphere and spec.rotation else None
    if kernel is not None:
        # the same iteration, pairs in lockstep in compiled code (see `finslerlib.math.arrival`)
        t, g, tol, done, it = kernel.arrival(
            base.form_covector(x), y, w.reshape(-1),
            spec.left.to(x.dtype), spec.right.to(x.dtype), spec.lam_b.to(x.dtype), max_iter,
            max(0, min(_NEWTON_STEPS, max_iter - 1)),
        )
        return ArrivalTime(t, g, tol, done, it)
    eps = torch.finfo(x.dtype).eps
    w = w.unsqueeze(-1)
    gx = base.form_covector(x)
    # c_i = (V^T G x)_i (V^{-1} y)_i in real arithmetic (no complex copies of the points)
    m = spec.lam_a.shape[0]
    xl, yr = gx @ spec.left.to(x.dtype), y @ spec.right.to(x.dtype)
    xr_, xi_, yr_, yi_ = xl[..., :m], xl[..., m:], yr[..., :m], yr[..., m:]
    inc = _Increment.of(xr_ * yr_ - xi_ * yi_, xr_ * yi_ + xi_ * yr_, spec.lam_a, spec.lam_b, spec.rotation)
    q0 = base.form_chord(x, y)
    # s'(0) = Re(-lam c)
    s0 = inc.rot[1] if inc.rot is not None else inc.b * inc.ci - inc.a * inc.cr
    d0, s0 = base.form_distance(q0, 0.0, s0 if m == 1 else rowsum(s0, keepdim=True))
    opw, omw = 1.0 + w, 1.0 - w
    lo, hi = d0 / opw, d0 / omw
    smin, smax = opw.neg(), omw.neg()
    tol = hi.add(1.0).mul_(64.0 * eps)
    # the first-order expansion of the arrival time in the wind: T = d0 / (1 - s0)
    t = torch.div(d0, s0.neg_().add_(1.0).clamp_(min=omw, max=opw)).clamp_(min=lo, max=hi)
    # g(T) = d_h(x, phi_{-T} y) - T is decreasing with g' in [smin, smax]: clamped Newton steps,
    # kept inside the bracket [lo, hi]
    steps = max(0, min(_NEWTON_STEPS, max_iter - 1))
    for _ in range(steps):
        d, slope = base.form_distance(q0, *inc.at(t))
        step = d.sub_(t).div_(slope.sub_(1.0).clamp_(min=smin, max=smax))
        t = torch.sub(t, step).clamp_(min=lo, max=hi)
    d, slope = base.form_distance(q0, *inc.at(t))
    g = d - t
    excess = g.abs().sub_(tol)
    done = excess <= 0
    it = steps + 1
    # one max instead of a boolean all (a NaN residual propagates to it and fails the test)
    if not bool(excess.max() <= 0):
        idx = (~done).squeeze(-1).nonzero().squeeze(-1)
        sub = _safeguarded(
            base, q0[idx], inc.take(idx), t[idx], g[idx], slope[idx], lo[idx], hi[idx],
            smin[idx], smax[idx], tol[idx], max_iter - it,
        )
        t, g, done = t.clone(), g.clone(), done.clone()
        t[idx], g[idx], done[idx] = sub[0], sub[1], sub[2]
        it += sub[3]
    return ArrivalTime(t.squeeze(-1), g.abs().squeeze(-1), tol.squeeze(-1), done.squeeze(-1), it)


def _safeguarded(base, q0, inc, t, g, slope, lo, hi, smin, smax, tol, max_iter):
    """The safeguarded Newton iteration (`_step`) from `(t, g(t), g'(t) + 1)`, on a few pairs.

    Returns `(t, g, converged, iterations)`, each pair's `t` where `g` was measured; a pair stops
    moving once converged (the residual within `tol`, or the bracket that narrow: near the cut
    locus the rounding error of $d_h$ can exceed `tol`).
    """
    lo = torch.where(g > 0, torch.maximum(lo, t), lo)
    hi = torch.where(g < 0, torch.minimum(hi, t), hi)
    g_prev = torch.full_like(t, float("inf"))
    done = (g.abs() <= tol) | (hi - lo <= tol)
    it = 0
    while it < max_iter and not bool(done.all()):
        new, lo, hi = _step(t, g, slope, lo, hi, smin, smax, g_prev)
        g_prev = g
        t = torch.where(done, t, new)
        d, slope = base.form_distance(q0, *inc.at(t))
        g = d - t
        done = (g.abs() <= tol) | (hi - lo <= tol)
        it += 1
    return t, g, done, it


def killing_arrival_time(
    base,
    x: torch.Tensor,
    y: torch.Tensor,
    wind: Callable[[torch.Tensor], torch.Tensor],
    flow: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    max_iter: int = 100,
    speed_y: torch.Tensor | None = None,
    spectral: Spectrum | None = None,
) -> ArrivalTime:
    r"""The smallest $T \ge 0$ with $d_h(x, \varphi_{-T}(y)) = T$ (no gradients).

    $g(T) = d_h(x, \varphi_{-T} y) - T$ is strictly decreasing: the flow moves $y$ at $h$-speed
    $|W(y)|_h = w < 1$ (constant along the orbit), so $g' \in [-1 - w, -1 + w]$; the root is unique
    and bracketed by $[d_0/(1 + w), d_0/(1 - w)]$, $d_0 = d_h(x, y)$. A safeguarded Newton
    iteration: Newton steps with the closed-form slope (clamped to those bounds) when they land
    inside the bracket and the previous step halved $|g|$, else bisection; it converges for every
    pair. The start is the first-order expansion in the wind, $T = d_0 / (1 - s_0)$ with $s_0$ the
    slope of $d_h(x, \varphi_{-T} y)$ at $T = 0$. A pair converges when
    $|g(T)| \le \tau = 64\,\varepsilon\,(1 + d_0/(1 - w))$, or when the bracket around the root
    is narrower than $\tau$ (then $|T - T^*| \le \tau$; near the cut locus the rounding error of
    $d_h$ can exceed $\tau$).

    With `spectral`, the reduced eigen-decomposition of a linear flow's generator (`Spectrum`), on
    a quadric base (`base.has_form`: the sphere, the hyperboloid) the iteration is scalar per pair:
    $s(T) = \langle x, e^{-TA} y\rangle_G = s(0) + \mathrm{Re} \sum_i c_i\, \mathrm{expm1}(-T\lambda_i)$,
    $c_i = (V^\top G x)_i (V^{-1} y)_i$, and $d_h$ follows from the accurate chord at $T = 0$ plus
    this increment (no cancellation).

    Args:
        base: the Riemannian base (a `finslerlib.manifolds.domains.Domain`).
        x: Tensor, shape `[B, N]`, sources.
        y: Tensor, shape `[B, N]`, targets.
        wind: `x -> W(x)`, shape `[B, N]`.
        flow: `(t, y) -> \varphi_t(y)`, `t` of shape `[B]`.
        max_iter: iteration cap (bisection alone needs about 60 in float64).
        speed_y: optional $|W(y)|_h$, shape `[B]` (computed when omitted).
        spectral: optional `Spectrum` of a linear flow (`reduce_spectrum`).

    Returns:
        `ArrivalTime` with fields of shape `[B]`.

    Example:
        >>> from finslerlib.manifolds.domains import EuclideanDomain
        >>> A = torch.tensor([[0.0, -0.5], [0.5, 0.0]], dtype=torch.float64)
        >>> flow = lambda t, y: (torch.linalg.matrix_exp(t[:, None, None] * A) @ y[..., None])[..., 0]
        >>> x = torch.tensor([[0.2, 0.0]], dtype=torch.float64)
        >>> y = torch.tensor([[0.0, 0.8]], dtype=torch.float64)
        >>> r = killing_arrival_time(EuclideanDomain(2), x, y, lambda p: p @ A.T, flow)
        >>> bool(r.converged), round(r.time.item(), 6)
        (True, 0.750178)
    """
    with torch.no_grad():
        x, y = x.detach(), y.detach()
        eps = torch.finfo(x.dtype).eps
        if speed_y is None:
            wy = wind(y)
            speed_y = safe_sqrt(base.inner(y, wy, wy))
        w = speed_y.detach().clamp(max=1.0 - eps)
        if spectral is not None and base.has_form:
            return _scalar_arrival(base, x, y, w, spectral, max_iter)
        d0 = base.dist(x, y)
        lo, hi = d0 / (1.0 + w), d0 / (1.0 - w)
        # g' lies in [-(1 + w), -(1 - w)]: Newton slopes are clamped to it
        smin, smax = -(1.0 + w), -(1.0 - w)
        tol = 64.0 * eps * (1.0 + hi)
        # first Newton step from T = 0, where g = d0 and the slope is known at z = y
        s0 = base.dist_slope(x, y, d0, wind(y))
        t = torch.clamp(d0 / torch.clamp(1.0 - s0, min=-smax, max=-smin), min=lo, max=hi)
        done = d0 == 0
        g = torch.zeros_like(d0)
        g_prev = torch.full_like(d0, float("inf"))
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            z = flow(-t, y)
            d = base.dist(x, z)
            slope = base.dist_slope(x, z, d, wind(z))
            g = d - t
            done = done | (g.abs() <= tol) | (hi - lo <= tol)
            if bool(done.all()):
                break
            new, lo, hi = _step(t, g, slope, lo, hi, smin, smax, g_prev)
            g_prev = g
            t = torch.where(done, t, new)
        residual = torch.where(d0 == 0, torch.zeros_like(g), g.abs())
        return ArrivalTime(t, residual, tol, done, it)


def failure_message(sol: ArrivalTime) -> str | None:
    """`None` when every pair converged, else a message naming the first failure.

    Example:
        >>> r = ArrivalTime(torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1, dtype=torch.bool), 3)
        >>> failure_message(r) is None
        True
    """
    if bool(sol.converged.all()):
        return None
    i = (~sol.converged).nonzero()[0, 0]
    return (
        f"Killing-wind arrival time did not converge for {(~sol.converged).sum().item()} pairs "
        f"(first: residual {sol.residual[i].item():.3g} > tolerance {sol.tolerance[i].item():.3g} "
        f"after {sol.iterations} iterations)"
    )


def killing_distance(
    base, x, y, wind, flow, *, max_iter: int = 100, speed_y=None, spectral=None, on_failure: str = "raise"
) -> torch.Tensor:
    r"""Forward distance $d(x \to y) = T$ for a Killing wind, differentiable by the implicit
    function theorem: $dT = -\,dG / \partial_T G$ with $G = d_h(x, \varphi_{-T} y) - T$.

    Gradients reach `x`, `y` and whatever `wind`/`flow` depend on, without differentiating
    through the iterations; they are finite (zero) at $x = y$.

    Args:
        base: the Riemannian base (a `finslerlib.manifolds.domains.Domain`).
        x: Tensor, shape `[B, N]`.
        y: Tensor, shape `[B, N]`.
        wind: `x -> W(x)`.
        flow: `(t, y) -> \varphi_t(y)`.
        max_iter: iteration cap of the root find.
        speed_y: optional $|W(y)|_h$, shape `[B]`.
        spectral: optional eigen-decomposition of a linear flow (see `killing_arrival_time`).
        on_failure: `"raise"` (`RuntimeError`) or `"nan"` (NaN for pairs that did not converge).

    Returns:
        Tensor, shape `[B]`.

    Raises:
        RuntimeError: a pair did not converge and `on_failure="raise"`.

    Example:
        >>> from finslerlib.manifolds.domains import EuclideanDomain
        >>> A = torch.tensor([[0.0, -0.5], [0.5, 0.0]], dtype=torch.float64)
        >>> flow = lambda t, y: (torch.linalg.matrix_exp(t[:, None, None] * A) @ y[..., None])[..., 0]
        >>> x = torch.tensor([[0.2, 0.0]], dtype=torch.float64, requires_grad=True)
        >>> y = torch.tensor([[0.0, 0.8]], dtype=torch.float64)
        >>> killing_distance(EuclideanDomain(2), x, y, lambda p: p @ A.T, flow).backward()
        >>> x.grad.shape
        torch.Size([1, 2])
    """
    if on_failure not in ("raise", "nan"):
        raise ValueError(f"on_failure must be 'raise' or 'nan', got {on_failure!r}")
    sol = killing_arrival_time(base, x, y, wind, flow, max_iter=max_iter, speed_y=speed_y, spectral=spectral)
    message = failure_message(sol)
    t = sol.time
    if message is not None:
        if on_failure == "raise":
            raise RuntimeError(message)
        t = torch.where(sol.converged, t, torch.full_like(t, float("nan")))
    if not torch.is_grad_enabled():
        return t
    z = flow(-t, y)
    g = base.dist(x, z) - t
    if not g.requires_grad:
        return t
    with torch.no_grad():
        zd = z.detach()
        d = base.dist(x.detach(), zd)
        slope = base.dist_slope(x.detach(), zd, d, wind(zd)) - 1.0
        slope = torch.where((d > 0) & (slope < 0), slope, -torch.ones_like(slope))
    return t - (g - g.detach()) / slope


def killing_expmap(base, x, v, wind_x, f, flow) -> torch.Tensor:
    r"""Exact exponential map of a Killing wind: $\varphi_{F}(\exp^h_x(v - F\, W(x)))$, $F = F(x, v)$.

    Args:
        base: the Riemannian base (a `finslerlib.manifolds.domains.Domain`).
        x: Tensor, shape `[B, N]`.
        v: Tensor, shape `[B, N]`, tangent.
        wind_x: Tensor, shape `[B, N]`, $W(x)$.
        f: Tensor, shape `[B]`, $F(x, v)$.
        flow: `(t, y) -> \varphi_t(y)`.

    Returns:
        Tensor, shape `[B, N]`.

    Example:
        >>> from finslerlib.manifolds.domains import EuclideanDomain
        >>> flow = lambda t, y: y + t[:, None] * torch.tensor([0.5, 0.0])
        >>> wind = torch.tensor([[0.5, 0.0]])
        >>> killing_expmap(EuclideanDomain(2), torch.zeros(1, 2), torch.tensor([[1.5, 0.0]]), wind,
        ...                torch.tensor([1.0]), flow)
        tensor([[1.5000, 0.0000]])
    """
    return flow(f, base.expmap(x, v - f.unsqueeze(-1) * wind_x))


def killing_logmap(base, x, y, t, wind_x, flow) -> torch.Tensor:
    r"""Exact logarithm of a Killing wind: $\log^h_x(\varphi_{-T} y) + T\, W(x)$, $T = d(x \to y)$.

    Args:
        base: the Riemannian base (a `finslerlib.manifolds.domains.Domain`).
        x: Tensor, shape `[B, N]`.
        y: Tensor, shape `[B, N]`.
        t: Tensor, shape `[B]`, the distance (from `killing_distance`, carrying its gradient).
        wind_x: Tensor, shape `[B, N]`, $W(x)$.
        flow: `(t, y) -> \varphi_t(y)`.

    Returns:
        Tensor, shape `[B, N]`.

    Example:
        >>> from finslerlib.manifolds.domains import EuclideanDomain
        >>> flow = lambda t, y: y + t[:, None] * torch.tensor([0.5, 0.0])
        >>> killing_logmap(EuclideanDomain(2), torch.zeros(1, 2), torch.tensor([[1.5, 0.0]]),
        ...                torch.tensor([1.0]), torch.tensor([[0.5, 0.0]]), flow)
        tensor([[1.5000, 0.0000]])
    """
    return base.logmap(x, flow(-t, y)) + t.unsqueeze(-1) * wind_x
