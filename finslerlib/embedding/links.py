r"""Directed link prediction: MagNet's edge split and its scores.

The protocol (Zhang et al., "MagNet", NeurIPS 2021; Dagès et al., CVPR 2025, Table 2): hold out
15% of the edges for test and 5% for validation, train on the rest, and report

* **existence AUC**: held-out edges $u \to v$ against as many random pairs with no edge either
  way;
* **direction AUC**: held-out edges $u \to v$ whose reverse is not an edge, against their
  reversals $v \to u$. A symmetric score gets exactly 0.5 (every pair ties with its reversal);
* the reconstruction figures of the hierarchy literature, filtered: for each held-out edge
  $u \to v$, the **rank** of $v$ among the candidates $w \ne u$ that are not training
  successors of $u$ (other held-out successors do not count against it); **mAP** is the mean
  over sources of the average precision of their held-out successors among those candidates.

AUCs are Mann–Whitney statistics with ties counted one half (`sklearn.metrics.roc_auc_score`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["EdgeSplit", "edge_order", "link_prediction_scores", "roc_auc", "split_edges", "transitive_pairs"]


@dataclass
class EdgeSplit:
    """The edges of a directed graph split for link prediction (every array int64 `[k, 2]`).

    Attributes:
        train: training edges.
        val, test: held-out edges (positives of both tasks).
        val_negatives, test_negatives: ordered pairs with no edge either way in the whole graph, as
            many as `val` / `test` (existence negatives; disjoint from each other).
        val_direction, test_direction: the held-out edges whose reverse is not an edge (direction
            positives; their reversals `[:, ::-1]` are the direction negatives).
        n_nodes: number of nodes.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_negatives: np.ndarray
    test_negatives: np.ndarray
    val_direction: np.ndarray
    test_direction: np.ndarray
    n_nodes: int


def check_edges(edges, n_nodes: int | None = None, *, name: str = "edges") -> tuple[np.ndarray, int]:
    """Validate an `[E, 2]` integer array or tensor of node ids; return it as numpy int64 and `n_nodes`."""
    e = edges.detach().cpu().numpy() if isinstance(edges, torch.Tensor) else np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2:
        raise ValueError(f"{name} must have shape [E, 2], got {e.shape}")
    if e.size and not (np.issubdtype(e.dtype, np.integer) and e.dtype != np.bool_):
        raise TypeError(f"{name} must hold integer node ids, got dtype {e.dtype}")
    e = e.astype(np.int64)
    if n_nodes is None:
        n_nodes = int(e.max()) + 1 if e.size else 0
    if int(n_nodes) != n_nodes or n_nodes < 2:
        raise ValueError(f"n_nodes must be an integer >= 2, got {n_nodes}")
    n_nodes = int(n_nodes)
    if e.size and e.min() < 0:
        raise ValueError(f"{name} must hold node ids >= 0, got a minimum of {e.min()}")
    if e.size and e.max() >= n_nodes:
        raise ValueError(
            f"{name} must index nodes 0..{n_nodes - 1} (n_nodes={n_nodes}), got a largest id of {e.max()}"
        )
    return e, n_nodes


def _keys(e: np.ndarray, n: int) -> np.ndarray:
    return e[:, 0] * n + e[:, 1]


