"""finslerlib.embedding against independent computations.

Oracles: the stress recomputed from `embedding_` with plain numpy pairwise formulas (canonical
Randers, general constant Randers from its (a, b), the Funk distance from its boundary-point
definition), a hand-written Floyd-Warshall, a per-pair closed-form minimum for the symmetric floor
checked against random symmetric matrices, hand-computed mAP / mean rank, exact recovery of
configurations generated in the target space.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from finslerlib.embedding import (
    FinslerMDS,
    graph_dissimilarities,
    mean_average_precision,
    mean_rank,
    normalized_stress,
    stress,
    symmetric_floor,
)
from finslerlib.embedding.mds import _ParamsMixin
from finslerlib.manifolds import FunkBall, Randers


# ---------------------------------------------------------------------------- plain oracles
def np_canonical(x: np.ndarray, alpha: float) -> np.ndarray:
    diff = x[None, :, :] - x[:, None, :]  # [i, j] = x_j - x_i
    return np.linalg.norm(diff, axis=-1) + alpha * diff[..., -1]


def np_randers(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = x[None, :, :] - x[:, None, :]
    return np.sqrt(np.einsum("ijk,kl,ijl->ij", diff, a, diff).clip(0)) + diff @ b


def np_funk(x: np.ndarray) -> np.ndarray:
    """Unit-ball Funk distance log(|x - p| / |y - p|), p the boundary point on the ray x -> y."""
    n = len(x)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            v = x[j] - x[i]
            if np.linalg.norm(v) == 0:
                continue
            # |x + t v| = 1, t > 0
            qa, qb, qc = v @ v, 2 * x[i] @ v, x[i] @ x[i] - 1
            t = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
            p = x[i] + t * v
            out[i, j] = np.log(np.linalg.norm(x[i] - p) / np.linalg.norm(x[j] - p))
    return out


def np_stress(delta, dist, w=None):
    w = np.ones_like(delta) if w is None else w
    mask = ~np.isnan(delta) & ~np.eye(len(delta), dtype=bool)
    return float(np.sum((w * (dist - np.nan_to_num(delta)) ** 2)[mask]))


def floyd_warshall(n, edges, weights):
    d = np.full((n, n), np.inf)
    np.fill_diagonal(d, 0.0)
    for (i, j), c in zip(edges, weights, strict=True):
        if i != j:
            d[i, j] = min(d[i, j], c)
    for k in range(n):
        for i in range(n):
            for j in range(n):
                if d[i, k] + d[k, j] < d[i, j]:
                    d[i, j] = d[i, k] + d[k, j]
    return d


def random_delta(n, rng, missing=0.0):
    delta = rng.uniform(0.5, 3.0, size=(n, n))
    np.fill_diagonal(delta, 0.0)
    if missing:
        m = np.triu(rng.random((n, n)) < missing, 1)
        delta[m | m.T] = np.nan  # symmetric missing pattern: SMACOF applies
    return delta


def tree_digraph(depth):
    """The paper's binary-tree digraph: 0.5 down, 1.5 up, 0.1 within each depth level."""
    n = 2 ** (depth + 1) - 1
    edges, lengths = [], []
    for p in range(n):
        for c in (2 * p + 1, 2 * p + 2):
            if c < n:
                edges += [(p, c), (c, p)]
                lengths += [0.5, 1.5]
    for d in range(1, depth + 1):
        level = range(2**d - 1, 2 ** (d + 1) - 1)
        edges += [(i, j) for i in level for j in level if i != j]
        lengths += [0.1] * (len(level) * (len(level) - 1))
    return np.array(edges), np.array(lengths), n


