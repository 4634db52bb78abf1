"""The fused factor-coordinates head `factor_head_logits` (projection, learnable factor, drift,
scale and logits as one autograd node): gradients against finite differences (`gradcheck` and
`gradgradcheck`, float64) for every parameter, values against a float64 Randers brute force built
from the plain formula F(v) = sqrt(v^T a v) + b.v, and `FAIMHead` against the same model computed
through the metric's public API (`factor_rows`, `unit_randers_logits`)."""

import pytest
import torch

from finslerlib.nn import FAIMHead
from finslerlib.nn._kernels import factor_head_logits, unit_randers_logits
from tests.support.nn_toys import randers_brute_force

SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}


def _inputs(seed, projected, batch=4, dim=5, rank=3, classes=6, drift=0.5):
    g = torch.Generator().manual_seed(seed)
    r = rank if projected else dim
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    proj = torch.randn(r, dim, generator=g, dtype=torch.float64) if projected else None
    raw = 0.4 * torch.randn(r, r, generator=g, dtype=torch.float64)
    u = torch.randn(r, generator=g, dtype=torch.float64)
    u = drift * u / u.norm()
    m = torch.randn(classes, r, generator=g, dtype=torch.float64)
    log_scale = torch.tensor(0.6, dtype=torch.float64)
    return x, proj, raw, u, m, log_scale


def _plain_metric(raw, u, eps, max_drift):
    """(a, b) of the learnable metric from its definition: a = L L^T, b = L w."""
    chol = torch.tril(raw, -1) + torch.diag(torch.log1p(torch.exp(raw.diagonal())) + eps)
    w = max_drift * torch.tanh(u.norm()) * u / u.norm()
    return chol @ chol.T, chol @ w, chol


@pytest.mark.parametrize("projected", [False, True])
@pytest.mark.parametrize("direction", SIGNS)
def test_gradcheck_every_parameter_with_scale_and_margin(direction, projected):
    args = [t if t is None else t.requires_grad_() for t in _inputs(0, projected, batch=3, dim=4, rank=2,
                                                                     classes=4)]
    labels = torch.tensor([0, 3, 3])

    def f(*a):
        return factor_head_logits(*a, eps=1e-4, max_drift=0.9, sign=SIGNS[direction], labels=labels,
                                  margin=0.3)

    assert torch.autograd.gradcheck(f, args)
    if projected:  # double backward (a recomputation through the composite)
        assert torch.autograd.gradgradcheck(f, args)


def test_gradcheck_without_scale_and_at_zero_drift():
    x, _, raw, _, m, _ = _inputs(1, False)
    args = (x.requires_grad_(), None, raw.requires_grad_(), torch.zeros(5, dtype=torch.float64,
            requires_grad=True), m.requires_grad_(), None)

    def f(*a):
        return factor_head_logits(*a, eps=1e-4, max_drift=0.9)

    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("direction", SIGNS)
def test_values_match_the_randers_brute_force(direction, dtype):
    x, proj, raw, u, m, log_scale = _inputs(2, True, drift=0.8)
    eps, max_drift = 1e-4, 0.9
    a, b, chol = _plain_metric(raw, u, eps, max_drift)
    z = x @ proj.T
    points = torch.linalg.solve_triangular(chol, m, upper=False, left=False)  # mu = m L^{-1} (rows)
    to_mu, from_mu = randers_brute_force(a, b, z, points), randers_brute_force(a, b, points, z).T
    dist = {"to_prototype": to_mu, "from_prototype": from_mu, "max": torch.maximum(to_mu, from_mu)}[direction]
    got = factor_head_logits(*(t.to(dtype) for t in (x, proj, raw, u, m, log_scale)), eps=eps,
                             max_drift=max_drift, sign=SIGNS[direction])
    eps_d = torch.finfo(dtype).eps
    # Gram trick: about eps * (|s|^2 + |m|^2) / alpha absolute error, with sizes of order 10 here
    torch.testing.assert_close(got.double(), -log_scale.exp() * dist, rtol=1e3 * eps_d, atol=1e3 * eps_d)


@pytest.mark.parametrize("rank", [None, 3])
@pytest.mark.parametrize("direction", SIGNS)
def test_head_equals_the_metric_api_composition(direction, rank):
    torch.manual_seed(3)
    head = FAIMHead(5, 7, rank=rank, direction=direction, dtype=torch.float64)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x, labels = torch.randn(6, 5, dtype=torch.float64), torch.randint(0, 7, (6,))
    params = dict(head.named_parameters())
    got = torch.autograd.grad(head(x, labels, margin=0.4).square().sum(), list(params.values()))
    z = x if head.projection is None else head.projection(x)
    s, w = head.manifold.factor_rows(z)
    ref = unit_randers_logits(s, head.prototype_coords, w, -head.scale, sign=SIGNS[direction], labels=labels,
                              margin=0.4)
    torch.testing.assert_close(head(x, labels, margin=0.4), ref)
    want = torch.autograd.grad(ref.square().sum(), list(params.values()))
    for name, a, b in zip(params, got, want, strict=True):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize("direction", SIGNS)
def test_column_blocks_give_the_same_values_and_gradients(direction, monkeypatch):
    import finslerlib.nn._kernels as kernels

    inputs = _inputs(4, True, classes=11)
    weights = torch.randn(4, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    results = []
    for chunk in (None, 4):
        if chunk is not None:  # what a large class count gets on CPU
            monkeypatch.setattr(kernels, "_column_chunk", lambda s, classes, chunk=chunk: chunk)
            monkeypatch.setattr(kernels, "_ROWS", 3)
            monkeypatch.setattr(kernels, "_ONE_SHOT", 0)
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = factor_head_logits(*leaves, eps=1e-4, max_drift=0.9, sign=SIGNS[direction],
                                 labels=torch.tensor([1, 0, 10, 3]), margin=0.2)
        results.append((out, *torch.autograd.grad((out * weights).sum(), leaves)))
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
