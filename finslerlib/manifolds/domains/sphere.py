r"""`SphereDomain`: the unit sphere $S^n \subset \mathbb{R}^{n+1}$ with its induced metric.

Its atlas has two stereographic charts, from $-e_0$ and from $+e_0$ (`StereographicChart`):
neither covers the sphere, and a chart loses digits near its pole, so the atlas picks per pair
the chart whose pole is farther from both points.
"""

from __future__ import annotations

import torch

from finslerlib.manifolds.domains.base import Chart, Domain, default_tolerance
from finslerlib.math.elementary import div_sin, dot, rowsum, sin_div
from finslerlib.math.pairwise import safe_sqrt

__all__ = ["SphereDomain", "StereographicChart"]


class StereographicChart(Chart):
    r"""Stereographic projection of $S^n$ from the pole $-s e_0$ ($s = \pm 1$).

    $p = x_{1:} / (1 + s x_0)$, $x = ((1 - |p|^2) s, 2 p) / (1 + |p|^2)$, conformal factor
    $\lambda = 2 / (1 + |p|^2)$; every point but the pole, accurate where $s x_0 > -1/2$ say.
    """

    def __init__(self, sign: float = 1.0):
        self.s = 1.0 if sign > 0 else -1.0
        self.name = f"stereographic from {'-' if self.s > 0 else '+'}e0"

    def to_chart(self, x):
        return x[..., 1:] / (1.0 + self.s * x[..., :1])

    def from_chart(self, p):
        q = (p * p).sum(-1, keepdim=True)
        return torch.cat([self.s * (1.0 - q) / (1.0 + q), 2.0 * p / (1.0 + q)], -1)

    def push(self, x, u):
        den = 1.0 + self.s * x[..., :1]
        return u[..., 1:] / den - self.s * x[..., 1:] * u[..., :1] / den**2

    def pull(self, p, v):
        q = (p * p).sum(-1, keepdim=True)
        pv = (p * v).sum(-1, keepdim=True)
        return torch.cat(
            [-4.0 * self.s * pv / (1.0 + q) ** 2, 2.0 * v / (1.0 + q) - 4.0 * p * pv / (1.0 + q) ** 2], -1
        )

    def conformal(self, p):
        return 2.0 / (1.0 + (p * p).sum(-1))

    def reach(self, x):
        return 1.0 + self.s * x[..., 0]  # 0 at the pole, 2 at the centre


