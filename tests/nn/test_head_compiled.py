"""The compiled CPU passes of the head's logits kernel (`finslerlib.nn._head_compiled`): values and
gradients against the kernel's torch path and against the composite autograd oracle, `gradcheck`
and `gradgradcheck` (float64) through them, float32 against float64 within the Gram trick's
rounding bound, empty batches, column blocks and rows past one partial-sum chunk (64 rows)."""

import pytest
import torch

import finslerlib.nn._head_compiled as compiled
import finslerlib.nn._kernels as kernels
import tests.nn.test_factor_head_logits as head_tests
import tests.nn.test_unit_randers_logits as logits_tests
from finslerlib.nn import FAIMHead
from finslerlib.nn._kernels import _composite, factor_head_logits, unit_randers_logits

SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}


@pytest.fixture
def forced(monkeypatch):
    """Every call takes the compiled path (skipped where it cannot be built); counts its uses."""
    if compiled.load_head_kernel() is None:
        pytest.skip("the compiled head kernel cannot be built here")
    monkeypatch.setattr(compiled, "MIN_ENTRIES", 0)
    calls = []

    def counting(s, entries):
        lib = compiled.use_compiled(s, entries)
        calls.append(lib is not None)
        return lib

    monkeypatch.setattr(kernels, "use_compiled", counting)
    return calls


def _run(args, sign, labels, margin, weights):
    leaves = [t.clone().requires_grad_() for t in args]
    out = unit_randers_logits(*leaves, sign=sign, labels=labels, margin=margin)
    return (out, *torch.autograd.grad((out * weights).sum(), leaves))


def _inputs(batch, classes, dim, dtype, seed=0, drift=0.6):
    g = torch.Generator().manual_seed(seed)
    s = 1.5 + torch.randn(batch, dim, generator=g, dtype=torch.float64)
    m = 1.5 + torch.randn(classes, dim, generator=g, dtype=torch.float64)
    w = torch.randn(dim, generator=g, dtype=torch.float64)
    w = drift * w / w.norm()
    scale = torch.tensor(-2.5, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch,), generator=g)
    weights = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (s, m, w, scale)], labels, weights.to(dtype)


@pytest.mark.parametrize("blocks", [False, True])
@pytest.mark.parametrize("batch", [0, 5, 130])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("direction", SIGNS)
def test_compiled_matches_the_composite_oracle(direction, dtype, batch, blocks, forced, monkeypatch):
    # values and all four gradients against autograd through the composite (float64 oracle for
    # both dtypes). Tolerance: the Gram trick's error in alpha^2 is about R eps T (T the largest
    # squared size), so alpha's is R eps T / alpha and each gradient term's R eps T / alpha^2,
    # times the weights and the scale, summed over at most max(B, C) terms
    if blocks:
        monkeypatch.setattr(kernels, "_column_chunk", lambda s, classes: 7)
    classes, dim, sign = 23, 9, SIGNS[direction]
    args, labels, weights = _inputs(batch, classes, dim, dtype)
    got = _run(args, sign, labels, 0.3, weights)
    assert forced and all(forced)
    ref_in = [t.double().clone().requires_grad_() for t in args]
    ref = _composite(*ref_in, sign, labels, 0.3)
    want = (ref, *torch.autograd.grad((ref * weights.double()).sum(), ref_in, allow_unused=True))
    s64, m64 = args[0].double(), args[1].double()
    alpha_min = float(torch.cdist(s64, m64).min()) if batch else 1.0
    assert alpha_min > 0.05
    c = m64.mean(0)
    big = float(((s64 - c).norm(dim=1).amax() if batch else 0) + m64.norm(dim=1).amax() + c.norm()) ** 2
    atol = 4 * dim * torch.finfo(dtype).eps * big / alpha_min**2 * 2.5 * max(batch, classes, 1)
    for g, w in zip(got, want, strict=True):
        w = torch.zeros_like(g, dtype=torch.float64) if w is None else w
        torch.testing.assert_close(g.double(), w, rtol=0, atol=atol)


@pytest.mark.parametrize("direction", SIGNS)
def test_compiled_agrees_with_the_torch_path(direction, monkeypatch):
    # the same float32 inputs through both paths (column blocks, rows past one 64-row chunk)
    if compiled.load_head_kernel() is None:
        pytest.skip("the compiled head kernel cannot be built here")
    monkeypatch.setattr(kernels, "_column_chunk", lambda s, classes: 64)
    args, labels, weights = _inputs(150, 200, 32, torch.float32, seed=3)
    results = []
    for threshold in (0, 1 << 62):  # compiled, then torch
        monkeypatch.setattr(compiled, "MIN_ENTRIES", threshold)
        results.append(_run(args, SIGNS[direction], labels, 0.4, weights))
    eps = torch.finfo(torch.float32).eps
    for got, want in zip(*results, strict=True):
        # both round the same quantities in a different order: a few eps of each result's size,
        # times the sums' lengths (150 rows, 200 columns, 32 coordinates)
        size = float(want.detach().abs().max()) + 1
        torch.testing.assert_close(got, want, rtol=0, atol=200 * 32 * eps * size)


