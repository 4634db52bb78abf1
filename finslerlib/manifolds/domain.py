r"""Domains: where the points of a manifold live and what its tangent spaces are.

A finslerlib manifold is a domain plus Randers data $(a(x), b(x))$ at its points
(`FinslerManifold.coefficients`). The domain fixes

* `ambient_dim`: the size of the last tensor dimension (points and vectors are stored in
  ambient coordinates);
* `dim`: the intrinsic dimension of the manifold;
* `projx(x)`, `proju(x, u)`: projections onto the domain and onto the tangent space $T_x M$;
* `restrict_covector(x, xi)`: an ambient covector (e.g. a Euclidean gradient) restricted to
  $T_x M$, represented by the ambient covector that vanishes on the normal line;
* `restrict(x, a, b)`: Randers data that act on $T_x M$ exactly as $(a, b)$ do and are
  block-diagonal for $T_x M \oplus N_x M$ (the normal line gets the identity, $b$ is made
  tangent). With such data the closed-form Randers formulas of `finslerlib.math.randers`
  applied to tangent vectors and to restricted covectors give the tangent-space answers: the
  dual norm of the restricted covector, and tangent vectors from the inverse Legendre map.

`EuclideanDomain(D)`: an open subset of $\mathbb{R}^D$ (tangent spaces are all of
$\mathbb{R}^D$, every method is the identity). `SphereDomain(n)`: the unit sphere
$S^n \subset \mathbb{R}^{n+1}$; `HyperboloidDomain(n)`: the hyperboloid model of $H^n$ in
Minkowski space $\mathbb{R}^{1,n}$ (both ambient size $n + 1$, dimension $n$). Another embedded
domain of codimension one is written the same way: `projx`, `proju`, `normal`, `check_point`,
`origin`.
"""

from __future__ import annotations

import torch

__all__ = ["Domain", "EuclideanDomain", "SphereDomain", "HyperboloidDomain"]


