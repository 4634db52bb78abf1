"""Directed shortest-path dissimilarities of a weighted digraph (`scipy.sparse.csgraph`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

__all__ = ["graph_dissimilarities"]

ArrayLike: TypeAlias = "np.ndarray | Sequence[Any]"


def graph_dissimilarities(
    edges: ArrayLike,
    weights: ArrayLike | None = None,
    n: int | None = None,
    *,
    on_unreachable: str = "raise",
) -> np.ndarray:
    r"""All-pairs directed shortest-path lengths $\Delta_{ij}$ (from $i$ to $j$) of a digraph.

    Dijkstra's algorithm (`scipy.sparse.csgraph.shortest_path(directed=True)`) on the graph with
    edge $i \to j$ of length `weights[k]` for `edges[k] = (i, j)`. Repeated edges keep their
    shortest length; self-loops are ignored.

    Args:
        edges: integer array `[E, 2]`, edge `k` goes from `edges[k, 0]` to `edges[k, 1]`.
        weights: array `[E]` of positive finite lengths (ones when omitted).
        n: number of nodes (`edges.max() + 1` when omitted).
        on_unreachable: `"raise"` (default): a graph that is not strongly connected is an error
            with the count of unreachable pairs; `"nan"`: those entries are `NaN`, which
            `FinslerMDS` and the stress functions treat as missing (weight 0).

    Returns:
        numpy array `[n, n]`, float64, zero diagonal.

    Raises:
        ValueError: malformed `edges` / `weights` / `n`, non-positive or non-finite weights, or
            (with `on_unreachable="raise"`) a graph that is not strongly connected.

    Example:
        >>> graph_dissimilarities([[0, 1], [1, 2], [2, 0]], [1.0, 2.0, 4.0])
        array([[0., 1., 3.],
               [6., 0., 2.],
               [4., 5., 0.]])
    """
    if on_unreachable not in ("raise", "nan"):
        raise ValueError(f"on_unreachable must be 'raise' or 'nan', got {on_unreachable!r}")
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2 or not (e.size == 0 or np.issubdtype(e.dtype, np.integer)):
        raise ValueError(f"edges must be an integer array of shape [E, 2], got {e.dtype} {e.shape}")
    e = e.astype(np.int64)
    w = np.ones(len(e)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(e),):
        raise ValueError(f"weights must have shape [E] = [{len(e)}], got {w.shape}")
    if len(w) and not (np.isfinite(w).all() and (w > 0).all()):
        k = int(np.flatnonzero(~(np.isfinite(w) & (w > 0)))[0])
        raise ValueError(f"weights must be positive and finite, got weights[{k}] = {w[k]}")
    if n is None:
        n = int(e.max()) + 1 if e.size else 0
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be a positive number of nodes, got {n}")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValueError(f"edges must index nodes 0..{n - 1}, got values in [{e.min()}, {e.max()}]")
    keep = e[:, 0] != e[:, 1]
    e, w = e[keep], w[keep]
    # duplicates: keep the shortest (a sparse matrix would add them up)
    order = np.lexsort((w, e[:, 1], e[:, 0]))
    e, w = e[order], w[order]
    first = np.ones(len(e), dtype=bool)
    first[1:] = (e[1:] != e[:-1]).any(axis=1)
    e, w = e[first], w[first]
    graph = sp.csr_matrix((w, (e[:, 0], e[:, 1])), shape=(n, n))
    dist = csgraph.shortest_path(graph, method="D", directed=True)
    unreachable = np.isinf(dist)
    if unreachable.any():
        if on_unreachable == "raise":
            i, j = (int(v) for v in np.argwhere(unreachable)[0])
            n_comp, _ = csgraph.connected_components(graph, directed=True, connection="strong")
            raise ValueError(
                f"the graph is not strongly connected ({n_comp} strongly connected components): "
                f"{int(unreachable.sum())} of {n * (n - 1)} ordered pairs have no path (e.g. {i} -> {j}). "
                "Add the missing edges, embed each component separately, or pass "
                "on_unreachable='nan' to mark those pairs missing (weight 0 in FinslerMDS and the "
                "stress functions)"
            )
        dist[unreachable] = np.nan
    out: np.ndarray = dist
    return out
