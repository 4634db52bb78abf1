"""Regression tests for bugs found while writing the examples (kept apart from the modules' own tests)."""

import pytest
import torch

import finslerlib


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_funk_expmap_gradient_finite_at_origin_base_point(dtype):
    """FAIMBlock's shared base point starts at the origin: d expmap(p, u)/dp must be finite there.

    The boundary clamp took |p| with a plain sqrt, whose gradient at p = 0 is inf (NaN after the
    chain rule). At the origin the Funk metric is Euclidean to first order, so compare with finite
    differences of expmap in p.
    """
    ball = finslerlib.FunkBall(3)
    u = torch.tensor([[0.3, -0.2, 0.1], [-0.5, 0.4, 0.2]], dtype=dtype)
    p = torch.zeros(3, dtype=dtype, requires_grad=True)
    ball.expmap(p.expand_as(u), u).sum().backward()
    assert torch.isfinite(p.grad).all()
    eps = 1e-6 if dtype == torch.float64 else 1e-3
    fd = torch.stack(
        [
            (ball.expmap((eps * e).expand_as(u), u).sum() - ball.expmap((-eps * e).expand_as(u), u).sum())
            / (2 * eps)
            for e in torch.eye(3, dtype=dtype)
        ]
    )
    torch.testing.assert_close(p.grad, fd, atol=1e-6 if dtype == torch.float64 else 2e-2, rtol=1e-4)


def test_randers_field_cdist_with_different_set_sizes():
    """cdist(x [N, D], y [M, D]) with N != M: the N and M dimensions are not batch dimensions.

    Compared with dist on explicitly broadcast pairs (the definition of cdist).
    """
    field = finslerlib.RandersField(b=lambda x: 0.3 * torch.tanh(x), dim=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    d = field.cdist(x, y)
    assert d.shape == (3, 2)
    pairs = field.dist(x[:, None, :].expand(3, 2, 2), y[None, :, :].expand(3, 2, 2))
    torch.testing.assert_close(d, pairs)
