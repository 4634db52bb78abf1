"""geoopt compatibility of `Randers`: optimizers, state_dict, the generic manifold contract, products.

Minimizers are computed independently with scipy on the closed-form objective (numpy), the
manifold contract replicates the checks of geoopt's own `tests/test_manifold_basic.py`.
"""

from __future__ import annotations

import copy
import io

import geoopt
import numpy as np
import pytest
import scipy.optimize
import torch

from finslerlib import Randers
from tests.support.randers_cases import make_case, np_norm

D, K, N = 3, 4, 5  # dimension, parameter rows (independent problems), targets per row
CASE = make_case(11, D, 0.6, cond=4.0)


def randers(case=CASE) -> Randers:
    return Randers(torch.as_tensor(case.a), torch.as_tensor(case.b))


TARGETS = torch.as_tensor(CASE.vectors(K, N, scale=2.0))  # [K, N, D]
START = TARGETS.mean(1) + torch.as_tensor(CASE.vectors(K, scale=0.5))  # [K, D]


def scipy_minimizers(case, targets: np.ndarray, reverse: bool) -> np.ndarray:
    """argmin_p sum_i d(p -> y_i)^2 (or d(y_i -> p)^2) per row, scipy BFGS on the closed form."""
    out = []
    for ys in targets:
        def objective(p, ys=ys):
            diff = (p - ys) if reverse else (ys - p)
            return (np_norm(diff, case.a, case.b) ** 2).sum()

        res = scipy.optimize.minimize(objective, ys.mean(0), method="BFGS", options={"gtol": 1e-12})
        out.append(res.x)
    return np.stack(out)


EXPECTED = scipy_minimizers(CASE, TARGETS.numpy(), reverse=False)
EXPECTED_REVERSE = scipy_minimizers(CASE, TARGETS.numpy(), reverse=True)


def loss_fn(m, p, targets=TARGETS, reverse=False):
    """sum_k sum_i d(p_k -> y_ki)^2 for p [K, D] (or rows selected by an embedding)."""
    if reverse:
        return (m.dist(targets, p.unsqueeze(-2)) ** 2).sum()
    return (m.dist(p.unsqueeze(-2), targets) ** 2).sum()


DENSE = [
    pytest.param(geoopt.optim.RiemannianSGD, dict(lr=0.03), 350, False, id="rsgd"),
    pytest.param(geoopt.optim.RiemannianSGD, dict(lr=0.03), 350, True, id="rsgd-backward"),
    pytest.param(geoopt.optim.RiemannianSGD, dict(lr=0.01, momentum=0.9), 350, False, id="rsgd-momentum"),
    pytest.param(
        geoopt.optim.RiemannianSGD, dict(lr=0.01, momentum=0.9, nesterov=True), 250, False, id="rsgd-nesterov"
    ),
    pytest.param(geoopt.optim.RiemannianAdam, dict(lr=0.1), 400, False, id="radam"),
    # the backward mean (p is the target of the distances) converges slower under descent="forward"
    pytest.param(geoopt.optim.RiemannianAdam, dict(lr=0.1), 800, True, id="radam-backward"),
    pytest.param(geoopt.optim.RiemannianAdam, dict(lr=0.1, amsgrad=True), 400, False, id="radam-amsgrad"),
]


@pytest.mark.parametrize("opt_cls,kwargs,steps,reverse", DENSE)
def test_dense_optimizers_converge_to_scipy_minimizer(opt_cls, kwargs, steps, reverse):
    """argmin sum_i d(p -> y_i)^2 ("forward") or sum_i d(y_i -> p)^2 ("backward"), vs scipy."""
    m = randers()
    p = geoopt.ManifoldParameter(START.clone(), manifold=m)
    opt = opt_cls([p], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(m, p, reverse=reverse).backward()
        opt.step()
    expected = EXPECTED_REVERSE if reverse else EXPECTED
    np.testing.assert_allclose(p.detach().numpy(), expected, atol=1e-5)


def _sparse_closure(m, p, opt, rows):
    opt.zero_grad()
    selected = torch.nn.functional.embedding(rows, p, sparse=True)
    loss = loss_fn(m, selected, TARGETS[rows])
    loss.backward()
    assert p.grad.is_sparse
    return loss


SPARSE = [
    pytest.param(geoopt.optim.SparseRiemannianSGD, dict(lr=0.03), 600, id="sparse-rsgd"),
    pytest.param(
        geoopt.optim.SparseRiemannianSGD, dict(lr=0.01, momentum=0.9), 600, id="sparse-rsgd-momentum"
    ),
    pytest.param(geoopt.optim.SparseRiemannianAdam, dict(lr=0.1), 600, id="sparse-radam"),
    pytest.param(geoopt.optim.SparseRiemannianAdam, dict(lr=0.1, amsgrad=True), 600, id="sparse-amsgrad"),
]


@pytest.mark.parametrize("opt_cls,kwargs,steps", SPARSE)
def test_sparse_optimizers_converge_to_scipy_minimizer(opt_cls, kwargs, steps):
    m = randers()
    p = geoopt.ManifoldParameter(START.clone(), manifold=m)
    opt = opt_cls([p], **kwargs)
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        # alternate random subsets with the full set so every row keeps moving
        rows = torch.randperm(K, generator=gen)[:2] if step % 2 else torch.arange(K)
        _sparse_closure(m, p, opt, rows)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), EXPECTED, atol=1e-5)


