r"""Dissimilarity data, stress and directed-graph reconstruction scores.

Conventions used by every function here and by `FinslerMDS`:

* a dissimilarity matrix $\Delta$ is a square `[n, n]` array (numpy or torch) of non-negative
  numbers, asymmetric allowed, row $i$ / column $j$ meaning "from $i$ to $j$";
* `NaN` and `+inf` mark a missing entry (an unmeasured pair, a pair with no path in a graph that
  is not strongly connected): its weight is 0, whatever `weights` says; `-inf` is refused;
* weights are an optional `[n, n]` array of non-negative finite numbers (ones by default); the
  diagonal never counts;
* the raw stress is $\sigma = \sum_{i \ne j} w_{ij}\,(d_{ij} - \Delta_{ij})^2$ over ordered pairs,
  the normalized stress is $\sqrt{\sigma / \sum_{i \ne j} w_{ij} \Delta_{ij}^2}$ (Kruskal's
  stress-1, as scikit-learn's `MDS(normalized_stress=True)`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "stress",
    "normalized_stress",
    "symmetric_floor",
    "mean_average_precision",
    "mean_rank",
]


def _as_matrix(x, name: str, *, like: torch.Tensor | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.dim() != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"{name} must be a square [n, n] matrix, got shape {tuple(t.shape)}")
    return t


def prepare(delta, weights=None, *, dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate `(delta, weights)`; return `delta` with missing entries set to 0 and the weights.

    The returned weights are 0 on the diagonal and where `delta` is `NaN` or `+inf` (missing).

    Raises:
        ValueError: `delta` is not square, has negative entries (`-inf` included); `weights` has another
            shape, non-finite or negative entries. Messages give the offending value and index.
    """
    d = _as_matrix(delta, "delta")
    if dtype is not None or device is not None:
        d = d.to(dtype=dtype or d.dtype, device=device)
    n = d.shape[0]
    if (d == -math.inf).any():
        i, j = (int(v) for v in torch.nonzero(d == -math.inf)[0])
        raise ValueError(f"delta must be non-negative, got delta[{i}, {j}] = -inf")
    # NaN and +inf (an unreachable pair of a graph) are missing: weight 0
    missing = torch.isnan(d) | (d == math.inf)
    filled = torch.where(missing, torch.zeros_like(d), d)
    if (filled < 0).any():
        i, j = (int(v) for v in torch.nonzero(filled < 0)[0])
        raise ValueError(
            f"delta must be non-negative, got delta[{i}, {j}] = {filled[i, j].item():.6g} "
            f"(minimum {filled.min().item():.6g})"
        )
    if weights is None:
        w = torch.ones_like(filled)
    else:
        w = torch.as_tensor(weights).to(dtype=filled.dtype, device=filled.device)
        if w.shape != filled.shape:
            raise ValueError(f"weights must have the shape of delta {tuple(d.shape)}, got {tuple(w.shape)}")
        if not torch.isfinite(w).all():
            raise ValueError("weights must be finite (use weight 0 or NaN in delta for missing pairs)")
        if (w < 0).any():
            i, j = (int(v) for v in torch.nonzero(w < 0)[0])
            raise ValueError(f"weights must be non-negative, got weights[{i}, {j}] = {w[i, j].item():.6g}")
    w = torch.where(missing, torch.zeros_like(w), w)
    w = w * (1 - torch.eye(n, dtype=w.dtype, device=w.device))
    return filled, w


def _dist_like(dist, delta: torch.Tensor) -> torch.Tensor:
    d = _as_matrix(dist, "dist", like=delta)
    if d.shape != delta.shape:
        raise ValueError(f"dist must have the shape of delta {tuple(delta.shape)}, got {tuple(d.shape)}")
    return d


def stress(delta, dist, weights=None) -> torch.Tensor:
    r"""Raw stress $\sum_{i \ne j} w_{ij}\,(d_{ij} - \Delta_{ij})^2$ over ordered pairs.

    Args:
        delta: `[n, n]` target dissimilarities ($\Delta_{ij}$: from $i$ to $j$; `NaN` = missing).
        dist: `[n, n]` embedding distances, `dist[i, j]` $= d(x_i \to x_j)$.
        weights: optional `[n, n]` non-negative weights (ones).

    Returns:
        Tensor, shape `[]`, in the dtype of `delta` (float) and on its device.

    Example:
        >>> delta = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
        >>> stress(delta, torch.tensor([[0.0, 2.0], [2.0, 0.0]]))
        tensor(2.)
    """
    delta, w = prepare(delta, weights)
    d = _dist_like(dist, delta)
    return (w * (d - delta) ** 2).sum()


def normalized_stress(delta, dist, weights=None) -> torch.Tensor:
    r"""Normalized stress $\sqrt{\sigma / \sum_{i \ne j} w_{ij} \Delta_{ij}^2}$ (stress-1).

    Example:
        >>> delta = torch.tensor([[0.0, 1.0], [3.0, 0.0]])
        >>> normalized_stress(delta, torch.tensor([[0.0, 2.0], [2.0, 0.0]]))  # sqrt(2 / 10)
        tensor(0.4472)
    """
    delta, w = prepare(delta, weights)
    d = _dist_like(dist, delta)
    return ((w * (d - delta) ** 2).sum() / (w * delta**2).sum()).sqrt()


