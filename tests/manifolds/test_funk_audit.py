"""Regression from the third audit: FunkBall in float32 near the wall (float64 on the same inputs)."""

import torch

from finslerlib import FunkBall


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
