r"""`HyperboloidDomain`: the hyperboloid model of $H^n$ in $\mathbb{R}^{1,n}$ (as `geoopt.Lorentz(k)`).

One chart covers it: the Poincaré ball of radius $\sqrt{k}$ (`PoincareChart`).
"""

from __future__ import annotations

import torch

from finslerlib.manifolds.domains.base import Chart, Domain, default_tolerance
from finslerlib.math.elementary import div_sinh, dot, rowsum, sinh_div
from finslerlib.math.pairwise import safe_sqrt

__all__ = ["HyperboloidDomain", "PoincareChart"]


def minkowski(u: torch.Tensor, v: torch.Tensor, *, keepdim: bool = True) -> torch.Tensor:
    r"""Minkowski product $\langle u, v\rangle_L = -u_0 v_0 + \sum_{i \ge 1} u_i v_i$.

    Example:
        >>> minkowski(torch.tensor([2.0, 1.0]), torch.tensor([1.0, 3.0]))
        tensor([1.])
    """
    uv = u * v
    return rowsum(uv, keepdim=keepdim, weights=[-1.0] + [1.0] * (uv.shape[-1] - 1))


def _j(u: torch.Tensor) -> torch.Tensor:
    """$J u$ with $J = \\mathrm{diag}(-1, 1, \\dots, 1)$."""
    return torch.cat([-u[..., :1], u[..., 1:]], -1)


class PoincareChart(Chart):
    r"""The Poincaré ball of radius $\sqrt{k}$: $p = \sqrt{k}\, x_{1:} / (x_0 + \sqrt{k})$ (global),
    $\lambda = 2k / (k - |p|^2)$."""

    name = "Poincare ball"

    def __init__(self, k: float):
        self.k = float(k)

    def to_chart(self, x):
        rk = self.k**0.5
        return rk * x[..., 1:] / (x[..., :1] + rk)

    def from_chart(self, p):
        k = self.k
        q = (p * p).sum(-1, keepdim=True)
        return torch.cat([k**0.5 * (k + q) / (k - q), 2.0 * k * p / (k - q)], -1)

    def push(self, x, u):
        rk = self.k**0.5
        den = x[..., :1] + rk
        return rk * (u[..., 1:] / den - x[..., 1:] * u[..., :1] / den**2)

    def pull(self, p, v):
        k = self.k
        q = (p * p).sum(-1, keepdim=True)
        pv = (p * v).sum(-1, keepdim=True)
        return torch.cat(
            [4.0 * k**1.5 * pv / (k - q) ** 2, 2.0 * k * v / (k - q) + 4.0 * k * p * pv / (k - q) ** 2], -1
        )

    def conformal(self, p):
        return 2.0 * self.k / (self.k - (p * p).sum(-1))