def fit_quiet(mds, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return mds.fit(*args, **kw)


# ---------------------------------------------------------------------------- the floor
def test_floor_below_every_symmetric_distance():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = 8
        delta = random_delta(n, rng, missing=0.2 if trial % 2 else 0.0)
        w = rng.uniform(0.1, 2.0, size=(n, n)) if trial % 3 == 0 else None  # asymmetric weights too
        floor = float(symmetric_floor(delta, w))
        ww = np.ones((n, n)) if w is None else w
        for _ in range(50):
            s = rng.uniform(0, 4, size=(n, n))
            s = s + s.T
            assert np_stress(delta, s, ww) >= floor - 1e-9
        # attained by the per-pair weighted mean (a symmetric matrix)
        dz = np.nan_to_num(delta)
        best = (ww * dz + ww.T * dz.T) / (ww + ww.T)
        assert np_stress(delta, best, ww) == pytest.approx(floor, rel=1e-12)


def test_floor_formula_for_symmetric_weights():
    rng = np.random.default_rng(1)
    delta = random_delta(9, rng)
    expected = sum(((delta[i, j] - delta[j, i]) / 2) ** 2 for i in range(9) for j in range(9))
    assert float(symmetric_floor(delta)) == pytest.approx(expected, rel=1e-12)
    total = np.sum(delta**2)
    assert float(symmetric_floor(delta, normalized=True)) == pytest.approx(np.sqrt(expected / total))


def test_alpha_zero_fit_reaches_the_floor_and_not_below():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 2))
    sym = np.linalg.norm(x[:, None] - x[None], axis=-1)
    k = rng.uniform(-0.3, 0.3, size=(20, 20))
    k = np.triu(k, 1) - np.triu(k, 1).T
    delta = np.clip(sym + k, 0, None)
    np.fill_diagonal(delta, 0)
    mds = fit_quiet(FinslerMDS(alpha=0.0, init="classical", random_state=0, max_iter=500, tol=1e-10), delta)
    assert mds.stress_ >= mds.symmetric_floor_ * (1 - 1e-9)
    assert mds.stress_ <= mds.symmetric_floor_ * 1.01
    # random data: still never below the floor
    rand = random_delta(15, rng)
    m2 = fit_quiet(FinslerMDS(alpha=0.0, random_state=1), rand)
    assert m2.stress_ >= m2.symmetric_floor_ * (1 - 1e-9)


# ---------------------------------------------------------------------------- SMACOF
def test_smacof_monotone_on_random_data_with_missing_and_weights():
    rng = np.random.default_rng(3)
    for seed in range(4):
        delta = random_delta(25, rng, missing=0.15)
        w = rng.uniform(0.2, 1.5, size=(25, 25))
        w = w + w.T
        mds = fit_quiet(FinslerMDS(alpha=0.6, random_state=seed, max_iter=150, tol=0), delta, weights=w)
        h = np.array(mds.stress_history_)
        assert mds.solver_ == "smacof" and len(h) == 151
        assert np.all(np.diff(h) <= 1e-10 * h[:-1]), np.diff(h).max()
        assert h[-1] < 0.9 * h[0]


def test_smacof_with_disconnected_weights_fits_each_block():
    """Missing cross-block pairs: the weight Laplacian has two null vectors (pseudo-inverse path)."""
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(6, 2)), rng.normal(size=(5, 2))
    delta = np.full((11, 11), np.nan)
    delta[:6, :6], delta[6:, 6:] = np_canonical(a, 0.5), np_canonical(b, 0.5)
    mds = fit_quiet(FinslerMDS(alpha=0.5, init="classical", max_iter=500, tol=1e-12), delta)
    h = np.array(mds.stress_history_)
    assert np.all(np.isfinite(mds.embedding_.numpy())) and np.all(np.diff(h) <= 1e-10 * h[:-1])
    assert mds.normalized_stress_ < 1e-2


def test_smacof_recovers_a_canonical_configuration_exactly():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 2))
    delta = np_canonical(x, 0.3)
    mds = FinslerMDS(alpha=0.3, init="classical", max_iter=2000, tol=1e-12, random_state=0).fit(delta)
    assert mds.normalized_stress_ < 1e-4
    assert mds.stress_ < 1e-3 * mds.symmetric_floor_


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stress_recomputed_from_embedding(dtype):
    rng = np.random.default_rng(5)
    delta = random_delta(12, rng, missing=0.1)
    mds = fit_quiet(FinslerMDS(alpha=0.4, random_state=0, dtype=dtype), delta)
    assert mds.embedding_.dtype == dtype
    x = mds.embedding_.double().numpy()
    expected = np_stress(delta, np_canonical(x, 0.4))
    assert mds.stress_ == pytest.approx(expected, rel=1e-4 if dtype == torch.float32 else 1e-10)
    norm = np.sqrt(expected / np.nansum(delta**2))
    assert mds.normalized_stress_ == pytest.approx(norm, rel=1e-4)


# ---------------------------------------------------------------------------- optimizer targets
def test_adam_agrees_with_smacof_on_the_canonical_target():
    rng = np.random.default_rng(6)
    delta = np_canonical(rng.normal(size=(20, 2)), 0.5)
    sm = FinslerMDS(alpha=0.5, init="classical", max_iter=1000, tol=1e-12).fit(delta)
    ad = fit_quiet(FinslerMDS(alpha=0.5, solver="adam", init="classical", max_iter=500), delta)
    assert sm.normalized_stress_ < 1e-3 and ad.normalized_stress_ < 2e-2
    # continuing the SMACOF optimum with Adam does not find a lower stress: a stationary point
    tree = graph_dissimilarities(*tree_digraph(3))
    sm = fit_quiet(FinslerMDS(alpha=0.5, random_state=0, max_iter=2000, tol=1e-12), tree)
    ad = fit_quiet(FinslerMDS(alpha=0.5, solver="adam", lr=1e-3, max_iter=200), tree, init=sm.embedding_)
    assert ad.stress_ >= sm.stress_ * (1 - 1e-3)


