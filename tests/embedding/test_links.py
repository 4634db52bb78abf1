"""Link prediction: the split, the AUCs and the ranking figures against independent computations.

Oracles: `sklearn.metrics.roc_auc_score` and `average_precision_score`, set arithmetic on the
edge lists, a union-find connectivity check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finslerlib.embedding import edge_order, link_prediction_scores, roc_auc, split_edges, transitive_pairs
from finslerlib.embedding.datasets import (
    binary_tree_digraph,
    growing_network_copying,
    random_dag,
    scale_free_digraph,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def as_set(e) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in np.asarray(e)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    pos = rng.integers(0, 6, size=40).astype(float)  # many ties
    neg = rng.integers(0, 6, size=31).astype(float) - 1
    labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    want = sklearn_metrics.roc_auc_score(labels, np.r_[pos, neg])
    assert roc_auc(pos, neg) == pytest.approx(want, abs=1e-12)


def test_roc_auc_rejects_empty_and_nonfinite():
    with pytest.raises(ValueError, match="at least one"):
        roc_auc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([np.nan], [1.0])


@pytest.mark.parametrize("graph", [growing_network_copying(120, seed=3), scale_free_digraph(150, seed=1)])
def test_split_has_no_leak_and_right_negatives(graph):
    s = split_edges(graph.edges, graph.n_nodes, test=0.15, val=0.05, seed=4)
    full = as_set(graph.edges)
    train, val, test = as_set(s.train), as_set(s.val), as_set(s.test)
    assert train | val | test == full and not (train & val or train & test or val & test)
    # no held-out edge appears in training in either orientation
    assert not {(b, a) for a, b in val | test} & train
    undirected = len({tuple(sorted(p)) for p in full})
    held_pairs = len({tuple(sorted(p)) for p in val | test})
    assert held_pairs == round(0.15 * undirected) + round(0.05 * undirected)
    # existence negatives: no edge either way, distinct, val and test disjoint, as many as positives
    negs = as_set(s.val_negatives) | as_set(s.test_negatives)
    assert len(s.val_negatives) == len(s.val) and len(s.test_negatives) == len(s.test)
    assert len(negs) == len(s.val) + len(s.test)
    assert all(a != b and (a, b) not in full and (b, a) not in full for a, b in negs)
    # direction positives: the held-out edges whose reverse is not an edge
    assert as_set(s.test_direction) == {(a, b) for a, b in test if (b, a) not in full}
    # the training graph keeps every node that had an edge connected to its component
    touched = np.unique(graph.edges)
    assert set(np.unique(s.train).tolist()) == set(touched.tolist())


def test_split_on_a_tree_needs_keep_connected_false():
    tree = binary_tree_digraph(4)
    with pytest.raises(ValueError, match="keep_connected=False"):
        split_edges(tree.edges, tree.n_nodes)
    s = split_edges(tree.edges, tree.n_nodes, keep_connected=False)
    assert len(s.test) == round(0.15 * len(tree.edges))


def test_split_is_seeded_and_checks_arguments():
    g = growing_network_copying(60)
    a, b = split_edges(g.edges, g.n_nodes, seed=7), split_edges(g.edges, g.n_nodes, seed=7)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.test_negatives, b.test_negatives)
    with pytest.raises(ValueError, match="test and val"):
        split_edges(g.edges, g.n_nodes, test=0.7, val=0.4)
    with pytest.raises(ValueError, match=r"shape \[E, 2\]"):
        split_edges(np.zeros((3, 3), dtype=int))
    with pytest.raises(TypeError, match="integer"):
        split_edges(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"index nodes 0\.\.2 \(n_nodes=3\), got a largest id of 5"):
        split_edges([[0, 5]], n_nodes=3)
    with pytest.raises(ValueError, match="ids >= 0, got a minimum of -1"):
        split_edges([[0, -1], [1, 2]], n_nodes=3)


@pytest.mark.parametrize("ties", [True, False])
def test_ranks_and_map_match_a_dense_computation(ties):
    g = growing_network_copying(80, seed=2)
    s = split_edges(g.edges, g.n_nodes, seed=1)
    n = g.n_nodes
    table = np.random.default_rng(0).normal(size=(n, n))
    if ties:
        table = np.round(table, 1)

    def score(pairs):
        p = np.asarray(pairs)
        return table[p[:, 0], p[:, 1]]

    got = link_prediction_scores(score, s, rank_sources=None)
    train = as_set(s.train)
    ranks, aps = [], []
    for u in np.unique(s.test[:, 0]):
        targets = {int(v) for a, v in s.test if a == u}
        cand = [w for w in range(n) if w != u and (u, w) not in train]
        row = table[u, cand]
        lab = np.array([w in targets for w in cand])
        for t_score in row[lab]:
            ranks.append(1 + int((row[~lab] >= t_score).sum()))
        aps.append(sklearn_metrics.average_precision_score(lab, row))
    assert got["mean_rank"] == pytest.approx(np.mean(ranks), rel=1e-12)
    if not ties:  # sklearn groups tied scores; without ties its AP is the definition used here
        assert got["map"] == pytest.approx(np.mean(aps), rel=1e-12)
    # existence / direction AUC equal sklearn's on the same scores
    pos, neg = score(s.test), score(s.test_negatives)
    want = sklearn_metrics.roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    assert got["existence_auc"] == pytest.approx(want, abs=1e-12)
    dp, dn = score(s.test_direction), score(s.test_direction[:, ::-1])
    want = sklearn_metrics.roc_auc_score(np.r_[np.ones(len(dp)), np.zeros(len(dn))], np.r_[dp, dn])
    assert got["direction_auc"] == pytest.approx(want, abs=1e-12)


def test_scores_accept_tensors_and_models():
    g = growing_network_copying(40)
    s = split_edges(g.edges, g.n_nodes)

    class Model:
        def decision_function(self, pairs):
            p = torch.as_tensor(pairs)
            return (p[:, 0] - p[:, 1]).double()  # edges go from newer to older nodes

    out = link_prediction_scores(Model(), s)
    assert out["direction_auc"] == 1.0
    with pytest.raises(ValueError, match="part"):
        link_prediction_scores(Model(), s, part="train")


def test_edge_order_orders_a_shuffled_chain():
    # a directed path through the nodes in a random order: z must decrease along it
    rng = np.random.default_rng(0)
    path = rng.permutation(12)
    z = edge_order(np.stack([path[:-1], path[1:]], 1))
    assert np.all(np.diff(z[path]) < 0)
    # centred, unit standard deviation
    assert abs(z.mean()) < 1e-12 and z.std() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_edge_order_puts_every_edge_of_a_dag_forward(seed):
    # a DAG has a topological order, so the minimizer of the ranking loss has z_u > z_v on every edge
    g = random_dag(30, 0.15, seed=seed)
    z = edge_order(g.edges, g.n_nodes, steps=500, seed=seed)
    assert np.all(z[g.edges[:, 0]] > z[g.edges[:, 1]])


def test_edge_order_checks_arguments():
    with pytest.raises(ValueError, match="steps"):
        edge_order([[0, 1]], steps=0)
    with pytest.raises(ValueError, match="lr"):
        edge_order([[0, 1]], lr=-1.0)
    with pytest.raises(ValueError):
        edge_order([[0, 5]], n_nodes=3)


@pytest.mark.parametrize("max_hops", [None, 1, 2, 3])
@pytest.mark.parametrize("graph", [random_dag(40, 0.08, seed=2), scale_free_digraph(40, seed=0)])
def test_transitive_pairs_match_shortest_paths(graph, max_hops):
    # oracle: scipy's unweighted shortest paths (hop counts) on the dense adjacency
    csgraph = pytest.importorskip("scipy.sparse.csgraph")
    n = graph.n_nodes
    adj = np.zeros((n, n))
    adj[graph.edges[:, 0], graph.edges[:, 1]] = 1.0
    np.fill_diagonal(adj, 0.0)
    hops = csgraph.shortest_path(adj, unweighted=True)
    limit = np.inf if max_hops is None else max_hops
    reach = np.isfinite(hops) & (hops <= limit)
    want = {(u, v) for u, v in zip(*np.nonzero(reach), strict=True) if u != v}
    got = transitive_pairs(graph.edges, n, max_hops=max_hops)
    assert as_set(got) == want and len(got) == len(want)
    assert got.dtype == np.int64 and np.all(np.diff(got[:, 0] * n + got[:, 1]) > 0)  # sorted, unique


def test_transitive_pairs_checks_arguments():
    assert transitive_pairs([[0, 1], [1, 0]]).tolist() == [[0, 1], [1, 0]]  # a cycle: no (u, u)
    with pytest.raises(ValueError, match="max_hops"):
        transitive_pairs([[0, 1]], max_hops=0)