class HyperboloidDomain(Domain):
    r"""The hyperboloid $H^n = \{x \in \mathbb{R}^{1,n} : \langle x, x\rangle_L = -k, x_0 > 0\}$.

    Minkowski product $\langle x, y\rangle_L = -x_0 y_0 + \sum_{i \ge 1} x_i y_i$; `dim = n`,
    `ambient_dim = n + 1`, curvature $-1/k$, as `geoopt.Lorentz(k)` (default $k = 1$).
    $T_x H^n = \{u : \langle x, u\rangle_L = 0\}$, whose Euclidean normal is $J x / |J x|$ with
    $J = \mathrm{diag}(-1, 1, \dots, 1)$; `proju(x, u)` $= u + \langle x, u\rangle_L\, x / k$ (the
    Minkowski-orthogonal projection), `projx` recomputes $x_0 = \sqrt{k + |x_{1:}|^2}$, origin
    $\sqrt{k}\, e_0$. `inner` is the SPD extension
    $h(u, v) = \langle u, v\rangle_L - 2\langle x, u\rangle_L \langle x, v\rangle_L / \langle x, x\rangle_L$
    (the induced metric on tangent vectors, positive on the normal line).

    Example:
        >>> h = HyperboloidDomain(2)
        >>> x = h.projx(torch.tensor([0.0, 0.6, 0.8]))
        >>> x
        tensor([1.4142, 0.6000, 0.8000])
        >>> h.check_point(x)
        (True, None)
    """

    embedded = True
    has_form = True

    def __init__(self, dim: int, k: float = 1.0):
        super().__init__(dim, int(dim) + 1)
        if not float(k) > 0:
            raise ValueError(f"k must be positive, got {k}")
        self.k = float(k)
        self.form_curvature = -1.0 / self.k
        self._atlas = (PoincareChart(self.k),)

    @property
    def name(self) -> str:
        return f"Lorentz(k={self.k:g})"

    def projx(self, x):
        rest = x[..., 1:]
        return torch.cat([torch.sqrt(self.k + (rest * rest).sum(-1, keepdim=True)), rest], -1)

    def proju(self, x, u):
        return u + minkowski(x, u) * x / self.k

    def normal(self, x):
        jx = _j(x)
        return jx / jx.norm(dim=-1, keepdim=True)

    def inner(self, x, u, v, *, keepdim=False):
        out = minkowski(u, v) - 2.0 * minkowski(x, u) * minkowski(x, v) / minkowski(x, x)
        return out if keepdim else out.squeeze(-1)

    def flat(self, x, u):
        return _j(u) - 2.0 * minkowski(x, u) / minkowski(x, x) * _j(x)

    def sharp(self, x, xi):
        return _j(xi) - 2.0 * dot(x, xi) / minkowski(x, x) * x

    def metric(self, x):
        jx = _j(x)
        jdiag = torch.diag_embed(_j(torch.ones_like(x)))
        return jdiag - 2.0 * (jx.unsqueeze(-1) * jx.unsqueeze(-2)) / minkowski(x, x).unsqueeze(-1)

    def tangent_covector(self, x, xi):
        return xi - dot(xi, x) / minkowski(x, x) * _j(x)

    def dist(self, x, y):
        c = safe_sqrt(minkowski(y - x, y - x, keepdim=False))
        rk = self.k**0.5
        return 2.0 * rk * torch.asinh(c / (2.0 * rk))

    def expmap(self, x, u):
        n = safe_sqrt(minkowski(u, u)) / self.k**0.5
        return torch.cosh(n) * x + sinh_div(n) * u

    def logmap(self, x, y):
        d = self.dist(x, y).unsqueeze(-1)
        # y + <x, y>_L x / k with <x, y>_L = -k - |y - x|_L^2 / 2
        u = (y - x) - 0.5 * minkowski(y - x, y - x) / self.k * x
        return div_sinh(d / self.k**0.5) * u

    def transp(self, x, y, v):
        # v + <y, v>_L / (k - <x, y>_L) (x + y), with k - <x, y>_L = 2k + |y - x|_L^2 / 2 >= 2k
        den = 2.0 * self.k + 0.5 * minkowski(y - x, y - x)
        return v + minkowski(y, v) / den * (x + y)

    # quadric: s(T) = <x, z>_L, cosh(d / sqrt k) = 1 + q, q = |x - z|_L^2 / (2k)
    def form_covector(self, x):
        return _j(x)

    def form_chord(self, x, y):
        diff = x - y
        return 0.5 * minkowski(diff, diff) / self.k

    def form_distance(self, q0, s_delta, ds):
        q = (q0 - s_delta / self.k).clamp_min(0.0)
        rk = self.k**0.5
        d = 2.0 * rk * torch.asinh(torch.sqrt(0.5 * q))
        slope = (-ds / rk) / torch.sqrt(q * (q + 2.0)).clamp_min(torch.finfo(q.dtype).tiny)
        return d, slope

    def check_point(self, x, *, atol=None, rtol=None):
        ok, reason = super().check_point(x)
        if not ok or not x.numel():
            return ok, reason
        tol = default_tolerance(x.dtype)
        atol = tol if atol is None else atol
        rtol = tol if rtol is None else rtol
        err = (minkowski(x, x, keepdim=False) + self.k).abs()
        bound = atol + rtol * torch.maximum(x[..., 0] ** 2, torch.ones_like(err) * self.k)
        if not bool((err <= bound).all()):
            return False, (
                f"points are not on the hyperboloid <x, x>_L = -k (k = {self.k:g}): max |<x, x>_L + k| = "
                f"{err.max().item():.3g} (projx(x) puts them on it)"
            )
        if not bool((x[..., 0] > 0).all()):
            return False, "points lie on the lower sheet (x_0 <= 0) of the hyperboloid, not on H^n"
        return True, None

    def origin(self, *shape, dtype=None, device=None):
        x = torch.zeros(*shape, dtype=dtype, device=device)
        x[..., 0] = self.k**0.5
        return x

    @property
    def atlas(self):
        return self._atlas

    def killing_error(self, A):
        n = A.shape[0]
        J = torch.diag(torch.tensor([-1.0] + [1.0] * (n - 1), dtype=A.dtype, device=A.device))
        return (A.mT @ J + J @ A).abs().max().item(), (
            "A must satisfy A^T J + J A = 0 (J = diag(-1, 1, ..., 1)) to generate isometries of "
            "the hyperboloid"
        )
