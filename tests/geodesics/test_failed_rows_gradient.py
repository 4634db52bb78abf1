"""Audit 9: with `on_failure="nan"`, a failed pair must not poison the metric parameters' gradient
of the converged pairs (0 * NaN). Oracle: the closed form d = |y - x|_A + v(y) - v(x) of a constant A
and a closed drift b = c grad v, differentiated in c."""

import dataclasses
import warnings

import torch

from finslerlib import RandersField
from finslerlib.geodesics import distance_with_gradient

F64 = torch.float64


def test_a_failed_row_leaves_the_other_rows_parameter_gradient_finite_and_exact():
    c = torch.tensor(1.0, dtype=F64, requires_grad=True)
    w = torch.tensor([1.3, -0.7], dtype=F64)
    a_mat = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=F64)

    def coefficients(x):
        b = (0.3 * c * torch.cos(x @ w)).unsqueeze(-1) * w
        return a_mat.expand(*x.shape[:-1], 2, 2), b

    def exact(x, y):
        e = y - x
        return torch.sqrt(torch.einsum("...i,ij,...j->...", e, a_mat, e)) + 0.3 * c * (
            torch.sin(y @ w) - torch.sin(x @ w)
        )

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 2, generator=g, dtype=F64) * 2 - 1
    y = torch.rand(6, 2, generator=g, dtype=F64) * 2 - 1
    field = RandersField(a=lambda z: coefficients(z)[0], b=lambda z: coefficients(z)[1], dim=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = field.solve(x, y)
    assert bool(sol.converged.all())
    # pair 2 "failed": its solve left NaN data, as a failed shooting may
    path, moms = sol.path.clone(), sol.path_momentum.clone()
    path[:, 2] = float("nan")
    moms[:, 2] = float("nan")
    p0, p1 = sol.momentum.clone(), sol.end_momentum.clone()
    p0[2] = float("nan")
    p1[2] = float("nan")
    broken = dataclasses.replace(sol, path=path, path_momentum=moms, momentum=p0, end_momentum=p1)
    d = distance_with_gradient(coefficients, x, y, broken)
    ok = torch.arange(6) != 2
    (gc,) = torch.autograd.grad(d[ok].sum(), c)
    (ec,) = torch.autograd.grad(exact(x[ok], y[ok]).sum(), c)
    assert torch.isfinite(gc)
    # first variation at converged geodesics: exact up to the solve's distance error
    assert abs(float(gc - ec)) <= 1e-5 * max(1.0, abs(float(ec)))