@pytest.mark.parametrize("drift", ["zero", "strong"])
@pytest.mark.parametrize("direction", SIGNS)
def test_gradcheck_through_the_compiled_path(direction, drift, forced, monkeypatch):
    logits_tests.test_gradcheck_with_scale_and_margin(direction, drift)
    monkeypatch.setattr(kernels, "_column_chunk", lambda s, classes: 2)
    logits_tests.test_gradcheck_with_scale_and_margin(direction, drift)
    assert forced and all(forced)


@pytest.mark.parametrize("direction", SIGNS)
def test_factor_head_gradcheck_through_the_compiled_path(direction, forced):
    head_tests.test_gradcheck_every_parameter_with_scale_and_margin(direction, True)
    head_tests.test_gradcheck_without_scale_and_at_zero_drift()
    head_tests.test_values_match_the_randers_brute_force(direction, torch.float32)
    assert forced and all(forced)


@pytest.mark.parametrize("direction", SIGNS)
def test_float32_bounds_through_the_compiled_path(direction, forced):
    logits_tests.test_float32_within_the_gram_rounding_bound(direction, "strong")
    logits_tests.test_float32_gradients_within_a_conditioning_bound(direction)
    logits_tests.test_coincident_points_give_finite_gradients_equal_to_the_safe_composite(direction)
    assert forced and all(forced)


def test_empty_batch_through_the_head(forced):
    head = FAIMHead(6, 4, margin=0.2)
    x = torch.zeros(0, 6, requires_grad=True)
    out = head(x, torch.zeros(0, dtype=torch.long))
    assert out.shape == (0, 4)
    out.sum().backward()
    assert x.grad.shape == (0, 6)
    assert head.prototype_coords.grad.abs().max() == 0
    assert forced and all(forced)


def test_noncontiguous_output_gradient(forced):
    # out.sum().backward() hands the kernel an expanded (stride 0) gradient
    args, _, _ = _inputs(8, 10, 4, torch.float64, seed=5)
    leaves = [t.clone().requires_grad_() for t in args]
    unit_randers_logits(*leaves).sum().backward()
    ref_in = [t.clone().requires_grad_() for t in args]
    _composite(*ref_in, 1).sum().backward()
    for a, b in zip(leaves, ref_in, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-10)


def test_factor_head_logits_compiled_equals_torch_path(monkeypatch):
    if compiled.load_head_kernel() is None:
        pytest.skip("the compiled head kernel cannot be built here")
    inputs = head_tests._inputs(4, True, batch=70, classes=30)
    weights = torch.randn(70, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    results = []
    for threshold in (0, 1 << 62):
        monkeypatch.setattr(compiled, "MIN_ENTRIES", threshold)
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = factor_head_logits(*leaves, eps=1e-4, max_drift=0.9, labels=torch.arange(70) % 30, margin=0.2)
        results.append((out, *torch.autograd.grad((out * weights).sum(), leaves)))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("projected", [False, True])
@pytest.mark.parametrize("path", ["compiled", "torch"])
def test_triangular_factor_blocks_match_the_composite(path, projected, monkeypatch):
    # the products with L in column blocks (what R >= 256 gets on CPU) against autograd through
    # the composite, which multiplies by the dense L
    if path == "compiled" and compiled.load_head_kernel() is None:
        pytest.skip("the compiled head kernel cannot be built here")
    monkeypatch.setattr(compiled, "MIN_ENTRIES", 0 if path == "compiled" else 1 << 62)
    monkeypatch.setattr(kernels, "_TRI_WIDTH", 2)  # R = 9: 4 blocks of 2 or 3 columns
    assert len(kernels._tri_splits(torch.zeros(1), 9)) == 4
    inputs = head_tests._inputs(6, projected, batch=7, dim=11 if projected else 9, rank=9, classes=5)
    weights = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    consts = (1e-4, 0.9, -1.0, 1, labels, 0.2)
    leaves = [None if t is None else t.clone().requires_grad_() for t in inputs]
    out = factor_head_logits(*leaves, eps=1e-4, max_drift=0.9, labels=labels, margin=0.2)
    ref_leaves = [None if t is None else t.clone().requires_grad_() for t in inputs]
    ref = kernels._head_composite(*ref_leaves, *consts)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad((out * weights).sum(), [t for t in leaves if t is not None])
    want = torch.autograd.grad((ref * weights).sum(), [t for t in ref_leaves if t is not None])
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_a_python_float_scale_is_a_type_error():
    # audit 8: a float scale raised AttributeError ('float' object has no attribute 'dtype')
    s, m, w = torch.zeros(2, 3), torch.ones(4, 3), torch.zeros(3)
    with pytest.raises(TypeError, match="scale must be a scalar Tensor or None, got float"):
        unit_randers_logits(s, m, w, 2.0)
