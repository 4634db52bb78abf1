r"""A learnable boost wind on the hyperboloid: Zermelo navigation with a learned direction.

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

__all__ = ["BoostWind", "lorentz_boost_navigation", "lorentz_points"]


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

    def spectral(self, dtype, device):
        return None  # the closed-form flow below is used

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
