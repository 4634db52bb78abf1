r"""`StereographicDomain`: geoopt's $\kappa$-stereographic models (`PoincareBall` for $k < 0$,
`SphereProjection` for $k > 0$), $h = \lambda_x^2 I$, $\lambda_x = 2 / (1 + k|x|^2)$.

Points are the chart's own coordinates (one chart: the identity with the conformal metric).
"""

from __future__ import annotations

import geoopt
import torch

from finslerlib.manifolds.domains.base import Domain
from finslerlib.manifolds.domains.euclidean import IdentityChart
from finslerlib.math.elementary import artan_k_div, dot, tan_k_div
from finslerlib.math.pairwise import safe_sqrt

__all__ = ["StereographicDomain"]


def mobius_add(k: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Möbius addition $x \oplus_k y$ of the $\kappa$-stereographic model (geoopt's convention).

    Args:
        k: the curvature.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> mobius_add(-1.0, torch.zeros(2), torch.tensor([0.5, 0.0]))
        tensor([0.5000, 0.0000])
    """
    xy, x2, y2 = dot(x, y), dot(x, x), dot(y, y)
    num = (1.0 - 2.0 * k * xy - k * y2) * x + (1.0 + k * x2) * y
    return num / (1.0 - 2.0 * k * xy + k * k * x2 * y2)


class StereographicDomain(Domain):
    r"""The $\kappa$-stereographic model of curvature `k` in $\mathbb{R}^n$ (`dim == ambient_dim`).

    $k < 0$: the Poincaré ball $|x| < 1/\sqrt{-k}$; $k > 0$: stereographic projection of the
    sphere of radius $1/\sqrt{k}$ (all of $\mathbb{R}^n$, the far side stretched toward infinity);
    $k = 0$: flat space. Distances $2 \operatorname{artan}_k |{-x} \oplus_k y|$.

    Example:
        >>> ball = StereographicDomain(2, k=-1.0)
        >>> ball.name
        'PoincareBall(k=-1)'
        >>> ball.inner(torch.tensor([0.0, 0.5]), torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
        tensor(7.1111)
    """

    def __init__(self, dim: int, k: float):
        super().__init__(dim, dim)
        self.k = float(k)
        self._atlas = (IdentityChart(self.k),)

    @property
    def name(self) -> str:
        kind = "PoincareBall" if self.k < 0 else "SphereProjection" if self.k > 0 else "Stereographic"
        return f"{kind}(k={self.k:g})"

    def _lambda(self, x):
        return 2.0 / (1.0 + self.k * dot(x, x))

    def projx(self, x):
        if self.k >= 0:
            return x
        return geoopt.manifolds.stereographic.math.project(
            x, k=torch.tensor(self.k, dtype=x.dtype, device=x.device)
        )

    def inner(self, x, u, v, *, keepdim=False):
        out = self._lambda(x) ** 2 * dot(u, v)
        return out if keepdim else out.squeeze(-1)

    def flat(self, x, u):
        return self._lambda(x) ** 2 * u

    def sharp(self, x, xi):
        return xi / self._lambda(x) ** 2

    def metric(self, x):
        n = x.shape[-1]
        eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], n, n)
        return (self._lambda(x) ** 2).unsqueeze(-1) * eye

    def dist(self, x, y):
        w = mobius_add(self.k, -x, y)
        r = safe_sqrt(dot(w, w, keepdim=False))
        return 2.0 * r * artan_k_div(self.k, r)

    def expmap(self, x, u):
        lam = self._lambda(x)
        r = safe_sqrt(dot(u, u))
        return mobius_add(self.k, x, 0.5 * lam * tan_k_div(self.k, 0.5 * lam * r) * u)

    def logmap(self, x, y):
        w = mobius_add(self.k, -x, y)
        r = safe_sqrt(dot(w, w))
        return (2.0 / self._lambda(x)) * artan_k_div(self.k, r) * w

    def transp(self, x, y, v):
        k = torch.tensor(self.k, dtype=x.dtype, device=x.device)
        return geoopt.manifolds.stereographic.math.parallel_transport(x, y, v, k=k)

    def check_point(self, x, *, atol=None, rtol=None):
        ok, reason = super().check_point(x)
        if not ok or not x.numel() or self.k >= 0:
            return ok, reason
        r2 = (x * x).sum(-1)
        if not bool((r2 * -self.k < 1).all()):
            return False, (
                f"points are not inside the ball of radius {(-self.k) ** -0.5:.6g}: max |x| = "
                f"{r2.max().item() ** 0.5:.6g}"
            )
        return True, None

    def random(self, *shape, dtype=None, device=None, std=1.0):
        o = self.origin(*shape, dtype=dtype, device=device)
        u = torch.randn(*shape, dtype=o.dtype, device=device) * std
        if self.k > 0:
            # the near hemisphere |x| <= 1/sqrt(k): the chart loses precision toward infinity
            n = u.norm(dim=-1, keepdim=True)
            cap = 0.25 * torch.pi / self.k**0.5  # h-length pi / (2 sqrt(k)) from the origin
            u = torch.where(n > cap, u * (cap / n.clamp_min(cap)), u)
        return self.projx(self.expmap(o, u))

    @property
    def atlas(self):
        return self._atlas

    def killing_error(self, A):
        return (A + A.mT).abs().max().item(), (
            "A must be skew-symmetric (A + A^T = 0) to generate rotations about the origin"
        )
