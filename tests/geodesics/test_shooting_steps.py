"""The shooting's switch to more RK4 steps (`solve_boundary_value(..., more_steps=...)`), the
predicted end-point move it aims at, and the forward-difference Jacobian, against independent flows
and autograd."""

import pytest
import torch

from finslerlib.geodesics.integrate import flow_with_coarse, geodesic_flow
from finslerlib.geodesics.shooting import (
    _difference_jacobian,
    end_point_shift,
    endpoint_jacobian,
    solve_boundary_value,
)


def _swirl(x):
    s = 1.0 + 0.5 * torch.sin(1.5 * x).pow(2).sum(-1)
    a = s[..., None, None] * torch.eye(x.shape[-1], dtype=x.dtype)
    return a, 0.3 * torch.sin(1.5 * x.roll(1, -1))


def _pairs(n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1
    return x, y


def test_more_steps_returns_trajectories_at_the_new_steps_that_reach_the_targets():
    x, y = _pairs()
    calls = []

    def more_steps(p, end, end_momentum, coarse, steps):
        calls.append(steps)
        assert p.shape == end.shape == end_momentum.shape == coarse.shape == x.shape
        return 4 * steps

    atol, rtol = 1e-10, 1e-9
    sol = solve_boundary_value(
        _swirl, x, y, steps=8, atol=atol, rtol=rtol, coarse_end=True, more_steps=more_steps
    )
    assert calls == [8] and sol.steps == 32
    assert bool(sol.converged.all())
    # the returned momentum, integrated independently at the returned steps, reaches y
    end, end_p, path, path_p = geodesic_flow(_swirl, x, sol.momentum, steps=32, return_path=True)
    tol = 100 * 32 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(end, sol.end_point, rtol=tol, atol=tol)
    torch.testing.assert_close(path, sol.path, rtol=tol, atol=tol)
    torch.testing.assert_close(path_p, sol.path_momentum, rtol=tol, atol=tol)
    assert bool(((end - y).norm(dim=-1) <= atol + rtol * (y - x).norm(dim=-1)).all())
    coarse = geodesic_flow(_swirl, x, sol.momentum, steps=16)[0]
    torch.testing.assert_close(sol.coarse_end, coarse, rtol=tol, atol=tol)


def test_more_steps_returning_the_same_steps_changes_nothing():
    x, y = _pairs(seed=1)
    plain = solve_boundary_value(_swirl, x, y, steps=8, coarse_end=True)
    same = solve_boundary_value(_swirl, x, y, steps=8, coarse_end=True, more_steps=lambda *args: args[-1])
    assert plain.steps == same.steps == 8
    torch.testing.assert_close(plain.momentum, same.momentum, rtol=0, atol=0)


def test_end_point_shift_predicts_the_end_point_at_more_steps():
    # on a smooth field in RK4's asymptotic regime the prediction removes most of the move
    x, y = _pairs(seed=2)
    p = torch.rand_like(x) - 0.5
    fine, _, _, _, coarse = flow_with_coarse(_swirl, x, p, steps=32)
    more = geodesic_flow(_swirl, x, p, steps=128)[0]
    predicted = fine + end_point_shift(fine, coarse, 32, 128)
    assert bool(((predicted - more).norm(dim=-1) <= 0.2 * (fine - more).norm(dim=-1)).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_difference_jacobian_matches_forward_mode(dtype):
    x, _ = _pairs(n=5, seed=3)
    x = x.to(dtype)
    p = (torch.rand_like(x) - 0.5).to(dtype)
    jac = _difference_jacobian(_swirl, x, p, steps=8)
    exact = endpoint_jacobian(_swirl, x, p, steps=8)
    # forward differences: about sqrt(eps) relative, times the conditioning of the flow (~10 here)
    tol = 100 * torch.finfo(dtype).eps ** 0.5
    torch.testing.assert_close(jac, exact, rtol=tol, atol=tol)
