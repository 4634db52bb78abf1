"""Pointwise Randers formulas (`finslerlib.math.randers`) against independent computations.

Oracles: the norm written out in numpy, autograd Hessians / gradients of F^2/2 and F*^2/2 (F*
from the navigation formula, not from finslerlib), a numerical sup (scipy) for the dual norm,
`torch.linalg.inv` for the inverse fundamental tensor, sampled h-spheres for navigation.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given
from hypothesis import strategies as st

from finslerlib.math import randers as rmath
from tests.support import close
from tests.support.randers_cases import Case, cases, make_case, np_dual_nav, np_navigation, np_norm

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])


def coeffs(case: Case, dtype):
    return case.t(case.a, dtype), case.t(case.b, dtype)


# ---------------------------------------------------------------------------- the norm F
@DTYPES
@given(case=cases())
def test_norm_matches_direct_formula(case, dtype):
    a, b = coeffs(case, dtype)
    v = case.vectors(7)
    close(rmath.norm(case.t(v, dtype), a, b), np_norm(v, case.a, case.b), dtype, scale=10)
    assert rmath.norm(case.t(v, dtype), a, b, keepdim=True).shape == (7, 1)


@DTYPES
@given(case=cases(), lam=st.floats(1e-3, 1e3))
def test_norm_positive_homogeneous_subadditive(case, lam, dtype):
    a, b = coeffs(case, dtype)
    u, v = case.t(case.vectors(16), dtype), case.t(case.vectors(16), dtype)
    fu, fv = rmath.norm(u, a, b), rmath.norm(v, a, b)
    # positivity: F(v) >= (1 - |b|) sqrt(v^T a v) > 0
    alpha = np.sqrt(np.einsum("ni,ij,nj->n", u.double().numpy(), case.a, u.double().numpy()))
    assert (fu.double().numpy() >= (1 - case.drift) * alpha * (1 - 1e-4) - 1e-6).all()
    assert (fu > 0).all()
    assert rmath.norm(torch.zeros(case.dim, dtype=dtype), a, b) == 0
    close(rmath.norm(lam * u, a, b), lam * fu.double().numpy(), dtype, scale=10 * lam)
    slack = 1e-5 if dtype == torch.float32 else 1e-12
    assert (rmath.norm(u + v, a, b) <= (fu + fv) * (1 + slack) + slack).all()


@DTYPES
@given(case=cases(max_drift=0.95))
def test_worst_asymmetry_attained_at_b_sharp(case, dtype):
    a, b = coeffs(case, dtype)
    s = case.drift
    expected = (1 + s) / (1 - s)
    if s > 0:
        direction = np.linalg.solve(case.a, case.b)
        # unit length: b may be tiny (1e-36), and F of a subnormal vector underflows to 0
        v = case.t(direction / np.linalg.norm(direction), dtype)
        ratio = rmath.norm(v, a, b) / rmath.norm(-v, a, b)
        np.testing.assert_allclose(ratio.item(), expected, rtol=1e-3 if dtype == torch.float32 else 1e-9)
    # and no sampled direction beats it
    u = case.t(case.vectors(2000), dtype)
    ratios = rmath.norm(u, a, b) / rmath.norm(-u, a, b)
    assert ratios.max().item() <= expected * (1 + 1e-4)
    np.testing.assert_allclose(rmath.drift_norm(a, b).item(), s, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- fundamental tensor
def half_f2(a, b):
    return lambda v: 0.5 * (torch.sqrt(v @ a @ v) + b @ v) ** 2


@DTYPES
@given(case=cases())
def test_fundamental_tensor_is_hessian_of_half_f_squared(case, dtype):
    a64, b64 = coeffs(case, torch.float64)
    a, b = coeffs(case, dtype)
    for v in case.vectors(3):
        v64 = torch.as_tensor(v)
        hess = torch.autograd.functional.hessian(half_f2(a64, b64), v64)
        g = rmath.fundamental_tensor(v64.to(dtype), a, b)
        close(g, hess.numpy(), dtype, scale=10)
        # positive definite, det g = (F/alpha)^{D+1} det a, g_v(v, v) = F^2
        assert torch.linalg.eigvalsh(g.double()).min() > 0
        alpha = np.sqrt(v @ case.a @ v)
        f = np_norm(v, case.a, case.b)[0]
        det_expected = (f / alpha) ** (case.dim + 1) * np.linalg.det(case.a)
        np.testing.assert_allclose(torch.linalg.det(g.double()).item(), det_expected, rtol=2e-3 if
                                   dtype == torch.float32 else 1e-8)
        close(v @ g.double().numpy() @ v, f**2, dtype, scale=10)


@DTYPES
@given(case=cases())
def test_fundamental_tensor_batched(case, dtype):
    a, b = coeffs(case, dtype)
    v = case.vectors(2, 3)
    g = rmath.fundamental_tensor(case.t(v, dtype), a, b)
    assert g.shape == (2, 3, case.dim, case.dim) and g.dtype == dtype
    single = rmath.fundamental_tensor(case.t(v[1, 2], dtype), a, b)
    torch.testing.assert_close(g[1, 2], single)


@given(case=cases())
def test_inverse_fundamental_tensor_formula(case):
    """Reference's closed-form g^{-1} equals torch.linalg.inv(g) (float64)."""
    a, b = coeffs(case, torch.float64)
    b_sharp = np.linalg.solve(case.a, case.b)
    bb = case.b @ b_sharp
    a_inv = np.linalg.inv(case.a)
    for v in case.vectors(3):
        alpha = np.sqrt(v @ case.a @ v)
        beta = case.b @ v
        f = alpha + beta
        g_inv = (
            (alpha / f) * a_inv
            - (alpha / f**2) * (np.outer(b_sharp, v) + np.outer(v, b_sharp))
            + ((beta + alpha * bb) / f**3) * np.outer(v, v)
        )
        inv = torch.linalg.inv(rmath.fundamental_tensor(torch.as_tensor(v), a, b))
        np.testing.assert_allclose(inv.numpy(), g_inv, rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------- dual norm
def numerical_sup(xi: np.ndarray, case: Case) -> float:
    """sup_{F(v)=1} xi(v) = max_v xi(v) / F(v) by BFGS from several starts (scipy)."""
    def neg(v):
        return -(xi @ v) / np_norm(v, case.a, case.b)[0]

    starts = [np.linalg.solve(case.a, xi), xi, *case.rng.normal(size=(3, case.dim))]
    return max(-scipy.optimize.minimize(neg, s, method="BFGS", options={"gtol": 1e-10}).fun for s in starts)


@DTYPES
@given(case=cases(max_dim=4))
def test_dual_norm_is_numerical_sup(case, dtype):
    a, b = coeffs(case, dtype)
    xi = case.vectors(3)
    dual = rmath.dual_norm(case.t(xi, dtype), a, b)
    expected = np.array([numerical_sup(x, case) for x in xi])
    np.testing.assert_allclose(dual.double().numpy(), expected, rtol=1e-4 if dtype == torch.float32 else 1e-6)


def test_dual_norm_dense_sampling_2d():
    """In 2-D the sup over the unit sphere is a max over angles: dense sampling plus refinement."""
    case = make_case(3, 2, 0.8)
    a, b = coeffs(case, torch.float64)
    theta = np.linspace(0, 2 * np.pi, 200001)
    dirs = np.stack([np.cos(theta), np.sin(theta)], -1)
    unit = dirs / np_norm(dirs, case.a, case.b)[:, None]
    for xi in case.vectors(5):
        sampled = (unit @ xi).max()
        np.testing.assert_allclose(rmath.dual_norm(torch.as_tensor(xi), a, b).item(), sampled, rtol=1e-8)


@DTYPES
@given(case=cases())
def test_fenchel_young_and_dual_of_legendre(case, dtype):
    a, b = coeffs(case, dtype)
    xi, v = case.t(case.vectors(32), dtype), case.t(case.vectors(32), dtype)
    lhs = (xi * v).sum(-1)
    rhs = rmath.dual_norm(xi, a, b) * rmath.norm(v, a, b)
    assert (lhs <= rhs * (1 + 1e-5) + 1e-5).all()
    # equality case: F*(l(v)) = F(v), and l(v)(v) = F(v)^2 attains Fenchel-Young
    ell = rmath.legendre(v, a, b)
    close(rmath.dual_norm(ell, a, b), rmath.norm(v, a, b).double().numpy(), dtype, scale=10)
    f = rmath.norm(v, a, b)
    close((ell * v).sum(-1), (f * f).double().numpy(), dtype, scale=100)
    # dual norm agrees with the navigation (second) formula
    close(rmath.dual_norm(xi, a, b), np_dual_nav(xi.double().numpy(), case.a, case.b), dtype, scale=10)


@DTYPES
@given(case=cases())
def test_legendre_round_trips(case, dtype):
    a, b = coeffs(case, dtype)
    v, xi = case.t(case.vectors(16), dtype), case.t(case.vectors(16), dtype)
    close(rmath.inverse_legendre(rmath.legendre(v, a, b), a, b), v.double().numpy(), dtype, scale=100)
    close(rmath.legendre(rmath.inverse_legendre(xi, a, b), a, b), xi.double().numpy(), dtype, scale=100)
    zero = torch.zeros(case.dim, dtype=dtype)
    assert (rmath.legendre(zero, a, b) == 0).all() and (rmath.inverse_legendre(zero, a, b) == 0).all()


@DTYPES
@given(case=cases())
def test_legendre_is_gradient_of_half_f_squared(case, dtype):
    a64, b64 = coeffs(case, torch.float64)
    a, b = coeffs(case, dtype)
    for v in case.vectors(3):
        grad = torch.autograd.functional.jacobian(half_f2(a64, b64), torch.as_tensor(v))
        close(rmath.legendre(case.t(v, dtype), a, b), grad.numpy(), dtype, scale=10)


@DTYPES
@given(case=cases())
def test_inverse_legendre_is_gradient_of_half_dual_squared(case, dtype):
    h, w = np_navigation(case.a, case.b)
    h_inv, w = torch.as_tensor(np.linalg.inv(h)), torch.as_tensor(w)
    a, b = coeffs(case, dtype)

    def half_dual2(xi):  # navigation formula, independent of finslerlib
        return 0.5 * (torch.sqrt(xi @ h_inv @ xi) + xi @ w) ** 2

    for xi in case.vectors(3):
        grad = torch.autograd.functional.jacobian(half_dual2, torch.as_tensor(xi))
        close(rmath.inverse_legendre(case.t(xi, dtype), a, b), grad.numpy(), dtype, scale=10)
        # Hessian of F*^2/2 at l(v) is g(v)^{-1}
        v = rmath.inverse_legendre(torch.as_tensor(xi), *coeffs(case, torch.float64))
        hess = torch.autograd.functional.hessian(half_dual2, torch.as_tensor(xi))
        g = rmath.fundamental_tensor(v, *coeffs(case, torch.float64))
        np.testing.assert_allclose((hess @ g).numpy(), np.eye(case.dim), atol=1e-7)


def test_dual_gradients_finite_at_zero():
    case = make_case(0, 3, 0.5)
    a, b = coeffs(case, torch.float64)
    xi = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (rmath.dual_norm(xi, a, b) + rmath.inverse_legendre(xi, a, b).sum()).backward()
    assert torch.isfinite(xi.grad).all()
    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (rmath.norm(v, a, b) + rmath.legendre(v, a, b).sum()).backward()
    assert torch.isfinite(v.grad).all()


# ---------------------------------------------------------------------------- navigation
@DTYPES
@given(case=cases())
def test_navigation_round_trips(case, dtype):
    a, b = coeffs(case, dtype)
    h, w = rmath.randers_to_navigation(a, b)
    h_np, w_np = np_navigation(case.a, case.b)
    close(h, h_np, dtype, scale=10)
    close(w, w_np, dtype, scale=10)
    a2, b2 = rmath.navigation_to_randers(h, w)
    close(a2, case.a, dtype, scale=100)
    close(b2, case.b, dtype, scale=100)
    h2, w2 = rmath.randers_to_navigation(a2, b2)
    close(h2, h_np, dtype, scale=100)
    close(w2, w_np, dtype, scale=100)
    # |W|_h = ||b||_{a^-1}
    np.testing.assert_allclose(np.sqrt(w_np @ h_np @ w_np), case.drift, rtol=1e-9, atol=1e-12)
    wh = torch.sqrt(w.double() @ h.double() @ w.double()).item()
    np.testing.assert_allclose(wh, case.drift, rtol=1e-4, atol=1e-5)


@DTYPES
@given(case=cases())
def test_unit_sphere_is_shifted_h_sphere(case, dtype):
    """F(v) = 1 exactly on {W + z : |z|_h = 1}."""
    h_np, w_np = np_navigation(case.a, case.b)
    z = case.vectors(64)
    z /= np.sqrt(np.einsum("ni,ij,nj->n", z, h_np, z))[:, None]
    a, b = coeffs(case, dtype)
    f = rmath.norm(case.t(z + w_np, dtype), a, b)
    close(f, np.ones(64), dtype, scale=10)
    # and the converse: v / F(v) lands on the shifted h-sphere
    v = case.vectors(64)
    u = v / np_norm(v, case.a, case.b)[:, None] - w_np
    np.testing.assert_allclose(np.einsum("ni,ij,nj->n", u, h_np, u), 1.0, rtol=1e-9)
