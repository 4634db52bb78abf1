r"""Starting paths for the global geodesic search: straight, bent, and graph shortest paths.

Shooting (and the discrete-energy minimization before it) converges to the geodesic nearest its
start, which need not be the shortest one: a costly bump between $x$ and $y$ has a straight
geodesic over it and shorter ones around it. `shortest_geodesics` therefore starts from several
paths per pair, all given here as polylines `[B, K + 1, D]`:

* `bent_polylines`: the chord bent by $\pm$ `bend` $|y - x|$ at its middle (a parabola), in the
  directions orthogonal to the chord;
* `graph_polylines` (`D <= 3`): the shortest path on a directed grid graph whose edge weights are
  $F(m, \Delta)$ at the edge midpoints (Dijkstra, `scipy.sparse.csgraph`), resampled to `K`
  segments. The grid covers a box around all the points, enlarged by half its largest side, so
  detours of that size are found; edges where the metric is invalid are left out;
* `roadmap_polylines` (any `D`, used for `D >= 4`): the shortest path on a probabilistic roadmap,
  quasi-random nodes in ellipsoids with foci $x$ and $y$ joined to their nearest neighbours,
  resampled to `K` segments of equal metric length. It guesses no directions: a detour that
  needs a diagonal bend is found as well as one along an axis, if it is wider than the edges.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch

from finslerlib.geodesics.hamilton import CoefficientFn, guarded
from finslerlib.math import randers as rmath


def _orthogonal_directions(chord: torch.Tensor, count: int) -> torch.Tensor:
    r"""`count` unit directions orthogonal to each chord `[B, D]`: $\pm n_1, \pm n_2, \dots$, `[count, B, D]`.

    The $n_k$ are the last `D - 1` columns of the Householder reflection that maps $e_1$ to
    $\mp$ the unit chord (orthonormal, and orthogonal to the chord).
    """
    n, d = chord.shape
    unit = chord / chord.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(chord.dtype).tiny)
    sign = torch.where(unit[:, :1] >= 0, 1.0, -1.0).to(chord.dtype)
    v = unit.clone()
    v[:, :1] = v[:, :1] + sign
    eye = torch.eye(d, dtype=chord.dtype, device=chord.device)
    house = eye - 2.0 * v[:, :, None] * v[:, None, :] / (v * v).sum(-1)[:, None, None]  # [B, D, D]
    normals = house[:, :, 1:].permute(2, 0, 1)  # [D - 1, B, D]
    out = [(1.0 if k % 2 == 0 else -1.0) * normals[(k // 2) % (d - 1)] for k in range(count)]
    return torch.stack(out) if out else chord.new_zeros(0, n, d)


def bent_polylines(
    x: torch.Tensor, y: torch.Tensor, *, segments: int, count: int, bend: float
) -> torch.Tensor:
    r"""`count` polylines from `x` to `y` bent orthogonally to the chord.

    $z(t) = x + t (y - x) + 4 t (1 - t)\, s\, n$ with $n$ a unit vector orthogonal to $y - x$.

    Args:
        x: Tensor, shape `[B, D]`.
        y: Tensor, shape `[B, D]`.
        segments: `K`, the number of segments.
        count: number of bent paths (directions $\pm n_1, \pm n_2, \dots$ orthogonal to $y - x$).
        bend: $s / |y - x|$, the offset at the middle relative to the chord length.

    Returns:
        Tensor, shape `[count, B, K + 1, D]`.

    Example:
        >>> x, y = torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
        >>> bent_polylines(x, y, segments=2, count=2, bend=0.5)[:, 0, 1]
        tensor([[ 0.,  1.],
                [ 0., -1.]])
    """
    n, d = x.shape
    if count == 0 or d < 2:
        return x.new_zeros(0, n, segments + 1, d)
    chord = y - x
    t = torch.linspace(0.0, 1.0, segments + 1, dtype=x.dtype, device=x.device)[:, None]
    straight = x[:, None] + t * chord[:, None]  # [B, K + 1, D]
    normals = _orthogonal_directions(chord, count) * (bend * chord.norm(dim=-1, keepdim=True))
    return straight.unsqueeze(0) + (4.0 * t * (1.0 - t)).unsqueeze(0) * normals[:, :, None, :]


@functools.lru_cache(maxsize=8)
def _grid_edges(points: int, d: int):
    """The directed edges of the `points`^`d` grid with its `3^d - 1` neighbours: source and target
    node indices, the offset of each (`[E, d]`, in steps) and the index of its midpoint on the grid
    of half the step (`(2 points - 1)^d` nodes; the edges `e` and `-e` share theirs)."""
    idx = np.arange(points**d).reshape((points,) * d)
    half = np.arange((2 * points - 1) ** d).reshape((2 * points - 1,) * d)
    src, dst, offsets, mid = [], [], [], []
    for offset in itertools.product((-1, 0, 1), repeat=d):
        if not any(offset):
            continue
        sl_from = tuple(slice(max(0, -o), points - max(0, o)) for o in offset)
        sl_to = tuple(slice(max(0, o), points - max(0, -o)) for o in offset)
        # the midpoint of node i and i + o is node 2 i + o of the half-step grid
        sl_mid = tuple(slice(max(0, -o) * 2 + o, 2 * (points - max(0, o)) - 1 + o, 2) for o in offset)
        src.append(idx[sl_from].ravel())
        dst.append(idx[sl_to].ravel())
        mid.append(half[sl_mid].ravel())
        offsets.append(np.broadcast_to(np.array(offset), (src[-1].size, d)))
    return (
        torch.as_tensor(np.concatenate(src)), torch.as_tensor(np.concatenate(dst)),
        torch.as_tensor(np.concatenate(offsets)), torch.as_tensor(np.concatenate(mid)),
    )


def _grid_graph(coefficients: CoefficientFn, lo: torch.Tensor, hi: torch.Tensor, points: int):
    r"""The directed grid graph on the box `[lo, hi]` (`points` per axis), as a scipy CSR matrix.

    Edge weights $F(m, \Delta)$ at the edge midpoints $m$; the metric is evaluated once per distinct
    midpoint (the nodes of the grid of half the step: about a quarter of the `3^D - 1` edges per
    node in 3-D, a third in 2-D)."""
    from scipy.sparse import csr_matrix

    d = lo.numel()
    axes = [torch.linspace(lo[k].item(), hi[k].item(), points, dtype=lo.dtype) for k in range(d)]
    nodes = torch.cartesian_prod(*axes).reshape(-1, d)  # index = sum_k i_k * points^(d-1-k)
    src_t, dst_t, offsets, mid_t = _grid_edges(points, d)
    halves = [torch.linspace(lo[k].item(), hi[k].item(), 2 * points - 1, dtype=lo.dtype) for k in range(d)]
    mids = torch.cartesian_prod(*halves).reshape(-1, d)
    step = (hi - lo) / (points - 1)
    with torch.no_grad():
        a, b = guarded(coefficients)(mids)
        a = a.expand(mids.shape[0], d, d)[mid_t]
        b = b.expand(mids.shape[0], d)[mid_t]
        weight = rmath.norm(offsets.to(lo.dtype) * step, a, b)
    keep = torch.isfinite(weight) & (weight > 0)
    matrix = csr_matrix(
        (weight[keep].double().numpy(), (src_t[keep].numpy(), dst_t[keep].numpy())),
        shape=(nodes.shape[0], nodes.shape[0]),
    )
    return nodes, matrix


def resample_polylines(paths: torch.Tensor, segments: int) -> torch.Tensor:
    """`resample_polyline` (Euclidean arc length) of the polylines `paths` `[B, P, D]`, all at once."""
    seg = (paths[:, 1:] - paths[:, :-1]).norm(dim=-1)
    cum = torch.cat([seg.new_zeros(seg.shape[0], 1), seg.cumsum(-1)], -1)  # [B, P]
    total = cum[:, -1:]
    s = torch.linspace(0.0, 1.0, segments + 1, dtype=paths.dtype, device=paths.device) * total
    k = torch.searchsorted(cum.contiguous(), s.contiguous(), right=True).clamp(1, paths.shape[1] - 1)
    c0, c1 = cum.gather(1, k - 1), cum.gather(1, k)
    w = ((s - c0) / (c1 - c0).clamp_min(torch.finfo(paths.dtype).tiny)).clamp(0, 1)[..., None]
    index = k[..., None].expand(-1, -1, paths.shape[-1])
    p0, p1 = paths.gather(1, index - 1), paths.gather(1, index)
    out = p0 + w * (p1 - p0)
    return torch.where(total[..., None] > 0, out, paths[:, :1].expand_as(out))


def resample_polyline(path: torch.Tensor, segments: int, cum: torch.Tensor | None = None) -> torch.Tensor:
    """`segments + 1` nodes equally spaced along the polyline `path` `[P, D]`: in Euclidean arc
    length, or in the nondecreasing parameter `cum` `[P]` given at its nodes (for example the
    metric length).

    Example:
        >>> resample_polyline(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), 4)[:, 1]
        tensor([0.0000, 0.0000, 0.0000, 0.5000, 1.0000])
    """
    if path.shape[0] == 1:
        return path.expand(segments + 1, -1).clone()
    if cum is None:
        seg = (path[1:] - path[:-1]).norm(dim=-1)
        cum = torch.cat([seg.new_zeros(1), seg.cumsum(0)])
    cum = (cum - cum[0]).to(path.dtype)
    if cum[-1] <= 0:
        return path[:1].expand(segments + 1, -1).clone()
    s = torch.linspace(0.0, cum[-1].item(), segments + 1, dtype=path.dtype)
    j = torch.searchsorted(cum, s, right=True).clamp(1, path.shape[0] - 1)
    w = ((s - cum[j - 1]) / (cum[j] - cum[j - 1]).clamp_min(1e-300)).clamp(0, 1)[:, None]
    return path[j - 1] + w * (path[j] - path[j - 1])


def _limited_dijkstra(dijkstra, coefficients, matrix, nodes, src, dst, groups: int = 4):
    """Dijkstra from the sources `src` `[B]` (node indices) far enough to reach the targets `dst`.

    The pairs are sorted by the metric length of the segment between their nodes and cut into
    `groups` groups; each group's sources run with `limit` 1.2 times its longest segment plus a
    median edge (a grid path is up to about 8% longer than the segment; scipy stops there: a
    search ball instead of the whole grid). Distances and
    predecessors within the limit are exact; a target not reached is searched again without one,
    so the paths are those of unlimited runs.

    Returns:
        `(dist, pred, rows)`: scipy's arrays `[R, N]` and the row of each pair `[B]`.
    """
    ends = nodes[torch.as_tensor(np.stack([src, dst], 1))]  # [B, 2, D]
    with torch.no_grad():
        a, b = guarded(coefficients)(ends.mean(1))
        chord = rmath.norm(ends[:, 1] - ends[:, 0], a, b).double().numpy()
    edge = float(np.median(matrix.data)) if matrix.nnz else 0.0
    need = np.where(np.isfinite(chord), 1.2 * chord + edge, np.inf)
    order = np.argsort(need, kind="stable")
    dists, preds, rows = [], [], np.zeros(src.shape[0], dtype=np.int64)
    count = 0
    for part in np.array_split(order, min(groups, max(1, src.shape[0]))):
        if part.size == 0:
            continue
        sources, inverse = np.unique(src[part], return_inverse=True)
        limit = float(need[part].max())
        dist, pred = dijkstra(matrix, directed=True, indices=sources, return_predecessors=True, limit=limit)
        missed = ~np.isfinite(dist[inverse, dst[part]])
        if missed.any():
            again = np.unique(inverse[missed])
            dist[again], pred[again] = dijkstra(
                matrix, directed=True, indices=sources[again], return_predecessors=True
            )
        dists.append(dist)
        preds.append(pred)
        rows[part] = count + inverse
        count += sources.size
    return np.concatenate(dists), np.concatenate(preds), rows


def graph_polylines(
    coefficients: CoefficientFn, x: torch.Tensor, y: torch.Tensor, *, segments: int, points: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Shortest paths from `x` to `y` on a directed grid graph of the metric (Dijkstra), `D <= 3`.

    One Dijkstra run per distinct start point on a grid of `points`$^D$ nodes with the
    $3^D - 1$ neighbours of each node; edge weights $F(m, \Delta)$ at the edge midpoints.

    Args:
        coefficients: callable `x -> (a, b)`.
        x: Tensor, shape `[B, D]`.
        y: Tensor, shape `[B, D]`.
        segments: `K`, segments of the returned polylines.
        points: grid points per axis.

    Returns:
        `(paths, found)`: Tensor `[B, K + 1, D]` (first and last node are `x` and `y`) and a bool
        Tensor `[B]`, `False` where the graph has no path (the straight line is returned there).

    Example:
        >>> bump = lambda x: ((1 + 8 * torch.exp(-(x * x).sum(-1) / 0.1))[..., None, None] ** 2
        ...                   * torch.eye(2, dtype=x.dtype), torch.zeros_like(x))
        >>> x, y = torch.tensor([[-1.0, 0.0]]), torch.tensor([[1.0, 0.0]])
        >>> paths, found = graph_polylines(bump, x, y, segments=8, points=21)
        >>> bool(found[0]), bool(paths[0, 4].abs()[1] > 0.3)  # around the bump, not over it
        (True, True)
    """
    from scipy.sparse.csgraph import dijkstra

    n, d = x.shape
    t = torch.linspace(0.0, 1.0, segments + 1, dtype=x.dtype, device=x.device)[:, None]
    straight = x[:, None] + t * (y - x)[:, None]
    if n == 0 or d > 3:
        return straight, torch.zeros(n, dtype=torch.bool, device=x.device)
    xc, yc = x.detach().cpu(), y.detach().cpu()
    both = torch.cat([xc, yc])
    lo, hi = both.amin(0), both.amax(0)
    margin = 0.5 * (hi - lo).max().clamp_min(1e-6)
    center, half = 0.5 * (lo + hi), 0.5 * (hi - lo).max() + margin
    lo, hi = center - half, center + half
    nodes, matrix = _grid_graph(coefficients, lo, hi, points)
    step = (hi - lo) / (points - 1)

    def nearest(z):
        i = ((z - lo) / step).round().long().clamp(0, points - 1)
        flat = torch.zeros(z.shape[0], dtype=torch.long)
        for k in range(d):
            flat = flat * points + i[:, k]
        return flat

    src, dst = nearest(xc), nearest(yc)
    dist, pred, rows = _limited_dijkstra(dijkstra, coefficients, matrix, nodes, src.numpy(), dst.numpy())
    # all pairs' chains walked back together: one gather per node of the longest chain
    source = src.numpy()
    current = dst.numpy().copy()
    found_np = np.isfinite(dist[rows, current])
    chain = [current.copy()]
    moving = found_np & (current != source)
    while moving.any():
        current = np.where(moving, pred[rows, np.where(moving, current, 0)], current)
        chain.append(current.copy())
        moving = moving & (current != source)
    # [B, L] node indices from target to source, the last repeated; interior nodes are those that
    # are neither the target (column 0) nor the source
    chain = torch.as_tensor(np.stack(chain, 1))
    interior = (chain != torch.as_tensor(source)[:, None]) & (torch.arange(chain.shape[1]) > 0)
    interior = interior.flip(1)  # source side first
    points_ = nodes[chain.flip(1)]  # [B, L, D], source to target
    # non-interior columns become x (before the path) or y (after it): zero-length segments
    before = interior.long().cumsum(1) == 0
    path = torch.where(interior[..., None], points_, torch.where(before[..., None], xc[:, None], yc[:, None]))
    path = torch.cat([xc[:, None], path, yc[:, None]], 1)  # the exact end points
    found = torch.as_tensor(found_np)
    out = torch.where(found[:, None, None], resample_polylines(path, segments), straight.detach().cpu())
    return out.to(device=x.device), found.to(x.device)


