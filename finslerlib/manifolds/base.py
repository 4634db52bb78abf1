r"""`FinslerManifold`: the geoopt manifold API for Finsler (Randers) geometry.

A Finsler manifold carries a norm $F(x, \cdot)$ on each tangent space that need not be
symmetric. The API follows geoopt (`geoopt.Manifold`, `ndim = 1`, batch dimensions leading,
last dimension `D`) so `geoopt.ManifoldParameter` and geoopt's Riemannian optimizers work
unchanged, and adds the Finsler quantities: `dual_norm`, `legendre`, `inverse_legendre`,
`fundamental_tensor`, `cdist` and `reverse`.

Conventions:

* `dist(x, y)` is the **forward** distance $d(x \to y)$; in general $d(x \to y) \ne d(y \to x)$.
* `cdist(x, y)[..., i, j]` $= d(x_i \to y_j)$.
* `logmap(x, y)` is the initial velocity of the geodesic from `x` that reaches `y` at time 1,
  so `norm(x, logmap(x, y)) == dist(x, y)`.
* `egrad2rgrad(x, df)` is the Finsler gradient $\ell^{-1}(df)$. geoopt's optimizers step along
  $-\ell^{-1}(df)$, a descent direction since $df(-\ell^{-1}(df)) = -F^*(df)^2 < 0$ (it is the
  steepest-descent direction of the reverse metric).

Subclasses give the Randers data at a point through `coefficients(x) -> (a, b)` (the pointwise
methods then come for free from `finslerlib.math.randers`) or override the pointwise methods
with cheaper closed forms, and implement `expmap` / `logmap` (and `cdist` without an
`[N, M, D]` intermediate where a closed form exists).
"""

from __future__ import annotations

import geoopt
import torch
from geoopt.manifolds.base import ScalingInfo

from finslerlib.math import randers as rmath

__all__ = ["FinslerManifold"]