class Domain:
    """Base class of domains; subclasses set `dim` and `ambient_dim` and the projections.

    An embedded domain of codimension one implements `normal(x)` (a unit Euclidean normal of
    the tangent space); `restrict` and `restrict_covector` then follow.

    Attributes:
        dim: intrinsic dimension.
        ambient_dim: size of the last tensor dimension.
        embedded: `True` when tangent spaces are proper subspaces of the ambient space.
    """

    embedded = False

    def __init__(self, dim: int, ambient_dim: int):
        if int(dim) < 1 or int(ambient_dim) < int(dim):
            raise ValueError(f"need 1 <= dim <= ambient_dim, got dim={dim}, ambient_dim={ambient_dim}")
        self.dim = int(dim)
        self.ambient_dim = int(ambient_dim)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Project ambient points onto the domain."""
        return x

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Project ambient vectors onto the tangent space at `x`."""
        return u

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Unit Euclidean normal of the tangent space at `x` (codimension-one embedded domains)."""
        raise NotImplementedError(f"{type(self).__name__} has no normal")

    def restrict_covector(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""An ambient covector restricted to $T_x M$, as the ambient covector that vanishes on the normal.

        $\xi - (n \cdot \xi)\, n$ for the unit normal $n$: it acts on tangent vectors as $\xi$ does.
        """
        if not self.embedded:
            return xi
        n = self.normal(x)
        return xi - (n * xi).sum(-1, keepdim=True) * n

    def restrict(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        r"""Randers data acting on $T_x M$ as `(a, b)` do, block-diagonal for tangent and normal space.

        $(P a P + n n^\top, P b)$ with $P = I - n n^\top$: the normal line gets the identity and
        the drift is made tangent. With these data the Randers formulas, applied to tangent
        vectors and to covectors restricted by `restrict_covector`, give the tangent-space
        answers (the dual norm of the restricted covector; tangent vectors from the inverse
        Legendre map).
        """
        if not self.embedded:
            return a, b
        n = self.normal(x).unsqueeze(-1)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        proj = eye - n * n.mT
        return proj @ a @ proj + n * n.mT, self.restrict_covector(x, b)

    def check_point(self, x: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        """`(ok, reason)`: whether `x` lies on the domain (finite entries at least)."""
        if not torch.isfinite(x).all():
            return False, f"point has non-finite entries ({(~torch.isfinite(x)).sum().item()} of them)"
        return True, None

    def check_vector(self, x: torch.Tensor, u: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        """`(ok, reason)`: whether `u` is a tangent vector at `x` (finite entries at least)."""
        if not torch.isfinite(u).all():
            return False, f"vector has non-finite entries ({(~torch.isfinite(u)).sum().item()} of them)"
        if self.embedded and u.numel():
            err = (self.normal(x) * u).sum(-1).abs().max().item()
            if err > atol + rtol * max(u.abs().max().item(), 1.0):
                return False, f"vectors are not tangent: max |n(x) . u| = {err:.3g}"
        return True, None

    def origin(self, *shape: int, dtype=None, device=None) -> torch.Tensor:
        """A reference point of the domain, broadcast to `shape` (last entry `ambient_dim`)."""
        return torch.zeros(*shape, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, ambient_dim={self.ambient_dim})"


class EuclideanDomain(Domain):
    r"""An open subset of $\mathbb{R}^D$ in its global chart: `dim == ambient_dim == D`.

    Example:
        >>> EuclideanDomain(3)
        EuclideanDomain(dim=3, ambient_dim=3)
    """

    def __init__(self, dim: int):
        super().__init__(dim, dim)


class SphereDomain(Domain):
    r"""The unit sphere $S^n = \{x \in \mathbb{R}^{n+1} : |x| = 1\}$: `dim = n`, `ambient_dim = n + 1`.

    $T_x S^n = x^\perp$ (normal $n = x$), `proju(x, u)` $= u - \langle x, u\rangle x$,
    `projx(x)` $= x / |x|$ (as `geoopt.Sphere`), origin $e_0$.

    Example:
        >>> s = SphereDomain(2)
        >>> s.dim, s.ambient_dim
        (2, 3)
        >>> s.proju(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 2.0, 3.0]))
        tensor([1., 2., 0.])
    """

    embedded = True

    def __init__(self, dim: int):
        super().__init__(dim, int(dim) + 1)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u - (x * u).sum(-1, keepdim=True) * x

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def check_point(self, x: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        ok, reason = super().check_point(x)
        if not ok:
            return ok, reason
        err = (x.norm(dim=-1) - 1).abs().max().item() if x.numel() else 0.0
        if err > atol + rtol:
            return False, f"points are not on the unit sphere: max ||x| - 1| = {err:.3g}"
        return True, None

    def origin(self, *shape: int, dtype=None, device=None) -> torch.Tensor:
        x = torch.zeros(*shape, dtype=dtype, device=device)
        x[..., 0] = 1.0
        return x


class HyperboloidDomain(Domain):
    r"""The hyperboloid $H^n = \{x \in \mathbb{R}^{1,n} : \langle x, x\rangle_L = -k, x_0 > 0\}$.

    Minkowski product $\langle x, y\rangle_L = -x_0 y_0 + \sum_{i \ge 1} x_i y_i$; `dim = n`,
    `ambient_dim = n + 1`, as `geoopt.Lorentz(k)` (default $k = 1$).
    $T_x H^n = \{u : \langle x, u\rangle_L = 0\}$, whose Euclidean normal is $J x / |J x|$ with
    $J = \mathrm{diag}(-1, 1, \dots, 1)$; `proju(x, u)` $= u + \langle x, u\rangle_L\, x / k$ (the
    Minkowski-orthogonal projection), `projx` recomputes $x_0 = \sqrt{k + |x_{1:}|^2}$, origin
    $\sqrt{k}\, e_0$.

    Example:
        >>> h = HyperboloidDomain(2)
        >>> x = h.projx(torch.tensor([0.0, 0.6, 0.8]))
        >>> x
        tensor([1.4142, 0.6000, 0.8000])
        >>> h.check_point(x)
        (True, None)
    """

    embedded = True

    def __init__(self, dim: int, k: float = 1.0):
        super().__init__(dim, int(dim) + 1)
        if not float(k) > 0:
            raise ValueError(f"k must be positive, got {k}")
        self.k = float(k)

    @staticmethod
    def _minkowski(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y).sum(-1, keepdim=True) - 2 * x[..., :1] * y[..., :1]

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        rest = x[..., 1:]
        return torch.cat([torch.sqrt(self.k + (rest * rest).sum(-1, keepdim=True)), rest], -1)

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return u + self._minkowski(x, u) * x / self.k

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        jx = torch.cat([-x[..., :1], x[..., 1:]], -1)
        return jx / jx.norm(dim=-1, keepdim=True)

    def check_point(self, x: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        ok, reason = super().check_point(x)
        if not ok:
            return ok, reason
        if not x.numel():
            return True, None
        err = (self._minkowski(x, x) + self.k).abs().max().item()
        if err > atol + rtol * max(x[..., 0].abs().max().item() ** 2, 1.0) or bool((x[..., 0] <= 0).any()):
            return False, (
                f"points are not on the upper hyperboloid: max |<x, x>_L + k| = {err:.3g} (k = {self.k:g})"
            )
        return True, None

    def origin(self, *shape: int, dtype=None, device=None) -> torch.Tensor:
        x = torch.zeros(*shape, dtype=dtype, device=device)
        x[..., 0] = self.k**0.5
        return x