# ---------------------------------------------------------------------------- probabilistic roadmap
def _alpha(delta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    r"""$\sqrt{\Delta^\top a \Delta}$ over the last dimensions (NaN where `a` is)."""
    return torch.einsum("...i,...ij,...j->...", delta, a, delta).clamp_min(0).sqrt()


def roadmap_reaches(reach: float, shells: int) -> list[float]:
    r"""The `shells` nested ellipsoids of the roadmap: $|z - x| + |z - y| \le \rho_j |y - x|$, `[rho_j]`.

    Geometric between $1 + (\rho - 1) / 2^{J - 1}$ and $\rho$ = `reach`: equal sample counts per
    ellipsoid make the roadmap densest near the chord, where short detours pass.
    """
    return [1.0 + (reach - 1.0) * 0.5 ** (shells - 1 - j) for j in range(shells)]


@functools.lru_cache(maxsize=16)
def _reference_roadmap(dim: int, nodes: int, neighbours: int, reach: float, shells: int):
    """The roadmap for the chord from `-e_1` to `e_1`: nodes `[N, D]` (float64; 0 and 1 are the end
    points) and its undirected k-NN edges `(i, j)` (numpy, `i < j`)."""
    from scipy.spatial import cKDTree

    engine = torch.quasirandom.SobolEngine(dim + 1, scramble=True, seed=0)
    u = engine.draw(nodes - 2, dtype=torch.float64)
    eps = 1e-12
    gauss = torch.erfinv((2.0 * u[:, :dim] - 1.0).clamp(-1 + eps, 1 - eps)) * 2.0**0.5
    direction = gauss / gauss.norm(dim=-1, keepdim=True).clamp_min(eps)
    ball = direction * u[:, dim:].clamp_min(eps) ** (1.0 / dim)  # uniform in the unit ball
    shell = torch.arange(nodes - 2) % shells
    rho = torch.tensor(roadmap_reaches(reach, shells), dtype=torch.float64)[shell]
    axes = torch.stack([rho] + [(rho * rho - 1.0).sqrt()] * (dim - 1), -1)  # semi-axes, foci at +-e_1
    ends = torch.zeros(2, dim, dtype=torch.float64)
    ends[0, 0], ends[1, 0] = -1.0, 1.0
    points = torch.cat([ends, ball * axes])
    tree = cKDTree(points.numpy())
    _, nearest = tree.query(points.numpy(), k=neighbours + 1)
    i = np.repeat(np.arange(nodes), neighbours)
    j = nearest[:, 1:].reshape(-1)
    pairs = np.unique(np.sort(np.stack([i, j], 1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return points, pairs[:, 0], pairs[:, 1]


def _frames(chord: torch.Tensor) -> torch.Tensor:
    """Orthogonal matrices `[B, D, D]` mapping `e_1` to the unit chords (a Householder reflection)."""
    n, d = chord.shape
    unit = chord / chord.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(chord.dtype).tiny)
    e1 = torch.zeros_like(unit)
    e1[:, 0] = 1.0
    v = e1 - unit
    vv = (v * v).sum(-1)[:, None, None]
    eye = torch.eye(d, dtype=chord.dtype, device=chord.device).expand(n, d, d)
    house = eye - 2.0 * v[:, :, None] * v[:, None, :] / vv.clamp_min(torch.finfo(chord.dtype).tiny)
    return torch.where(vv > 1e-24, house, eye)


def roadmap_polylines(
    coefficients: CoefficientFn,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    segments: int,
    nodes: int,
    neighbours: int,
    reach: float,
    shells: int = 4,
    chunk: int = 1 << 16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Shortest paths from `x` to `y` on a probabilistic roadmap of the metric (Dijkstra), any `D`.

    Per pair, `nodes` quasi-random points (scrambled Sobol, seeded: deterministic) fill `shells`
    nested ellipsoids with foci `x` and `y`, the largest $|z - x| + |z - y| \le$ `reach` $|y - x|$
    (`roadmap_reaches`), with as many points in each: a path of length $L$ stays in the ellipsoid
    of reach $L / (c |y - x|)$ where $F(z, u) \ge c |u|$. Each node is joined to its `neighbours`
    nearest nodes, both ways; an edge costs Simpson's rule of $F(z, \Delta)$ along it (the metric at
    its end nodes and its midpoint; asymmetric: $\alpha \pm \beta$ for the two directions). Edges where the
    metric is invalid are left out. The roadmap's shape is one for all pairs (a similarity maps it
    onto each chord), its neighbours computed once per `(D, nodes, neighbours, reach, shells)`;
    one multi-source Dijkstra run (`scipy.sparse.csgraph.dijkstra`, `min_only`) serves the batch.

    Args:
        coefficients: callable `x -> (a, b)`.
        x: Tensor, shape `[B, D]`.
        y: Tensor, shape `[B, D]`.
        segments: `K`, segments of the returned polylines.
        nodes: roadmap nodes per pair, the end points included (`>= 3`).
        neighbours: nearest neighbours joined to each node.
        reach: the largest ellipsoid's $\rho$ (`> 1`).
        shells: nested ellipsoids.
        chunk: points per call of `coefficients`.

    Returns:
        `(paths, found, resolution)`: Tensor `[B, K + 1, D]` (first and last node `x` and `y`), bool
        Tensor `[B]` (`False` where the roadmap has no path: the straight line is returned there),
        and Tensor `[B]`, the median edge length of the roadmap.

    Example:
        >>> bump = lambda x: ((1 + 8 * torch.exp(-(x * x).sum(-1) / 0.1))[..., None, None] ** 2
        ...                   * torch.eye(4, dtype=x.dtype), torch.zeros_like(x))
        >>> x, y = torch.tensor([[-1.0, 0, 0, 0]]), torch.tensor([[1.0, 0, 0, 0]])
        >>> paths, found, _ = roadmap_polylines(bump, x, y, segments=8, nodes=500, neighbours=8, reach=2.0)
        >>> bool(found[0]), bool(paths[0, 4].norm() > 0.3)  # around the bump, not over it
        (True, True)
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    n, d = x.shape
    t = torch.linspace(0.0, 1.0, segments + 1, dtype=x.dtype, device=x.device)[:, None]
    straight = x[:, None] + t * (y - x)[:, None]
    found = torch.zeros(n, dtype=torch.bool, device=x.device)
    if n == 0 or d < 2:
        return straight, found, x.new_zeros(n)
    ref, src, dst = _reference_roadmap(d, nodes, neighbours, float(reach), shells)
    m = ref.shape[0]
    xd, yd = x.detach(), y.detach()
    chord = yd - xd
    scale = 0.5 * chord.norm(dim=-1)  # [B]
    frame = _frames(chord)  # [B, D, D]
    ref_t = ref.to(dtype=x.dtype, device=x.device)
    centre = 0.5 * (xd + yd)
    points = centre[:, None] + scale[:, None, None] * (ref_t @ frame.mT)  # [B, M, D]
    points[:, 0], points[:, 1] = xd, yd
    src_t = torch.as_tensor(src, device=x.device)
    dst_t = torch.as_tensor(dst, device=x.device)
    e = src_t.numel()
    forward = torch.empty(n, e, dtype=x.dtype, device=x.device)
    backward = torch.empty_like(forward)
    per_pair = max(1, chunk // (m + e))
    for lo in range(0, n, per_pair):  # whole pairs per call of `coefficients`
        hi = min(n, lo + per_pair)
        start, end = points[lo:hi, src_t], points[lo:hi, dst_t]  # [b, E, D]
        delta = end - start
        a_mid, b_mid = coefficients(0.5 * (start + end))
        a_node, b_node = coefficients(points[lo:hi])  # [b, M, D, D], [b, M, D]
        alpha = 4.0 * _alpha(delta, a_mid)
        beta = 4.0 * (b_mid * delta).sum(-1)
        for ends in (src_t, dst_t):
            alpha = alpha + _alpha(delta, a_node[:, ends])
            beta = beta + (b_node[:, ends] * delta).sum(-1)
        forward[lo:hi], backward[lo:hi] = (alpha + beta) / 6.0, (alpha - beta) / 6.0
    offset = (torch.arange(n, device=x.device) * m)[:, None]
    rows = torch.cat([src_t + offset, dst_t + offset], 1).reshape(-1).cpu().numpy()
    cols = torch.cat([dst_t + offset, src_t + offset], 1).reshape(-1).cpu().numpy()
    weight = torch.cat([forward, backward], 1).reshape(-1).cpu().double().numpy()
    keep = np.isfinite(weight) & (weight > 0)
    graph = csr_matrix((weight[keep], (rows[keep], cols[keep])), shape=(n * m, n * m))
    sources = np.arange(n) * m
    dist, pred, _ = dijkstra(graph, directed=True, indices=sources, return_predecessors=True, min_only=True)
    targets = sources + 1
    reached = np.isfinite(dist[targets])
    # the chains of predecessors, followed for all pairs at once
    chain = [targets]
    while True:
        prev = pred[chain[-1]]
        prev = np.where((chain[-1] == sources) | (prev < 0), chain[-1], prev)
        if np.array_equal(prev, chain[-1]):
            break
        chain.append(prev)
    hops = np.stack(chain[::-1], 1) - sources[:, None]  # [B, H] local indices, padded with the source
    out = straight.detach().clone()
    flat_points = points.reshape(n * m, d)
    for i in np.nonzero(reached)[0]:
        local = hops[i][np.r_[True, hops[i][1:] != hops[i][:-1]]]
        path = flat_points[torch.as_tensor(local + i * m, device=x.device)]
        # equal metric length per segment: what the discrete-energy minimization converges to
        out[i] = resample_polyline(path, segments, torch.as_tensor(dist[local + i * m], device=x.device))
        found[i] = True
    lengths = (ref[src] - ref[dst]).norm(dim=-1).median().item()
    return out, found, lengths * scale
