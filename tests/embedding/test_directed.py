"""`DirectedGraphEmbedding` and its boost wind: small graphs, few epochs.

Oracles: exact ties for symmetric geometries (direction AUC exactly 0.5 by construction), the
direction AUC of a Finsler geometry on a tree, `torch.linalg.matrix_exp` for the boost's flow,
the hyperboloid's defining equation, scikit-learn's `clone`.
"""

from __future__ import annotations

import geoopt
import numpy as np
import pytest
import torch

from finslerlib.embedding import (
    BoostWind,
    DirectedGraphEmbedding,
    RotationWind,
    link_prediction_scores,
    lorentz_boost_navigation,
    lorentz_points,
    poincare_points,
    poincare_rotation_navigation,
    roc_auc,
    split_edges,
)
from finslerlib.embedding.datasets import binary_tree_digraph, growing_network_copying
from finslerlib.manifolds import Randers


def direction_auc_on(model, edges) -> float:
    e = np.asarray(edges)
    return roc_auc(model.decision_function(e), model.decision_function(e[:, ::-1].copy()))


@pytest.mark.parametrize("geometry", ["euclidean", "poincare", geoopt.PoincareBall(c=0.5)])
def test_symmetric_geometry_scores_exactly_one_half(geometry):
    g = growing_network_copying(60, seed=1)
    s = split_edges(g.edges, g.n_nodes)
    model = DirectedGraphEmbedding(4, geometry=geometry, epochs=3, random_state=0).fit(s.train, g.n_nodes)
    assert model.symmetric_
    out = link_prediction_scores(model, s)
    assert out["direction_auc"] == 0.5
    d = model.distance(s.test)
    assert np.array_equal(d, model.distance(s.test[:, ::-1].copy()))


@pytest.mark.parametrize("geometry", ["randers", "learnable"])
def test_finsler_geometry_learns_direction_on_a_tree(geometry):
    tree = binary_tree_digraph(4)  # 31 nodes
    model = DirectedGraphEmbedding(2, geometry=geometry, epochs=60, batch_size=16, random_state=0)
    model.fit(tree.edges, tree.n_nodes)
    assert direction_auc_on(model, tree.edges) > 0.9
    sym = DirectedGraphEmbedding(2, geometry="euclidean", epochs=5, random_state=0).fit(tree.edges)
    assert direction_auc_on(sym, tree.edges) == 0.5


def test_navigation_geometry_fits_and_stays_inside_its_radius():
    tree = binary_tree_digraph(3)
    model = DirectedGraphEmbedding(
        2, geometry="navigation", epochs=30, batch_size=8, max_radius=2.0, random_state=0
    ).fit(tree.edges)
    x = model.embedding_
    assert x.shape == (tree.n_nodes, 3)
    # on the hyperboloid -x0^2 + |x|^2 = -1, within radius 2
    lorentz = -(x[:, 0] ** 2) + (x[:, 1:] ** 2).sum(-1)
    assert torch.allclose(lorentz, -torch.ones_like(lorentz), atol=64 * torch.finfo(x.dtype).eps * 4)
    assert float(torch.acosh(x[:, 0].clamp_min(1)).max()) <= 2.0 + 1e-4
    assert direction_auc_on(model, tree.edges) > 0.7
    assert all(np.isfinite(model.loss_history_))


def test_estimator_conventions():
    sklearn_base = pytest.importorskip("sklearn.base")
    model = DirectedGraphEmbedding(3, geometry="randers", epochs=2, random_state=5)
    clone = sklearn_base.clone(model)
    assert clone.get_params() == model.get_params()
    edges = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 0]])
    a = model.fit(edges).decision_function(edges)
    b = clone.fit(edges.numpy()).decision_function(edges.numpy())
    assert isinstance(a, torch.Tensor) and isinstance(b, np.ndarray)
    assert np.array_equal(a.numpy(), b)  # same seed, same result
    p = model.predict_proba(edges)
    assert ((p > 0) & (p < 1)).all()
    assert model.embedding_.shape == (4, 3) and model.n_nodes_ == 4 and model.fit_time_ > 0