class SphereDomain(Domain):
    r"""The unit sphere $S^n = \{x \in \mathbb{R}^{n+1} : |x| = 1\}$: `dim = n`, `ambient_dim = n + 1`.

    $T_x S^n = x^\perp$ (normal $x$), `proju(x, u)` $= u - \langle x, u\rangle x$,
    `projx(x)` $= x / |x|$ (as `geoopt.Sphere`), origin $e_0$, $h$ the Euclidean product.
    Distances use $2\operatorname{atan2}(|x - y|, |x + y|)$ (accurate for near and antipodal
    pairs); the logarithm uses the chord (no cancellation for close points).

    Example:
        >>> s = SphereDomain(2)
        >>> s.dim, s.ambient_dim
        (2, 3)
        >>> s.proju(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 2.0, 3.0]))
        tensor([1., 2., 0.])
        >>> s.dist(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
        tensor(1.5708)
    """

    embedded = True
    has_form = True
    form_curvature = 1.0

    def __init__(self, dim: int):
        super().__init__(dim, int(dim) + 1)
        self._atlas = (StereographicChart(1.0), StereographicChart(-1.0))

    @property
    def name(self) -> str:
        return "Sphere()"

    def projx(self, x):
        return x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def proju(self, x, u):
        return u - dot(x, u) * x

    def normal(self, x):
        return x

    def tangent_covector(self, x, xi):
        return xi - dot(xi, x) / dot(x, x) * x

    def dist(self, x, y):
        return 2.0 * torch.atan2(
            safe_sqrt(dot(x - y, x - y, keepdim=False)), safe_sqrt(dot(x + y, x + y, keepdim=False))
        )

    def expmap(self, x, u):
        n = safe_sqrt(dot(u, u))
        return torch.cos(n) * x + sin_div(n) * u

    def logmap(self, x, y):
        d = self.dist(x, y).unsqueeze(-1)
        # y - <x, y> x with <x, y> = 1 - |x - y|^2 / 2 (no cancellation for close points)
        u = (y - x) + 0.5 * dot(x - y, x - y) * x
        out = div_sin(d) * u
        # antipodal pairs: every direction is minimizing; return one of length pi (not 0 or NaN)
        anti = dot(x + y, x + y) <= (16.0 * torch.finfo(x.dtype).eps) ** 2
        if bool(anti.any()):
            axis = torch.zeros_like(x)
            axis.scatter_(-1, x.abs().argmin(-1, keepdim=True), 1.0)
            t = self.proju(x, axis)
            t = torch.pi * t / t.norm(dim=-1, keepdim=True)
            out = torch.where(anti, t, out)
        return out

    def transp(self, x, y, v):
        # rotation in the plane of x and y: v - <x + y, v> / (1 + <x, y>) (x + y)  (geodesic x -> y)
        s = x + y
        return v - dot(y, v) / (1.0 + dot(x, y)).clamp_min(torch.finfo(x.dtype).tiny) * s

    def dist_slope(self, x, z, d, wz):
        # log_z x = d / sin d (x - <x, z> z) and <z, W(z)> = 0
        sin = torch.sin(d)
        return torch.where(sin != 0, dot(x, wz, keepdim=False) / torch.where(sin != 0, sin, 1.0), 0.0)

    # quadric: s(T) = <x, z>, cos d = 1 - q, q = |x - z|^2 / 2
    def form_covector(self, x):
        return x

    def form_chord(self, x, y):
        diff = x - y
        return 0.5 * dot(diff, diff)

    def form_distance(self, q0, s_delta, ds):
        # sin(d/2) = sqrt(q/2), cos(d/2) = sqrt(1 - q/2) with q = q0 - s_delta
        # d = 2 atan(tan(d/2)), tan^2(d/2) = h / (1 - h) (an atan is half the cost of an atan2);
        # d' = -ds / sin d, sin d = 2 sqrt(h (1 - h))
        half = torch.sub(q0, s_delta).mul_(0.5).clamp_(0.0, 1.0)
        rest = 1.0 - half
        d = torch.div(half, rest).sqrt_().atan_().mul_(2.0)
        slope = torch.div(ds, half.mul_(rest).sqrt_().clamp_min_(torch.finfo(half.dtype).tiny)).mul_(-0.5)
        return d, slope

    def check_point(self, x, *, atol=None, rtol=None):
        tol = default_tolerance(x.dtype)
        atol = tol if atol is None else atol
        rtol = tol if rtol is None else rtol
        # fast path: ||x| - 1| <= ||x|^2 - 1| (a matmul row sum and one max; a NaN or infinity
        # propagates to the max and fails the comparison: the checks below then name it)
        if x.numel() and bool(rowsum(x * x).sub_(1.0).abs_().max() <= atol + rtol):
            return True, None
        ok, reason = super().check_point(x)
        if not ok or not x.numel():
            return ok, reason
        err = (x.norm(dim=-1) - 1).abs()
        if not bool((err <= atol + rtol).all()):
            i = int(err.reshape(-1).argmax())
            return False, (
                f"points are not on the unit sphere: max ||x| - 1| = {err.reshape(-1)[i].item():.3g} "
                f"(tolerance {atol + rtol:.3g}; projx(x) puts them on it)"
            )
        return True, None

    def origin(self, *shape, dtype=None, device=None):
        x = torch.zeros(*shape, dtype=dtype, device=device)
        x[..., 0] = 1.0
        return x

    @property
    def atlas(self):
        return self._atlas

    def centring(self, x):
        # Householder reflection along n = x + s e_0 (s the sign of x_0, |n|^2 >= 2: well
        # conditioned), which sends x to -s e_0, then row 0 flipped when s = 1: R x = e_0
        s = torch.where(x[..., :1] > 0, 1.0, -1.0).to(x)
        n = x.clone()
        n[..., :1] = n[..., :1] + s
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        r = eye - 2.0 * n[..., :, None] * n[..., None, :] / (n * n).sum(-1)[..., None, None]
        flip = torch.ones_like(x)
        flip[..., :1] = -s
        return flip[..., :, None] * r

    def admissible_set_is_convex(self, A):
        # |A x| <= |A|_2 on the unit sphere: below 1 the whole sphere is admissible
        return bool(torch.linalg.matrix_norm(A.to(torch.float64), ord=2) < 1)

    def admissible_everywhere(self, A):
        # |A x| <= |A|_2 |x|, and a point passing check_point has |x| <= 1 + 1e-5 (the float32
        # tolerance, the largest)
        return bool(torch.linalg.matrix_norm(A.to(torch.float64), ord=2) * (1.0 + 2e-5) < 1)
