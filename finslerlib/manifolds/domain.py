r"""Domains: where the points of a manifold live and what its tangent spaces are.

A finslerlib manifold is a domain plus Randers data $(a(x), b(x))$ at its points
(`FinslerManifold.coefficients`). The domain fixes

* `ambient_dim`: the size of the last tensor dimension (points and vectors are stored in
  ambient coordinates);
* `dim`: the intrinsic dimension of the manifold;
* `projx(x)`, `proju(x, u)`: projections onto the domain and onto the tangent space $T_x M$;
* `restrict(x, a, b)`: Randers data that act on $T_x M$ exactly as $(a, b)$ do and are
  block-diagonal for $T_x M \oplus N_x M$ (the normal space gets the identity, $b$ is made
  tangent). With such data the closed-form Randers formulas of `finslerlib.math.randers`
  applied to ambient vectors and to covectors restricted by `proju` give the tangent-space
  answers: the dual norm of the restricted covector, and tangent vectors from the inverse
  Legendre map.

`EuclideanDomain(D)`: an open subset of $\mathbb{R}^D$ (tangent spaces are all of
$\mathbb{R}^D$, every method is the identity). `SphereDomain(n)`: the unit sphere
$S^n \subset \mathbb{R}^{n+1}$ (ambient size $n + 1$, dimension $n$). A hyperboloid or another
embedded domain is written the same way: `projx`, `proju`, `check_point`, `origin`.
"""

from __future__ import annotations

import torch

__all__ = ["Domain", "EuclideanDomain", "SphereDomain"]


class Domain:
    """Base class of domains; subclasses set `dim` and `ambient_dim` and the projections.

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
        """Project ambient vectors (or covectors) onto the tangent space at `x`."""
        return u

    def restrict(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        """Randers data acting on the tangent space as `(a, b)` do, block-diagonal with the normal space."""
        return a, b

    def check_point(self, x: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        """`(ok, reason)`: whether `x` lies on the domain (finite entries at least)."""
        if not torch.isfinite(x).all():
            return False, f"point has non-finite entries ({(~torch.isfinite(x)).sum().item()} of them)"
        return True, None

    def check_vector(self, x: torch.Tensor, u: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        """`(ok, reason)`: whether `u` is a tangent vector at `x` (finite entries at least)."""
        if not torch.isfinite(u).all():
            return False, f"vector has non-finite entries ({(~torch.isfinite(u)).sum().item()} of them)"
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

    $T_x S^n = x^\perp$, `proju(x, u)` $= u - \langle x, u\rangle x$, `projx(x)` $= x / |x|$, and
    `restrict(x, a, b)` $= (P a P + x x^\top, P b)$ with $P = I - x x^\top$.

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

    def restrict(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        n = x.unsqueeze(-1)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        proj = eye - n * n.mT
        return proj @ a @ proj + n * n.mT, self.proju(x, b)

    def check_point(self, x: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        ok, reason = super().check_point(x)
        if not ok:
            return ok, reason
        err = (x.norm(dim=-1) - 1).abs().max().item() if x.numel() else 0.0
        if err > atol + rtol:
            return False, f"points are not on the unit sphere: max ||x| - 1| = {err:.3g}"
        return True, None

    def check_vector(self, x: torch.Tensor, u: torch.Tensor, *, atol: float = 1e-5, rtol: float = 1e-5):
        ok, reason = super().check_vector(x, u)
        if not ok:
            return ok, reason
        err = (x * u).sum(-1).abs().max().item() if u.numel() else 0.0
        if err > atol + rtol * max(u.abs().max().item(), 1.0):
            return False, f"vectors are not tangent: max |<x, u>| = {err:.3g}"
        return True, None

    def origin(self, *shape: int, dtype=None, device=None) -> torch.Tensor:
        x = torch.zeros(*shape, dtype=dtype, device=device)
        x[..., 0] = 1.0
        return x
