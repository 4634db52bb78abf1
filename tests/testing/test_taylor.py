"""Taylor-remainder derivative checks (`finslerlib.testing.taylor`) and the kit laws built on them.

Oracles: closed-form derivatives of elementary functions, and mutants whose derivative is wrong by
a known amount (a relative 1e-3, a missing drift term, a retraction with the wrong velocity): a
check that cannot fail them is a defect. The slopes are properties of Taylor's theorem (2 for a
first derivative, 3 with the second), not tuned tolerances.
"""

from __future__ import annotations

import pytest
import torch

from finslerlib import Randers
from finslerlib.math import randers as rmath
from finslerlib.testing import PropertyViolation, check_gradient, check_hessian, check_manifold
from finslerlib.testing.taylor import remainder_slope, step_grid

F64, F32 = torch.float64, torch.float32


def _cubic(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 3, generator=g, dtype=F64).to(dtype)
    u = torch.randn(8, 3, generator=g, dtype=F64).to(dtype)
    return (lambda z: (z**3).sum(-1) + torch.sin(z).prod(-1)), x, u


def _cubic_grad(x):
    s, c = torch.sin(x), torch.cos(x)
    prod_others = torch.stack([s[:, 1] * s[:, 2], s[:, 0] * s[:, 2], s[:, 0] * s[:, 1]], -1)
    return 3 * x**2 + c * prod_others


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_gradient_has_slope_two(dtype, seed):
    f, x, u = _cubic(dtype, seed)
    result = check_gradient(f, x, u, (_cubic_grad(x) * u).sum(-1))
    assert result.ok, result.slope
    assert result.order == 2
    fitted = result.slope[result.conclusive]
    assert fitted.numel() >= 4 and bool(((fitted - 2).abs() < 0.5).all()), result.slope


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_off_by_1e_3_fails_in_float64(seed):
    f, x, u = _cubic(F64, seed)
    result = check_gradient(f, x, u, 1.001 * (_cubic_grad(x) * u).sum(-1))
    assert not result.passed.any(), result.slope
    assert bool(((result.slope - 1).abs() < 0.1).all()), result.slope  # a first-order term: slope 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_off_by_a_term_fails_in_float32(seed):
    # float32 resolves relative errors of about 1e-2 and more (module docstring): drop the sin term
    f, x, u = _cubic(F32, seed)
    result = check_gradient(f, x, u, (3 * x**2 * u).sum(-1))
    assert not result.ok, result.slope


def test_hessian_slope_three_and_a_wrong_hessian():
    f, x, u = _cubic(F64)
    df = (_cubic_grad(x) * u).sum(-1)
    h = torch.func.vmap(torch.func.hessian(lambda z: f(z.unsqueeze(0)).squeeze(0)))(x)
    d2 = (u.unsqueeze(-2) @ h @ u.unsqueeze(-1)).reshape(-1)
    good = check_hessian(f, x, u, df, d2)
    assert good.ok and good.order == 3, good.slope
    bad = check_hessian(f, x, u, df, 1.01 * d2)
    assert not bad.passed.any(), bad.slope


def test_linear_function_is_exact_to_rounding_and_passes():
    # nothing above the rounding floor: inconclusive, not a failure
    x = torch.randn(4, 3, dtype=F64)
    u = torch.randn(4, 3, dtype=F64)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    result = check_gradient(lambda z: z @ w, x, u, u @ w)
    assert result.ok and not result.conclusive.any()


def test_window_is_taken_at_small_steps():
    # r(t) = 1e-3 t + t^2: slope 2 for t >> 1e-3 (where a best-fit window anywhere could land),
    # slope 1 below; the check must judge the small steps
    rel, window = step_grid(F64)
    r = (1e-3 * rel + rel**2).unsqueeze(-1)
    result = remainder_slope(rel, r, 1e-16 * torch.ones_like(r), order=2, window=window, margin=10.0)
    assert not result.ok and abs(result.slope.item() - 1) < 0.1
    assert rel[result.window[0, 1]] < 1e-3


def test_floor_excludes_rounding_noise():
    rel, window = step_grid(F64)
    g = torch.Generator().manual_seed(0)
    noise = 1e-14 * torch.rand(rel.shape[0], 3, generator=g, dtype=F64)
    r = rel.unsqueeze(-1) ** 2 + noise
    result = remainder_slope(rel, r, torch.full_like(r, 1e-14), order=2, window=window, margin=10.0)
    assert result.ok and bool((result.slope - 2).abs().max() < 0.05)


