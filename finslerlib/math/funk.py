r"""Closed forms of the Funk metric of the open ball $B_R = \{x : |x| < R\}$.

(About 600 lines: every closed form of this one metric, both directions, with its derivation and
numerics, kept in one module so that the formulas can be read and checked side by side.)

The Funk metric is the Minkowski functional of the ball seen from $x$:
$F(x, v) = \inf\{t > 0 : x + v / t \in B_R\}$, so $x + v / F(x, v)$ lies on the sphere $|\cdot| = R$.
Solving $|x + v/F|^2 = R^2$ gives, with $Q = R^2 - |x|^2$, $p = \langle x, v\rangle$ and
$s = \sqrt{Q |v|^2 + p^2}$,

$$F(x, v) = \frac{s + p}{Q} = \frac{|v|^2}{s - p},$$

(the second form is used when $p < 0$, where the first one cancels). It is the Randers metric
with $a = I/Q + x x^\top / Q^2$, $b = x / Q$ (navigation data $h = I / R^2$, $W = -x$). For
$R = 1$ these are the formulas of the project reference; the radius-$R$ metric is the pull-back
of the unit one by $x \mapsto x / R$: $F_R(x, v) = F_1(x/R, v/R)$, $d_R(x \to y) = d_1(x/R \to y/R)$,
$\exp_R(x, v) = R \exp_1(x/R, v/R)$. Distances are scale invariant (dimensionless); every formula
below is written directly with $R^2$ (no rescaled copies of the inputs).

Closed forms (all $O(D)$ per point, no `[..., D, D]` tensor except `fundamental_tensor` and
`coefficients`):

* dual norm $F^*(x, \xi) = R|\xi| - \langle \xi, x\rangle$;
* Legendre map $\ell(v) = F\,(v + F x) / s$, inverse $\ell^{-1}(\xi) = F^*(\xi)\,(R \hat\xi - x)$;
* forward distance $d(x \to y) = \operatorname{log1p}\big((Q_x F(x, u) + |u|^2) / Q_y\big)$, $u = y - x$
  (equal to $-\log(1 - F(x, y - x))$ but without the cancellation of $1 - F$ near the
  boundary, nor of a difference of logarithms for nearby points);
* in Gram form, with $G = \langle x, y\rangle$:
  $d(x \to y) = \log\big((R^2 - G + \sqrt{(R^2 - G)^2 - Q_x Q_y}) / Q_y\big)$, i.e.
  $d(x \to y) = d_H(x, y) + \tfrac12 \log(Q_x / Q_y)$ with the Hilbert (Klein) distance
  $d_H = \operatorname{arccosh}\big((R^2 - G) / \sqrt{Q_x Q_y}\big)$;
* unit-speed geodesics are straight: $\exp_x v = x + \frac{1 - e^{-F(x, v)}}{F(x, v)}\, v$,
  $\log_x y = \frac{d(x \to y)}{F(x, y - x)}\,(y - x)$;
* the reverse metric $\tilde F(x, v) = F(x, -v)$ has $\tilde d(x \to y) = d(y \to x)$ and
  $\widetilde\exp_x v = x + \frac{e^{\tilde F} - 1}{\tilde F}\, v$ (forward incomplete: defined
  while the result stays in the ball).

Boundary handling: results of `expmap` / `project` are kept in the *working ball*
$|x| \le R(1 - \varepsilon)$ with $\varepsilon = \sqrt{\text{machine epsilon}}$ of the dtype
(`boundary_margin`): there $1 - |x|^2/R^2$ keeps about half the digits of the dtype, so
distances and gradients stay accurate. Functions here do not check their inputs (points outside
the ball give NaN); `finslerlib.FunkBall` checks and raises `ValueError`.
"""

from __future__ import annotations

import functools
import math

import torch

from finslerlib.math.epilogue import use_epilogue
from finslerlib.math.pairwise import (
    block_rows,
    matmul_roundoff,
    safe_div,
    safe_sqrt,
    target_accuracy,
)
from finslerlib.math.validation import value_checks_enabled

__all__ = [
    "transport",
    "boundary_margin",
    "gap",
    "check_inside",
    "project",
    "clamp_norm",
    "coefficients",
    "norm",
    "dual_norm",
    "legendre",
    "inverse_legendre",
    "fundamental_tensor",
    "dist",
    "cdist",
    "hilbert_dist",
    "expmap",
    "logmap",
    "reverse_expmap",
    "reverse_logmap",
    "to_poincare",
    "from_poincare",
]


def boundary_margin(dtype: torch.dtype) -> float:
    r"""Relative width $\varepsilon = \sqrt{\text{eps}}$ of the shell kept free near the sphere.

    `expmap`, `retr` and `projx` return points with $|x| \le R (1 - \varepsilon)$ (unless they start
    further out). About `3.5e-4` for float32 and `1.5e-8` for float64.

    Args:
        dtype: a floating dtype.

    Returns:
        float.

    Example:
        >>> boundary_margin(torch.float64) < 1e-6 < boundary_margin(torch.float32) < 1e-3
        True
    """
    return math.sqrt(torch.finfo(dtype).eps)


def gap(x: torch.Tensor, *, radius: float = 1.0, keepdim: bool = False) -> torch.Tensor:
    r"""$Q(x) = R^2 - |x|^2$, positive exactly inside the ball.

    Args:
        x: Tensor, shape `[..., D]`.
        radius: ball radius $R$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> gap(torch.tensor([0.6, 0.0]))
        tensor(0.6400)
    """
    return radius * radius - (x * x).sum(-1, keepdim=keepdim)


def check_inside(x: torch.Tensor, *, radius: float = 1.0, name: str = "x") -> None:
    """Raise `ValueError` unless every point of `x` is finite and strictly inside the ball.

    One reduction and one host sync. Under `torch.compile` the check still runs (the data-dependent
    branch is a graph break, or an error with `fullgraph=True`): a point outside never gives a
    silent NaN, unless the checks are turned off explicitly with
    `finslerlib.math.validation.value_checks(False)`.

    Args:
        x: Tensor, shape `[..., D]`.
        radius: ball radius $R$.
        name: the argument name used in the message.

    Example:
        >>> check_inside(torch.tensor([[0.5, 0.0], [3.0, 4.0]]))
        Traceback (most recent call last):
        ...
        ValueError: x: 1 of 2 point(s) not strictly inside the Funk ball of radius 1: largest norm 5 ...
    """
    if not value_checks_enabled():
        return
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # in a traced graph the check is an assertion op (a RuntimeError when it fails)
        inside = ((x.detach() * x.detach()).sum(-1) < radius * radius).all()
        message = f"{name}: a point is not strictly inside the Funk ball of radius {radius:g}"
        torch._assert_async(inside, message)
        return
    with torch.no_grad():
        sq = (x.detach() * x.detach()).sum(-1)
        bad = ~(sq < radius * radius)  # also catches NaN
        if bool(bad.any()):
            count = int(bad.sum())
            finite = torch.isfinite(sq)
            worst = sq[bad & finite].max().sqrt().item() if bool((bad & finite).any()) else float("nan")
            raise ValueError(
                f"{name}: {count} of {sq.numel()} point(s) not strictly inside the Funk ball of radius "
                f"{radius:g}: largest norm {worst:.6g} (need |x| < {radius:g}; non-finite entries count "
                f"too). The Funk metric is only defined in the open ball; use projx() to pull points in."
            )