def test_sparse_step_touches_only_selected_rows():
    m = randers()
    p = geoopt.ManifoldParameter(START.clone(), manifold=m)
    opt = geoopt.optim.SparseRiemannianAdam([p], lr=0.1)
    rows = torch.tensor([1, 3])
    _sparse_closure(m, p, opt, rows)
    opt.step()
    torch.testing.assert_close(p.detach()[[0, 2]], START[[0, 2]])
    assert (p.detach()[rows] != START[rows]).all()


@pytest.mark.parametrize(
    "opt_cls,kwargs,sparse",
    [
        (geoopt.optim.RiemannianSGD, dict(lr=0.01, momentum=0.9, nesterov=True), False),
        (geoopt.optim.RiemannianAdam, dict(lr=0.05, amsgrad=True), False),
        (geoopt.optim.SparseRiemannianSGD, dict(lr=0.01, momentum=0.9), True),
        (geoopt.optim.SparseRiemannianAdam, dict(lr=0.05), True),
    ],
    ids=["rsgd", "radam", "sparse-rsgd", "sparse-radam"],
)
def test_optimizer_state_dict_round_trip(opt_cls, kwargs, sparse):
    m = randers()

    def step(p, opt, i):
        if sparse:
            _sparse_closure(m, p, opt, torch.tensor([i % K, (i + 1) % K]))
        else:
            opt.zero_grad()
            loss_fn(m, p).backward()
        opt.step()

    p = geoopt.ManifoldParameter(START.clone(), manifold=m)
    opt = opt_cls([p], **kwargs)
    for i in range(5):
        step(p, opt, i)
    buf = io.BytesIO()
    torch.save({"p": p.detach().clone(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    saved_p = saved["p"].clone()
    assert saved["opt"]["state"], "optimizer state should not be empty after steps"
    q = geoopt.ManifoldParameter(saved["p"], manifold=m)
    opt2 = opt_cls([q], **kwargs)
    opt2.load_state_dict(saved["opt"])
    # torch's Optimizer.load_state_dict turns geoopt's int state["step"] into a float32 tensor, so
    # Adam's bias corrections are then computed in float32: equal to ~1e-7, not bit for bit
    # (upstream geoopt/torch behaviour, not finslerlib's). SGD has no step counter: exact.
    tol = 1e-5 if "Adam" in opt_cls.__name__ else 0.0
    for i in range(5, 10):
        step(p, opt, i)
        step(q, opt2, i)
        torch.testing.assert_close(q.detach(), p.detach(), rtol=tol, atol=tol)
    assert not torch.equal(p.detach(), saved_p)  # it did keep moving


def test_learnable_metric_and_points_train_together():
    """A ManifoldParameter on a learnable Randers, both optimized: the metric receives gradients."""
    torch.manual_seed(0)
    m = Randers.learnable(D, dtype=torch.float64)
    p = geoopt.ManifoldParameter(START.clone(), manifold=m)
    opt = geoopt.optim.RiemannianAdam([p, *m.parameters()], lr=0.01)
    before = copy.deepcopy(m.state_dict())
    for _ in range(5):
        opt.zero_grad()
        loss_fn(m, p).backward()
        opt.step()
    assert all(not torch.equal(before[k], v) for k, v in m.state_dict().items())


# ---------------------------------------------------------------------------- generic contract
def _learnable():
    torch.manual_seed(3)
    m = Randers.learnable(D, dtype=torch.float64)
    with torch.no_grad():
        for prm in m.parameters():
            prm.add_(0.3 * torch.randn_like(prm))
    return m


MANIFOLDS = {
    "randers": randers,
    "learnable": _learnable,
    "reverse": lambda: randers().reverse(),
    "scaled": lambda: geoopt.Scaled(randers(), 2),
    "scaled-learnable": lambda: geoopt.Scaled(_learnable(), 2),
}


@pytest.fixture(params=list(MANIFOLDS), ids=list(MANIFOLDS))
def unary(request):
    m = MANIFOLDS[request.param]()
    gen = torch.Generator().manual_seed(7)
    x = geoopt.ManifoldTensor(torch.randn(D, generator=gen, dtype=torch.float64), manifold=m)
    v = torch.randn(D, generator=gen, dtype=torch.float64)
    return m, x, v


def test_contract_projections(unary):
    m, x, v = unary
    np.testing.assert_allclose(m.projx(x).detach().numpy(), x.detach().numpy(), atol=1e-12)
    m.assert_check_point_on_manifold(m.projx(x))
    pv = m.proju(x, v)
    m.assert_check_vector_on_tangent(x, pv)
    np.testing.assert_allclose(pv.numpy(), v.numpy(), atol=1e-12)
    assert x.manifold is m and m.random(4, D).shape == (4, D)


def test_contract_broadcasting(unary):
    m, x, v = unary
    X, U = torch.stack([x.detach()] * 4), torch.stack([v] * 4)
    V = torch.randn(4, D, dtype=torch.float64)
    pX = m.projx(X)
    m.assert_check_point_on_manifold(pX)
    for xx, px in zip(X, pX, strict=True):
        torch.testing.assert_close(m.projx(xx), px)
    pU = m.proju(pX, U)
    for px, u, pu in zip(pX, U, pU, strict=True):
        torch.testing.assert_close(m.proju(px, u), pu)
    Y = m.retr(pX, pU)
    m.assert_check_point_on_manifold(Y)
    for px, pu, y in zip(pX, pU, Y, strict=True):
        torch.testing.assert_close(m.retr(px, pu), y)
    Q = m.transp_follow_retr(pX, pU, V)
    m.assert_check_vector_on_tangent(Y, Q)
    for px, pu, pv, q in zip(pX, pU, V, Q, strict=True):
        torch.testing.assert_close(m.transp_follow_retr(px, pu, pv), q)
    Y2, Q2 = m.retr_transp(pX, pU, V)
    torch.testing.assert_close(Y2, Y)
    torch.testing.assert_close(Q2, Q)
    # broadcasting a single point against a batch of vectors
    torch.testing.assert_close(m.expmap(x.detach(), U), Y)


def test_contract_exp_log_dist(unary):
    m, x, v = unary
    x = x.detach()
    X = torch.stack([x] * 4)
    U = torch.randn(4, D, dtype=torch.float64)
    Y = m.expmap(X, U)
    Uh = m.logmap(X, Y)
    torch.testing.assert_close(m.expmap(X, Uh), Y, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(Uh, U)  # geodesics are straight: log inverts exp exactly
    assert (m.logmap(X, X) == 0).all()
    # dist(x, expmap(x, v)) = norm(x, v) (plain and Scaled: both sides follow geoopt's scaling)
    torch.testing.assert_close(m.dist(X, Y), m.norm(X, U))
    # origin helpers agree with the general maps
    torch.testing.assert_close(m.expmap0(U), m.expmap(torch.zeros_like(U), U))
    torch.testing.assert_close(m.logmap0(Y), m.logmap(torch.zeros_like(Y), Y))
    torch.testing.assert_close(m.dist0(Y), m.dist(torch.zeros_like(Y), Y))
    # cdist agrees with dist (and is scaled like it)
    Z = torch.randn(5, D, dtype=torch.float64)
    torch.testing.assert_close(m.cdist(Y, Z), m.dist(Y.unsqueeze(-2), Z.unsqueeze(-3)))


def test_scaled_distances_are_doubled():
    m = randers()
    s = geoopt.Scaled(m, 2)
    x, y = torch.randn(4, D, dtype=torch.float64), torch.randn(4, D, dtype=torch.float64)
    expected = 2 * np_norm((y - x).numpy(), CASE.a, CASE.b)
    np.testing.assert_allclose(s.dist(x, y).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(s.cdist(x, y).diagonal().numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(s.dist0(y).numpy(), 2 * np_norm(y.numpy(), CASE.a, CASE.b), rtol=1e-12)


def test_scaled_trains():
    s = geoopt.Scaled(randers(), 2)
    p = geoopt.ManifoldParameter(START.clone(), manifold=s)
    # Scaled(m, 2).retr(x, u) = m.retr(x, u / 2): twice the lr gives the plain run's steps
    opt = geoopt.optim.RiemannianAdam([p], lr=0.2)
    for _ in range(400):
        opt.zero_grad()
        loss_fn(s, p).backward()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), EXPECTED, atol=1e-5)


# ---------------------------------------------------------------------------- product manifolds
CASE2 = make_case(12, 2, 0.5, cond=3.0)


def _products():
    return {
        "randers-x-euclidean": geoopt.ProductManifold((randers(), D), (geoopt.Euclidean(ndim=1), 2)),
        "randers-x-randers": geoopt.ProductManifold((randers(), D), (randers(CASE2), 2)),
    }


def _np_part_dist(name, part, x, y):
    if part == 0:
        return np_norm(y - x, CASE.a, CASE.b)
    if name == "randers-x-euclidean":
        return np.linalg.norm(y - x, axis=-1)
    return np_norm(y - x, CASE2.a, CASE2.b)


@pytest.mark.parametrize("name", ["randers-x-euclidean", "randers-x-randers"])
def test_product_manifold_operations(name):
    pm = _products()[name]
    gen = torch.Generator().manual_seed(5)
    x, y, u = (torch.randn(4, D + 2, generator=gen, dtype=torch.float64) for _ in range(3))
    parts = [(x[:, :D], y[:, :D]), (x[:, D:], y[:, D:])]
    d_parts = [_np_part_dist(name, i, px.numpy(), py.numpy()) for i, (px, py) in enumerate(parts)]
    np.testing.assert_allclose(pm.dist(x, y).numpy(), np.sqrt(d_parts[0] ** 2 + d_parts[1] ** 2), rtol=1e-10)
    torch.testing.assert_close(pm.expmap(x, pm.logmap(x, y)), y)
    assert (pm.logmap(x, x) == 0).all()
    grad = pm.egrad2rgrad(x, u)
    torch.testing.assert_close(grad[:, :D], randers().egrad2rgrad(x[:, :D], u[:, :D]))
    second = geoopt.Euclidean(ndim=1) if name == "randers-x-euclidean" else randers(CASE2)
    torch.testing.assert_close(grad[:, D:], second.egrad2rgrad(x[:, D:], u[:, D:]))
    ci = pm.component_inner(x, grad)
    assert ci.shape == x.shape and (ci > 0).all()
    # RiemannianAdam's second moment: F of the step -grad it takes (descent = "forward")
    step2 = np_norm(-grad[:, :D].numpy(), CASE.a, CASE.b) ** 2
    np.testing.assert_allclose(ci[:, :D].numpy(), np.repeat(step2[:, None], D, 1), rtol=1e-10)
    f2 = np_norm(grad[:, :D].numpy(), CASE.a, CASE.b) ** 2
    inner = pm.inner(x, grad)
    np.testing.assert_allclose(inner.numpy(), f2 + second.inner(x[:, D:], grad[:, D:]).numpy(), rtol=1e-10)


@pytest.mark.parametrize("opt_cls,kwargs,steps", [
    (geoopt.optim.RiemannianAdam, dict(lr=0.1), 400),
    (geoopt.optim.RiemannianSGD, dict(lr=0.01, momentum=0.9), 350),
], ids=["radam", "rsgd-momentum"])
def test_product_manifold_trains_to_scipy_minimizer(opt_cls, kwargs, steps):
    pm = _products()["randers-x-randers"]
    targets2 = torch.as_tensor(CASE2.vectors(K, N, scale=2.0))
    targets = torch.cat([TARGETS, targets2], -1)
    start = torch.cat([START, targets2.mean(1) + torch.as_tensor(CASE2.vectors(K, scale=0.5))], -1)
    p = geoopt.ManifoldParameter(start, manifold=pm)
    opt = opt_cls([p], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        (pm.dist2(p.unsqueeze(-2), targets)).sum().backward()
        opt.step()
    # sum of squared product distances separates into the two factors' problems
    expected = np.concatenate([EXPECTED, scipy_minimizers(CASE2, targets2.numpy(), reverse=False)], -1)
    np.testing.assert_allclose(p.detach().numpy(), expected, atol=1e-5)
