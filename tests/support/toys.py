"""Toy manifolds shared by the tests: small, hand-checked metrics written only from geoopt and
closed forms, used to test the kit and the base class on embedded domains.

* `RoundSphere`: the unit sphere S^n in R^{n+1} with its round metric, every method hand-written
  (geoopt.Sphere's expmap, a cancellation-free angle for dist/logmap).
* `AmbientRoundSphere`: the same sphere given only by Randers data in ambient coordinates,
  a = I + 3 x x^T (the identity on T_x, 4 on the normal line), b = 0, so only the tangent block
  may matter; everything else comes from `FinslerManifold`'s defaults.
"""

from __future__ import annotations

import geoopt
import torch

from finslerlib import FinslerManifold, SphereDomain


class RoundSphere(FinslerManifold):
    """The unit sphere S^n in R^{n+1} with the round metric (zero drift): F(x, v) = |v| on tangent v.

    Written on `SphereDomain`: tensors have n + 1 entries (`ambient_dim`), tangent spaces
    dimension n (`dim`); `expmap` is geoopt.Sphere's; `dist` and `logmap` use the
    cancellation-free angle atan2(|y - (x.y) x|, x.y) (geoopt.Sphere clamps x.y to 1 - 1e-7, so its
    dist(x, x) is acos(1 - 1e-7) = 4.5e-4, not 0).
    """

    name = "RoundSphere"

    def __init__(self, n):
        super().__init__(domain=SphereDomain(n))  # dim = n, ambient_dim = n + 1
        self.n = n
        self.sphere = geoopt.Sphere()

    def _check_shape(self, shape, name):
        ok = len(shape) >= 1 and shape[-1] == self.n + 1
        return ok, None if ok else f"'{name}' needs shape [..., {self.n + 1}], got {tuple(shape)}"

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        return self.sphere._check_point_on_manifold(x, atol=atol, rtol=rtol)

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return self.sphere._check_vector_on_tangent(x, u, atol=atol, rtol=rtol)

    def coefficients(self, x):
        # Randers data in ambient coordinates: a = I (its tangent block is the round metric), b = 0
        eye = torch.eye(self.n + 1, dtype=x.dtype, device=x.device)
        return eye.expand(*x.shape[:-1], self.n + 1, self.n + 1), torch.zeros_like(x)

    def projx(self, x):
        return x / x.norm(dim=-1, keepdim=True)

    def proju(self, x, u):
        return u - (x * u).sum(-1, keepdim=True) * x

    def norm(self, x, u, *, keepdim=False):
        return self.proju(x, u).norm(dim=-1, keepdim=keepdim)

    def dual_norm(self, x, xi, *, keepdim=False):
        return self.proju(x, xi).norm(dim=-1, keepdim=keepdim)

    def legendre(self, x, u):
        return self.proju(x, u)

    def inverse_legendre(self, x, xi):
        return self.proju(x, xi)

    def egrad2rgrad(self, x, u):
        return self.proju(x, u)

    def fundamental_tensor(self, x, u):
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        g = eye - x.unsqueeze(-1) * x.unsqueeze(-2)
        return g.expand(*torch.broadcast_shapes(x.shape, u.shape), x.shape[-1])

    def _angle(self, x, y, keepdim=False):
        cos = (x * y).sum(-1, keepdim=keepdim)
        w = y - (x * y).sum(-1, keepdim=True) * x
        sin = (w * w).sum(-1, keepdim=keepdim).clamp_min(torch.finfo(x.dtype).tiny).sqrt()
        return torch.atan2(sin, cos), w

    def dist(self, x, y, *, keepdim=False):
        return self._angle(x, y, keepdim)[0]

    def expmap(self, x, u):
        return self.sphere.expmap(x, u)

    def logmap(self, x, y):
        d, w = self._angle(x, y, keepdim=True)
        return w * (d / w.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny))

    def random(self, *size, dtype=None, device=None):
        return self.sphere.random(*size, dtype=dtype, device=device)

    def origin(self, *size, dtype=None, device=None, seed=42):
        size = size[0] if len(size) == 1 and isinstance(size[0], tuple) else size
        x = torch.zeros(*size, dtype=dtype, device=device)
        x[..., 0] = 1
        return x

    def reverse(self):
        return self  # zero drift: F(x, -v) = F(x, v)


class AmbientRoundSphere(FinslerManifold):
    """The unit sphere with its round metric, as Randers data with zero drift on `SphereDomain`."""

    name = "AmbientRoundSphere"

    def __init__(self, n: int):
        super().__init__(domain=SphereDomain(n))

    def coefficients(self, x):
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        a = eye + 3.0 * x.unsqueeze(-1) * x.unsqueeze(-2)  # identity on T_x, 4 on the normal line
        return a, torch.zeros_like(x)

    def expmap(self, x, u):
        self.validate_inputs(x, u, names=("x", "u"))
        u = self.proju(x, u)
        t = u.norm(dim=-1, keepdim=True)
        # sin(t)/t -> 1 at t = 0 (where u = 0, so the product is 0 either way)
        sinc = torch.where(t > 0, torch.sin(t) / t.clamp_min(1e-300), torch.ones_like(t))
        return self.projx(torch.cos(t) * x + sinc * u)

    def logmap(self, x, y):
        self.validate_inputs(x, y, names=("x", "y"))
        v = self.proju(x, y - x)
        d = self.dist(x, y, keepdim=True)
        vn = v.norm(dim=-1, keepdim=True)
        return torch.where(vn > 0, v * d / vn.clamp_min(1e-300), torch.zeros_like(v))

    def dist(self, x, y, *, keepdim=False):
        self.validate_inputs(x, y, names=("x", "y"))
        chord = (x - y).norm(dim=-1, keepdim=keepdim)
        return 2 * torch.asin((chord / 2).clamp(max=1.0))

    def retr(self, x, u):
        return self.projx(x + self.proju(x, u))

    def transp(self, x, y, v):
        return self.proju(y, v)

    def random(self, *size, dtype=None, device=None):
        x = torch.randn(*size, dtype=dtype, device=device)
        return geoopt.ManifoldTensor(self.projx(x), manifold=self)

    # b = 0: the metric is reversible, its reverse geodesics are its geodesics
    def reverse_expmap(self, x, u):
        return self.expmap(x, u)

    def reverse_logmap(self, x, y):
        return self.logmap(x, y)