# ------------------------------------------------------------------ mutants in the kit
def _randers(seed=11, dim=3, drift=0.7, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=F64))
    eig = 5.0 ** torch.rand(dim, generator=g, dtype=F64)
    factor = q * eig.sqrt()
    w = torch.randn(dim, generator=g, dtype=F64)
    w = w / w.norm() * drift
    return (factor @ factor.T).to(dtype), (factor @ w).to(dtype)


class DistGradientOff(Randers):
    """`dist` with the right values and gradients off by a relative 1e-3 (a custom backward)."""

    error = 1e-3

    def dist(self, x, y, *, keepdim=False):
        d = super().dist(x, y, keepdim=keepdim)
        return d + self.error * (d - d.detach())  # value unchanged, gradient scaled by 1 + error


class DistGradientWithoutDrift(Randers):
    """`dist` whose gradient misses the drift term b (the gradient of |y - x|_a only)."""

    def dist(self, x, y, *, keepdim=False):
        d = super().dist(x, y, keepdim=keepdim)
        a, b = self.coefficients(x)
        drift = (b * (y - x)).sum(-1, keepdim=keepdim)
        return d - drift + drift.detach()


class RetrVelocityOff(Randers):
    def retr(self, x, u):
        return x + (1 + self.error) * u

    error = 1e-3


@pytest.mark.parametrize(("cls", "dtype"), [(DistGradientOff, F64), (DistGradientWithoutDrift, F64),
                                            (DistGradientWithoutDrift, F32)],
                         ids=["1e-3-float64", "no-drift-float64", "no-drift-float32"])
def test_kit_catches_a_wrong_dist_gradient(cls, dtype):
    a, b = _randers(dtype=dtype)
    m = cls(a, b)
    with pytest.raises(PropertyViolation) as info:
        check_manifold(m, properties=["dist_gradient"], dtype=dtype)
    message = str(info.value)
    assert "Taylor remainder" in message and "slope" in message, message
    # the correct metric passes the same law with the same samples
    assert check_manifold(Randers(a, b), properties=["dist_gradient"], dtype=dtype).ok


@pytest.mark.parametrize(("error", "dtype"), [(1e-3, F64), (0.1, F32)], ids=["1e-3-float64", "0.1-float32"])
def test_kit_catches_a_retraction_with_the_wrong_velocity(error, dtype):
    a, b = _randers(dtype=dtype)
    m = type("Off", (RetrVelocityOff,), {"error": error})(a, b)
    report = check_manifold(m, properties=["retr_first_order", "finsler_gradient"], dtype=dtype,
                            raise_on_failure=False)
    assert set(report.failed) == {"retr_first_order", "finsler_gradient"}, str(report)
    assert "slope" in report.failed["finsler_gradient"]


def test_legendre_taylor_check_is_independent_of_autograd():
    """A norm whose autograd gradient is wrong (a custom backward that misses a tangential part)
    and a `legendre` that agrees with it: the autograd comparison cannot see it, the Taylor
    remainder of F^2 / 2 does."""
    a, b = _randers()
    m = Randers(a, b)
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(6, 3, dtype=F64)
    v = torch.randn(6, 3, generator=g, dtype=F64)
    u = torch.randn(6, 3, generator=g, dtype=F64)
    ell = m.legendre(x, v)
    half_sq = lambda w: 0.5 * m.norm(x, w) ** 2  # noqa: E731
    assert check_gradient(half_sq, v, u, (ell * u).sum(-1), t_max=0.3).ok
    # a covector that still satisfies Euler (ell(v) = F(v)^2) but is off elsewhere
    e = torch.randn(6, 3, generator=g, dtype=F64)
    e = e - (e * v).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True) * v
    wrong = ell + 1e-3 * ell.norm(dim=-1, keepdim=True) * e / e.norm(dim=-1, keepdim=True)
    torch.testing.assert_close((wrong * v).sum(-1), m.norm(x, v) ** 2)
    result = check_gradient(half_sq, v, u, (wrong * u).sum(-1), t_max=0.3)
    assert not result.ok


def test_drift_free_gradient_of_the_randers_norm_fails():
    a, b = _randers()
    m = Randers(a, b)
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(6, 3, dtype=F64)
    v = torch.randn(6, 3, generator=g, dtype=F64)
    u = torch.randn(6, 3, generator=g, dtype=F64)
    alpha = rmath.quadratic_form(a, v).sqrt()
    riemannian_part = (a @ v.unsqueeze(-1)).squeeze(-1) / alpha.unsqueeze(-1)  # d alpha / dv, no b
    result = check_gradient(lambda w: m.norm(x, w), v, u, (riemannian_part * u).sum(-1), t_max=0.3)
    assert not result.passed.any(), result.slope