def clamp_norm(y: torch.Tensor, max_norm: torch.Tensor | float) -> torch.Tensor:
    """Scale the points `y` whose norm exceeds `max_norm` radially down to `max_norm`.

    Args:
        y: Tensor, shape `[..., D]`.
        max_norm: float or Tensor broadcastable to `[..., 1]`.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> clamp_norm(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), 1.0)
        tensor([[0.6000, 0.8000],
                [0.3000, 0.4000]])
    """
    n = safe_sqrt((y * y).sum(-1, keepdim=True))
    over = n > max_norm
    scale = torch.where(over, max_norm / torch.where(over, n, torch.ones_like(n)), torch.ones_like(n))
    return y * scale


def project(x: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Pull points into the working ball $|x| \le R(1 - \varepsilon)$ radially (see `boundary_margin`).

    Idempotent; the identity on the working ball. Points outside the ball, on the sphere, or in the
    thin shell $R(1 - \varepsilon) < |x| < R$ are scaled to norm $R(1 - \varepsilon)$.

    Args:
        x: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> project(torch.tensor([2.0, 0.0], dtype=torch.float64)) < 1
        tensor([True, True])
    """
    return clamp_norm(x, radius * (1.0 - boundary_margin(x.dtype)))


def _limit_norm(y: torch.Tensor, x: torch.Tensor, *, radius: float) -> torch.Tensor:
    """Clamp step results to norm `max(R(1 - eps), |x|)`: inside, and never pulls `x` itself in."""
    xn = safe_sqrt((x * x).sum(-1, keepdim=True))  # finite gradient at x = 0 (the origin)
    bound = torch.clamp_min(xn, radius * (1.0 - boundary_margin(y.dtype)))
    return clamp_norm(y, bound)


def coefficients(x: torch.Tensor, *, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Randers data $a = I/Q + x x^\top / Q^2$, $b = x / Q$ of the Funk metric ($Q = R^2 - |x|^2$).

    For generic code (`finslerlib.math.randers`); the closed forms here never build `a`.

    Args:
        x: Tensor, shape `[..., D]`, points inside the ball.
        radius: ball radius $R$.

    Returns:
        `(a, b)`: Tensors of shapes `[..., D, D]` and `[..., D]`.

    Example:
        >>> a, b = coefficients(torch.zeros(2))
        >>> a, b
        (tensor([[1., 0.],
                [0., 1.]]), tensor([0., 0.]))
    """
    q = gap(x, radius=radius, keepdim=True)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    b = x / q
    a = eye / q.unsqueeze(-1) + b.unsqueeze(-1) * b.unsqueeze(-2)
    return a, b


def _terms(x: torch.Tensor, v: torch.Tensor, radius: float):
    """Shared pieces `(Q, p, |v|^2, s, Q F)` with `Q F = s + p` computed without cancellation."""
    q = gap(x, radius=radius, keepdim=True)
    p = (x * v).sum(-1, keepdim=True)
    n2 = (v * v).sum(-1, keepdim=True)
    s = safe_sqrt(q * n2 + p * p)
    # s + p cancels when p < 0; there (s + p)(s - p) = Q |v|^2 gives it exactly. At v = 0 the
    # branch s + p keeps the gradient of the linear part p (as the Randers norm keeps b . v).
    qf = torch.where(p >= 0, s + p, safe_div(q * n2, s - p))
    return q, p, n2, s, qf


def norm(x: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0, keepdim: bool = False) -> torch.Tensor:
    r"""Funk norm $F(x, v) = (\sqrt{Q|v|^2 + \langle x, v\rangle^2} + \langle x, v\rangle) / Q$.

    Args:
        x: Tensor, shape `[..., D]`, points inside the ball.
        v: Tensor, shape `[..., D]`, tangent vectors.
        radius: ball radius $R$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> x = torch.tensor([0.5, 0.0])
        >>> norm(x, torch.tensor([1.0, 0.0])), norm(x, torch.tensor([-1.0, 0.0]))  # 1/0.5, 1/1.5
        (tensor(2.), tensor(0.6667))
    """
    q, _, _, _, qf = _terms(x, v, radius)
    out = qf / q
    return out if keepdim else out.squeeze(-1)


def dual_norm(
    x: torch.Tensor, xi: torch.Tensor, *, radius: float = 1.0, keepdim: bool = False
) -> torch.Tensor:
    r"""Dual norm $F^*(x, \xi) = R|\xi| - \langle \xi, x\rangle$ (the support function of $B_R - x$).

    Args:
        x: Tensor, shape `[..., D]`.
        xi: Tensor, shape `[..., D]`, covectors.
        radius: ball radius $R$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> dual_norm(torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]))
        tensor(0.5000)
    """
    out = radius * safe_sqrt((xi * xi).sum(-1, keepdim=True)) - (xi * x).sum(-1, keepdim=True)
    return out if keepdim else out.squeeze(-1)


def legendre(x: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Legendre map $\ell_x(v) = \tfrac12 \partial_v F^2 = F\,(v + F x) / s$, $s = \sqrt{Q|v|^2 + p^2}$.

    $\ell_x(0) = 0$. (The covector is normal to the sphere at the exit point $x + v/F$.)

    Args:
        x: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> legendre(torch.zeros(2), torch.tensor([2.0, 0.0]))
        tensor([2., 0.])
    """
    q, _, _, s, qf = _terms(x, v, radius)
    f = qf / q
    return safe_div(f, s) * (v + f * x)


def inverse_legendre(x: torch.Tensor, xi: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Inverse Legendre map $\ell_x^{-1}(\xi) = F^*(x, \xi)\,(R \xi / |\xi| - x)$; the Finsler gradient.

    $\ell_x^{-1}(0) = 0$. The descent step $-\ell_x^{-1}(df)$ aims at the boundary point
    $-R\,\widehat{df}$.

    Args:
        x: Tensor, shape `[..., D]`.
        xi: Tensor, shape `[..., D]`, covectors (e.g. Euclidean gradients).
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> inverse_legendre(torch.zeros(2), torch.tensor([2.0, 0.0]))
        tensor([2., 0.])
    """
    size = safe_sqrt((xi * xi).sum(-1, keepdim=True))
    dual = radius * size - (xi * x).sum(-1, keepdim=True)
    return dual * (radius * safe_div(xi, size) - x)


def fundamental_tensor(x: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Fundamental tensor $g_{ij}(x, v) = \tfrac12 \partial^2 F^2 / \partial v^i \partial v^j$.

    Randers form with $\alpha = s/Q$, $\ell = a v / \alpha = (v + p x / Q)/s$, $b = x/Q$:
    $g = \frac{F Q}{s}\,\big(I/Q + x x^\top/Q^2 - \ell \ell^\top\big) + (\ell + b)(\ell + b)^\top$.

    Args:
        x: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`, nonzero.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D, D]`.

    Example:
        >>> fundamental_tensor(torch.zeros(2), torch.tensor([1.0, 0.0]))
        tensor([[1., 0.],
                [0., 1.]])
    """
    q, p, _, s, qf = _terms(x, v, radius)
    b = x / q
    ell = safe_div(v + p * b, s)
    ratio = safe_div(qf, s).unsqueeze(-1)  # F / alpha = F Q / s
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    a = eye / q.unsqueeze(-1) + b.unsqueeze(-1) * b.unsqueeze(-2)
    lb = ell + b
    return ratio * (a - ell.unsqueeze(-1) * ell.unsqueeze(-2)) + lb.unsqueeze(-1) * lb.unsqueeze(-2)


def dist(x: torch.Tensor, y: torch.Tensor, *, radius: float = 1.0, keepdim: bool = False) -> torch.Tensor:
    r"""Forward distance $d(x \to y) = \operatorname{log1p}\big((Q_x F(x, u) + |u|^2)/Q_y\big)$, $u = y - x$.

    Equal to $-\log(1 - F(x, y - x))$ and to $\log(|x - a| / |y - a|)$ with $a$ the exit point of
    the ray from $x$ through $y$. Accurate for nearby points and near the boundary (up to the
    rounding of $Q = R^2 - |x|^2$: about eps $R^2 / Q$ absolute, see `cdist`); finite
    gradients at $x = y$.

    Args:
        x: Tensor, shape `[..., D]`, sources.
        y: Tensor, shape `[..., D]`, targets.
        radius: ball radius $R$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> x, y = torch.zeros(2), torch.tensor([0.5, 0.0])
        >>> dist(x, y), dist(y, x)  # log 2 and log(3/2)
        (tensor(0.6931), tensor(0.4055))
    """
    _, _, n2, _, qf = _terms(x, y - x, radius)
    out = torch.log1p((qf + n2) / gap(y, radius=radius, keepdim=True))
    return out if keepdim else out.squeeze(-1)


def cdist(x: torch.Tensor, y: torch.Tensor, *, radius: float = 1.0, reverse: bool = False) -> torch.Tensor:
    r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$ from one matmul (no `[N, M, D]` tensor).

    With $w = R^2 - x \cdot y$ and $v = w / \sqrt{Q_{x_i} Q_{y_j}} \ge 1$:
    $d(x_i \to y_j) = \log\big((w + \sqrt{w^2 - Q_{x_i} Q_{y_j}}) / Q_{y_j}\big)
    = \operatorname{arccosh} v + \tfrac12 \log Q_{x_i} - \tfrac12 \log Q_{y_j}$.
    `reverse=True` swaps the last two terms: $d(y_j \to x_i)$ (the reverse metric).
    $v$ comes from one matmul of the rescaled points (the scalings and $R^2$ are extra columns,
    the per-point terms prepared in float64), the rest runs in place on row blocks (one compiled
    pass per block for float32 CPU results, see `finslerlib.math.epilogue`), and the
    backward is written by hand (it keeps $\sqrt{v^2 - 1}$ and $d$ from the forward: one pass per
    block makes the weights of its two matmuls and the row and column sums it needs, compiled for
    float32 CPU results like the forward's; the entries the error model flags are differentiated
    through `dist` in float64). Batched inputs run
    the same kernel one batch entry at a time.

    Accuracy: every entry is within `finslerlib.math.pairwise.target_accuracy` (1e-6 relative in
    float32) of the distance of the same inputs in float64. A rounding-error model of the Gram
    form, $u\,(c_g\, 2 R^2 / \sqrt{Q_x Q_y} / \sinh H + c_l (1 + H + |\log Q_x| + |\log Q_y|))$
    with $H = \operatorname{arccosh} v$, flags the entries it may miss (nearly equal points,
    points near the wall, a cancelling $\log$ term) from the row minima of the result; those are
    recomputed by `dist` in float64 (rows with many flags through a float64 matmul first).
    Coincident points give exactly 0 with a finite gradient. For float64 inputs that bound is
    relative to `dist` of the same inputs: both round $Q = R^2 - |x|^2$ (up to $(D + 1)$ eps $R^2$),
    which near the wall adds up to $2 (D + 1)\,\text{eps}\,R^2 / \min Q$ absolute against the exact
    distance (measured 1.4e-11 at $|x| = 1 - 10^{-6}$, where eps $/ Q$ = 1.1e-10).

    Args:
        x: Tensor, shape `[..., N, D]`.
        y: Tensor, shape `[..., M, D]`.
        radius: ball radius $R$.
        reverse: distances of the reverse metric.

    Returns:
        Tensor, shape `[..., N, M]`.

    Example:
        >>> cdist(torch.tensor([[0.0], [0.5]]), torch.tensor([[0.0], [0.5]]))
        tensor([[0.0000, 0.6931],
                [0.4055, 0.0000]])
    """
    if x.shape[-2] == 0 or y.shape[-2] == 0 or torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # nothing to compute (the composite keeps autograd's graph), or a traced graph: the plain
        # ops, which the compiler fuses itself (the kernel's host-side error model cannot be traced)
        return _composite_cdist(x, y, float(radius), bool(reverse))
    if x.dim() == 2 and y.dim() == 2:
        return _FunkCdist.apply(x, y, float(radius), bool(reverse))
    shape = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    xs = x.expand(*shape, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
    ys = y.expand(*shape, *y.shape[-2:]).reshape(-1, *y.shape[-2:])
    parts = [_FunkCdist.apply(xb, yb, float(radius), bool(reverse)) for xb, yb in zip(xs, ys, strict=True)]
    if not parts:
        return x.new_zeros(*shape, x.shape[-2], y.shape[-2])
    return torch.stack(parts).reshape(*shape, x.shape[-2], y.shape[-2])


def _composite_cdist(x, y, radius, reverse):
    """The same formula from broadcast torch operations (double backward differentiates it)."""
    r2 = radius * radius
    qx = gap(x, radius=radius, keepdim=True)  # [..., N, 1]
    qy = gap(y, radius=radius, keepdim=True).mT  # [..., 1, M]
    den = qx if reverse else qy
    w = r2 - x @ y.mT
    s = safe_sqrt(w * w - qx * qy)
    return torch.log((w + s) / den).clamp_min(0.0)


# Rounding-error model of the Funk Gram form (see `cdist`), T = R^2 rx ry the matmul's last term:
# v is off by at most u (_V_C T + _XY_C sqrt(D) |T - v|) (|T - v| = |x . y| rx ry; the sqrt(D) for
# nearly parallel x, y), and d by that over sinh H plus u _LOG_C (1 + H + |l_x| + |l_y|). Measured
# maxima (D = 2 ... 512; points uniform, on a shell, in clusters, at the wall) are 0.8 of it;
# tests/math/test_cdist_accuracy.py checks the results on adversarial point sets.
_V_C = 4.0
_XY_C = 2.0
_LOG_C = 2.0


# The per-point and per-row vectors of the error model below are small (N or a few hundred
# entries). torch's log / sqrt / exp of float tensors run through MKL's vector math, which starts
# its own threads from about a hundred entries on: on a busy 2-core machine each such call waited
# 16-20 ms at 2 threads (microseconds on one thread), a dozen of them per `cdist` call.
# `xlogy(1, t)` and `rsqrt` run in torch's own loops (in the calling thread at these sizes).
def _log(t):
    """The natural logarithm (0: -inf, negative or NaN: NaN), as `std::log`, without MKL's threads."""
    return torch.special.xlogy(1.0, t)


def _sqrt(t):
    """The square root of `t >= 0` (about two units in the last place) without MKL's threads."""
    return torch.where(t > 0, t * t.rsqrt(), t)


class _FunkParts:
    """Per-point data of `_FunkCdist` in float64, the error model and the recomputation of flags.

    The matmul gives z = v / ry_j = (R^2 - x_i . y_j) rx_i (the target's scale left out, so that
    the row extremes of z bound x_i . y_j exactly); then sqrt(v^2 - 1) / ry_j = sqrt(z^2 - Q_y) is
    one `addcmul` with a broadcast -Q_y, and log(z + sqrt(z^2 - Q_y)) = arccosh v + l_y."""

    chunk = 1 << 15

    def __init__(self, x, y, radius, sign, wide, tau):
        self.x_in, self.y_in, self.wide = x, y, wide
        self.radius, self.sign, self.tau = radius, sign, tau
        r2 = radius * radius
        kernel = use_epilogue(x, x.shape[0] * y.shape[0]) if wide == torch.float64 else None
        self.xa_kernel = None
        if kernel is not None:
            # one compiled pass per point set: Q in float64, the matmul operands below
            self.xa_kernel, self.qx = kernel.funk_points(x, r2, True)
            self.ya, self.qy = kernel.funk_points(y, r2, False)
        else:
            # Q = R^2 - |x|^2 in float64 (the wall's cancellation), without float64 copies of the points
            self.qx = r2 - torch.linalg.vector_norm(x, dim=1, dtype=wide).square_()
            self.qy = r2 - torch.linalg.vector_norm(y, dim=1, dtype=wide).square_()
            # z_ij = [x_i rx_i, R^2 rx_i] . [-y_j, 1] (-y is exact in the points' dtype)
            self.ya = torch.cat([-y, torch.ones_like(y[:, :1])], 1)
        self.rx, self.ry = self.qx.rsqrt(), self.qy.rsqrt()
        self.lx, self.ly = _log(self.qx).mul_(0.5), _log(self.qy).mul_(0.5)
        # d = log(z + sqrt(z^2 - Q_y)) - l_y + sign (l_x - l_y): a rank-2 product added in place
        self.la = torch.stack([self.lx * sign, torch.ones_like(self.lx)], 1)
        self.lb = torch.stack([torch.ones_like(self.ly), self.ly * -(1.0 + sign)], 0)
        self.root_d = math.sqrt(x.shape[1])
        self.flagged: list[tuple[torch.Tensor, torch.Tensor]] = []  # (rows, cols) below the cutoffs
        self.qy_max, self.ry_max, self.ly_abs = self.qy.max(), self.ry.max(), self.ly.abs().max()

    @functools.cached_property
    def xa(self):
        """[x_i rx_i, R^2 rx_i] in the wide dtype (made for the rows recomputed in it)."""
        return torch.cat([self.x * self.rx.unsqueeze(1), (self.radius**2 * self.rx).unsqueeze(1)], 1)

    def xa_in(self, dtype, chunk=4096):
        """[x_i rx_i, R^2 rx_i] rounded once to `dtype`: the products formed in the wide dtype in
        chunks of rows (small scratch instead of a wide copy of all points), or the compiled pass's."""
        if self.xa_kernel is not None and dtype == self.xa_kernel.dtype:
            return self.xa_kernel
        x = self.x_in
        out = torch.empty(x.shape[0], x.shape[1] + 1, dtype=dtype, device=x.device)
        for k in range(0, x.shape[0], chunk):
            rows = slice(k, k + chunk)
            out[rows, :-1] = x[rows].to(self.wide) * self.rx[rows].unsqueeze(1)
        out[:, -1] = self.rx * self.radius**2
        return out

    @functools.cached_property
    def x(self):
        """The sources in the wide dtype (made on the first recomputed entry)."""
        return self.x_in.to(self.wide)

    @functools.cached_property
    def y(self):
        """The targets in the wide dtype."""
        return self.y_in.to(self.wide)

    def rows_ok(self, z_min, z_max, d_min, grow, u):
        """Rows `grow` whose every entry the error model clears, from the row extremes of z and d."""
        z_min, z_max, d_min = (t.to(self.rx.dtype) for t in (z_min, z_max, d_min))
        rx, lx, r2 = self.rx[grow], self.lx[grow], self.radius**2
        # |x_i . y_j| <= max(|R^2 - z_min / rx_i|, |R^2 - z_max / rx_i|)
        dot = torch.maximum((r2 - z_min / rx).abs(), (r2 - z_max / rx).abs())
        # the error of v over sinh H = (error of z) / sqrt(z^2 - Q_y), smallest z, largest Q_y
        err_z = u * rx * (_V_C * r2 + _XY_C * self.root_d * dot)
        z_lo = z_min - err_z
        room = z_lo * z_lo - self.qy_max
        h_hi = torch.acosh((z_max + err_z) * self.ry_max)
        need = err_z * room.clamp_min(0.0).rsqrt() + u * _LOG_C * (1.0 + h_hi + lx.abs() + self.ly_abs)
        return (z_lo > 0) & (room > 0) & (d_min * self.tau >= need)

    def cutoff(self, z_min, z_max, d_min, grow, u, points=64, levels=2):
        """Per row, a z above which the error model clears every entry (inf if none).

        For the entries with z >= c, d >= log(c + sqrt(c^2 - max Q_y)) + sign l_x - max (1 + sign) l_y
        (the nearest pairs, coincident points included, are below the cutoff). The smallest of
        `points` equally spaced candidates the model clears, then the same between it and the one
        below (`levels` times: the bracket shrinks to points^-levels of z's range, as 12 steps of
        bisection for 64 and 2, in a few operations on `[rows, points]` instead of a dozen rounds)."""
        lo, hi = z_min.to(self.rx.dtype), z_max.to(self.rx.dtype)
        d_min = d_min.to(self.rx.dtype).nan_to_num(-math.inf).unsqueeze(1)
        shift = (self.sign * self.lx[grow] - ((1.0 + self.sign) * self.ly).max()).unsqueeze(1)
        rows, top = grow.unsqueeze(1), z_max.to(self.rx.dtype).unsqueeze(1)

        def ok_above(c):
            d_lo = _log(c + _sqrt((c * c - self.qy_max).clamp_min(0.0))) + shift
            return self.rows_ok(c, top, torch.maximum(d_min, d_lo), rows, u)

        fine = ok_above(hi.unsqueeze(1)).squeeze(1)
        frac = torch.arange(1, points + 1, dtype=lo.dtype, device=lo.device) / points
        for _ in range(levels):
            c = torch.lerp(lo.unsqueeze(1), hi.unsqueeze(1), frac)
            c[:, -1] = hi  # the top candidate is the bracket's end (cleared) exactly
            first = ok_above(c).to(torch.int8).argmax(1, keepdim=True)  # the first cleared one
            below = torch.where(first > 0, c.gather(1, (first - 1).clamp_min(0)), lo.unsqueeze(1))
            lo, hi = below.squeeze(1), c.gather(1, first).squeeze(1)
        return torch.where(fine, hi, torch.full_like(hi, math.inf))

    def direct(self, rows, cols):
        """(d, sqrt(z^2 - Q_y)) of the index pairs from their differences (float64, `dist`)."""
        ds, roots = [], []
        for k in range(0, rows.numel(), self.chunk):
            r, c = rows[k : k + self.chunk], cols[k : k + self.chunk]
            xs, ys = self.x[r], self.y[c]
            ds.append(dist(xs, ys, radius=self.radius) if self.sign > 0 else dist(ys, xs, radius=self.radius))
            # w^2 - Q_x Q_y = Q_x |u|^2 + (x . u)^2 without cancellation; times rx^2
            diff = ys - xs
            sq = self.qx[r] * (diff * diff).sum(1) + (xs * diff).sum(1) ** 2
            roots.append(sq.sqrt() * self.rx[r])
        if not ds:
            return self.qx.new_zeros(0), self.qx.new_zeros(0)
        return torch.cat(ds), torch.cat(roots)

    def gram(self, xa, ya, la, lb, qy, out, root, clamp, keep=True):
        """d and sqrt(z^2 - Q_y) of a row block in place (`out` receives z first; `root` may be left
        unwritten unless `keep`); returns the row extremes of z and the row minima of d (None with
        `clamp`: the plain Gram form)."""
        torch.mm(xa, ya.mT, out=out)
        kernel = use_epilogue(out, self.x_in.shape[0] * self.y_in.shape[0])
        if kernel is not None:
            # the fused epilogue: root, d and the row extremes in one pass
            extremes = [out.new_empty(out.shape[0]) for _ in range(3)]
            kept = root if keep else out.new_empty(0)
            lx, ly = la[:, 0].contiguous(), lb[1].contiguous()
            kernel.funk(out, kept, qy.reshape(-1), lx, ly, *extremes, not clamp)
            return None if clamp else tuple(extremes)
        z_min = z_max = None
        if not clamp:
            z_min, z_max = out.amin(1), out.amax(1)
        torch.addcmul(qy, out, out, out=root)  # z^2 - Q_y (below 0 by rounding: NaN, flagged)
        if clamp:
            root.clamp_min_(0.0)
        root.sqrt_()
        out.add_(root).log_().addmm_(la, lb)
        if clamp:
            out.clamp_min_(0.0)
            return None
        return z_min, z_max, out.amin(1)

    def refine(self, blk, root, extremes, i, u, xa, ya):
        """Check the rows of a block (rows `i + k` of the result) and recompute what is flagged."""
        z_min, z_max, d_min = extremes
        grow = torch.arange(i, i + blk.shape[0], device=blk.device)
        bad = self.rows_ok(z_min, z_max, d_min, grow, u).logical_not_().nonzero().squeeze(1)
        if bad.numel() == 0:
            return
        limit = self.cutoff(z_min[bad], z_max[bad], d_min[bad], bad + i, u)
        # the Gram values of these rows again (a matmul of their size): entries below the cutoff
        below = (xa[bad] @ ya.mT).to(limit.dtype) < limit.unsqueeze(1)
        # the backward recomputes the gradients of these entries from differences (see `grads`)
        r, cols = below.nonzero(as_tuple=True)
        self.flagged.append((bad[r] + i, cols))
        if self.wide != blk.dtype:
            # rows with many flags: whole rows in float64 (cheaper than entry by entry)
            many = below.sum(1) * 32 > blk.shape[1]
            if many.any():
                d, sub_root = self.dense(bad[many] + i)
                blk[bad[many]] = d.to(blk.dtype)
                if root is not None:
                    root[bad[many]] = sub_root.to(blk.dtype)
                bad, below = bad[~many], below[~many]
        r, cols = below.nonzero(as_tuple=True)
        d, sub_root = self.direct(bad[r] + i, cols)
        blk[bad[r], cols] = d.to(blk.dtype)
        if root is not None:
            root[bad[r], cols] = sub_root.to(blk.dtype)

    def dense(self, grow):
        """Rows `grow` from the Gram form in float64, its flagged entries from `direct`."""
        ya = self.ya.to(self.wide)
        out = torch.empty(grow.numel(), ya.shape[0], dtype=self.wide, device=ya.device)
        root = torch.empty_like(out)
        extremes = self.gram(self.xa[grow], ya, self.la[grow], self.lb, -self.qy, out, root, False)
        u = matmul_roundoff(out.dtype) * (ya.shape[1] + 1)  # the worst-case bound
        z_min, z_max, d_min = extremes
        bad = self.rows_ok(z_min, z_max, d_min, grow, u).logical_not_().nonzero().squeeze(1)
        if bad.numel():
            limit = self.cutoff(z_min[bad], z_max[bad], d_min[bad], grow[bad], u)
            z = self.xa[grow[bad]] @ ya.mT
            r, cols = (z < limit.unsqueeze(1)).nonzero(as_tuple=True)
            out[bad[r], cols], root[bad[r], cols] = self.direct(grow[bad[r]], cols)
        return out, root


class _FunkCdist(torch.autograd.Function):
    """Fused forward/backward of `cdist` for 2-D inputs (see there and `_FunkParts`)."""

    @staticmethod
    def forward(ctx, x, y, radius, reverse):
        dtype, device = x.dtype, x.device
        n, m = x.shape[0], y.shape[0]
        sign = -1.0 if reverse else 1.0
        wide = torch.float64 if device.type != "mps" else dtype
        parts = _FunkParts(x.detach(), y.detach(), radius, sign, wide, target_accuracy(dtype))
        xa, ya = parts.xa_in(dtype), parts.ya
        la, lb = parts.la.to(dtype), parts.lb.to(dtype)
        minus_qy = parts.qy.neg().to(dtype).unsqueeze(0)
        out = torch.empty(n, m, dtype=dtype, device=device)
        keep = torch.is_grad_enabled() or any(ctx.needs_input_grad[:2])
        sh = torch.empty_like(out) if keep else None
        # row blocks (a matmul then its epilogue while the block is still in the last-level cache);
        # the compiled epilogue writes the root only where it is kept (no scratch), the torch
        # epilogue uses a scratch block
        compiled = use_epilogue(out, n * m) is not None
        step = block_rows(n, m, out.device)
        scratch = None
        if sh is None and not compiled:
            scratch = torch.empty(min(step, n), m, dtype=dtype, device=device)
        refine = n > 0 and m > 0 and not torch.compiler.is_compiling()
        u = matmul_roundoff(dtype)
        if wide == dtype:  # the per-point terms are in this dtype too: the worst-case bound
            u *= x.shape[1] + 2
        for i in range(0, n, step):
            blk = out[i : i + step]
            root = sh[i : i + step] if sh is not None else scratch if scratch is None else scratch[: len(blk)]
            rows = slice(i, i + step)
            extremes = parts.gram(xa[rows], ya, la[rows], lb, minus_qy, blk, root, not refine, sh is not None)
            if refine:
                # the error model per row from three row reductions; the nearest pairs of the rows
                # it does not clear are recomputed (rows it cannot clear at all: in float64)
                parts.refine(blk, root, extremes, i, u, xa, ya)
        ctx.radius, ctx.sign, ctx.refined = radius, sign, refine
        flagged = parts.flagged or [(_empty_index(device), _empty_index(device))]
        rows, cols = (torch.cat(t) for t in zip(*flagged, strict=True))
        rows, order = rows.sort(stable=True)  # by row (the backward's blocks)
        cols = cols[order]
        ctx.save_for_backward(x, y, sh, out if keep else None, rows, cols)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, y, sh, d, flag_rows, flag_cols = ctx.saved_tensors
        radius, sign = ctx.radius, ctx.sign
        if torch.is_grad_enabled():
            # double backward: differentiate the composite formula (only on this rare path)
            wanted = [t for t in (x, y) if t.requires_grad]
            f = _composite_cdist(x, y, radius, sign < 0)
            grads = iter(torch.autograd.grad(f, wanted, grad, create_graph=True))
            grad_x = next(grads) if x.requires_grad else None
            grad_y = next(grads) if y.requires_grad else None
            return grad_x, grad_y, None, None
        # With s = sqrt(w^2 - Q_x Q_y) and A = grad / s, the gradients are
        #   d/dx_i = sum_j A_ij (x_i t_ij - y_j),  d/dy_j = sum_i A_ij (y_j / t_ij - x_i),
        # t = exp(-sign d) (= Q_y / (w + s) forward, (w + s) / Q_x reverse): no 1/Q terms that
        # cancel near the wall. The saved sh is s rx_i, so A = rx_i grad / sh. Entries the error
        # model flagged in the forward (nearly equal points: x t - y cancels) are left out here
        # and differentiated through `dist` in float64 (the difference form) below. Float32 CPU
        # gradients of at least MIN_ENTRIES entries: A and the sums of A t and A / t from one
        # compiled pass per block (`_compiled_grads`); otherwise torch operations (`_torch_grads`).
        wide = torch.float64 if x.device.type != "mps" else x.dtype
        n, m = grad.shape
        kernel = use_epilogue(grad, n * m) if grad.dtype == x.dtype else None
        if kernel is not None:
            grad_x, grad_y = _compiled_grads(kernel, ctx, x, y, grad, sh, d, flag_rows, flag_cols)
        else:
            rx = (radius * radius - torch.linalg.vector_norm(x, dim=1, dtype=wide).square()).rsqrt()
            grad_x, grad_y = _torch_grads(ctx, x, y, grad, sh, d, rx.to(x.dtype), flag_rows, flag_cols)
        if flag_rows.numel():
            fx, fy = _flagged_grads(x, y, grad, flag_rows, flag_cols, radius, sign, wide)
            grad_x = None if grad_x is None else grad_x.index_add_(0, flag_rows, fx.to(x.dtype))
            grad_y = None if grad_y is None else grad_y.index_add_(0, flag_cols, fy.to(y.dtype))
        return grad_x, grad_y, None, None


def _compiled_grads(kernel, ctx, x, y, grad, sh, d, flag_rows, flag_cols):
    """The unflagged part of the backward with the compiled pass (float32 CPU, see `_FunkCdist`).

    One pass per row block writes A = rx_i grad / sh (0 at the flagged entries), the row and
    column sums of A t and A / t (float64 sums) and x_i sum_j A_ij t_ij; A feeds the two matmuls,
    which add -A y and -A^T x in place (few whole-array operations: on a busy machine each
    parallel operation waits for its slowest thread)."""
    n, m = grad.shape
    if grad.stride(1) not in (0, 1):
        grad = grad.contiguous()
    x = x.contiguous()
    # blocks of about 2^22 entries: A stays in the last-level cache between the pass and the two
    # matmuls (measured at 4096 x 4096 x 128 on 2 cores: 0.94x the time of 2^23 entries on one
    # thread and on two, 2^21 as fast on one thread but 1.4x on two)
    step = min(block_rows(n, m, grad.device), max(16, (1 << 22) // max(m, 1)))
    scratch = torch.empty(min(step, n), m, dtype=x.dtype, device=x.device)
    rows = torch.empty(n, dtype=x.dtype, device=x.device)
    cols = torch.zeros(m, dtype=torch.float64, device=x.device)
    want_x, want_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_x = torch.empty_like(x) if want_x else x.new_empty(0, x.shape[1])
    grad_y = torch.empty_like(y) if want_y else None
    for i in range(0, n, step):
        k = min(step, n - i)
        a = scratch[:k]
        lo, hi = torch.searchsorted(flag_rows, torch.tensor([i, i + k], device=x.device)).tolist()
        blk = slice(i, i + k)
        flags = (flag_rows[lo:hi] - i, flag_cols[lo:hi])
        gx = grad_x[blk] if want_x else grad_x
        inputs = (grad[blk], sh[blk], d[blk], x[blk], ctx.radius**2)
        kernel.funk_grad(a, *inputs, rows[blk], gx, cols, *flags, ctx.sign < 0, not ctx.refined)
        if want_x:
            gx.addmm_(a, y, alpha=-1.0)  # x_i sum_j A_ij t_ij - sum_j A_ij y_j
        if grad_y is not None:
            grad_y.addmm_(a.mT, x[blk], beta=0.0 if i == 0 else 1.0, alpha=-1.0)  # -sum_i A_ij x_i
    if grad_y is not None:
        grad_y.addcmul_(y, cols.to(y.dtype).unsqueeze(1))  # + y_j sum_i A_ij / t_ij
    return (grad_x if want_x else None), grad_y


def _torch_grads(ctx, x, y, grad, sh, d, rx_in, flag_rows, flag_cols):
    """The unflagged part of the backward from torch operations on row blocks (see `_FunkCdist`)."""
    sign = ctx.sign
    xr = x * rx_in.unsqueeze(1)
    n, m = grad.shape
    ay = torch.empty(n, x.shape[1], dtype=x.dtype, device=x.device)
    ax = torch.zeros(m, x.shape[1], dtype=x.dtype, device=x.device)
    rows = torch.empty(n, dtype=x.dtype, device=x.device)
    cols = torch.zeros(m, dtype=x.dtype, device=x.device)
    step = block_rows(n, m, grad.device)
    if grad.device.type == "cpu":
        # blocks of about 2^20 entries: the elementwise passes below run on cache-resident scratch
        step = min(step, max(16, (1 << 20) // max(m, 1)))
    scratch = torch.empty(3, min(step, n), m, dtype=x.dtype, device=x.device)
    for i in range(0, n, step):
        g_blk, s_blk, d_blk = grad[i : i + step], sh[i : i + step], d[i : i + step]
        k = g_blk.shape[0]
        a = torch.div(g_blk, s_blk, out=scratch[0, :k])
        if not ctx.refined:
            a.nan_to_num_(0.0, 0.0, 0.0)  # grad / 0 (coincident points) gives inf or nan: 0 there
        # the error model clears an entry only where sqrt(z^2 - Q_y) > 0 with a wide margin:
        # grad / 0 and grad / NaN can only be at the flagged entries, which are set to 0
        if flag_rows.numel():
            lo, hi = torch.searchsorted(flag_rows, torch.tensor([i, i + k], device=x.device)).tolist()
            a[flag_rows[lo:hi] - i, flag_cols[lo:hi]] = 0.0
        torch.mm(a, y, out=ay[i : i + k])
        ax.addmm_(a.mT, xr[i : i + k])
        # e^d (one pass); t = e^-d forward, e^d reverse
        e = torch.exp(d_blk, out=scratch[1, :k])
        over, times = (torch.div, torch.mul) if sign > 0 else (torch.mul, torch.div)
        cols.addmv_(times(a, e, out=scratch[2, :k]).mT, rx_in[i : i + k])  # sum_i A_ij / t_ij
        torch.sum(over(a, e, out=e), 1, out=rows[i : i + k])  # (rx_i times) sum_j A_ij t_ij
    ay.mul_(rx_in.unsqueeze(1))  # [sum_j A_ij y_j]
    rows.mul_(rx_in)  # sum_j A_ij t_ij
    grad_x = grad_y = None
    if ctx.needs_input_grad[0]:
        grad_x = x * rows.unsqueeze(1) - ay
    if ctx.needs_input_grad[1]:
        grad_y = y * cols.unsqueeze(1) - ax
    return grad_x, grad_y


def _empty_index(device):
    """An empty index tensor."""
    return torch.zeros(0, dtype=torch.long, device=device)


def _flagged_grads(x, y, grad, rows, cols, radius, sign, wide, chunk=1 << 15):
    """Per-pair gradients of the entries `(rows, cols)` through `dist` in `wide` (difference form)."""
    fx = torch.empty(rows.numel(), x.shape[1], dtype=wide, device=x.device)
    fy = torch.empty_like(fx)
    with torch.enable_grad():
        for k in range(0, rows.numel(), chunk):
            r, c = rows[k : k + chunk], cols[k : k + chunk]
            xs = x[r].to(wide).requires_grad_()
            ys = y[c].to(wide).requires_grad_()
            val = dist(xs, ys, radius=radius) if sign > 0 else dist(ys, xs, radius=radius)
            gx, gy = torch.autograd.grad(val, (xs, ys), grad[r, c].to(wide))
            fx[k : k + chunk], fy[k : k + chunk] = gx, gy
    return fx, fy


def hilbert_dist(
    x: torch.Tensor, y: torch.Tensor, *, radius: float = 1.0, keepdim: bool = False
) -> torch.Tensor:
    r"""Hilbert (symmetrized Funk) distance $\tfrac12 (d(x \to y) + d(y \to x))$.

    It is the Klein-model distance of curvature $-1$,
    $\operatorname{arccosh}\big((R^2 - \langle x, y\rangle) / \sqrt{Q_x Q_y}\big)$, computed through
    the two accurate forward distances (no arccosh cancellation near $x = y$).

    Args:
        x: Tensor, shape `[..., D]`.
        y: Tensor, shape `[..., D]`.
        radius: ball radius $R$.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> hilbert_dist(torch.zeros(1), torch.tensor([0.5]))  # artanh(0.5)
        tensor(0.5493)
    """
    return 0.5 * (dist(x, y, radius=radius, keepdim=keepdim) + dist(y, x, radius=radius, keepdim=keepdim))


def _rescaled(v: torch.Tensor):
    """`(v / c, c)` with `c = max(max_i |v_i|, 1)`, detached: huge steps do not overflow `|v|^2`.

    The maps below are invariant under this rescaling (F is 1-homogeneous), so holding `c`
    constant in autograd is exact, and `c = 1` for moderate steps keeps their Jacobian plain.
    """
    c = v.detach().abs().amax(-1, keepdim=True).clamp_min(1.0)
    return v / c, c


def expmap(x: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Exponential map $\exp_x v = x + \frac{1 - e^{-F(x, v)}}{F(x, v)}\, v$ (straight geodesics).

    Always inside the ball (the Funk metric is forward complete); where $1 - e^{-F}$ rounds to 1
    the point would land on the sphere, so results are clamped to norm
    $\max(R(1 - \varepsilon), |x|)$ (see `boundary_margin`). Any finite `v` works (huge steps are
    rescaled before squaring).

    Args:
        x: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> expmap(torch.zeros(1), torch.tensor([math.log(2.0)]))  # d(0 -> 1/2) = log 2
        tensor([0.5000])
    """
    v1, c = _rescaled(v)
    q, _, _, _, qf = _terms(x, v1, radius)
    f1 = qf / q
    t = c * f1  # F(x, v); may overflow to inf, where 1 - e^{-t} = 1 still holds
    pos = f1 > 0
    step = torch.where(
        pos, -torch.expm1(-t) / torch.where(pos, f1, torch.ones_like(f1)), c * (1.0 - 0.5 * t)
    )
    return _limit_norm(x + step * v1, x, radius=radius)


def reverse_expmap(x: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Exponential map of the reverse metric $\tilde F(x, v) = F(x, -v)$.

    $\widetilde\exp_x v = x + \frac{e^{\tilde F} - 1}{\tilde F}\, v$, a geodesic only while it stays in the
    ball: the reverse Funk metric is forward incomplete ($\tilde d(x \to y) = d(y \to x)$ stays
    bounded as $y$ reaches the sphere). Longer steps stop at norm $\max(R(1 - \varepsilon), |x|)$.

    Args:
        x: Tensor, shape `[..., D]`.
        v: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> reverse_expmap(torch.zeros(1), torch.tensor([math.log(1.5)]))  # d(1/2 -> 0) = log 1.5
        tensor([0.5000])
    """
    v1, c = _rescaled(v)
    q, _, _, _, qf_back = _terms(x, -v1, radius)
    _, _, _, _, qf_fwd = _terms(x, v1, radius)
    f1 = qf_back / q
    big = math.log(torch.finfo(x.dtype).max) / 2
    t = (c * f1).clamp_max(big)
    pos = f1 > 0
    step = torch.where(pos, torch.expm1(t) / torch.where(pos, f1, torch.ones_like(f1)), c * (1.0 + 0.5 * t))
    # the sphere is at parameter 1/F(x, v1) = Q / (Q F) along v1: stop there (then clamp inside)
    to_sphere = torch.where(qf_fwd > 0, q / torch.where(qf_fwd > 0, qf_fwd, torch.ones_like(q)), step)
    return _limit_norm(x + torch.minimum(step, to_sphere) * v1, x, radius=radius)


def logmap(x: torch.Tensor, y: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Logarithm $\log_x y = \frac{d(x \to y)}{F(x, y - x)}\,(y - x)$; $F(x, \log_x y) = d(x \to y)$.

    Args:
        x: Tensor, shape `[..., D]`.
        y: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> logmap(torch.zeros(1), torch.tensor([0.5]))
        tensor([0.6931])
    """
    u = y - x
    q, _, n2, _, qf = _terms(x, u, radius)
    d = torch.log1p((qf + n2) / gap(y, radius=radius, keepdim=True))
    f = qf / q
    pos = f > 0
    # d / F -> 1 (slope 1/2) as y -> x
    ratio = torch.where(pos, d / torch.where(pos, f, torch.ones_like(f)), 1.0 + 0.5 * f)
    return ratio * u


def reverse_logmap(x: torch.Tensor, y: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Logarithm of the reverse metric: $\frac{d(y \to x)}{F(x, x - y)}\,(y - x)$.

    Args:
        x: Tensor, shape `[..., D]`.
        y: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> reverse_logmap(torch.zeros(1), torch.tensor([0.5]))
        tensor([0.4055])
    """
    u = y - x
    q, _, _, _, qf = _terms(x, -u, radius)
    d = dist(y, x, radius=radius, keepdim=True)
    f = qf / q
    pos = f > 0
    ratio = torch.where(pos, d / torch.where(pos, f, torch.ones_like(f)), 1.0 - 0.5 * f)
    return ratio * u


def to_poincare(x: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Klein (Funk ball) coordinates to the unit Poincaré ball: $k/(1 + \sqrt{1 - |k|^2})$, $k = x/R$.

    The Hilbert distance of the Funk ball equals `geoopt.PoincareBall(c=1).dist` of the images.

    Args:
        x: Tensor, shape `[..., D]`.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`, in the unit ball.

    Example:
        >>> to_poincare(torch.tensor([0.8, 0.0]))
        tensor([0.5000, 0.0000])
    """
    root = safe_sqrt(gap(x, radius=radius, keepdim=True))  # R sqrt(1 - |k|^2)
    return x / (radius + root)


def from_poincare(p: torch.Tensor, *, radius: float = 1.0) -> torch.Tensor:
    r"""Unit Poincaré ball to Klein (Funk ball) coordinates: $x = R \cdot 2p / (1 + |p|^2)$.

    Args:
        p: Tensor, shape `[..., D]`, in the unit ball.
        radius: ball radius $R$.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> from_poincare(torch.tensor([0.5, 0.0]))
        tensor([0.8000, 0.0000])
    """
    return (2.0 * radius) * p / (1.0 + (p * p).sum(-1, keepdim=True))


def transport(
    x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, radius: float = 1.0, reverse: bool = False
) -> torch.Tensor:
    r"""Closed-form parallel transport on the Funk ball along $t \mapsto \exp_x(t u)$, $t \in [0, 1]$.

    $U(1) = e^{-\sigma F_0/2}\, v + \frac{c}{F_0^2}\big(e^{-\sigma F_0} - e^{-\sigma F_0/2}\big)\, u$,
    $F_0 = F(x, u)$, $c = g_u(u, v)$, $\sigma = 1$ (for the reverse metric $F(x, -v)$, whose
    spray is $-\tfrac12 \tilde F y$: $\sigma = -1$ with $\tilde F$, $\tilde g$). From
    $G = \tfrac{\sigma}{2} F y$ (the Funk ball is projectively flat) and $g_{\dot\gamma}(\dot\gamma, U) = c$
    constant along the geodesic.

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
        >>> transport(x, u, u)  # the velocity at exp_x(u): e^{-F} u
        tensor([0.3679, 0.0000])
    """
    sign = -1.0 if reverse else 1.0
    us = sign * u
    f0 = norm(x, us, radius=radius, keepdim=True)
    c = (legendre(x, us, radius=radius) * v).sum(-1, keepdim=True) * sign
    half = torch.exp(-0.5 * sign * f0)
    # (e^{-s F} - e^{-s F/2}) / F^2 = e^{-s F/2} expm1(-s F/2) / F^2, finite as F -> 0 with c = O(F)
    coeff = safe_div(c * half * torch.expm1(-0.5 * sign * f0), f0 * f0)
    return half * v + coeff * u