def test_learned_drift_recovers_alpha_and_stress_matches_randers_formula():
    rng = np.random.default_rng(7)
    delta = np_canonical(rng.normal(size=(25, 2)), 0.4)
    mds = fit_quiet(FinslerMDS(target="drift", init="classical", max_iter=600, random_state=0), delta)
    assert mds.normalized_stress_ < 0.02
    assert mds.alpha_ == pytest.approx(0.4, abs=0.03)
    a, b = (t.detach().double().numpy() for t in mds.manifold_.coefficients(mds.embedding_[0]))
    assert np.allclose(a, np.eye(2))  # only the drift is learned
    expected = np_stress(delta, np_randers(mds.embedding_.double().numpy(), a, b))
    assert mds.stress_ == pytest.approx(expected, rel=1e-8)


def test_learnable_metric_and_sampled_pairs_go_below_the_floor():
    delta = graph_dissimilarities(*tree_digraph(3))
    full = fit_quiet(FinslerMDS(target="learnable", max_iter=300, random_state=0), delta)
    a, b = (t.detach().double().numpy() for t in full.manifold_.coefficients(full.embedding_[0]))
    expected = np_stress(delta, np_randers(full.embedding_.double().numpy(), a, b))
    assert full.stress_ == pytest.approx(expected, rel=1e-8)
    assert full.stress_ < 0.1 * full.symmetric_floor_
    sampled = fit_quiet(FinslerMDS(batch_pairs=64, solver="adam", max_iter=300, random_state=0), delta)
    assert sampled.stress_ < 0.2 * sampled.symmetric_floor_


def test_funk_target_stress_matches_the_funk_formula():
    delta = graph_dissimilarities(*tree_digraph(2))
    mds = fit_quiet(FinslerMDS(target=FunkBall(2).reverse(), max_iter=300, random_state=0), delta)
    x = mds.embedding_.double().numpy()
    assert np.all(np.linalg.norm(x, axis=1) < 1)
    expected = np_stress(delta, np_funk(x).T)  # reverse Funk: d~(x -> y) = d(y -> x)
    assert mds.stress_ == pytest.approx(expected, rel=1e-6)
    assert mds.stress_ < mds.symmetric_floor_
    fwd = fit_quiet(FinslerMDS(target="funk", max_iter=50, random_state=0), delta)
    assert fwd.stress_ == pytest.approx(np_stress(delta, np_funk(fwd.embedding_.double().numpy())), rel=1e-6)


def test_asymmetric_weights_use_adam_and_smacof_refuses():
    rng = np.random.default_rng(8)
    delta = random_delta(8, rng)
    w = rng.uniform(0.5, 1.0, size=(8, 8))
    mds = fit_quiet(FinslerMDS(max_iter=50, random_state=0), delta, weights=w)
    assert mds.solver_ == "adam"
    with pytest.raises(ValueError, match="symmetric weights"):
        FinslerMDS(solver="smacof").fit(delta, weights=w)
    with pytest.raises(ValueError, match="target='canonical'"):
        FinslerMDS(solver="smacof", target="funk").fit(delta)


# ---------------------------------------------------------------------------- graphs and scores
def test_graph_dissimilarities_match_floyd_warshall():
    rng = np.random.default_rng(9)
    for n in (2, 5, 9):
        ring = [(i, (i + 1) % n) for i in range(n)]  # strongly connected
        extra = [tuple(e) for e in rng.integers(0, n, size=(3 * n, 2))]  # duplicates, self-loops
        edges = ring + extra + ring[:2]
        weights = rng.uniform(0.1, 2.0, size=len(edges))
        got = graph_dissimilarities(edges, weights, n)
        assert np.allclose(got, floyd_warshall(n, edges, weights), rtol=0, atol=1e-12)


