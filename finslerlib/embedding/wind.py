r"""Learnable Killing winds for Zermelo navigation on hyperbolic bases, with a learned direction.

`BoostWind` on the hyperboloid (`geoopt.Lorentz`), `RotationWind` on the Poincaré ball
(`geoopt.PoincareBall`): both are `KillingWind`s, so `Navigation` uses exact geodesics.

A boost $A = \begin{pmatrix} 0 & c^\top \\ c & 0 \end{pmatrix}$ satisfies $A^\top J + J A = 0$,
$J = \mathrm{diag}(-1, 1, \dots, 1)$: its flow $e^{tA}$ moves the hyperboloid by isometries
(translations along the geodesic through the origin in direction $c$), so `Navigation` uses exact
geodesics for it. The flow is closed form: with $s = |c|$, $x = (x_0, \bar x)$,

$$
e^{tA} x = \Big(x_0 \cosh st + (c \cdot \bar x)\,\tfrac{\sinh st}{s},\;
\bar x + c\,\big[x_0 \tfrac{\sinh st}{s} + (c \cdot \bar x)\,\tfrac{\cosh st - 1}{s^2}\big]\Big).
$$

Its speed at $x$ is $|W(x)|_h^2 = s^2 x_0^2 - (c \cdot \bar x)^2 \le s^2 \cosh^2 r$ at hyperbolic
distance $r$ from the origin: `BoostWind` keeps $s \le$ `max_speed / cosh(max_radius)`, so the
metric is a Randers metric on the whole ball of radius `max_radius`, where
`DirectedGraphEmbedding` keeps its points.
"""

from __future__ import annotations

import math

import geoopt
import torch
from torch import nn

from finslerlib.manifolds import KillingWind, Navigation
from finslerlib.manifolds.domains import default_tolerance
from finslerlib.math.navigation import Spectrum
from finslerlib.math.validation import value_checks_enabled

__all__ = [
    "BoostWind",
    "HyperboloidRotation",
    "RotationWind",
    "ball_to_hyperboloid",
    "hyperboloid_navigation_dist",
    "lorentz_boost_navigation",
    "lorentz_points",
    "poincare_points",
    "poincare_rotation_navigation",
]


