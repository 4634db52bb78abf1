"""The learnable Cholesky factor built in one pass (`lower_factor`) and rows multiplied by it without
building it (`factor_rows`, in triangular blocks; `finslerlib.manifolds._cholesky`).

Oracle: the factor built with plain torch ops, `tril(R, -1) + diag(softplus(diag R) + eps)`, and
autograd through it; `gradcheck` / `gradgradcheck` (finite differences) at small sizes.
"""

import pytest
import torch
import torch.nn.functional as nnf

from finslerlib.manifolds import Randers
from finslerlib.manifolds._cholesky import factor_rows, lower_factor
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
    torch.testing.assert_close(s, z @ chol, rtol=1e-12, atol=1e-12)
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


# ----------------------------------------------------------------- factor_rows
def _rows_oracle(x, raw, eps):
    chol = torch.tril(raw, -1) + torch.diag_embed(nnf.softplus(raw.diagonal()) + eps)
    return x @ chol


@pytest.mark.parametrize("dim", [1, 7, 255, 256, 300, 515])
def test_rows_values_and_gradients_match_the_composite(dim):
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(9, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    raw = torch.randn(dim, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():  # softplus(r) = r above its threshold 20: slope exactly 1 there
        raw.diagonal()[0] = 25.0
    grad = torch.randn(9, dim, generator=gen, dtype=torch.float64)
    out = factor_rows(x, raw, 1e-3)
    ref = _rows_oracle(x, raw, 1e-3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(out, (x, raw), grad)
    want = torch.autograd.grad(ref, (x, raw), grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    # the strict upper part of raw does not enter the factor
    assert (got[1].triu(1) == 0).all()


def test_rows_finite_differences_and_double_backward():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    raw = torch.randn(5, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, r: factor_rows(a, r, 1e-3), (x, raw))
    assert torch.autograd.gradgradcheck(lambda a, r: factor_rows(a, r, 1e-3), (x, raw))


def test_float32_blocks_agree_with_the_dense_product():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 512, generator=gen)
    raw = torch.randn(512, 512, generator=gen) / 20
    torch.testing.assert_close(factor_rows(x, raw, 1e-4), _rows_oracle(x, raw, 1e-4), rtol=1e-4, atol=1e-4)


def test_rows_bad_shapes_raise():
    with pytest.raises(ValueError, match="raw"):
        factor_rows(torch.zeros(2, 3), torch.zeros(3, 4), 1e-4)
    with pytest.raises(ValueError, match="dtype"):
        factor_rows(torch.zeros(2, 3), torch.zeros(3, 3, dtype=torch.float64), 1e-4)


def test_one_dense_block_path(monkeypatch):
    # the path GPUs take (no triangular blocks), forced on CPU
    import finslerlib.manifolds._cholesky as cholesky

    monkeypatch.setattr(cholesky, "_SPLIT", 10**9)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 300, generator=gen, dtype=torch.float64, requires_grad=True)
    raw = torch.randn(300, 300, generator=gen, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(6, 300, generator=gen, dtype=torch.float64)
    out, ref = factor_rows(x, raw, 1e-3), _rows_oracle(x, raw, 1e-3)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(out, (x, raw), grad)
    want = torch.autograd.grad(ref, (x, raw), grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_rows_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 300, generator=gen, dtype=torch.float64)
    raw = torch.randn(300, 300, generator=gen, dtype=torch.float64)
    got = factor_rows(x.cuda(), raw.cuda(), 1e-3).cpu()
    torch.testing.assert_close(got, _rows_oracle(x, raw, 1e-3), rtol=1e-12, atol=1e-12)
