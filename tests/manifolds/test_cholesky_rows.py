"""The learnable Cholesky factor built in one pass (`finslerlib.manifolds._cholesky.lower_factor`).

Oracle: the factor built with plain torch ops, `tril(R, -1) + diag(softplus(diag R) + eps)`, and
autograd through it; `gradcheck` / `gradgradcheck` (finite differences) at small sizes.
"""

import pytest
import torch
import torch.nn.functional as nnf

from finslerlib.manifolds import Randers
from finslerlib.manifolds._cholesky import lower_factor
from finslerlib.nn.head import _factor_rows


def _oracle(raw, eps):
    return torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)


@pytest.mark.parametrize("dim", [1, 7, 300])
def test_values_and_gradients_match_the_composite(dim):
    gen = torch.Generator().manual_seed(dim)
    raw = torch.randn(dim, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():  # softplus(r) = r above its threshold 20: slope exactly 1 there
        raw.diagonal()[0] = 25.0
    grad = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    out, ref = lower_factor(raw, 1e-3), _oracle(raw, 1e-3)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    (got,) = torch.autograd.grad(out, raw, grad)
    (want,) = torch.autograd.grad(ref, raw, grad)
    torch.testing.assert_close(got, want, rtol=1e-15, atol=0)
    # the strict upper part of raw does not enter the factor
    assert (got.triu(1) == 0).all()


def test_finite_differences_and_double_backward():
    gen = torch.Generator().manual_seed(0)
    raw = torch.randn(5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda r: lower_factor(r, 1e-3), (raw,))
    assert torch.autograd.gradgradcheck(lambda r: lower_factor(r, 1e-3), (raw,))


def test_head_path_is_the_public_factor():
    metric = Randers.learnable(30, dtype=torch.float64)
    with torch.no_grad():
        metric.chol_raw.normal_().mul_(0.1)
        metric.drift_raw.normal_()
    z = torch.randn(11, 30, dtype=torch.float64)
    s, w = _factor_rows(metric, z)
    chol, w_ref = metric.factor()
    torch.testing.assert_close(chol, _oracle(metric.chol_raw.detach(), metric.eps), rtol=0, atol=0)
    torch.testing.assert_close(s, z @ chol, rtol=0, atol=0)
    torch.testing.assert_close(w, w_ref, rtol=0, atol=0)
    # a = L L^T: the coefficients the rest of the manifold uses
    torch.testing.assert_close(metric.a, chol @ chol.mT, rtol=1e-14, atol=1e-14)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="raw must be a square matrix"):
        lower_factor(torch.zeros(3, 4), 1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    raw = torch.randn(300, 300, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(lower_factor(raw.cuda(), 1e-3).cpu(), _oracle(raw, 1e-3), rtol=0, atol=0)