def test_any_manifold_instance_is_accepted_and_copied():
    b = torch.tensor([0.3, 0.0])
    metric = Randers(torch.eye(2), b)
    model = DirectedGraphEmbedding(2, geometry=metric, epochs=5, random_state=0).fit([[0, 1], [1, 2]])
    assert model.manifold_ is not metric and not model.symmetric_
    d = model.distance([[0, 1]])
    x = model.embedding_
    want = (x[1] - x[0]).norm() + b @ (x[1] - x[0])
    assert d[0] == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decoder": "cosine"}, "decoder"),
        ({"geometry": "sphere"}, "geometry"),
        ({"epochs": 0}, "epochs"),
        ({"max_drift": 1.0}, "max_drift"),
        ({"lr": -1.0}, "lr"),
        ({"n_components": 0}, "n_components"),
        ({"direction_weight": -1.0}, "direction_weight"),
        ({"direction_weight": float("nan")}, "direction_weight"),
        ({"geometry": "navigation-poincare", "n_components": 1}, "n_components"),
    ],
)
def test_bad_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DirectedGraphEmbedding(**kwargs).fit([[0, 1], [1, 2]])


def test_bad_edges_and_unfitted_model():
    with pytest.raises(TypeError, match="integer"):
        DirectedGraphEmbedding().fit(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="distinct"):
        DirectedGraphEmbedding().fit([[1, 1]], n_nodes=3)
    with pytest.raises(RuntimeError, match="fit"):
        DirectedGraphEmbedding().decision_function([[0, 1]])
    model = DirectedGraphEmbedding(epochs=1).fit([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="pairs must index nodes"):
        model.decision_function([[0, 3]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_boost_flow_is_the_matrix_exponential(dtype):
    wind = BoostWind(3, bound=0.7, init=torch.tensor([0.2, -0.4, 0.3])).to(dtype)
    x = lorentz_points(torch.randn(5, 3, dtype=dtype, generator=torch.Generator().manual_seed(0)), 2.0)
    t = torch.linspace(-2, 2, 5, dtype=dtype)
    want = (torch.linalg.matrix_exp(t[:, None, None] * wind.A.detach()) @ x[..., None])[..., 0]
    got = wind.flow(t, x)
    eps = torch.finfo(dtype).eps
    assert torch.allclose(got, want, rtol=256 * eps, atol=256 * eps * float(want.abs().max()))
    assert torch.allclose(wind(x), x @ wind.A.mT, rtol=16 * eps, atol=16 * eps)


def test_boost_navigation_is_asymmetric_and_learns_its_wind():
    m = lorentz_boost_navigation(2, max_speed=0.8, max_radius=1.5).double()
    gen = torch.Generator().manual_seed(1)
    x = lorentz_points(torch.randn(6, 2, dtype=torch.float64, generator=gen), 1.5)
    y = lorentz_points(torch.randn(6, 2, dtype=torch.float64, generator=gen), 1.5)
    forward, back = m.dist(x, y), m.dist(y, x)
    assert not torch.allclose(forward, back)
    # the wind at radius <= 1.5 stays below 0.8 (checked against the hyperboloid inner product)
    w = m.wind(x)
    speed2 = -(w[:, 0] ** 2) + (w[:, 1:] ** 2).sum(-1)
    assert (speed2 < 0.8**2).all()
    forward.sum().backward()
    assert m.wind.raw.grad is not None and torch.isfinite(m.wind.raw.grad).all()
    assert m.wind.raw.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rotation_flow_is_the_matrix_exponential_of_a_skew_generator(dtype):
    gen = torch.Generator().manual_seed(3)
    wind = RotationWind(4, bound=0.6, rate=-0.5, generator=gen).to(dtype)
    A = wind.A.detach()
    eps = torch.finfo(dtype).eps
    assert torch.allclose(A, -A.mT, atol=0)  # skew: a Killing field of the ball
    assert float(torch.linalg.matrix_norm(A, ord=2)) < 0.6
    x = poincare_points(torch.randn(5, 4, dtype=dtype, generator=gen), 2.0)
    t = torch.linspace(-3, 3, 5, dtype=dtype)
    want = (torch.linalg.matrix_exp(t[:, None, None] * A) @ x[..., None])[..., 0]
    assert torch.allclose(wind.flow(t, x), want, rtol=64 * eps, atol=64 * eps)
    assert torch.allclose(wind(x), x @ A.mT, rtol=16 * eps, atol=16 * eps)
    assert torch.equal(wind.flow(torch.zeros(5, dtype=dtype), x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_poincare_points_are_geoopts_expmap0_clamped(dtype):
    u = torch.randn(20, 3, dtype=dtype, generator=torch.Generator().manual_seed(0))
    ball = geoopt.PoincareBall()
    radius = 1.2
    norm = u.norm(dim=-1, keepdim=True)
    # geoopt's tangent vectors at the origin have length lambda_0 |u| = 2 |u|
    want = ball.expmap0(0.5 * u * norm.clamp(max=radius) / norm)
    eps = torch.finfo(dtype).eps
    got = poincare_points(u, radius)
    assert torch.allclose(got, want, rtol=16 * eps, atol=16 * eps)
    r = ball.dist0(got.double())
    assert torch.allclose(r, norm.squeeze(-1).clamp(max=radius).double(), rtol=64 * eps, atol=64 * eps)
    z = torch.zeros(1, 3, dtype=dtype, requires_grad=True)
    poincare_points(z, radius).sum().backward()
    assert torch.isfinite(z.grad).all()


def test_rotation_navigation_wind_is_bounded_in_its_radius_and_learnable():
    m = poincare_rotation_navigation(3, max_speed=0.8, max_radius=1.5).double()
    with torch.no_grad():
        m.wind.raw_rate.fill_(50.0)  # the largest rate the parametrization allows
    gen = torch.Generator().manual_seed(2)
    x = poincare_points(4 * torch.randn(200, 3, dtype=torch.float64, generator=gen), 1.5)
    # |W|_h = lambda(x) |W| with the ball's conformal factor lambda = 2 / (1 - |x|^2)
    w = m.wind(x).detach()
    speed = 2 * w.norm(dim=-1) / (1 - (x * x).sum(-1))
    assert float(speed.max()) < 0.8
    with torch.no_grad():
        m.wind.raw_rate.fill_(0.3)
    y = x.flip(0)
    forward = m.dist(x[:6], y[:6])
    assert not torch.allclose(forward, m.dist(y[:6], x[:6]))
    forward.sum().backward()
    grads = [m.wind.raw_rate.grad, m.wind.raw_p.grad, m.wind.raw_q.grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert m.wind.raw_rate.grad.abs() > 0


def test_poincare_navigation_learns_direction_on_a_tree():
    tree = binary_tree_digraph(3)
    model = DirectedGraphEmbedding(
        2, geometry="navigation-poincare", epochs=30, batch_size=8, random_state=0
    ).fit(tree.edges)
    x = model.embedding_
    assert x.shape == (tree.n_nodes, 2)
    assert float(geoopt.PoincareBall().dist0(x.double()).max()) <= 1.0 + 1e-5  # max_radius
    assert direction_auc_on(model, tree.edges) > 0.9
    sym = DirectedGraphEmbedding(2, geometry="poincare", epochs=5, random_state=0).fit(tree.edges)
    assert direction_auc_on(sym, tree.edges) == 0.5


@pytest.mark.parametrize("geometry", ["randers", "learnable"])
def test_training_distance_is_the_randers_distance(geometry):
    # the float32 training formula against Randers.dist in float64 (no cancellation there)
    model = DirectedGraphEmbedding(5, geometry=geometry, epochs=3, max_drift=0.9, random_state=0)
    model.fit([[0, 1], [1, 2], [2, 3], [3, 4], [0, 4]])
    pairs = torch.tensor([[i, j] for i in range(5) for j in range(5)])
    m = model.manifold_
    got = model._train_dist(m, model.embedding_, pairs, False)
    x = model.embedding_.double()
    want = m.double().dist(x[pairs[:, 0]], x[pairs[:, 1]])
    # float32: |y| and w.y each to a few eps of |y|; their sum cancels by at most 2 / (1 - |w|)
    eps = torch.finfo(torch.float32).eps
    scale = (x[pairs[:, 1]] - x[pairs[:, 0]]).norm(dim=-1)
    assert torch.all((got.double() - want).abs() <= 32 * eps * scale + 1e-30)


def test_direction_loss_raises_direction_auc_on_a_random_dag():
    from finslerlib.embedding.datasets import random_dag

    g = random_dag(120, 0.06, seed=0)
    s = split_edges(g.edges, g.n_nodes, seed=0)
    aucs = {}
    for w in (0.0, 1.0):
        model = DirectedGraphEmbedding(8, epochs=20, batch_size=64, direction_weight=w, random_state=0)
        model.fit(s.train, g.n_nodes)
        aucs[w] = link_prediction_scores(model, s, rank_sources=10)["direction_auc"]
    assert aucs[1.0] > aucs[0.0]


def _ball_pairs(n, dim, radius, seed):
    gen = torch.Generator().manual_seed(seed)
    u = 2 * torch.randn(2, n, dim, dtype=torch.float64, generator=gen)
    return poincare_points(u[0], radius), poincare_points(u[1], radius)


@pytest.mark.parametrize("rate", [0.4, -0.3])
def test_rotation_on_the_hyperboloid_has_the_balls_distances(rate):
    # oracles: the ball's own root find (the flow of every point at every step) and the library's
    # generic KillingWind on the hyperboloid (its eigen-decomposition of diag(0, A) by torch.linalg.eig)
    from finslerlib.embedding import HyperboloidRotation, ball_to_hyperboloid
    from finslerlib.manifolds import KillingWind, Navigation

    gen = torch.Generator().manual_seed(4)
    rot = RotationWind(3, bound=0.5, rate=rate, generator=gen).double()
    x, y = _ball_pairs(12, 3, 1.0, seed=5)
    ball = Navigation(geoopt.PoincareBall(), rot)
    lifted = Navigation(geoopt.Lorentz(), HyperboloidRotation(rot))
    generic = Navigation(geoopt.Lorentz(), KillingWind(torch.nn.functional.pad(rot.A.detach(), (1, 0, 1, 0))))
    X, Y = ball_to_hyperboloid(x), ball_to_hyperboloid(y)
    want = ball.dist(x, y)
    got = lifted.dist(X, Y)
    # both solve to 64 eps (1 + T) in float64; the map to the hyperboloid costs a few eps / (1 - |x|^2)
    tol = 1024 * torch.finfo(torch.float64).eps * (1 + want)
    assert torch.all((got - want).abs() <= tol)
    assert torch.all((generic.dist(X, Y) - got).abs() <= tol)
    assert not torch.allclose(got, lifted.dist(Y, X))
    # gradients reach the rotation's parameters through the lifted wind, as through the ball's
    got.sum().backward()
    g_lift = [p.grad.clone() for p in (rot.raw_rate, rot.raw_p, rot.raw_q)]
    rot.zero_grad()
    ball.dist(x, y).sum().backward()
    for a, b in zip(g_lift, (rot.raw_rate.grad, rot.raw_p.grad, rot.raw_q.grad), strict=True):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)


def test_boost_spectrum_gives_the_generic_root_finds_distances(monkeypatch):
    # with the closed-form spectrum the arrival time is a scalar iteration; without it, Newton on
    # the flowed points: two solvers, one root
    m = lorentz_boost_navigation(3, max_speed=0.9, max_radius=1.0).double()
    with torch.no_grad():
        m.wind.raw.copy_(torch.tensor([0.7, -1.1, 0.4]))
    gen = torch.Generator().manual_seed(6)
    u = torch.randn(2, 16, 3, dtype=torch.float64, generator=gen)
    x, y = lorentz_points(u[0], 1.0), lorentz_points(u[1], 1.0)
    spec = m.wind.spectral(torch.float64, x.device)
    A = m.wind.A.detach()
    # the spectrum is an eigen-decomposition of A: A V = V diag(lam), rows of V^{-1} dual to V
    vec, inv = spec.left[:, :2], spec.right[:, :2]
    assert torch.allclose(A @ vec, vec * spec.lam_a, atol=1e-14)
    assert torch.allclose(inv.mT @ vec, torch.eye(2, dtype=torch.float64), atol=1e-14)
    fast = m.dist(x, y)
    monkeypatch.setattr(BoostWind, "spectral", lambda self, dtype, device: None)
    slow = m.dist(x, y)
    assert torch.all((fast - slow).abs() <= 256 * torch.finfo(torch.float64).eps * (1 + slow))


@pytest.mark.parametrize("geometry", ["navigation", "navigation-poincare"])
def test_navigation_training_distance_is_the_models_distance(geometry):
    # training skips the path certificate and (rotation) works on the hyperboloid: same numbers
    model = DirectedGraphEmbedding(3, geometry=geometry, epochs=2, batch_size=8, random_state=0)
    model.fit(binary_tree_digraph(3).edges)
    pairs = torch.tensor([[i, j] for i in range(6) for j in range(6) if i != j])
    want = model.distance(pairs).double()
    m = model.manifold_
    if geometry == "navigation":
        got = model._train_dist(m, model.embedding_, pairs, False, chart=lambda u: u)
    else:
        from finslerlib.embedding import HyperboloidRotation, ball_to_hyperboloid
        from finslerlib.manifolds import Navigation

        lifted = Navigation(geoopt.Lorentz(), HyperboloidRotation(m.wind))
        got = model._train_dist(lifted, model.embedding_, pairs, False, chart=ball_to_hyperboloid)
    eps = torch.finfo(torch.float32).eps
    assert torch.all((got.double() - want).abs() <= 64 * eps * (1 + want))


def test_early_stopping_keeps_the_best_validation_epoch():
    g = growing_network_copying(60, seed=0)
    s = split_edges(g.edges, g.n_nodes, seed=0)
    model = DirectedGraphEmbedding(4, epochs=25, batch_size=64, patience=3, random_state=0)
    model.fit(s.train, g.n_nodes, validation=s)
    hist = model.validation_history_
    assert len(hist) == len(model.loss_history_) <= 25
    assert model.best_epoch_ == int(np.argmax(hist)) + 1  # the first best epoch
    if len(hist) < 25:  # stopped: `patience` epochs without a better score
        assert len(hist) - model.best_epoch_ == 3
    # the kept parameters are the best epoch's: its validation score, recomputed from the
    # fitted model's public scores (sklearn's AUC as the oracle)
    from sklearn.metrics import roc_auc_score

    def auc(pos, neg):
        p, n = model.decision_function(pos), model.decision_function(neg)
        return roc_auc_score(np.r_[np.ones(len(p)), np.zeros(len(n))], np.r_[p, n])

    want = 0.5 * (auc(s.val, s.val_negatives) + auc(s.val_direction, s.val_direction[:, ::-1].copy()))
    assert abs(want - max(hist)) <= 1e-6


def test_validation_must_be_a_split_of_the_same_graph():
    g = growing_network_copying(30, seed=0)
    s = split_edges(g.edges, g.n_nodes, seed=0)
    with pytest.raises(TypeError, match="validation must be an EdgeSplit"):
        DirectedGraphEmbedding(2, epochs=1).fit(s.train, g.n_nodes, validation=s.val)
    with pytest.raises(ValueError, match="validation.n_nodes"):
        DirectedGraphEmbedding(2, epochs=1).fit(s.train, g.n_nodes + 1, validation=s)
    with pytest.raises(ValueError, match="patience"):
        DirectedGraphEmbedding(2, epochs=1, patience=0).fit(s.train, g.n_nodes, validation=s)


def test_funk_training_skips_checks_only_where_points_stay_inside():
    # the Funk step and training distance run without the data checks: the points must still
    # be strictly inside the ball after training, and the scores (certified `FunkBall.dist`) agree
    tree = binary_tree_digraph(3)
    model = DirectedGraphEmbedding(2, geometry="funk", epochs=30, batch_size=8, lr=0.2, random_state=0).fit(
        tree.edges
    )
    x = model.embedding_
    assert bool(((x * x).sum(-1) < 1).all())
    assert all(np.isfinite(model.loss_history_))
    assert direction_auc_on(model, tree.edges) > 0.7
    pairs = torch.as_tensor(tree.edges)
    got = model._train_dist(model.manifold_, x, pairs, False)
    assert torch.equal(got, model.distance(pairs))