def symmetric_floor(delta, weights=None, *, normalized: bool = False) -> torch.Tensor:
    r"""Least stress any symmetric distance can reach on `delta`: a floor for symmetric embeddings.

    For each unordered pair, $\min_{d} w_{ij}(d - \Delta_{ij})^2 + w_{ji}(d - \Delta_{ji})^2$ is
    reached at the weighted mean and equals
    $\frac{w_{ij} w_{ji}}{w_{ij} + w_{ji}} (\Delta_{ij} - \Delta_{ji})^2$; the floor is their sum,
    which is $\sum_{i \ne j} w_{ij} \big(\tfrac{\Delta_{ij} - \Delta_{ji}}{2}\big)^2$ for symmetric
    weights. No symmetric method (Euclidean or hyperbolic MDS, any metric space) goes below it.

    Args:
        delta: `[n, n]` dissimilarities (`NaN` = missing).
        weights: optional `[n, n]` weights.
        normalized: return $\sqrt{\text{floor} / \sum w_{ij}\Delta_{ij}^2}$ instead.

    Example:
        >>> symmetric_floor(torch.tensor([[0.0, 1.0], [3.0, 0.0]]))  # both ways off by 1
        tensor(2.)
    """
    delta, w = prepare(delta, weights)
    wt = w.mT
    denom = w + wt
    harmonic = torch.where(denom > 0, w * wt / torch.where(denom > 0, denom, torch.ones_like(denom)), 0)
    # each unordered pair appears twice in the ordered sum
    floor = 0.5 * (harmonic * (delta - delta.mT) ** 2).sum()
    if normalized:
        return (floor / (w * delta**2).sum()).sqrt()
    return floor


def _edge_lists(dist, edges) -> tuple[np.ndarray, list[np.ndarray]]:
    d = torch.as_tensor(dist).detach().to("cpu", torch.float64).numpy()
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"dist must be a square [n, n] matrix, got shape {d.shape}")
    n = d.shape[0]
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2 or not np.issubdtype(e.dtype, np.integer):
        raise ValueError(f"edges must be an integer array of shape [E, 2], got {e.dtype} {e.shape}")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValueError(f"edges must index nodes 0..{n - 1}, got values in [{e.min()}, {e.max()}]")
    e = e[e[:, 0] != e[:, 1]]
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    for i in np.unique(e[:, 0]):
        out[i] = np.unique(e[e[:, 0] == i, 1])
    return d, out


def mean_average_precision(dist, edges) -> float:
    r"""Directed reconstruction mAP: rank each node's candidates by $d(x_i \to x_j)$.

    For node $i$ with out-neighbours $N(i)$, all $j \ne i$ are ranked by `dist[i, j]`
    (ascending; ties count against the neighbour: the rank of $j$ is
    $\#\{k \ne i : d_{ik} \le d_{ij}\}$); $\mathrm{AP}_i$ is the mean over $j \in N(i)$ of the
    fraction of out-neighbours among the first $\mathrm{rank}(j)$; the result is the mean over
    nodes with at least one out-neighbour. 1 means every node's out-neighbours come first.

    Args:
        dist: `[n, n]` distances, `dist[i, j]` $= d(x_i \to x_j)$.
        edges: integer array `[E, 2]` of directed edges `(i, j)`; self-loops are ignored.

    Example:
        >>> dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
        >>> mean_average_precision(dist, [[0, 2], [2, 1]])  # node 0: 1/2, node 2: 1/2
        0.5
    """
    d, nbrs = _edge_lists(dist, edges)
    aps = []
    for i, nb in enumerate(nbrs):
        if nb.size == 0:
            continue
        row = np.delete(d[i], i)
        cand = np.delete(np.arange(d.shape[0]), i)
        is_nb = np.isin(cand, nb)
        vals = d[i, nb]
        rank = (row[None, :] <= vals[:, None]).sum(1)
        hits = (row[is_nb][None, :] <= vals[:, None]).sum(1)
        aps.append(float(np.mean(hits / rank)))
    if not aps:
        raise ValueError("edges has no edge between distinct nodes")
    return float(np.mean(aps))


def mean_rank(dist, edges) -> float:
    r"""Mean rank of the true out-neighbour among non-neighbours (1 is perfect).

    For each edge $i \to j$: $1 + \#\{k \notin N(i),\ k \ne i : d_{ik} \le d_{ij}\}$ (other
    out-neighbours do not count against $j$, as in Nickel & Kiela's reconstruction score), averaged
    over edges.

    Example:
        >>> dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
        >>> mean_rank(dist, [[0, 2], [2, 1]])  # each edge has one non-neighbour before it
        2.0
    """
    d, nbrs = _edge_lists(dist, edges)
    ranks = []
    for i, nb in enumerate(nbrs):
        if nb.size == 0:
            continue
        others = np.setdiff1d(np.delete(np.arange(d.shape[0]), i), nb)
        vals = d[i, nb]
        ranks.extend((1 + (d[i, others][None, :] <= vals[:, None]).sum(1)).tolist())
    if not ranks:
        raise ValueError("edges has no edge between distinct nodes")
    return float(np.mean(ranks))
