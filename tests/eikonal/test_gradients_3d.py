"""Gradients of 3-D distance maps (metric parameters, drift, source) on both backends.

Oracles: for a constant Randers metric the factored scheme is exact, T(q) = F(q - s) =
|q - s|_a + b . (q - s), so the derivatives of a weighted sum of T are those of the closed form
(d/db F(q - s) = q - s; safe square root, zero gradient, at the source's own node); central finite
differences of the map itself in float64 (T is linear in b, so there they carry only the map's
rounding divided by the step).
"""

import pytest
import torch

from finslerlib.eikonal import eikonal_map, grid_points
from tests.support.eikonal import BACKENDS

F64 = torch.float64
EPS = torch.finfo(F64).eps

backends = BACKENDS

# the audit's metric: a = diag(1, 1e5, 3) (cond 1e5), a moderate drift, |b|_{a^-1} = 0.22
DIAG = torch.tensor([1.0, 1e5, 3.0], dtype=F64)
DRIFT = torch.tensor([0.15, 40.0, -0.2], dtype=F64)
AX = torch.linspace(-1, 1, 7, dtype=F64)
WEIGHTS = torch.rand(7, 7, 7, generator=torch.Generator().manual_seed(5), dtype=F64)


def _map(theta, b, src, order, backend):
    a = torch.diag(DIAG) * theta

    def coef(x):
        return a.expand(*x.shape[:-1], 3, 3), b.expand(*x.shape)

    return eikonal_map(coef, (AX, AX, AX), src, order=order, backend=backend)


def _closed_form_loss(theta, b, src):
    v = grid_points((AX, AX, AX)) - src[0]
    q = torch.einsum("...i,ij,...j->...", v, torch.diag(DIAG) * theta, v)
    pos = q > 0
    alpha = torch.where(pos, torch.sqrt(torch.where(pos, q, torch.ones_like(q))), torch.zeros_like(q))
    return (WEIGHTS * (alpha + v @ b)).sum()


@pytest.mark.parametrize("backend", backends)
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("source", [[0.0, 0.0, 0.0], [1 / 3, -2 / 3, 0.1]])
def test_gradients_of_an_ill_conditioned_3d_map_are_finite_and_match_the_closed_form(backend, order, source):
    # regression: a source on a grid node made every 3-D gradient NaN (tangent octant facets along
    # the source's diagonal planes: sqrt's derivative 0 * inf; and the source's own node: sqrt(0))
    theta = torch.tensor(1.3, dtype=F64, requires_grad=True)
    b = DRIFT.clone().requires_grad_(True)
    src = torch.tensor([source], dtype=F64, requires_grad=True)
    m = _map(theta, b, src, order, backend)
    grads = torch.autograd.grad((WEIGHTS * m.values).sum(), (theta, b, src))
    assert all(bool(torch.isfinite(g).all()) for g in grads), grads
    leaves = [z.detach().clone().requires_grad_(True) for z in (theta, b, src)]
    exact = torch.autograd.grad(_closed_form_loss(*leaves), leaves)
    # the local solves difference terms up to cond(a) times their result: relative rounding eps cond(a)
    cond = float(DIAG.max() / DIAG.min())
    for g, e in zip(grads, exact, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=16 * EPS * cond * float(e.abs().max()))


@pytest.mark.parametrize("backend", backends[:1])
def test_drift_gradient_of_a_3d_map_matches_central_differences(backend):
    b = DRIFT.clone().requires_grad_(True)
    theta = torch.tensor(1.0, dtype=F64)
    src = torch.zeros(1, 3, dtype=F64)
    m = _map(theta, b, src, 1, backend)
    (g,) = torch.autograd.grad((WEIGHTS * m.values).sum(), b)
    assert bool(torch.isfinite(g).all()), g
    h = 1e-3
    for k in range(3):
        e = torch.zeros(3, dtype=F64)
        e[k] = h
        with torch.no_grad():
            up = (WEIGHTS * _map(theta, DRIFT + e, src, 1, backend).values).sum()
            dn = (WEIGHTS * _map(theta, DRIFT - e, src, 1, backend).values).sum()
        fd = float((up - dn) / (2 * h))
        # T is linear in b: the differences carry the maps' convergence error (their tolerance,
        # each node) over the step
        err = float(WEIGHTS.sum()) * 2 * max(m.tolerance, m.change) / (2 * h)
        assert abs(float(g[k]) - fd) <= err + 1e3 * EPS * abs(fd), (k, float(g[k]), fd)