def test_graph_unreachable_raises_or_marks_missing():
    edges, w = [(0, 1), (1, 2)], [1.0, 1.0]
    with pytest.raises(ValueError, match="not strongly connected"):
        graph_dissimilarities(edges, w, 3)
    d = graph_dissimilarities(edges, w, 3, on_unreachable="nan")
    assert np.isnan(d[1, 0]) and d[0, 2] == 2.0
    assert float(stress(d, np.zeros((3, 3)))) == pytest.approx(1 + 1 + 4)
    mds = fit_quiet(FinslerMDS(random_state=0, max_iter=50), d)
    assert np.isfinite(mds.stress_)
    # +inf (no path) is missing like NaN: the same fit, weight 0 on those pairs
    with_inf = fit_quiet(FinslerMDS(random_state=0, max_iter=50), np.where(np.isnan(d), np.inf, d))
    assert with_inf.stress_ == mds.stress_
    assert torch.equal(with_inf.embedding_, mds.embedding_)
    with pytest.raises(ValueError, match="non-negative"):
        FinslerMDS().fit(np.where(np.isnan(d), -np.inf, d))


def test_missing_entries_do_not_count_whatever_their_weight():
    rng = np.random.default_rng(0)
    d = rng.uniform(1, 2, size=(6, 6))
    np.fill_diagonal(d, 0)
    holed = d.copy()
    holed[0, 3] = np.nan
    holed[4, 1] = np.inf
    w = np.ones((6, 6))
    w[0, 3] = w[4, 1] = 0.0
    dist = rng.uniform(0, 3, size=(6, 6))
    # stress with missing entries == stress of the full data with those weights at 0
    assert float(stress(holed, dist)) == pytest.approx(float(stress(d, dist, w)), rel=1e-12)
    assert float(stress(holed, dist, np.full((6, 6), 2.0))) == pytest.approx(2 * float(stress(d, dist, w)))


def test_n_init_keeps_the_best_restart():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 2))
    d = np_canonical(x, 0.3) + rng.uniform(0, 0.5, size=(12, 12))
    np.fill_diagonal(d, 0)
    singles = [fit_quiet(FinslerMDS(alpha=0.3, random_state=s, max_iter=60), d).stress_ for s in range(3)]
    # restarts draw their starts from one generator: the best of n_init is at most the first run's
    multi = fit_quiet(FinslerMDS(alpha=0.3, random_state=0, n_init=3, max_iter=60), d)
    assert multi.stress_ <= singles[0] * (1 + 1e-12)
    with pytest.raises(ValueError, match="n_init"):
        FinslerMDS(n_init=0).fit(d)


def test_alpha_auto_is_never_worse_than_euclidean_mds_and_picks_the_drift_of_the_data():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(15, 3))
    d = np_canonical(x, 0.75)  # exactly a canonical configuration with alpha 0.75
    auto = fit_quiet(FinslerMDS(3, init="classical", max_iter=500, tol=1e-10), d)
    assert set(auto.alpha_scores_) == {0.0, 0.25, 0.5, 0.75, 0.9}
    assert auto.stress_ == min(auto.alpha_scores_.values())
    assert auto.alpha_ == pytest.approx(0.75)
    assert auto.stress_ <= auto.alpha_scores_[0.0]  # alpha = 0 is Euclidean MDS
    sym = 0.5 * (d + d.T)
    auto_sym = fit_quiet(FinslerMDS(3, init="classical", max_iter=500, tol=1e-10), sym)
    assert auto_sym.alpha_ == 0.0  # symmetric data: no drift helps
    with pytest.raises(ValueError, match="auto"):
        FinslerMDS(alpha="best").fit(d)


def test_map_and_mean_rank_by_hand():
    # node 0 -> {1, 3}; distances from 0: to 1: 1.0, to 2: 0.5, to 3: 2.0
    # ranking 2, 1, 3: precision at 1 = 1/2, at 3 = 2/3 -> AP_0 = 7/12
    # node 2 -> {0}; distances from 2: to 0: 0.1 (first) -> AP_2 = 1
    dist = np.array([[0, 1.0, 0.5, 2.0], [1, 0, 1, 1], [0.1, 0.2, 0, 0.3], [1, 1, 1, 0]], dtype=float)
    edges = np.array([[0, 1], [0, 3], [2, 0]])
    assert mean_average_precision(dist, edges) == pytest.approx((7 / 12 + 1) / 2)
    # ranks among non-neighbours: 0->1: {2} before -> 2; 0->3: {2} -> 2; 2->0: none -> 1
    assert mean_rank(dist, edges) == pytest.approx(5 / 3)
    # direction matters: the transposed distances rank differently
    assert mean_average_precision(dist.T, edges) != pytest.approx(mean_average_precision(dist, edges))


def test_stress_functions_by_hand():
    delta = np.array([[0.0, 1.0], [3.0, 0.0]])
    d = np.array([[0.0, 2.0], [2.0, 0.0]])
    assert float(stress(delta, d)) == pytest.approx(2.0)
    assert float(normalized_stress(delta, d)) == pytest.approx(np.sqrt(0.2))
    assert float(stress(delta, d, np.array([[0, 3.0], [1.0, 0]]))) == pytest.approx(4.0)


