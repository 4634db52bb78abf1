"""The eikonal map's gradient is honest: symmetric in `a`, correct for float32 maps of an
ill-conditioned metric, kept through masked (invalid) nodes, and an error where the adjoint
iteration does not settle (audit 7).

Oracles: the closed form T(q) = min_s |q - s|_a + b . (q - s) of a constant metric (the factored
scheme is exact there) differentiated by autograd in float64, and central differences in b.
"""

import pytest
import torch

from finslerlib.eikonal import eikonal_map, grid_points
from tests.support.eikonal import BACKENDS

F64, F32 = torch.float64, torch.float32

backends = BACKENDS


def _closed(a, b, src, pts):
    v = pts - src
    q = torch.einsum("...i,ij,...j->...", v, a, v)
    pos = q > 0
    alpha = torch.where(pos, torch.sqrt(torch.where(pos, q, torch.ones_like(q))), torch.zeros_like(q))
    return alpha + v @ b


def _constant(a, b):
    d = b.shape[-1]
    return lambda x: (a.expand(*x.shape[:-1], d, d), b.expand(*x.shape))


@pytest.mark.parametrize("backend", backends)
def test_a_non_symmetric_a_is_rejected(backend):
    # regression: a + K (K antisymmetric, |K| = 0.3) was accepted and changed T by up to 0.2,
    # although the Randers norm reads only the symmetric part
    ax = torch.linspace(-1, 1, 5, dtype=F64)
    a = torch.diag(torch.tensor([2.0, 1.0, 0.5], dtype=F64))
    a[0, 1], a[1, 0] = 0.3, -0.3
    b = torch.tensor([0.3, -0.4, 0.2], dtype=F64)
    with pytest.raises(ValueError, match=r"a must be symmetric, got max \|a - a\^T\| = 0\.6"):
        eikonal_map(_constant(a, b), (ax,) * 3, torch.zeros(1, 3, dtype=F64), backend=backend)


