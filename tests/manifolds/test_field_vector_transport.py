"""`RandersField.vector_transport`: the first-order `renormalized_transport` keeps the Finsler length
(checked against F evaluated from the fields directly) and is what geoopt's optimizers then use."""

import geoopt
import torch

from finslerlib import RandersField
from finslerlib.manifolds.field import renormalized_transport


def _field():
    def a(x):
        s = torch.tanh(x)
        return torch.eye(2, dtype=x.dtype) + 0.3 * s[..., :, None] * s[..., None, :]

    def b(x):
        return 0.6 * torch.stack([-torch.sin(x[..., 1]), torch.cos(x[..., 0])], -1) / 1.5

    return RandersField(a=a, b=b, dim=2), a, b


def _norm(a, b, x, v):
    """F(x, v) = sqrt(v^T a(x) v) + b(x).v from the fields themselves."""
    return torch.sqrt(torch.einsum("...i,...ij,...j->...", v, a(x), v)) + (b(x) * v).sum(-1)


def test_renormalized_transport_keeps_the_finsler_length():
    field, a, b = _field()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 2, generator=g, dtype=torch.float64)
    u = 0.3 * torch.randn(16, 2, generator=g, dtype=torch.float64)
    v = torch.randn(16, 2, generator=g, dtype=torch.float64)
    moved = renormalized_transport(field, x, u, v)
    torch.testing.assert_close(_norm(a, b, x + u, moved), _norm(a, b, x, v), rtol=1e-12, atol=1e-12)
    # a positive multiple of v (the differential of x + u is the identity)
    ratio = moved / v
    torch.testing.assert_close(ratio[:, 0], ratio[:, 1])
    assert (ratio > 0).all()
    # the zero vector stays zero, finite
    zero = renormalized_transport(field, x, u, torch.zeros_like(v))
    assert (zero == 0).all()


def test_the_attribute_selects_the_transport_of_the_optimizers():
    field, _, _ = _field()
    x, u, v = (
        torch.zeros(2, dtype=torch.float64),
        torch.tensor([0.2, 0.1], dtype=torch.float64),
        torch.ones(2, dtype=torch.float64),
    )
    field.vector_transport = renormalized_transport
    torch.testing.assert_close(field.transp_follow_retr(x, u, v), renormalized_transport(field, x, u, v))
    y, moved = field.retr_transp(x, u, v)
    torch.testing.assert_close(y, x + u)
    torch.testing.assert_close(moved, renormalized_transport(field, x, u, v))
    # RiemannianAdam steps with it: finite iterate and state
    p = geoopt.ManifoldParameter(torch.tensor([-1.0, 1.0], dtype=torch.float64), manifold=field)
    opt = geoopt.optim.RiemannianAdam([p], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        ((p - torch.tensor([1.5, -0.5], dtype=torch.float64)) ** 2).sum().backward()
        opt.step()
    assert torch.isfinite(p).all() and torch.isfinite(opt.state[p]["exp_avg"]).all()
    # default: the parallel transport (None)
    assert RandersField.vector_transport is None
