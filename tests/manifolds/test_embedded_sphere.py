"""Manifolds on embedded domains: the round sphere on `SphereDomain`, hyperbolic space on `HyperboloidDomain`.

The Randers data are given in ambient coordinates, a = I + 3 x x^T (the identity on the tangent
space, 4 on the normal line) and b = 0: only the tangent block may matter. Every quantity is
checked against geoopt.Sphere (an independent implementation of the round sphere), and the
conformance kit is run on it.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from finslerlib import FinslerManifold, HyperboloidDomain
from finslerlib.math.pairwise import safe_sqrt
from finslerlib.testing import check_manifold
from tests.support.toys import AmbientRoundSphere

F64 = torch.float64


@pytest.fixture
def sample():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(64, 4, generator=g, dtype=F64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(64, 4, generator=g, dtype=F64), dim=-1)
    u = torch.randn(64, 4, generator=g, dtype=F64)  # ambient, not tangent
    return x, y, u


def test_dimensions():
    m = AmbientRoundSphere(3)
    assert (m.dim, m.ambient_dim) == (3, 4)
    assert m.origin(5, 4).shape == (5, 4)
    assert torch.allclose(m.origin(4).norm(), torch.tensor(1.0))


def test_pointwise_quantities_match_geoopt(sample):
    x, y, u = sample
    m, ref = AmbientRoundSphere(3), geoopt.Sphere()
    ut = ref.proju(x, u)
    torch.testing.assert_close(m.norm(x, ut), ref.norm(x, ut))
    # Euclidean gradients have a normal part: the Riemannian gradient is the tangent projection
    torch.testing.assert_close(m.egrad2rgrad(x, u), ref.egrad2rgrad(x, u))
    # the dual norm of the covector restricted to T_x, the Legendre maps on T_x
    torch.testing.assert_close(m.dual_norm(x, u), ut.norm(dim=-1))
    torch.testing.assert_close(m.inverse_legendre(x, u), ut)
    torch.testing.assert_close(m.legendre(x, ut), ut)
    # the tangent block of the fundamental tensor is the identity
    g = m.fundamental_tensor(x, ut)
    torch.testing.assert_close((g @ ut.unsqueeze(-1)).squeeze(-1), ut)


def test_geodesics_match_geoopt(sample):
    x, y, u = sample
    m, ref = AmbientRoundSphere(3), geoopt.Sphere()
    ut = 0.7 * ref.proju(x, u)
    torch.testing.assert_close(m.dist(x, y), ref.dist(x, y))
    torch.testing.assert_close(m.expmap(x, ut), ref.expmap(x, ut))
    torch.testing.assert_close(m.logmap(x, y), ref.logmap(x, y))
    torch.testing.assert_close(m.cdist(x[:5], y[:7]), ref.dist(x[:5, None], y[None, :7]))
    # the reverse of a zero-drift metric is the same metric
    torch.testing.assert_close(m.reverse().dist(x, y), ref.dist(x, y))


def test_conformance_kit_on_the_sphere():
    """The kit on a manifold with an embedded domain: it samples tangent vectors through `proju`
    and minimizes over unit tangent directions, and every property passes."""
    report = check_manifold(AmbientRoundSphere(2), dtype=F64, raise_on_failure=False)
    assert not report.failed, {name: report.results[name].detail for name in report.failed}
    assert "dist_metric" in report.passed and "norm_triangle" in report.passed


class Hyperbolic(FinslerManifold):
    """Hyperbolic space on the hyperboloid: ambient a = J = diag(-1, 1, ..., 1), b = 0.

    `a` is not positive definite on R^{1,n}, only on the tangent spaces, which is all that counts.
    """

    name = "Hyperbolic"

    def __init__(self, n: int):
        super().__init__(domain=HyperboloidDomain(n))

    def coefficients(self, x):
        j = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        j[0] = -1.0
        return torch.diag(j), torch.zeros_like(x)

    def _lorentz(self, u, v):
        return (u * v).sum(-1, keepdim=True) - 2 * u[..., :1] * v[..., :1]

    def dist(self, x, y, *, keepdim=False):
        self.validate_inputs(x, y, names=("x", "y"))
        # 2 asinh(|y - x|_L / 2): no acosh, whose derivative is infinite at x = y
        chord = safe_sqrt(self._lorentz(y - x, y - x))
        d = 2 * torch.asinh(chord / 2)
        return d if keepdim else d.squeeze(-1)

    def expmap(self, x, u):
        self.validate_inputs(x, u, names=("x", "u"))
        t = self._lorentz(u, u).clamp_min(0).sqrt()
        sinhc = torch.where(t > 0, torch.sinh(t) / t.clamp_min(1e-300), torch.ones_like(t))
        return self.projx(torch.cosh(t) * x + sinhc * u)

    def logmap(self, x, y):
        self.validate_inputs(x, y, names=("x", "y"))
        v = y + self._lorentz(x, y) * x  # the tangent part of y at x
        vn = self._lorentz(v, v).clamp_min(0).sqrt()
        scale = self.dist(x, y, keepdim=True) / vn.clamp_min(1e-300)
        return torch.where(vn > 0, v * scale, torch.zeros_like(v))

    def random(self, *size, dtype=None, device=None):
        x = torch.randn(*size, dtype=dtype, device=device) * 0.7
        return geoopt.ManifoldTensor(self.projx(x), manifold=self)

    def reverse_expmap(self, x, u):
        return self.expmap(x, u)

    def reverse_logmap(self, x, y):
        return self.logmap(x, y)


def test_hyperboloid_matches_geoopt_lorentz():
    g = torch.Generator().manual_seed(1)
    m, ref = Hyperbolic(3), geoopt.Lorentz()
    x = ref.projx(torch.randn(32, 4, generator=g, dtype=F64))
    y = ref.projx(torch.randn(32, 4, generator=g, dtype=F64))
    grad = torch.randn(32, 4, generator=g, dtype=F64)  # a Euclidean gradient, not tangent
    u = 0.5 * ref.proju(x, grad)
    assert (m.dim, m.ambient_dim) == (3, 4)
    torch.testing.assert_close(m.norm(x, u), ref.norm(u))
    torch.testing.assert_close(m.egrad2rgrad(x, grad), ref.egrad2rgrad(x, grad))
    torch.testing.assert_close(m.dual_norm(x, grad), ref.norm(ref.egrad2rgrad(x, grad)))
    torch.testing.assert_close(m.dist(x, y), ref.dist(x, y))
    torch.testing.assert_close(m.expmap(x, u), ref.expmap(x, u))
    torch.testing.assert_close(m.logmap(x, y), ref.logmap(x, y))
    assert m.check_point_on_manifold(x) and not m.check_point_on_manifold(2 * x)


def test_conformance_kit_on_the_hyperboloid():
    """As for the sphere: every property the kit runs passes."""
    # large_steps: exp of a vector of length 1e4 is cosh(1e4), beyond every float format
    report = check_manifold(Hyperbolic(2), dtype=F64, raise_on_failure=False, skip=["large_steps"])
    assert not report.failed, {name: report.results[name].detail for name in report.failed}
    assert "dist_metric" in report.passed and "finsler_gradient" in report.passed
