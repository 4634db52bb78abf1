"""`finslerlib.geodesics.transport_along_geodesic` on metrics given as functions (below the manifolds)."""

from __future__ import annotations

import torch

from finslerlib.geodesics import geodesic_spray, transport_along_geodesic
from finslerlib.math import randers as rmath

F64 = torch.float64


def _field(x):
    a = torch.eye(2, dtype=x.dtype).expand(*x.shape, 2) * (1.0 + 0.1 * (x * x).sum(-1))[..., None, None]
    b = 0.2 * torch.sin(x.flip(-1))
    return a, b


def test_constant_metric_transports_by_the_identity():
    a = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=F64)
    b = torch.tensor([0.2, -0.1], dtype=F64)

    def coef(x):
        return a.expand(*x.shape, 2) + 0 * x[..., :1, None], b + 0 * x

    x = torch.tensor([[0.1, 0.2]], dtype=F64)
    u = torch.tensor([[1.0, 0.5]], dtype=F64)
    v = torch.tensor([[-0.3, 0.7]], dtype=F64)
    out = transport_along_geodesic(coef, x, u, v, steps=4)
    torch.testing.assert_close(out.vector, v, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.point, x + u, atol=1e-12, rtol=0)  # straight lines


def test_transport_keeps_the_g_product_and_the_velocity():
    torch.manual_seed(0)
    x = 0.3 * torch.randn(8, 2, dtype=F64)
    u = torch.randn(8, 2, dtype=F64)
    v = torch.randn(8, 2, dtype=F64)
    out = transport_along_geodesic(_field, x, u, v, steps=64)
    g0 = rmath.fundamental_tensor(u, *_field(x))
    g1 = rmath.fundamental_tensor(out.velocity, *_field(out.point))
    before = (u[..., None, :] @ g0 @ v[..., :, None]).squeeze()
    after = (out.velocity[..., None, :] @ g1 @ out.vector[..., :, None]).squeeze()
    torch.testing.assert_close(after, before, atol=1e-7, rtol=1e-7)
    same = transport_along_geodesic(_field, x, u, u, steps=64)
    torch.testing.assert_close(same.vector, same.velocity, atol=1e-7, rtol=1e-7)
    back = transport_along_geodesic(_field, out.point, out.velocity, out.vector, time=-1.0, steps=64)
    torch.testing.assert_close(back.vector, v, atol=1e-7, rtol=1e-7)


def test_spray_of_a_closed_drift_is_along_y():
    """b = d(phi): the Randers geodesics are the Riemannian ones reparametrized, G = G_a + c y."""
    x = torch.tensor([[0.3, -0.2]], dtype=F64)
    y = torch.tensor([[1.0, 0.4]], dtype=F64)

    def coef(z):
        return torch.eye(2, dtype=F64).expand(*z.shape, 2), 0.1 * z  # b = grad(|z|^2 / 20)

    g = geodesic_spray(coef, x, y)
    cross = g[0, 0] * y[0, 1] - g[0, 1] * y[0, 0]
    assert abs(cross.item()) < 1e-14
    # the closed form: G = (r_00 / (2 F)) y with r_00 = 0.1 |y|^2
    f = y.norm() + 0.1 * (x * y).sum()
    torch.testing.assert_close(g, 0.1 * (y * y).sum() / (2 * f) * y, atol=1e-14, rtol=0)