# ---------------------------------------------------------------------------- input checks, API
@pytest.mark.parametrize(
    ("kwargs", "data", "match"),
    [
        ({}, np.zeros((3, 4)), "square"),
        ({}, np.array([[0.0, -1.0], [1.0, 0.0]]), r"non-negative.*-1"),
        ({"alpha": 1.0}, np.ones((3, 3)), r"alpha must be in \[0, 1\), got 1.0"),
        ({"alpha": -0.1}, np.ones((3, 3)), r"alpha must be in \[0, 1\), got -0.1"),
        ({"target": "nope"}, np.ones((3, 3)), "target must be"),
        ({"solver": "nope"}, np.ones((3, 3)), "solver must be"),
        ({"init": "nope"}, np.ones((3, 3)), "init must be"),
    ],
)
def test_bad_input_raises(kwargs, data, match):
    with pytest.raises(ValueError, match=match):
        FinslerMDS(**kwargs).fit(data)


def test_bad_weights_and_graphs():
    with pytest.raises(ValueError, match=r"weights must be non-negative"):
        FinslerMDS().fit(np.ones((3, 3)), weights=-np.ones((3, 3)))
    with pytest.raises(ValueError, match="positive and finite"):
        graph_dissimilarities([(0, 1), (1, 0)], [1.0, 0.0])
    with pytest.raises(ValueError, match="shape"):
        graph_dissimilarities([0, 1, 2], None, 3)
    with pytest.raises(ValueError, match="0..1"):
        graph_dissimilarities([(0, 5)], [1.0], 2)


def test_estimator_conventions():
    mds = FinslerMDS(alpha=0.2, random_state=3)
    params = mds.get_params()
    assert params["alpha"] == 0.2 and params["random_state"] == 3
    assert mds.set_params(alpha=0.1) is mds and mds.alpha == 0.1
    delta = random_delta(10, np.random.default_rng(10))
    out = fit_quiet(FinslerMDS(random_state=3, max_iter=20), delta)
    again = fit_quiet(FinslerMDS(random_state=3, max_iter=20), delta)
    assert torch.equal(out.embedding_, again.embedding_)  # random_state reproduces
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arr = FinslerMDS(random_state=3, max_iter=20).fit_transform(delta)
        ten = FinslerMDS(random_state=3, max_iter=20, progress=True).fit_transform(torch.as_tensor(delta))
    assert isinstance(arr, np.ndarray) and isinstance(ten, torch.Tensor)
    assert np.allclose(arr, ten.numpy())
    sklearn_base = pytest.importorskip("sklearn.base")
    clone = sklearn_base.clone(FinslerMDS(alpha=0.3, target=Randers.learnable(2)))
    assert clone.alpha == 0.3


def test_params_fallback_without_sklearn():
    class Est(_ParamsMixin):
        def __init__(self, a=1, *, b="x"):
            self.a, self.b = a, b

    e = Est(a=2)
    assert e.get_params() == {"a": 2, "b": "x"}
    assert e.set_params(b="y").b == "y"
    assert repr(e) == "Est(a=2, b='y')"
    with pytest.raises(ValueError, match="invalid parameter 'c'"):
        e.set_params(c=1)


@pytest.mark.parametrize("solver", ["smacof", "adam"])
def test_device_and_dtype_follow_the_request(device, dtype, solver):
    rng = np.random.default_rng(12)
    delta = np_canonical(rng.normal(size=(10, 2)), 0.5)
    mds = fit_quiet(
        FinslerMDS(alpha=0.5, solver=solver, max_iter=100, device=device, dtype=dtype, random_state=0),
        delta,
    )
    assert mds.embedding_.device.type == device.type and mds.embedding_.dtype == dtype
    expected = np_stress(delta, np_canonical(mds.embedding_.cpu().double().numpy(), 0.5))
    assert mds.stress_ == pytest.approx(expected, rel=1e-3 if dtype == torch.float32 else 1e-9)


def test_learned_drift_does_not_saturate_on_large_scale_data():
    """The drift's learning rate does not grow with the data's scale (it once saturated at max_drift)."""
    rng = np.random.default_rng(13)
    delta = 50.0 * np_canonical(rng.normal(size=(20, 2)), 0.3)
    mds = fit_quiet(FinslerMDS(target="drift", init="classical", max_iter=400, random_state=0), delta)
    assert mds.alpha_ == pytest.approx(0.3, abs=0.05)
    assert mds.normalized_stress_ < 0.05
