r"""`EuclideanDomain`: $\mathbb{R}^D$ (or an open subset of it) in its global chart, $h = I$."""

from __future__ import annotations

import torch

from finslerlib.manifolds.domains.base import Chart, Domain

__all__ = ["EuclideanDomain", "IdentityChart"]


class IdentityChart(Chart):
    r"""The identity chart of an open subset of $\mathbb{R}^D$ with the conformal metric
    $h = \lambda(p)^2 I$, $\lambda = 2 / (1 + k |p|^2)$ ($k = 0$: $\lambda = 1$, flat space; the
    stereographic models use their own $k$)."""

    def __init__(self, k: float = 0.0):
        self.k = float(k)
        self.name = "identity" if self.k == 0 else f"identity(k={self.k:g})"
        self.flat = self.k == 0

    def to_chart(self, x):
        return x

    def from_chart(self, p):
        return p

    def push(self, x, u):
        return u

    def pull(self, p, v):
        return v

    def conformal(self, p):
        if self.k == 0:
            return torch.ones_like(p[..., 0])
        return 2.0 / (1.0 + self.k * (p * p).sum(-1))


class EuclideanDomain(Domain):
    r"""An open subset of $\mathbb{R}^D$ in its global chart: `dim == ambient_dim == D`, $h = I$.

    Every projection is the identity; geodesics are straight lines, transport the identity, and
    a constant translation is a Killing field (`shift_allowed`).

    Example:
        >>> d = EuclideanDomain(3)
        >>> d
        EuclideanDomain(dim=3, ambient_dim=3)
        >>> d.dist(torch.zeros(3), torch.tensor([3.0, 4.0, 0.0]))
        tensor(5.)
    """

    shift_allowed = True

    def __init__(self, dim: int):
        super().__init__(dim, dim)
        self._atlas = (IdentityChart(0.0),)

    @property
    def name(self) -> str:
        return "Euclidean(ndim=1)"

    @property
    def atlas(self):
        return self._atlas

    def admissible_set_is_convex(self, A):
        # {x : |A x + c| < 1} is a sublevel set of a convex function: geodesics (segments) stay in it
        return True
