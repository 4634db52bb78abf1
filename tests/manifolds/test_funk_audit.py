"""Regression from the third audit: FunkBall in float32 near the wall (float64 on the same inputs)."""

import torch

from finslerlib import FunkBall
from finslerlib.math import funk


def test_float32_funk_norm_and_dist_near_the_wall_match_float64_on_the_same_inputs():
    """At |x| = 0.9995 the float32 norm was off by 9.1e-5 relative (1 - |x|^2 in float32); the
    bound is a few float32 ulps of the result (the inputs are exact in both dtypes)."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1) * 0.9995
    v = torch.randn(500, 3, generator=g)
    y = torch.nn.functional.normalize(torch.randn(500, 3, generator=g), dim=-1) * 0.9
    ball = FunkBall(3)
    bound = 8 * torch.finfo(torch.float32).eps
    for f32, f64 in [
        (ball.norm(x, v), ball.norm(x.double(), v.double())),
        (ball.dist(y, x), ball.dist(y.double(), x.double())),
        (ball.dist(x, y), ball.dist(x.double(), y.double())),
    ]:
        assert f32.dtype == torch.float32
        rel = ((f32.double() - f64).abs() / f64.abs().clamp_min(1e-30)).max()
        assert rel <= bound, rel


def _shell(n, dim, norm, generator):
    v = torch.randn(n, dim, dtype=torch.float64, generator=generator)
    return (v / v.norm(dim=-1, keepdim=True) * norm).float()


def _pair_dist(x, y, reverse):
    """All d(x_i -> y_j) (or d(y_j -> x_i)) through the pointwise `dist`, broadcast."""
    a, b = x.unsqueeze(1), y.unsqueeze(0)
    return funk.dist(b, a) if reverse else funk.dist(a, b)


def _weighted_grads(fn, x, y, w, dtype, reverse):
    xs, ys = x.to(dtype).requires_grad_(), y.to(dtype).requires_grad_()
    return torch.autograd.grad((fn(xs, ys, reverse) * w.to(dtype)).sum(), (xs, ys))


def test_float32_cdist_gradients_near_the_wall_with_near_duplicates_match_float64_dist():
    """Fifth audit: at |x| = 1 - 1e-3 the float32 cdist gradients were off by 1.5e-2 relative (2.1
    with a near-duplicate pair) from float64 `dist` gradients on the same float32 inputs: the
    backward cancelled terms of size 1/Q and did not recompute the flagged pairs. The bound is
    float32 eps times the conditioning 1/Q of the Funk metric at the wall."""
    g = torch.Generator().manual_seed(11)
    eps = torch.finfo(torch.float32).eps
    for dim in (4, 128):
        for reverse in (False, True):
            x, y = _shell(16, dim, 1 - 1e-3, g), _shell(12, dim, 1 - 1e-3, g)
            y[4] = (x[5].double() * (1 - 1e-5)).float()  # relative gap 1e-5
            y[7] = x[2]  # coincident
            w = torch.randn(16, 12, dtype=torch.float64, generator=g)

            def kernel(a, b, reverse):
                return funk.cdist(a, b, reverse=reverse)

            got = _weighted_grads(kernel, x, y, w, torch.float32, reverse)
            ref = _weighted_grads(_pair_dist, x, y, w, torch.float64, reverse)
            q_min = 1 - max(x.double().norm(dim=-1).max(), y.double().norm(dim=-1).max()) ** 2
            for a, b in zip(got, ref, strict=True):
                assert a.dtype == torch.float32
                rel = ((a.double() - b).norm(dim=-1) / b.norm(dim=-1)).max()
                assert rel <= eps / q_min, (dim, reverse, rel.item())