class BoostWind(KillingWind):
    r"""The boost $W(x) = A x$, $A = [[0, c^\top], [c, 0]]$, with $c$ learnable and $|c| <$ `bound`.

    $c = \text{bound} \cdot \tanh(|\rho|)\, \rho / |\rho|$ for the parameter $\rho$ (`raw`).

    Args:
        dim: intrinsic dimension `n` (points have `n + 1` entries).
        bound: the largest generator size $|c|$.
        init: initial $c$ (default: `bound / 2` along the last axis).

    Example:
        >>> w = BoostWind(2, bound=0.5)
        >>> w.A
        tensor([[0.0000, 0.0000, 0.2500],
                [0.0000, 0.0000, 0.0000],
                [0.2500, 0.0000, 0.0000]], grad_fn=<CopySlices>)
    """

    def __init__(self, dim: int, bound: float, init: torch.Tensor | None = None):
        nn.Module.__init__(self)
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"bound must be positive and finite, got {bound}")
        self.bound = float(bound)
        self.dim = dim
        if init is None:
            init = torch.zeros(dim)
            init[-1] = 0.5 * bound
        init = torch.as_tensor(init, dtype=torch.get_default_dtype())
        size = float(init.norm())
        if not size < bound:
            raise ValueError(f"init must have norm < bound = {bound}, got {size}")
        raw = init * (math.atanh(size / bound) / size if size > 0 else 1.0)
        self.raw = nn.Parameter(raw)
        self.shift = None
        self._cache: dict = {}

    @property
    def c(self) -> torch.Tensor:
        """The generator $c$, shape `[n]`."""
        r = self.raw.norm().clamp_min(1e-12)
        return self.bound * torch.tanh(r) * self.raw / r

    @property
    def A(self) -> torch.Tensor:  # type: ignore[override]
        """The generator matrix, shape `[n + 1, n + 1]`."""
        c = self.c
        A = c.new_zeros(self.dim + 1, self.dim + 1)
        A[0, 1:] = c
        A[1:, 0] = c
        return A

    @property
    def ambient_dim(self) -> int:
        return self.dim + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.c.to(dtype=x.dtype, device=x.device)
        return torch.cat([(x[..., 1:] * c).sum(-1, keepdim=True), x[..., :1] * c], -1)

    def spectral(self, dtype, device) -> Spectrum | None:
        r"""The closed-form eigen-decomposition of $A$ reduced for `Navigation`'s root find.

        $A$ has the eigenvalues $\pm s$ ($s = |c|$) with eigenvectors $(1, \pm c/s)$ and left
        eigenvectors $(1, \pm c/s)/2$; the others are 0 (dropped). With it the arrival time on
        the hyperboloid is a scalar iteration per pair (`killing_arrival_time`), with no flow of
        the points per step. `None` for $c = 0$ (no wind)."""
        with torch.no_grad():
            c = self.c.detach().to(dtype=dtype, device=device)
            s = c.norm()
            if not bool(s > 0):
                return None
            one = torch.ones(1, dtype=dtype, device=device)
            plus, minus = torch.cat([one, c / s]), torch.cat([one, -c / s])
            vec = torch.stack([plus, minus], -1)  # [n + 1, 2], columns
            zero = torch.zeros_like(vec)
            return Spectrum(
                torch.stack([s, -s]),
                torch.zeros(2, dtype=dtype, device=device),
                torch.cat([vec, zero], -1),
                torch.cat([0.5 * vec, zero], -1),
                False,
            )

    def flow(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        c = self.c.to(dtype=x.dtype, device=x.device)
        s = c.norm().clamp_min(torch.finfo(x.dtype).tiny ** 0.25)
        shape = torch.broadcast_shapes(t.shape, x.shape[:-1])
        t = t.expand(shape)
        x = x.expand(*shape, x.shape[-1])
        st = s * t
        sinhc = torch.sinh(st) / s
        # (cosh(st) - 1) / s^2 = 2 sinh(st/2)^2 / s^2, accurate for small st
        coshm1 = 2 * (torch.sinh(0.5 * st) / s) ** 2
        x0, xs = x[..., :1], x[..., 1:]
        cx = (xs * c).sum(-1, keepdim=True)
        new0 = x0 * torch.cosh(st)[..., None] + cx * sinhc[..., None]
        news = xs + c * (x0 * sinhc[..., None] + cx * coshm1[..., None])
        return torch.cat([new0, news], -1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bound={self.bound:.4g}"


def lorentz_points(u: torch.Tensor, max_radius: float) -> torch.Tensor:
    r"""Points of the hyperboloid ($k = 1$) from tangent coordinates at the origin, radius clamped.

    $x = (\cosh r, \sinh r\, u / |u|)$ with $r = \min(|u|, R)$, $R$ = `max_radius`.

    Args:
        u: Tensor, shape `[..., n]`.
        max_radius: $R$.

    Returns:
        Tensor, shape `[..., n + 1]`.
    """
    norm = u.norm(dim=-1, keepdim=True)
    safe = norm.clamp_min(torch.finfo(u.dtype).tiny ** 0.5)
    r = norm.clamp(max=float(max_radius))
    # sinh(r) u / |u|: finite gradient at u = 0 (sinh r / |u| -> 1)
    direction = torch.where(norm > 0, u / safe, u)
    scale = torch.where(norm > 0, torch.sinh(r), torch.ones_like(r))
    return torch.cat([torch.cosh(r), scale * direction], -1)


def lorentz_boost_navigation(dim: int, *, max_speed: float = 0.9, max_radius: float = 3.0) -> Navigation:
    r"""`Navigation(geoopt.Lorentz(), BoostWind(dim, max_speed / cosh(max_radius)))`.

    The wind is below `max_speed` everywhere within hyperbolic distance `max_radius` of the origin.

    Example:
        >>> m = lorentz_boost_navigation(2, max_speed=0.5, max_radius=1.0)
        >>> x, y = lorentz_points(torch.tensor([[0.3, 0.0], [0.0, 0.4]]), 1.0)
        >>> bool(m.dist(x, y) != m.dist(y, x))
        True
    """
    if not 0 < max_speed < 1:
        raise ValueError(f"max_speed must be in (0, 1), got {max_speed}")
    if not (math.isfinite(max_radius) and max_radius > 0):
        raise ValueError(f"max_radius must be positive and finite, got {max_radius}")
    return Navigation(geoopt.Lorentz(), BoostWind(dim, max_speed / math.cosh(max_radius)))


class RotationWind(KillingWind):
    r"""A rotation in a learned plane: $W(x) = A x$, $A = \omega\,(q p^\top - p q^\top)$, $|\omega| <$ bound.

    A skew-symmetric $A$ is a Killing field of the Poincaré ball (rotations about the origin are
    its isometries; also of $\mathbb{R}^n$). $p, q$ are the Gram–Schmidt orthonormalization of
    two learnable vectors, $\omega = \text{bound} \cdot \tanh(\rho)$ for a learnable $\rho$,
    so $\|A\|_2 = |\omega| <$ `bound`. The flow is closed form (a rotation by the angle
    $\omega t$ in the plane of $p, q$):
    $e^{tA} x = x + \sin(\omega t)\,(q\, p \cdot x - p\, q \cdot x)
    + (\cos(\omega t) - 1)\,(p\, p \cdot x + q\, q \cdot x)$.

    On the ball of curvature $-1$ its speed at hyperbolic distance $r$ from the origin is
    $|W(x)|_h = \frac{2 |A x|}{1 - |x|^2} \le |\omega| \sinh r$:
    `poincare_rotation_navigation` takes `bound = max_speed / sinh(max_radius)`.

    Args:
        dim: the dimension `n` of the points, at least 2.
        bound: the largest rotation rate $|\omega|$.
        rate: initial $\omega$ (default `bound / 2`), in `(-bound, bound)`.
        generator: `torch.Generator` of the initial plane (random; default: the first two axes).

    Example:
        >>> w = RotationWind(2, bound=0.5)
        >>> w.A
        tensor([[ 0.0000, -0.2500],
                [ 0.2500,  0.0000]], grad_fn=<MulBackward0>)
        >>> x = torch.tensor([1.0, 0.0])
        >>> torch.allclose(w.flow(torch.tensor(2 * math.pi), x), torch.tensor([0.0, 1.0]), atol=1e-6)
        True
    """

    def __init__(
        self, dim: int, bound: float, rate: float | None = None, generator: torch.Generator | None = None
    ):
        nn.Module.__init__(self)
        if not (isinstance(dim, int) and dim >= 2):
            raise ValueError(f"dim must be an int >= 2 (a rotation needs a plane), got {dim!r}")
        if not (math.isfinite(bound) and bound > 0):
            raise ValueError(f"bound must be positive and finite, got {bound}")
        rate = 0.5 * bound if rate is None else float(rate)
        if not abs(rate) < bound:
            raise ValueError(f"rate must be in (-bound, bound) = ({-bound}, {bound}), got {rate}")
        self.bound = float(bound)
        self.dim = dim
        if generator is None:
            u, v = torch.zeros(dim), torch.zeros(dim)
            u[0], v[1] = 1.0, 1.0
        else:
            u, v = torch.randn(2, dim, generator=generator)
        self.raw_p = nn.Parameter(u.to(torch.get_default_dtype()))
        self.raw_q = nn.Parameter(v.to(torch.get_default_dtype()))
        self.raw_rate = nn.Parameter(torch.tensor(math.atanh(rate / bound), dtype=torch.get_default_dtype()))
        self.shift = None
        self._cache: dict = {}

    def plane(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(p, q, omega)`: the orthonormal plane and the rate."""
        tiny = torch.finfo(self.raw_p.dtype).tiny ** 0.5
        p = self.raw_p / self.raw_p.norm().clamp_min(tiny)
        q = self.raw_q - (self.raw_q @ p) * p
        q = q / q.norm().clamp_min(tiny)
        return p, q, self.bound * torch.tanh(self.raw_rate)

    @property
    def A(self) -> torch.Tensor:  # type: ignore[override]
        """The generator matrix, shape `[n, n]`."""
        p, q, omega = self.plane()
        return omega * (torch.outer(q, p) - torch.outer(p, q))

    @property
    def ambient_dim(self) -> int:
        return self.dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, q, omega = (t.to(dtype=x.dtype, device=x.device) for t in self.plane())
        return omega * (q * (x @ p)[..., None] - p * (x @ q)[..., None])

    def spectral(self, dtype, device):
        return None  # the closed-form flow below is used

    def flow(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        p, q, omega = (v.to(dtype=x.dtype, device=x.device) for v in self.plane())
        shape = torch.broadcast_shapes(t.shape, x.shape[:-1])
        t = t.expand(shape)
        x = x.expand(*shape, x.shape[-1])
        angle = (omega * t)[..., None]
        xp, xq = (x @ p)[..., None], (x @ q)[..., None]
        # cos - 1 = -2 sin^2(angle / 2): exact at t = 0 and accurate for small angles
        return x + torch.sin(angle) * (q * xp - p * xq) - 2 * torch.sin(0.5 * angle) ** 2 * (p * xp + q * xq)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, bound={self.bound:.4g}"


class HyperboloidRotation(KillingWind):
    r"""A `RotationWind` of the Poincaré ball seen on the hyperboloid: $A_L = \mathrm{diag}(0, A)$.

    The isometry $p \mapsto \big(\frac{1 + |p|^2}{1 - |p|^2}, \frac{2p}{1 - |p|^2}\big)$ from the
    ball to the hyperboloid (`ball_to_hyperboloid`) commutes with rotations about the origin, so
    navigation in `rotation` on the ball and in this wind on `geoopt.Lorentz()` have the same
    distances. On the hyperboloid the arrival time is a scalar iteration per pair (`spectral`:
    the eigenvalues $\pm i\omega$, eigenvectors $(0, p \mp i q)/\sqrt 2$), where the ball's
    root find moves every point by the flow at every step. The parameters are `rotation`'s
    (shared: gradients reach it).

    Args:
        rotation: a `RotationWind`.

    Example:
        >>> from finslerlib.manifolds import Navigation
        >>> rot = RotationWind(2, bound=0.5)
        >>> ball = Navigation(geoopt.PoincareBall(), rot)
        >>> lorentz = Navigation(geoopt.Lorentz(), HyperboloidRotation(rot))
        >>> x, y = torch.tensor([[0.3, 0.0]]), torch.tensor([[0.0, 0.4]])
        >>> X, Y = ball_to_hyperboloid(x), ball_to_hyperboloid(y)
        >>> bool(torch.allclose(ball.dist(x, y), lorentz.dist(X, Y)))
        True
    """

    def __init__(self, rotation: RotationWind):
        nn.Module.__init__(self)
        if not isinstance(rotation, RotationWind):
            raise TypeError(f"rotation must be a RotationWind, got {type(rotation).__name__}")
        self.rotation = rotation
        self.shift = None
        self._cache: dict = {}

    @property
    def A(self) -> torch.Tensor:  # type: ignore[override]
        """The generator matrix, shape `[n + 1, n + 1]`."""
        return torch.nn.functional.pad(self.rotation.A, (1, 0, 1, 0))

    @property
    def ambient_dim(self) -> int:
        return self.rotation.dim + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[..., :1]), self.rotation(x[..., 1:])], -1)

    def spectral(self, dtype, device) -> Spectrum | None:
        """The reduced eigen-decomposition of $A_L$ (closed form; `None` for a zero rate)."""
        with torch.no_grad():
            p, q, omega = (v.detach().to(dtype=dtype, device=device) for v in self.rotation.plane())
            if not bool(omega != 0):
                return None
            # keep the eigenvalue i|omega|: eigenvector (p - i q') / sqrt 2, q' = sign(omega) q
            q = q * torch.sign(omega)
            zero = torch.zeros(1, dtype=dtype, device=device)
            p1, q1 = torch.cat([zero, p]), torch.cat([zero, q])
            r2 = math.sqrt(2.0)
            return Spectrum(
                zero,
                omega.abs().reshape(1),
                torch.stack([r2 * p1, -r2 * q1], -1),  # the column times its weight 2
                torch.stack([p1 / r2, q1 / r2], -1),  # the row of the inverse: (p + i q') / sqrt 2
                True,
            )

    def flow(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        shape = torch.broadcast_shapes(t.shape, x.shape[:-1])
        x = x.expand(*shape, x.shape[-1])
        return torch.cat([x[..., :1], self.rotation.flow(t, x[..., 1:])], -1)

    def extra_repr(self) -> str:
        return f"dim={self.rotation.dim}"


def ball_to_hyperboloid(p: torch.Tensor) -> torch.Tensor:
    r"""The isometry from the Poincaré ball ($c = 1$) to the hyperboloid ($k = 1$).

    $p \mapsto \big(\frac{1 + |p|^2}{1 - |p|^2}, \frac{2p}{1 - |p|^2}\big)$.

    Args:
        p: Tensor, shape `[..., n]`, $|p| < 1$.

    Returns:
        Tensor, shape `[..., n + 1]`.

    Example:
        >>> ball_to_hyperboloid(torch.tensor([0.0, 0.5]))
        tensor([1.6667, 0.0000, 1.3333])
    """
    sq = (p * p).sum(-1, keepdim=True)
    inv = 1.0 / (1.0 - sq)
    return torch.cat([(1.0 + sq) * inv, 2.0 * p * inv], -1)


def poincare_points(u: torch.Tensor, max_radius: float) -> torch.Tensor:
    r"""Points of the Poincaré ball ($c = 1$) from tangent coordinates at the origin, radius clamped.

    $x = \tanh(r / 2)\, u / |u|$ with $r = \min(|u|, R)$, $R$ = `max_radius`: $r$ is the
    hyperbolic distance of $x$ from the origin (geoopt's `expmap0(u / 2)`, clamped: its tangent
    vectors at the origin have length $2 |u|$).

    Args:
        u: Tensor, shape `[..., n]`.
        max_radius: $R$.

    Returns:
        Tensor, shape `[..., n]`.

    Example:
        >>> poincare_points(torch.tensor([[0.0, 0.5], [0.0, 9.0]]), 1.0)
        tensor([[0.0000, 0.2449],
                [0.0000, 0.4621]])
    """
    norm = u.norm(dim=-1, keepdim=True)
    safe = norm.clamp_min(torch.finfo(u.dtype).tiny ** 0.5)
    r = norm.clamp(max=float(max_radius))
    # tanh(r/2) u / |u|: finite gradient at u = 0 (tanh(r/2) / |u| -> 1/2)
    scale = torch.where(norm > 0, torch.tanh(0.5 * r) / safe, torch.full_like(r, 0.5))
    return scale * u


def poincare_rotation_navigation(dim: int, *, max_speed: float = 0.9, max_radius: float = 1.0) -> Navigation:
    r"""`Navigation(geoopt.PoincareBall(), RotationWind(dim, max_speed / sinh(max_radius)))`.

    The wind is below `max_speed` everywhere within hyperbolic distance `max_radius` of the origin.

    Example:
        >>> m = poincare_rotation_navigation(2, max_speed=0.5, max_radius=1.0)
        >>> x, y = poincare_points(torch.tensor([[0.5, 0.0], [0.0, 0.5]]), 1.0)
        >>> bool(m.dist(x, y) < m.dist(y, x))  # with the (counter-clockwise) rotation
        True
    """
    if not 0 < max_speed < 1:
        raise ValueError(f"max_speed must be in (0, 1), got {max_speed}")
    if not (math.isfinite(max_radius) and max_radius > 0):
        raise ValueError(f"max_radius must be positive and finite, got {max_radius}")
    return Navigation(geoopt.PoincareBall(), RotationWind(dim, max_speed / math.sinh(max_radius)))


def _pair_coefficients(wind, x: torch.Tensor, y: torch.Tensor):
    r"""`(a, b, w2, rate, hyperbolic)` of $q(T) = q_0 + a E(T) + b S(T)$ for `hyperboloid_navigation_dist`.

    Boost (rate $r = |c|$, $\hat c = c / r$, $E = \cosh rT - 1$, $S = \sinh rT$):
    $a = x_0 y_0 - (\hat c \cdot \bar x)(\hat c \cdot \bar y)$,
    $b = y_0\, \hat c \cdot \bar x - x_0\, \hat c \cdot \bar y$,
    $|W(y)|_h^2 = r^2 (y_0^2 - (\hat c \cdot \bar y)^2)$. Rotation in the plane $p, q$ at rate
    $\omega$ ($E = 1 - \cos \omega T$, $S = \sin \omega T$): $a = x_p y_p + x_q y_q$,
    $b = x_q y_p - x_p y_q$, $|W(y)|_h^2 = \omega^2 (y_p^2 + y_q^2)$. `w2` is `[2, B]`: $|W|_h^2$
    at $x$ and at $y$. Each is the projection
    of the points on two directions (one matrix product: no slices of the points, whose
    backward would fill a zero copy of them)."""
    zero = x.new_zeros(1)
    if isinstance(wind, BoostWind):
        c = wind.c.to(dtype=x.dtype, device=x.device)
        rate = c.norm()
        chat = c / rate.clamp_min(torch.finfo(x.dtype).tiny)
        e0 = torch.zeros_like(chat)
        proj = torch.stack([torch.cat([zero + 1.0, e0]), torch.cat([zero, chat])], -1)
        x0, cx = (x @ proj).unbind(-1)
        y0, cy = (y @ proj).unbind(-1)
        w2 = rate.square() * torch.stack([x0 * x0 - cx * cx, y0 * y0 - cy * cy])
        return x0 * y0 - cx * cy, y0 * cx - x0 * cy, w2, rate, True
    if isinstance(wind, HyperboloidRotation):
        p, q, rate = (v.to(dtype=x.dtype, device=x.device) for v in wind.rotation.plane())
        proj = torch.stack([torch.cat([zero, p]), torch.cat([zero, q])], -1)
        xp, xq = (x @ proj).unbind(-1)
        yp, yq = (y @ proj).unbind(-1)
        w2 = rate.square() * torch.stack([xp * xp + xq * xq, yp * yp + yq * yq])
        return xp * yp + xq * yq, xq * yp - xp * yq, w2, rate, False
    raise TypeError(f"wind must be a BoostWind or a HyperboloidRotation, got {type(wind).__name__}")


def _terms(half_rate: float, t: torch.Tensor, hyperbolic: bool, exact: bool = True):
    r"""`(E, S, C)` at `t`: $\cosh rT - 1, \sinh rT, \cosh rT$ (boost) or $1 - \cos, \sin, \cos$.

    From $h = rT/2$: $E = 2 \sinh^2 h$, $S = 2 \sinh h \cosh h$ (or $\sin, \cos$), so $E$ has
    no cancellation at small $T$. The boost's $\sinh h, \cosh h$ come from one `expm1` or `exp`
    (cheaper than float64 `sinh` and `cosh` on the CPU). `exact`: $\sinh h = \tfrac12 (e^h - 1)
    (1 + e^{-h})$, a relative error of a few $\varepsilon$ at every $h$ (the root's gradient to
    the rate divides $S$ by $h$); otherwise (the Newton steps, half the cost) $\tfrac12 (e^h -
    e^{-h})$, an absolute error of $\varepsilon$, which moves $q$ by $\varepsilon$ times
    $|b| = O(d_0)$, so $d_h$ by $O(\varepsilon)$; $\cosh h = \tfrac12 (e^h + e^{-h})$."""
    h = t * half_rate
    if hyperbolic and not exact:
        ex = torch.exp(h)
        inv = ex.reciprocal()
        sh = (ex - inv).mul_(0.5)
        ch = ex.add_(inv).mul_(0.5)
    elif hyperbolic:
        em = torch.expm1(h)
        ex = em + 1.0
        inv = ex.reciprocal()
        sh = em.mul_(inv + 1.0).mul_(0.5)
        ch = ex.add_(inv).mul_(0.5)
    else:
        sh, ch = torch.sin(h), torch.cos(h)
    e = sh * sh
    s = sh.mul_(ch).mul_(2.0)
    e.mul_(2.0)
    return e, s, (e + 1.0) if hyperbolic else (1.0 - e)


def _residual(qd, ad, bd, rate: float, half_rate: float, t, hyperbolic: bool, exact: bool = True):
    r"""`(g, slope, sq, E, S, dq)` at `t`: $g = d_h(q(T)) - T$, $g' + 1$, $\sinh d_h$, $E$, $S$,
    $q'(T) / r$ (float64, `[B]`). $d_h = \mathrm{acosh}(1 + q) = \log(1 + q + \sqrt{q (q + 2)})$
    (`log` rather than `log1p`: a sixth of the cost, an absolute error of $\varepsilon$)."""
    e, s, c = _terms(half_rate, t, hyperbolic, exact)
    q = torch.addcmul(qd, ad, e).addcmul_(bd, s).clamp_min_(0.0)
    dq = torch.addcmul(ad * s, bd, c)
    sq = torch.sqrt(q * (q + 2.0)).clamp_min_(torch.finfo(q.dtype).tiny)
    g = torch.log(q.add_(sq).add_(1.0)).sub_(t)
    return g, dq.mul(rate).div_(sq), sq, e, s, dq


# plain Newton steps of `hyperboloid_navigation_dist` before its one convergence check (measured:
# 3 leave residuals of 2e-10 on strong boosts, 4 converge to float64 rounding)
_NEWTON_STEPS = 4


def hyperboloid_navigation_dist(
    x: torch.Tensor, y: torch.Tensor, wind: BoostWind | HyperboloidRotation, *, max_iter: int = 64
) -> torch.Tensor:
    r"""$d(x \to y)$ of Zermelo navigation on the hyperboloid ($k = 1$) in a boost or a rotation.

    `Navigation(geoopt.Lorentz(), wind).dist(x, y)` as a scalar root find per pair, without
    moving any point: with $z = e^{-TA} y$,
    $\cosh d_h(x, z) - 1 = q(T) = q_0 + a E(T) + b S(T)$, $q_0 = |y - x|_L^2 / 2$, where $a, b$
    are two numbers per pair (`_pair_coefficients`) and $E, S$ closed forms of $rT$. The arrival
    time solves $g(T) = d_h(q(T)) - T = 0$, $g' \in [-(1 + w), -(1 - w)]$ ($w = |W(y)|_h$):
    `_NEWTON_STEPS` Newton steps from the first-order start $d_0 / (1 - s_0)$ ($s_0 = g'(0) + 1$),
    slopes clamped to those bounds and iterates to the bracket $[d_0 / (1 + w), d_0 / (1 - w)]$,
    one check of $|g| \le 64\,\varepsilon\,(1 + d_0/(1 - w))$, then safeguarded Newton
    (bisection when a step leaves the bracket or stalls) on the pairs not converged yet.

    The coefficients are computed in the input dtype (their rounding is relative: $q_0$ loses at
    most a factor $\cosh^2 R$ to cancellation within hyperbolic radius $R$); the root find runs in
    float64 on the three numbers per pair ($g$ is a difference of terms of order $T$, and its
    rounding, amplified by $1 / (1 - w)$, sets the error of $T$). Gradients by the implicit
    function theorem in closed form: $dT = dq / (\sinh T - q'(T))$, $dq$ the differential of
    $q(T)$ at the root in $q_0, a, b$ and the rate ($\sinh T - q'(T) \ge (1 - w) \sinh T > 0$ for
    $T > 0$; zero at $x = y$).

    The inputs are checked in the iteration's one host synchronization: finite, within the
    wind's domain, and (unless `finslerlib.math.validation.value_checks(False)`) on the upper
    sheet ($x_0 > 0$, $|\langle x, x\rangle_L + 1| \le \tau (1 + x_0^2)$, $\tau$ =
    `default_tolerance(dtype)` as `Navigation`'s point check); the domain is $|W|_h < 1$ at $x$
    and $y$ (a Killing wind's flow keeps $|W|_h$, so along the path).

    Args:
        x: Tensor, shape `[..., n + 1]`, points of the hyperboloid.
        y: Tensor, shape `[..., n + 1]` (broadcast with `x`).
        wind: a `BoostWind` or a `HyperboloidRotation` (its parameters get gradients).
        max_iter: iteration cap; `RuntimeError` if a pair has not converged by then.

    Returns:
        Tensor, shape `[...]` (the broadcast batch shape).

    Raises:
        ValueError: a point is not finite, off the hyperboloid, or where $|W|_h \ge 1$.
        RuntimeError: a pair did not converge within `max_iter` iterations.

    Example:
        >>> from finslerlib.manifolds import Navigation
        >>> wind = BoostWind(2, bound=0.5).double()
        >>> x, y = lorentz_points(torch.tensor([[0.3, 0.0], [0.0, 0.4]], dtype=torch.float64), 1.0)
        >>> d = hyperboloid_navigation_dist(x, y, wind)
        >>> bool(torch.allclose(d, Navigation(geoopt.Lorentz(), wind).dist(x, y)))
        True
    """
    x, y = torch.broadcast_tensors(x, y)
    shape = x.shape[:-1]
    # one batch dimension inside (the fallback indexes the unconverged pairs)
    x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    diff = y - x
    sign = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
    sign[0] = -1.0
    q0 = 0.5 * ((diff * diff) @ sign)
    a, b, w2, rate, hyperbolic = _pair_coefficients(wind, x, y)
    with torch.no_grad():
        f64 = torch.float64
        eps = torch.finfo(f64).eps
        w2 = w2.detach()
        # every bad point fails a comparison (NaN compares False): on the sheet, in the domain
        pts = (x.detach(), y.detach())
        qd, ad, bd = q0.detach().to(f64).clamp_min(0.0), a.detach().to(f64), b.detach().to(f64)
        # a non-finite coordinate makes q0 non-finite; |W|_h >= 1 (or NaN) fails the comparison
        bad = ~((w2 < 1.0) & torch.isfinite(qd))
        if value_checks_enabled():
            # `Navigation`'s point check: |<x, x>_L + 1| <= tol (1 + x_0^2), x_0 > 0
            tau = default_tolerance(x.dtype)
            onsheet = torch.stack(
                [((p * p) @ sign).add_(1.0).abs_() <= p[:, 0].square().mul_(tau).add_(tau) for p in pts]
            ) & torch.stack([p[:, 0] > 0 for p in pts])
            bad |= ~onsheet
        else:
            onsheet = torch.ones_like(bad)
        r = float(rate.detach())
        w = w2[1].to(f64).clamp_min(0.0).sqrt_().clamp_(max=1.0 - eps)
        opw, omw = 1.0 + w, 1.0 - w
        smin, smax = -opw, -omw
        sq0 = torch.sqrt(qd * (qd + 2.0))
        d0 = torch.log(qd + sq0 + 1.0)
        lo, hi = d0 / opw, d0 / omw
        tol = hi.add(1.0).mul_(64.0 * eps)
        # the first-order start T = d0 / (1 - s0), s0 = g'(0) + 1 = r b / sinh d0
        s0 = bd.mul(r).div_(sq0.clamp_min(torch.finfo(f64).tiny))
        t = torch.div(d0, s0.neg_().add_(1.0).clamp_(min=omw, max=opw)).clamp_(min=lo, max=hi)
        for _ in range(_NEWTON_STEPS):
            g, slope = _residual(qd, ad, bd, r, 0.5 * r, t, hyperbolic, exact=False)[:2]
            t = t.sub_(g.div_(slope.sub_(1.0).clamp_(min=smin, max=smax))).clamp_(min=lo, max=hi)
        g, slope, sq, e, s, dq = _residual(qd, ad, bd, r, 0.5 * r, t, hyperbolic)
        done = (g.abs() <= tol) | (hi - lo <= tol)
        unfinished, invalid = torch.stack([~done.all(), bad.any()]).tolist()
        if invalid:
            _raise_invalid(pts, w2, onsheet)
        if unfinished:
            t = _safeguarded(qd, ad, bd, r, hyperbolic, t, g, slope, lo, hi, smin, smax, tol, done, max_iter)
            g, slope, sq, e, s, dq = _residual(qd, ad, bd, r, 0.5 * r, t, hyperbolic)
        # the root's derivative: dT = dq / (sinh T - q'(T)), zero at T = 0
        den = sq - r * dq
        inv = torch.where((t > 0) & (den > 0), den.reciprocal(), torch.zeros_like(den))
    out = t.to(x.dtype)
    if not torch.is_grad_enabled():
        return out.reshape(shape)
    # q(T) at the root, linear in q0, a, b and (through rT) the rate: its differential
    dt = x.dtype
    lin = q0 + a * e.to(dt) + b * s.to(dt) + rate * (t * dq).to(dt)
    if hyperbolic and r == 0.0:
        # no wind: the rate |c| has no derivative at c = 0, but q(T) = q0 + T (y_0 c . x - x_0 c . y)
        # + O(|c|^2), whose first-order term carries the gradient to c
        c = wind.c.to(dtype=dt, device=x.device)
        first = y[..., 0] * (x[..., 1:] @ c) - x[..., 0] * (y[..., 1:] @ c)
        lin = lin + first * out.detach()
    return (out + (lin - lin.detach()) * inv.to(dt)).reshape(shape)


def _raise_invalid(pts: tuple[torch.Tensor, torch.Tensor], w2: torch.Tensor, onsheet: torch.Tensor):
    """`ValueError` naming the first bad argument of `hyperboloid_navigation_dist` and its value."""
    for k, name in enumerate("xy"):
        p = pts[k]
        finite = torch.isfinite(p).all(-1)
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0, 0])
            raise ValueError(f"hyperboloid_navigation_dist: {name} is not finite (row {i}: {p[i].tolist()})")
        if not bool(onsheet[k].all()):
            i = int((~onsheet[k]).nonzero()[0, 0])
            sq = p[i] * p[i]
            form = float(sq[1:].sum() - sq[0])
            raise ValueError(
                f"hyperboloid_navigation_dist: {name} is not a point of the hyperboloid (row {i}: "
                f"<x, x>_L = {form:.6g}, x_0 = {float(p[i, 0]):.6g}; need <x, x>_L = -1, x_0 > 0)"
            )
    for k, name in enumerate("xy"):
        if not bool((w2[k] < 1.0).all()):
            size = w2[k].clamp_min(0.0).sqrt()
            i = int((~(w2[k] < 1.0)).nonzero()[0, 0])
            most = float(size.nan_to_num(nan=float("inf")).max())
            raise ValueError(
                f"hyperboloid_navigation_dist: {name} is outside the wind's domain: |W({name})|_h up to "
                f"{most:.4g} (row {i}: {float(size[i]):.4g}; need < 1)"
            )
    raise ValueError("hyperboloid_navigation_dist: |y - x|_L is not finite (points too large)")


def _safeguarded(qd, ad, bd, r, hyperbolic, t, g, slope, lo, hi, smin, smax, tol, done, max_iter):
    """Safeguarded Newton on the pairs not `done`: returns every pair's `t` (`RuntimeError` if
    one has not converged after `max_iter` iterations)."""
    idx = (~done).nonzero().squeeze(-1)
    full = t.clone()
    qd, ad, bd, t, g, slope = qd[idx], ad[idx], bd[idx], t[idx], g[idx], slope[idx]
    lo, hi, smin, smax, tol = lo[idx], hi[idx], smin[idx], smax[idx], tol[idx]
    sub_done = torch.zeros_like(t, dtype=torch.bool)
    g_prev = torch.full_like(t, float("inf"))
    for _ in range(_NEWTON_STEPS, max_iter):
        lo = torch.where(g > 0, torch.maximum(lo, t), lo)
        hi = torch.where(g < 0, torch.minimum(hi, t), hi)
        newton = t - g / (slope - 1.0).clamp(min=smin, max=smax)
        take = (newton > lo) & (newton < hi) & ~(g.abs() > 0.5 * g_prev.abs())
        t = torch.where(sub_done, t, torch.where(take, newton, 0.5 * (lo + hi)))
        g_prev = g
        g, slope = _residual(qd, ad, bd, r, 0.5 * r, t, hyperbolic, exact=False)[:2]
        sub_done = sub_done | (g.abs() <= tol) | (hi - lo <= tol)
        if bool(sub_done.all()):
            return full.index_put_((idx,), t)
    i = int((~sub_done).nonzero()[0, 0])
    raise RuntimeError(
        f"hyperboloid_navigation_dist: the arrival time did not converge for {int((~sub_done).sum())} "
        f"pairs after {max_iter} iterations (first: residual {g[i].abs().item():.3g} > tolerance "
        f"{tol[i].item():.3g})"
    )
