"""Audit 9 regressions: a 3-D pair's own start grid and float32 batches with coincident pairs.

Oracles: the length of an explicit polyline through a fast tube (midpoint quadrature, an upper
bound on the distance), and the closed form d(x, y) = |y - x|_A + v(y) - v(x) of a constant A and a
closed drift b = grad v.
"""

import math
import warnings

import torch

from finslerlib import RandersField

F64, F32 = torch.float64, torch.float32


def _tube_speed(x, width=0.0064):
    # 5x faster inside a thin tube parallel to the chord, at offset 0.5 in the second coordinate
    tube = torch.exp(-((x[..., 1] - 0.5) ** 2 + x[..., 2] ** 2) / width) * torch.exp(
        -((x[..., 0] / 0.8) ** 8)
    )
    return 1 - 0.8 * tube


def test_a_short_3d_pair_next_to_a_far_pair_does_not_miss_a_fast_tube():
    # regression: next to a far pair, the short pair's own grid (7^3 then) missed the tube and
    # returned 2.0 with converged=True, for a distance of at most 1.427
    field = RandersField(
        a=lambda x: (_tube_speed(x) ** 2)[..., None, None] * torch.eye(3, dtype=x.dtype), dim=3
    )
    x = torch.tensor([[-1.0, 0.0, 0.0], [30.0, 30.0, 30.0]], dtype=F64)
    y = torch.tensor([[1.0, 0.0, 0.0], [30.1, 30.0, 30.0]], dtype=F64)
    t = torch.linspace(0, 1, 20001, dtype=F64)[:, None]
    knots = torch.tensor([[-1, 0, 0], [-0.8, 0.5, 0], [0.8, 0.5, 0], [1, 0, 0]], dtype=F64)
    pts = torch.cat([knots[i] + t * (knots[i + 1] - knots[i]) for i in range(3)])
    step, mid = pts[1:] - pts[:-1], 0.5 * (pts[1:] + pts[:-1])
    bound = float((_tube_speed(mid) * step.norm(dim=-1)).sum())  # 1.43: the tube's path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = field.solve(x, y)
    # honest: either not converged, or a distance no longer than the explicit path
    assert not bool(sol.converged[0]) or float(sol.distance[0]) <= bound + float(sol.error_tolerance[0])


def test_a_float32_batch_with_coincident_pairs_solves():
    # regression: float32, closed drift, 64 pairs of which 2 coincident and 4 within 1e-3: the
    # forward-difference Jacobian (step sqrt(eps) |p|) was singular for them and the batch's
    # linalg.solve raised, losing all 64 pairs
    g = torch.Generator().manual_seed(2)
    q, _ = torch.linalg.qr(torch.randn(2, 2, generator=g, dtype=F64))
    a_mat = q @ q.T
    w = torch.randn(2, generator=g, dtype=F64) * 2.0
    scale = 0.5 / float(torch.sqrt(w @ torch.linalg.solve(a_mat, w)))  # |b|_{a^-1} <= 0.5

    def a(x):
        return a_mat.to(x.dtype).expand(*x.shape[:-1], 2, 2)

    def b(x):
        return (scale * torch.cos(x @ w.to(x.dtype)))[..., None] * w.to(x.dtype)

    def exact(x, y):
        e = y - x
        v = lambda z: scale * torch.sin(z @ w)  # noqa: E731
        return torch.sqrt(torch.einsum("...i,ij,...j->...", e, a_mat, e)) + v(y) - v(x)

    g = torch.Generator().manual_seed(5)
    x = torch.rand(64, 2, generator=g, dtype=F64) * 2 - 1
    y = torch.rand(64, 2, generator=g, dtype=F64) * 2 - 1
    y[:4] = x[:4] + 1e-3 * torch.randn(4, 2, generator=g, dtype=F64)
    y[4:6] = x[4:6]
    field = RandersField(a=a, b=b, dim=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = field.solve(x.float(), y.float())
    ok = sol.converged
    assert int(ok.sum()) >= 60
    err = (sol.distance.double() - exact(x, y)).abs()
    # float32 data: the distance's rounding is a few eps32 times its terms (|x|, |y| <= sqrt 2)
    bound = sol.error_tolerance.double() + 64 * torch.finfo(F32).eps * math.sqrt(2)
    assert bool((err[ok] <= bound[ok]).all()), float((err[ok] - bound[ok]).max())
