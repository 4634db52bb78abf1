r"""`Reversed(m)`: the reverse metric $\tilde F(x, v) = F(x, -v)$ of any finslerlib manifold.

The one reversal wrapper (like `geoopt.Scaled`), used by every manifold's `reverse()`. It shares
the wrapped manifold's parameters and domain, and derives everything it can from it:

* pointwise: $\tilde F(x, v) = F(x, -v)$, $\tilde F^*(x, \xi) = F^*(x, -\xi)$,
  $\tilde\ell(v) = -\ell(-v)$, $\tilde\ell^{-1}(\xi) = -\ell^{-1}(-\xi)$, $\tilde g_v = g_{-v}$;
  Randers data $(a, -b)$ and factor $(L, -w)$;
* distances: $\tilde d(x \to y) = d(y \to x)$ (`dist`, with the wrapped manifold's options), and
  `cdist` from the factored kernel or the hook `_reverse_cdist` (default: the transposed `cdist`);
* geodesics: the reverse geodesic from $x$ with velocity $v$ is not a geodesic of $F$ run
  forward, so `expmap` / `logmap` come from the wrapped manifold's hooks `_reverse_expmap` /
  `_reverse_logmap` (closed forms: straight lines for `Randers`, `finslerlib.math.funk` for the
  Funk ball, the negated-drift flow for `RandersField`); without them they raise
  `NotImplementedError`. `retr` is the wrapped manifold's (a retraction depends only on the domain).

`geoopt.Scaled(m, s).reverse()` is `geoopt.Scaled(m.reverse(), s)`: reversal commutes with scaling.
"""

from __future__ import annotations

import geoopt
import torch

from finslerlib.manifolds.base import FinslerManifold

__all__ = ["Reversed"]


class Reversed(FinslerManifold):
    r"""The reverse metric $\tilde F(x, v) = F(x, -v)$ of `base`, sharing its parameters.

    Args:
        base: a `FinslerManifold`.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))
        >>> r = Reversed(m)
        >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> bool(r.dist(x, y) == m.dist(y, x)), r.reverse() is m
        (True, True)
    """

    name = "Reversed"
    __scaling__ = FinslerManifold.__scaling__.copy()

    def __init__(self, base: FinslerManifold):
        if not isinstance(base, FinslerManifold):
            raise ValueError(f"Reversed needs a FinslerManifold, got {type(base).__name__}")
        super().__init__(domain=base.domain)
        self.base = base

    # attributes of the wrapped manifold that the reverse metric shares (a, radius, options...)
    # or negates (b); anything else is not forwarded, so no forward-metric quantity leaks through
    _SHARED = frozenset(
        {"a", "radius", "drift_norm", "max_asymmetry", "rank", "max_drift", "max_condition", "eps",
         "solver", "validate"}
    )

    def __getattr__(self, item):
        try:
            return super().__getattr__(item)
        except AttributeError:
            base = self._modules.get("base")
            if base is not None and item in self._SHARED:
                return getattr(base, item)
            if base is not None and item == "b" and isinstance(getattr(type(base), "b", None), property):
                return -base.b
            raise

    # ------------------------------------------------------------------ Randers data
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.base.coefficients(x)
        return a, -b

    def factor(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        factored = self.base.factor()
        return None if factored is None else (factored[0], -factored[1])

    # ------------------------------------------------------------------ pointwise
    def norm(self, x, u, *, keepdim=False):
        return self.base.norm(x, -u, keepdim=keepdim)

    def dual_norm(self, x, xi, *, keepdim=False):
        return self.base.dual_norm(x, -xi, keepdim=keepdim)

    def legendre(self, x, u):
        return -self.base.legendre(x, -u)

    def inverse_legendre(self, x, xi):
        return -self.base.inverse_legendre(x, -xi)

    def fundamental_tensor(self, x, u):
        return self.base.fundamental_tensor(x, -u)

    def projx(self, x):
        return self.base.projx(x)

    def proju(self, x, u):
        return self.base.proju(x, u)

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        return self.base._check_point_on_manifold(x, atol=atol, rtol=rtol)

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return self.base._check_vector_on_tangent(x, u, atol=atol, rtol=rtol)

    # ------------------------------------------------------------------ distances and geodesics
    def dist(self, x, y, *, keepdim=False, **options):
        r"""$\tilde d(x \to y) = d(y \to x)$ (options go to the wrapped manifold's `dist`)."""
        return self.base.dist(y, x, keepdim=keepdim, **options)

    def cdist(self, x, y, **options):
        r"""`[..., i, j]` $= \tilde d(x_i \to y_j) = d(y_j \to x_i)$."""
        if self.factor() is not None:
            return super().cdist(x, y)
        return self.base._reverse_cdist(x, y, **options)

    def expmap(self, x, u, **options):
        return self.base._reverse_expmap(x, u, **options)

    def logmap(self, x, y, **options):
        return self.base._reverse_logmap(x, y, **options)

    def retr(self, x, u):
        return self.base._reverse_retr(x, u)

    # parallel transport of the reverse metric: the wrapped manifold's hooks (the reverse metric's
    # Chern connection at reference y is the wrapped one's at -y, so it is not the wrapped transport)
    def transp_follow_expmap(self, x, u, v):
        return self.base._reverse_transp_follow_expmap(x, u, v)

    def transp_follow_retr(self, x, u, v):
        return self.base._reverse_transp_follow_retr(x, u, v)

    def transp(self, x, y, v):
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def retr_transp(self, x, u, v):
        return self.retr(x, u), self.transp_follow_retr(x, u, v)

    def random(self, *size, **kwargs):
        points = self.base.random(*size, **kwargs).as_subclass(torch.Tensor)
        return geoopt.ManifoldTensor(points, manifold=self)

    def reverse(self) -> FinslerManifold:
        return self.base

    def navigation(self, *args):
        """Zermelo data `(h, -W)` of the reverse metric, where the wrapped manifold has `(h, W)`."""
        h, wind = self.base.navigation(*args)
        return h, -wind

    # hooks, so that Reversed(Reversed(m)) behaves as m
    def _reverse_expmap(self, x, u, **options):
        return self.base.expmap(x, u, **options)

    def _reverse_logmap(self, x, y, **options):
        return self.base.logmap(x, y, **options)

    def _reverse_cdist(self, x, y, **options):
        return self.base.cdist(x, y, **options)

    def _reverse_retr(self, x, u):
        return self.base.retr(x, u)

    def _reverse_transp_follow_expmap(self, x, u, v):
        return self.base.transp_follow_expmap(x, u, v)

    def _reverse_transp_follow_retr(self, x, u, v):
        return self.base.transp_follow_retr(x, u, v)

    def extra_repr(self) -> str:
        return f"reverse of {self.base.name}({self.base.extra_repr()})"