class FinslerManifold(geoopt.Manifold):
    """Base class of finslerlib manifolds: a `geoopt.Manifold` with Finsler structure.

    Args:
        dim: the manifold dimension `D` (size of the last tensor dimension).

    Attributes:
        dim: the manifold dimension.
    """

    name = "Finsler"
    ndim = 1
    reversible = False
    __scaling__ = geoopt.Manifold.__scaling__.copy()

    def __init__(self, dim: int):
        super().__init__()
        if int(dim) < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.dim = int(dim)

    # ------------------------------------------------------------------ validation
    def _validate(
        self, *tensors: torch.Tensor, names: tuple[str, ...] | None = None, batch_dims: int = 1
    ) -> None:
        """Raise `ValueError` on a wrong last dimension, a non-float or mixed dtype, or batch shapes
        that do not broadcast (all but the last `batch_dims` dimensions; `cdist` passes 2)."""
        names = names or tuple(f"argument {i}" for i in range(len(tensors)))
        dtype = None
        for name, t in zip(names, tensors, strict=True):
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() < 1 or t.shape[-1] != self.dim:
                raise ValueError(
                    f"{name} must have shape [..., {self.dim}] on {self.name}, got {tuple(t.shape)}"
                )
            if not t.is_floating_point():
                raise ValueError(f"{name} must be a floating tensor, got {t.dtype}")
            if dtype is not None and t.dtype != dtype:
                raise ValueError(f"dtype mismatch: {names[0]} is {dtype} but {name} is {t.dtype}")
            dtype = t.dtype
        try:
            torch.broadcast_shapes(*(t.shape[: max(t.dim() - batch_dims, 0)] for t in tensors))
        except RuntimeError:
            shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in zip(names, tensors, strict=True))
            raise ValueError(f"batch shapes do not broadcast: {shapes}") from None

    def _check_shape(self, shape, name):
        if len(shape) < 1 or shape[-1] != self.dim:
            return False, f"'{name}' on {self.name} needs shape [..., {self.dim}], got {tuple(shape)}"
        return True, None

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        if not torch.isfinite(x).all():
            return False, f"point has non-finite entries ({(~torch.isfinite(x)).sum().item()} of them)"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        if not torch.isfinite(u).all():
            return False, f"vector has non-finite entries ({(~torch.isfinite(u)).sum().item()} of them)"
        return True, None

    # ------------------------------------------------------------------ pointwise structure
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a(x), b(x))` at the points `x`, on `x`'s device and dtype.

        Args:
            x: Tensor, shape `[..., D]`.

        Returns:
            `(a, b)` with shapes broadcastable to `[..., D, D]` and `[..., D]`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose Randers coefficients")

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Finsler norm $F(x, u)$.

        Args:
            x: Tensor, shape `[..., D]`, points.
            u: Tensor, shape `[..., D]`, tangent vectors at `x`.
            keepdim: keep the last dimension (size 1).

        Returns:
            Tensor, shape `[...]`.
        """
        self._validate(x, u, names=("x", "u"))
        return rmath.norm(u, *self.coefficients(x), keepdim=keepdim)

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Dual norm $F^*(x, \xi) = \sup_{F(x, v) = 1} \xi(v)$ of a covector.

        Args:
            x: Tensor, shape `[..., D]`.
            xi: Tensor, shape `[..., D]`, covectors at `x`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._validate(x, xi, names=("x", "xi"))
        return rmath.dual_norm(xi, *self.coefficients(x), keepdim=keepdim)

    def legendre(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Legendre map $\ell_x(u) = g_u(u, \cdot) = \tfrac12 \partial_u F^2(x, u)$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`.

        Returns:
            Tensor, shape `[..., D]`: a covector.
        """
        self._validate(x, u, names=("x", "u"))
        return rmath.legendre(u, *self.coefficients(x))

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""Inverse Legendre map $\ell_x^{-1}(\xi) = \tfrac12 \partial_\xi F^{*2}(x, \xi)$.

        Args:
            x: Tensor, shape `[..., D]`.
            xi: Tensor, shape `[..., D]`.

        Returns:
            Tensor, shape `[..., D]`: a tangent vector.
        """
        self._validate(x, xi, names=("x", "xi"))
        return rmath.inverse_legendre(xi, *self.coefficients(x))

    def fundamental_tensor(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Fundamental tensor $g_{ij}(x, u) = \tfrac12 \partial^2 F^2 / \partial u^i \partial u^j$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, nonzero reference directions.

        Returns:
            Tensor, shape `[..., D, D]`, positive definite.
        """
        self._validate(x, u, names=("x", "u"))
        return rmath.fundamental_tensor(u, *self.coefficients(x))

    def inner(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None = None, *, keepdim=False
    ) -> torch.Tensor:
        r"""Finsler inner product $g_u(u, v)$ with reference direction `u`.

        `inner(x, u)` is $g_u(u, u) = F(x, u)^2$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, reference direction.
            v: Tensor, shape `[..., D]`, or `None` for `u`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        if v is None:
            return self.norm(x, u, keepdim=keepdim) ** 2
        return (self.legendre(x, u) * v).sum(-1, keepdim=keepdim)

    def component_inner(self, x, u, v=None):
        """`inner(x, u, v, keepdim=True)`; positive for `v=None` (RiemannianAdam's second moment)."""
        return self.inner(x, u, v, keepdim=True)

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Finsler gradient $\nabla f = \ell_x^{-1}(df)$ from the Euclidean differential `u`.

        It satisfies $F(\nabla f) = F^*(df)$ and $df(\nabla f) = F^*(df)^2$. The optimizers of
        geoopt step along its negative, a descent direction.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, the Euclidean gradient (differential) at `x`.

        Returns:
            Tensor, shape `[..., D]`.
        """
        return self.inverse_legendre(x, u)

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Tangent spaces are all of $\\mathbb{R}^D$ (open subsets of $\\mathbb{R}^D$): identity."""
        return u

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Identity on $\\mathbb{R}^D$; subclasses with a boundary pull points inside."""
        return x

    # ------------------------------------------------------------------ geodesic structure
    @__scaling__(ScalingInfo(1))
    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance $d(x \to y) = F(x, \log_x y)$.

        Args:
            x: Tensor, shape `[..., D]`, sources.
            y: Tensor, shape `[..., D]`, targets.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        return self.norm(x, self.logmap(x, y), keepdim=keepdim)

    @__scaling__(ScalingInfo(1))
    def cdist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""All forward distances, `cdist(x, y)[..., i, j]` $= d(x_i \to y_j)$.

        This generic fallback broadcasts `dist` (an `[..., N, M, D]` intermediate); closed-form
        manifolds override it with Gram-matrix computations.

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.

        Returns:
            Tensor, shape `[..., N, M]`.
        """
        return self.dist(x.unsqueeze(-2), y.unsqueeze(-3))

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Retraction; the exponential map unless a subclass has a cheaper first-order one."""
        return self.expmap(x, u)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector transport from `x` to `y`: identity in the global chart of $\\mathbb{R}^D$."""
        return v

    def transp_follow_expmap(self, x, u, v):
        return self.transp(x, self.expmap(x, u), v)

    def origin(self, *size, dtype=None, device=None, seed=42) -> geoopt.ManifoldTensor:
        """The origin `0` of the chart, shape `size` (last entry `D`), as a `ManifoldTensor`."""
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        return geoopt.ManifoldTensor(torch.zeros(*size, dtype=dtype, device=device), manifold=self)

    def _origin_like(self, u: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(u)

    @__scaling__(ScalingInfo(u=-1))
    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """`expmap(origin, u)`.

        Args:
            u: Tensor, shape `[..., D]`, tangent vectors at the origin.

        Returns:
            Tensor, shape `[..., D]`.
        """
        return self.expmap(self._origin_like(u), u)

    @__scaling__(ScalingInfo(1))
    def logmap0(self, y: torch.Tensor) -> torch.Tensor:
        """`logmap(origin, y)`.

        Args:
            y: Tensor, shape `[..., D]`.

        Returns:
            Tensor, shape `[..., D]`.
        """
        return self.logmap(self._origin_like(y), y)

    @__scaling__(ScalingInfo(1))
    def dist0(self, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance from the origin, $d(0 \to y)$.

        Args:
            y: Tensor, shape `[..., D]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        return self.dist(self._origin_like(y), y, keepdim=keepdim)

    def reverse(self) -> FinslerManifold:
        r"""The reverse metric $\tilde F(x, v) = F(x, -v)$, with $\tilde d(x \to y) = d(y \to x)$."""
        raise NotImplementedError(f"{type(self).__name__} does not implement reverse()")

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