@pytest.mark.parametrize("backend", backends)
def test_the_gradient_in_a_is_the_closed_forms_and_symmetric(backend):
    # regression: d sum(T) / da had an antisymmetric part as large as the gradient itself, so
    # gradient descent on a full matrix made `a` non-symmetric
    ax = torch.linspace(-1, 1, 7, dtype=F64)
    a0 = torch.tensor([[2.0, 0.4, 0.0], [0.4, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=F64)
    b = torch.tensor([0.3, -0.4, 0.2], dtype=F64)
    src = torch.tensor([[0.1, -0.2, 0.05]], dtype=F64)
    w = torch.rand(7, 7, 7, generator=torch.Generator().manual_seed(1), dtype=F64)
    a = a0.clone().requires_grad_(True)
    m = eikonal_map(_constant(a, b), (ax,) * 3, src, order=1, backend=backend)
    (g,) = torch.autograd.grad((w * m.values).sum(), a)
    ac = a0.clone().requires_grad_(True)
    (gc,) = torch.autograd.grad((w * _closed(ac, b, src[0], grid_points((ax,) * 3))).sum(), ac)
    # the map matches the closed form to its sweeps' rounding; the gradient's error is that of the
    # adjoint iteration (sqrt(eps) relative at most) plus rounding
    assert torch.allclose(g, g.mT, rtol=0, atol=1e3 * torch.finfo(F64).eps * float(gc.abs().max()))
    assert torch.allclose(g, gc, rtol=0, atol=torch.finfo(F64).eps ** 0.5 * float(gc.abs().max()))


@pytest.mark.parametrize("backend", backends)
@pytest.mark.parametrize("order", [1, 2])
def test_a_float32_map_of_an_ill_conditioned_metric_has_the_float64_gradient(backend, order):
    # regression: cond(a) = 5e4, float32: d L / d a_00 was 5.8-7.3 against 2.879 (the adjoint
    # iteration ran in float32, where the local solves' derivatives lose cond(a) * eps)
    ax = torch.linspace(-1, 1, 9, dtype=F64)
    diag = torch.tensor([1.0, 1e4, 3.0], dtype=F64)
    a0 = torch.diag(diag)
    a0[0, 1] = a0[1, 0] = 0.9 * float(diag[0] * diag[1]) ** 0.5
    b = torch.tensor([0.3, 0.0, 0.0], dtype=F64)
    src = torch.zeros(1, 3, dtype=F64)
    w = torch.rand(9, 9, 9, generator=torch.Generator().manual_seed(3), dtype=F64)
    ac = a0.clone().requires_grad_(True)
    (gc,) = torch.autograd.grad((w * _closed(ac, b, src[0], grid_points((ax,) * 3))).sum(), ac)
    a = a0.to(F32).requires_grad_(True)
    axes = (ax.to(F32),) * 3
    m = eikonal_map(_constant(a, b.to(F32)), axes, src.to(F32), order=order, backend=backend)
    (g,) = torch.autograd.grad((w.to(F32) * m.values).sum(), a)
    # float32 data: the map's own rounding (eps32 relative in T) moves the gradient by about
    # eps32 * cond(a) relative at most (the local solves' conditioning)
    cond = float(torch.linalg.cond(a0))
    bound = torch.finfo(F32).eps * cond * float(gc.abs().max())
    assert float((g.double() - gc).abs().max()) <= bound


def test_an_unsettled_adjoint_iteration_raises():
    # regression: cond(a) = 1e6, float32, order 2: the adjoint iteration grows (2.2 -> 1.8e4 per
    # step) and its last iterate was returned: dL/db = (-3286.8, -101.6, -164.5) against the
    # exact (-1.419, 2.619, -4.506)
    ax = torch.linspace(-1, 1, 9, dtype=F32)
    a = torch.diag(torch.tensor([1.0, 1e6, 3.0], dtype=F32))
    b = torch.tensor([0.5, 600.0, 0.5], dtype=F32, requires_grad=True)
    m = eikonal_map(_constant(a, b), (ax,) * 3, torch.zeros(1, 3, dtype=F32), order=2, backend="torch")
    w = torch.rand(9, 9, 9, generator=torch.Generator().manual_seed(0))
    try:
        (g,) = torch.autograd.grad((w * m.values).sum(), b)
    except RuntimeError as err:
        assert "did not settle" in str(err)
    else:  # where it settles, it is the closed form's gradient
        exact = (w.double()[..., None] * grid_points((ax.double(),) * 3)).sum((0, 1, 2))
        assert torch.allclose(g.double(), exact, rtol=1e-3, atol=0)


@pytest.mark.parametrize("backend", backends)
@pytest.mark.parametrize("dtype", [F32, F64])
def test_gradients_flow_through_masked_nodes(backend, dtype):
    # regression (this wave): with invalid nodes, the masked metric formed inside the torch
    # sweeps' no_grad lost its graph, and d sum(T) / db came out -2.2 instead of -11
    ax = torch.linspace(-1, 1, 11, dtype=dtype)
    b = torch.tensor([0.3, -0.2], dtype=dtype, requires_grad=True)

    def coef(x):
        extra = torch.where(x[..., :1] > 0.8, torch.tensor([2.0, 0.0], dtype=x.dtype), torch.zeros_like(x))
        return torch.eye(2, dtype=x.dtype).expand(*x.shape[:-1], 2, 2), b.expand(*x.shape) + extra

    m = eikonal_map(coef, (ax, ax), torch.zeros(1, 2, dtype=dtype), order=1, backend=backend)
    fin = torch.isfinite(m.values)
    assert int((~fin).sum()) == 11  # the column x0 = 1 is outside the domain
    (g,) = torch.autograd.grad(m.values[fin].sum(), b)
    # T(q) = |q| + b . q on the valid nodes (constant metric there): d/db = sum of q
    exact = grid_points((ax, ax))[fin].sum(0)
    assert torch.allclose(g, exact, rtol=0, atol=1e3 * torch.finfo(dtype).eps * float(exact.abs().max() + 1))


def test_the_gradient_of_an_unconverged_map_warns():
    # a map stopped before it converged (max_iter=1) says converged=False; its gradient is that of
    # an unfinished iteration, and the backward says so (it came back silently: audit 7)
    ax = torch.linspace(-1, 1, 65, dtype=F64)
    b = torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True)

    def coef(x):  # a speed that varies along x: paths bend, one sweep does not settle
        a = (1 + 3 * torch.sin(5 * x[..., :1] * x[..., 1:]) ** 2)[..., None] * torch.eye(2, dtype=x.dtype)
        return a, b.expand(*x.shape)

    m = eikonal_map(coef, (ax, ax), torch.tensor([[0.1, 0.2]], dtype=F64), max_iter=1)
    assert not m.converged
    with pytest.warns(RuntimeWarning, match="did not converge"):
        try:
            torch.autograd.grad(m.values[torch.isfinite(m.values)].sum(), b)
        except RuntimeError as err:  # the adjoint may not settle in 1 step either: also an error
            assert "did not settle" in str(err)
