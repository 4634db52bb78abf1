"""`FusedFunkBall`: the maps `RiemannianAdam` calls, fused for training.

Oracle: `FunkBall`'s own maps (`egrad2rgrad`, `component_inner`: the norm of the step evaluated
in float64, `retr_transp`: `expmap` and the closed-form transport) and a whole `RiemannianAdam`
trajectory on `FunkBall`.
"""

from __future__ import annotations

import geoopt
import pytest
import torch

from finslerlib.embedding.funk_steps import FusedFunkBall
from finslerlib.manifolds import FunkBall


def sample(dtype, n=300, dim=5, seed=0):
    """Points (a sixth at the working ball's edge), gradients (some zero), steps (some huge)."""
    gen = torch.Generator().manual_seed(seed)
    ball = FunkBall(dim, radius=1.5)
    x = 0.5 * torch.randn(n, dim, dtype=dtype, generator=gen)
    x[: n // 6] *= 100.0
    x = ball.projx(x)
    g = torch.randn(n, dim, dtype=dtype, generator=gen)
    g[-5:] = 0
    u = 0.3 * torch.randn(n, dim, dtype=dtype, generator=gen)
    u[:10] *= 1e4
    u[-3:] = 0
    v = torch.randn(n, dim, dtype=dtype, generator=gen)
    return ball, x, g, u, v


def tolerance(dtype, want, scale=64.0):
    return scale * torch.finfo(dtype).eps * (1 + want.abs())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_maps_are_funkballs(dtype):
    ball, x, g, u, v = sample(dtype)
    fused = FusedFunkBall(ball.dim, radius=ball.radius)
    rg = fused.egrad2rgrad(x, g)
    want = ball.egrad2rgrad(x, g)
    # the step's direction: rounding of one inverse Legendre map
    assert torch.all((rg - want).abs() <= tolerance(dtype, want, 256))
    # the second moment: the step's length F(x, -rgrad) = F*(x, -df) = R|df| + df . x, in closed
    # form here, where FunkBall evaluates the norm of the step (in float64)
    got = fused.component_inner(x, rg)
    want2 = ball.component_inner(x, want)
    assert torch.all((got - want2).abs() <= tolerance(dtype, want2))
    g64, x64 = g.double(), x.double()
    exact = (ball.radius * g64.norm(dim=-1, keepdim=True) + (g64 * x64).sum(-1, keepdim=True)) ** 2
    assert torch.all((got.double() - exact).abs() <= tolerance(dtype, exact))
    assert torch.all(got[-5:] == 0)
    y, w = fused.retr_transp(x, u, v)
    y_want, w_want = ball.retr_transp(x, u, v)
    assert torch.all((y - y_want).abs() <= tolerance(dtype, y_want, 16))
    assert torch.all((w - w_want).abs() <= tolerance(dtype, w_want, 256))
    assert torch.all(y[-3:] == x[-3:]) and torch.all(w[-3:] == v[-3:])
    assert bool(((y * y).sum(-1) < ball.radius**2).all())


def test_component_inner_of_another_tensor_is_funkballs():
    ball, x, g, u, _ = sample(torch.float64)
    fused = FusedFunkBall(ball.dim, radius=ball.radius)
    fused.egrad2rgrad(x, g)
    assert torch.allclose(fused.component_inner(x, u), ball.component_inner(x, u), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_trajectory_is_funkballs(dtype):
    ball, x0, _, _, _ = sample(dtype, n=200, seed=3)
    fused = FusedFunkBall(ball.dim, radius=ball.radius)
    xa = geoopt.ManifoldParameter(x0.clone(), manifold=ball)
    xb = geoopt.ManifoldParameter(x0.clone(), manifold=fused)
    opt_a = geoopt.optim.RiemannianAdam([xa], lr=0.05)
    opt_b = geoopt.optim.RiemannianAdam([xb], lr=0.05)
    gen = torch.Generator().manual_seed(5)
    for _ in range(10):
        g = torch.randn(x0.shape, dtype=dtype, generator=gen)
        g[:20] = 0  # rows without a gradient move by their momentum alone, as in FunkBall's
        xa.grad, xb.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    # ten steps of rounding, each of a few eps relative
    assert torch.all((xa - xb).abs() <= tolerance(dtype, xa, 1024))


def test_kept_length_is_not_used_after_an_in_place_change():
    ball, x, g, _, _ = sample(torch.float64)
    fused = FusedFunkBall(ball.dim, radius=ball.radius)
    rg = fused.egrad2rgrad(x, g)
    rg.mul_(2.0)
    assert torch.allclose(fused.component_inner(x, rg), ball.component_inner(x, rg), rtol=1e-12, atol=0)


def test_keeps_neither_the_step_nor_the_point():
    import copy
    import gc
    import pickle
    import weakref

    fused = FusedFunkBall(4)
    fresh = len(pickle.dumps(FusedFunkBall(4)))
    start = 0.1 * torch.randn(1000, 4, generator=torch.Generator().manual_seed(0))
    x = geoopt.ManifoldParameter(start, manifold=fused)
    x.sum().backward()
    geoopt.optim.RiemannianSGD([x], lr=0.1).step()  # egrad2rgrad without component_inner
    assert len(pickle.dumps(fused)) == fresh
    assert len(pickle.dumps(copy.deepcopy(fused))) == fresh
    step = fused.egrad2rgrad(x.detach(), torch.ones(1000, 4))
    gone = weakref.ref(step)
    del x, step
    gc.collect()
    assert gone() is None