def split_edges(
    edges,
    n_nodes: int | None = None,
    test: float = 0.15,
    val: float = 0.05,
    seed=0,
    *,
    keep_connected: bool = True,
) -> EdgeSplit:
    """Split a digraph's edges for link prediction (MagNet's protocol), with no held-out edge in training.

    Self-loops and repeated edges are dropped first. An edge and its reverse (when both exist) go
    to the same part, so a held-out edge never appears in training in either orientation. With
    `keep_connected` (MagNet's `maintain_connect`), a random spanning forest of the undirected
    graph stays in training, so no node loses all its edges: on a tree nothing can be held out
    then, and `keep_connected=False` is needed (a held-out leaf edge then leaves the leaf with no
    training edge: its position is its random start, a limit of every embedding method).

    Args:
        edges: integer array or tensor `[E, 2]`, `(u, v)` meaning $u \\to v$.
        n_nodes: number of nodes (`edges.max() + 1` when omitted).
        test: fraction of the (unordered) edges held out for test.
        val: fraction held out for validation.
        seed: seed of the split and of the negatives.
        keep_connected: keep a spanning forest in training.

    Returns:
        `EdgeSplit`.

    Raises:
        ValueError: bad fractions, or fewer candidate edges than the requested held-out count.

    Example:
        >>> edges = [[i, i + 1] for i in range(11)] + [[i, i + 3] for i in range(9)]  # 20 edges
        >>> s = split_edges(edges, test=0.25, val=0.1)
        >>> len(s.train), len(s.test), len(s.val), len(s.test_negatives)
        (13, 5, 2, 5)
    """
    if not (0 <= test < 1 and 0 <= val < 1 and test + val < 1):
        raise ValueError(f"test and val must be fractions in [0, 1) with test + val < 1, got {test}, {val}")
    e, n = check_edges(edges, n_nodes)
    e = e[e[:, 0] != e[:, 1]]
    e = np.unique(e, axis=0) if len(e) else e
    rng = np.random.default_rng(seed)
    pair = np.sort(e, axis=1)
    upairs, inverse = np.unique(pair, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = len(upairs)
    n_test, n_val = int(round(test * m)), int(round(val * m))
    protected = np.zeros(m, dtype=bool)
    if keep_connected:
        # random spanning forest: Kruskal on the unordered pairs in a random order
        parent = np.arange(n)

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for k in rng.permutation(m):
            a, b = find(int(upairs[k, 0])), find(int(upairs[k, 1]))
            if a != b:
                parent[a] = b
                protected[k] = True
    candidates = rng.permutation(np.flatnonzero(~protected))
    if n_test + n_val > len(candidates):
        raise ValueError(
            f"cannot hold out {n_test + n_val} of {m} edges: only {len(candidates)} are outside the "
            "spanning forest kept for connectivity (a tree has none); lower test/val or pass "
            "keep_connected=False"
        )
    part = np.zeros(m, dtype=np.int8)  # 0 train, 1 val, 2 test
    part[candidates[:n_test]] = 2
    part[candidates[n_test : n_test + n_val]] = 1
    edge_part = part[inverse]
    train, val_e, test_e = e[edge_part == 0], e[edge_part == 1], e[edge_part == 2]
    keys = set(_keys(e, n).tolist())

    def direction(x: np.ndarray) -> np.ndarray:
        rev = _keys(x[:, ::-1], n)
        return x[~np.isin(rev, list(keys))] if len(x) else x

    # existence negatives: ordered pairs with no edge either way, distinct, val and test disjoint
    need = len(val_e) + len(test_e)
    if need > n * (n - 1) - 2 * m:
        raise ValueError(f"the graph has fewer than {need} non-adjacent ordered pairs for negatives")
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < need:
        u = rng.integers(n, size=2 * (need - len(chosen)) + 16)
        v = rng.integers(n, size=len(u))
        for a, b in zip(u.tolist(), v.tolist(), strict=True):
            k = a * n + b
            if a == b or k in seen or k in keys or b * n + a in keys:
                continue
            seen.add(k)
            chosen.append(k)
            if len(chosen) == need:
                break
    neg = np.array(chosen, dtype=np.int64).reshape(-1)
    neg = np.stack([neg // n, neg % n], 1) if len(neg) else np.zeros((0, 2), dtype=np.int64)
    return EdgeSplit(
        train=train,
        val=val_e,
        test=test_e,
        val_negatives=neg[: len(val_e)],
        test_negatives=neg[len(val_e) :],
        val_direction=direction(val_e),
        test_direction=direction(test_e),
        n_nodes=n,
    )


def edge_order(
    edges, n_nodes: int | None = None, *, steps: int = 200, lr: float = 0.2, seed: int = 0
) -> np.ndarray:
    r"""A 1-D order of the nodes fitted to directed edges: $z_u > z_v$ for as many edges $u \to v$ as it can.

    Minimizes $\frac{1}{E} \sum_{u \to v} \log(1 + e^{-(z_u - z_v)})$ (the pairwise ranking of
    each edge above its reversal, with no geometry) by full-batch Adam from small random values,
    and returns $z$ centred and scaled to unit standard deviation. On a DAG the loss's infimum
    orders every edge forward (a topological order), but `steps` Adam steps reach it only on
    shallow graphs: measured on a shuffled chain, the default 200 steps order every edge of a
    100-node chain and 87% of a 200-node one, 2000 steps a 500-node one (raise `steps` for deep
    DAGs; nothing checks it). Fitted to training edges, it is what they alone say about the
    direction of a held-out edge (the ceiling measured in docs/how-to/link-prediction.md).
    A node with no edge keeps its random start (scaled with the rest), and edges that fix no
    order (a cycle, self-loops only) leave values that are noise, also scaled to unit deviation.

    Args:
        edges: integer array or tensor `[E, 2]`, `(u, v)` meaning $u \to v$.
        n_nodes: number of nodes (`edges.max() + 1` when omitted).
        steps: Adam steps.
        lr: Adam's learning rate.
        seed: seed of the random start.

    Returns:
        float64 array `[n_nodes]`.

    Example:
        >>> z = edge_order([[0, 1], [1, 2], [2, 3]])
        >>> bool(z[0] > z[1] > z[2] > z[3])
        True
    """
    e, n = check_edges(edges, n_nodes)
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not (math.isfinite(float(lr)) and lr > 0):
        raise ValueError(f"lr must be positive and finite, got {lr!r}")
    gen = torch.Generator().manual_seed(int(seed))
    z = (0.1 * torch.randn(n, generator=gen, dtype=torch.float64)).requires_grad_()
    if len(e):
        t = torch.as_tensor(e)
        opt = torch.optim.Adam([z], lr=float(lr))
        for _ in range(int(steps)):
            loss = torch.nn.functional.softplus(z[t[:, 1]] - z[t[:, 0]]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    out = z.detach().numpy()
    out = out - out.mean()
    sd = out.std()
    return out / sd if sd > 0 else out


def transitive_pairs(edges, n_nodes: int | None = None, *, max_hops: int | None = None) -> np.ndarray:
    r"""The pairs $u \to v$ ($u \ne v$) joined by a directed path of at most `max_hops` edges.

    The transitive closure of the edges (all path lengths with `max_hops=None`), the edges
    themselves included, sorted. On a DAG a pair implied by a path of training edges has a
    certain direction: `DirectedGraphEmbedding().fit(transitive_pairs(train, n))` trains on them
    as positives (measured on the random DAG in docs/how-to/link-prediction.md). The closure of a
    graph can hold $O(N^2)$ pairs (all of a strongly connected component's); it is computed by
    sparse frontier products, one per path length.

    Args:
        edges: integer array or tensor `[E, 2]`, `(u, v)` meaning $u \to v$.
        n_nodes: number of nodes (`edges.max() + 1` when omitted).
        max_hops: the longest path length kept (`None`: no limit).

    Returns:
        int64 array `[P, 2]`.

    Example:
        >>> transitive_pairs([[0, 1], [1, 2], [2, 3]], max_hops=2).tolist()
        [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    """
    from scipy import sparse

    e, n = check_edges(edges, n_nodes)
    if max_hops is not None and (int(max_hops) != max_hops or max_hops < 1):
        raise ValueError(f"max_hops must be a positive int or None, got {max_hops!r}")
    e = e[e[:, 0] != e[:, 1]]
    adj = sparse.csr_matrix((np.ones(len(e), dtype=bool), (e[:, 0], e[:, 1])), shape=(n, n))
    adj.sum_duplicates()
    reach = adj.copy()
    frontier = adj
    hops = 1
    while frontier.nnz and (max_hops is None or hops < max_hops):
        frontier = (frontier @ adj).astype(bool)
        frontier = (frontier > reach).tocsr()  # new pairs only
        frontier.eliminate_zeros()
        reach = (reach + frontier).astype(bool).tocsr()
        hops += 1
    reach.setdiag(False)
    reach.eliminate_zeros()
    coo = reach.tocoo()
    out = np.stack([coo.row, coo.col], 1).astype(np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def roc_auc(positive, negative) -> float:
    """Area under the ROC curve of scores `positive` (label 1) against `negative` (label 0).

    The Mann–Whitney statistic $P(s^+ > s^-) + \\tfrac12 P(s^+ = s^-)$ from ranks (ties averaged),
    as `sklearn.metrics.roc_auc_score`.

    Example:
        >>> roc_auc([0.9, 0.4, 0.5], [0.1, 0.5])  # (2 + 1 + 1.5) / 6: the tie counts one half
        0.75
    """
    from scipy.stats import rankdata

    p = np.asarray(positive, dtype=np.float64).reshape(-1)
    q = np.asarray(negative, dtype=np.float64).reshape(-1)
    if not len(p) or not len(q):
        raise ValueError(f"need at least one positive and one negative score, got {len(p)} and {len(q)}")
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("scores must be finite")
    ranks = rankdata(np.concatenate([p, q]))
    return float((ranks[: len(p)].sum() - len(p) * (len(p) + 1) / 2) / (len(p) * len(q)))


def _score_fn(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    fn = model.decision_function if hasattr(model, "decision_function") else model
    if not callable(fn):
        raise TypeError(f"model must have decision_function or be callable, got {type(model).__name__}")

    def score(pairs: np.ndarray) -> np.ndarray:
        return np.asarray(torch.as_tensor(fn(pairs)).detach().cpu().double().numpy()).reshape(-1)

    return score


def link_prediction_scores(
    model, split: EdgeSplit, *, part: str = "test", rank_sources: int | None = 2000, seed=0
) -> dict[str, float]:
    """Existence AUC, direction AUC, filtered mean rank and mAP of a link scorer on a split.

    Args:
        model: an estimator with `decision_function(pairs [B, 2]) -> [B]` or such a callable
            (higher = more likely $u \\to v$).
        split: an `EdgeSplit`.
        part: `"test"` or `"val"`.
        rank_sources: rank at most this many source nodes (drawn with `seed`) for mean rank and mAP;
            each costs one row of `n_nodes` scores. `None`: all sources.
        seed: seed of that draw.

    Returns:
        dict with `existence_auc`, `direction_auc` (`nan` when no held-out edge has a one-way
        reverse), `mean_rank`, `map`.

    Example:
        >>> s = split_edges([[i, i + 1] for i in range(11)] + [[i, i + 3] for i in range(9)], test=0.25)
        >>> score = lambda p: np.asarray(p)[:, 1] - np.asarray(p)[:, 0]  # "edges go up"
        >>> link_prediction_scores(score, s)["direction_auc"]
        1.0
    """
    if part not in ("test", "val"):
        raise ValueError(f"part must be 'test' or 'val', got {part!r}")
    score = _score_fn(model)
    pos = getattr(split, part)
    neg = getattr(split, f"{part}_negatives")
    dpos = getattr(split, f"{part}_direction")
    if not len(pos):
        raise ValueError(f"split.{part} is empty")
    out: dict[str, float] = {"existence_auc": roc_auc(score(pos), score(neg))}
    out["direction_auc"] = roc_auc(score(dpos), score(dpos[:, ::-1].copy())) if len(dpos) else float("nan")
    n = split.n_nodes
    sources = np.unique(pos[:, 0])
    if rank_sources is not None and len(sources) > rank_sources:
        sources = np.sort(np.random.default_rng(seed).choice(sources, rank_sources, replace=False))
    train_keys = set(_keys(split.train, n).tolist())
    ranks: list[float] = []
    aps: list[float] = []
    for u in sources.tolist():
        targets = np.unique(pos[pos[:, 0] == u, 1])
        cand = np.array([w for w in range(n) if w != u and u * n + w not in train_keys], dtype=np.int64)
        row = score(np.stack([np.full(len(cand), u), cand], 1))
        is_t = np.isin(cand, targets)
        s_t = row[is_t]
        s_other = np.sort(row[~is_t])
        # rank among non-targets, ties against the target: 1 + #{others with score >= s}
        ge_other = len(s_other) - np.searchsorted(s_other, s_t, side="left")
        ranks.extend((1 + ge_other).tolist())
        # average precision: precision at each target's position, ties counted against it
        s_all_t = np.sort(s_t)
        ge_t = len(s_all_t) - np.searchsorted(s_all_t, s_t, side="left")
        aps.append(float(np.mean(ge_t / (ge_t + ge_other))))
    out["mean_rank"] = float(np.mean(ranks))
    out["map"] = float(np.mean(aps))
    return out
