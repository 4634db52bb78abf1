r"""The local update of the Randers eikonal scheme: one vectorized Jacobi step over a whole grid.

The forward map solves $F^*(x, dT) = 1$, i.e. $|dT - b|_{a^{-1}} = 1$, in the semi-Lagrangian form

$$T(x) = \min_{y \in \partial S(x)} T(y) + F(x, x - y),$$

with $\partial S(x)$ the boundary of a stencil around $x$ whose facets are simplices of neighbours
and $T(y)$ interpolated linearly on each facet. On a facet the minimum has a closed form:

* an edge $[x + e_0, x + e_1]$: $\min_{\lambda \in [0, 1]} c_0 + c_1 \lambda + \sqrt{Q(\lambda)}$ with
  $Q$ quadratic, solved exactly (the end points included, so the vertices are covered);
* a triangle (3-D): the linear interpolant's gradient $p$ through the three values meets
  $|p - b|_{a^{-1}} = 1$ in a quadratic for $T$; it is kept where the characteristic
  $a^{-1}(p - b)$ arrives from inside the facet's cone (upwinding), the edges cover the rest.

Stencils: in 2-D the 8 neighbours (8 edges), in 3-D the 6 axis neighbours (8 octant triangles and
12 edges). Second order replaces a neighbour value $T(x + e)$ by
$\tfrac13 (4 T(x + e) - T(x + 2e))$ at the offset $\tfrac23 e$ (the one-sided second-order
difference), where $T(x + 2e) \le T(x + e)$ (upwind) and both are finite. With source
factorization the scheme solves for $\tau = T - T_0$, $T_0(x) = F(s, x - s)$ the frozen-metric
distance, and a neighbour's value enters as $\tau(y) + T_0(x) + \nabla T_0(x) \cdot (y - x)$.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

__all__ = ["Stencil", "stencil", "Precomputed", "precompute", "jacobi_step"]


@dataclass(frozen=True)
class Stencil:
    """Neighbour offsets (in cells), the edges and the triangles (3-D) of the stencil boundary."""

    offsets: tuple[tuple[int, ...], ...]
    edges: tuple[tuple[int, int], ...]
    triangles: tuple[tuple[int, int, int], ...]


def stencil(dim: int) -> Stencil:
    """The stencil of dimension `dim` (2: 8 neighbours; 3: 6 axis neighbours, octant facets).

    Example:
        >>> len(stencil(2).edges), len(stencil(3).triangles)
        (8, 8)
    """
    if dim == 2:
        offsets = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
        edges = tuple((i, (i + 1) % 8) for i in range(8))
        return Stencil(offsets, edges, ())
    if dim == 3:
        offsets = []
        for k in range(3):
            for sign in (1, -1):
                o = [0, 0, 0]
                o[k] = sign
                offsets.append(tuple(o))
        index = {o: i for i, o in enumerate(offsets)}

        def axis(k, sign):
            o = [0, 0, 0]
            o[k] = sign
            return index[tuple(o)]

        edges = tuple(
            (axis(i, si), axis(j, sj))
            for i, j in itertools.combinations(range(3), 2)
            for si in (1, -1)
            for sj in (1, -1)
        )
        triangles = tuple(
            (axis(0, s0), axis(1, s1), axis(2, s2)) for s0 in (1, -1) for s1 in (1, -1) for s2 in (1, -1)
        )
        return Stencil(tuple(offsets), edges, triangles)
    raise ValueError(f"distance maps are implemented on 2-D and 3-D grids, got dimension {dim}")


@dataclass
class Precomputed:
    """Per-node metric quantities on the stencil (the metric does not change between sweeps).

    Attributes:
        aee: Tensor `[3, E, *grid]`: $e_0^\\top a e_0$, $e_0^\\top a e_1$, $e_1^\\top a e_1$ per edge.
        be: Tensor `[K, *grid]`: $b \\cdot e_k$ per offset.
        root: Tensor `[K, *grid]`: $|e_k|_a$ per offset.
        ainv: Tensor `[*grid, D, D]` ($a^{-1}$, 3-D only) or `None`.
        b: Tensor `[*grid, D]`.
        spacing: Tensor `[D]`, the grid steps.
    """

    aee: torch.Tensor
    be: torch.Tensor
    root: torch.Tensor
    ainv: torch.Tensor | None
    b: torch.Tensor
    spacing: torch.Tensor


def precompute(st: Stencil, a: torch.Tensor, b: torch.Tensor, spacing: torch.Tensor) -> Precomputed:
    """`Precomputed` from the metric `a` `[*grid, D, D]`, `b` `[*grid, D]` and the steps `[D]`."""
    dim = a.shape[-1]
    grid = a.shape[:-2]
    off = torch.tensor(st.offsets, dtype=a.dtype, device=a.device) * spacing  # [K, D]
    # the quadratic forms e_k^T a e_l as one product [R, D*D] @ [D*D, N]: the rows (k, k) then,
    # per edge (i, j), the rows (i, i), (i, j), (j, j)
    pairs = [(k, k) for k in range(len(st.offsets))]
    pairs += [p for i, j in st.edges for p in ((i, i), (i, j), (j, j))]
    left, right = off[[k for k, _ in pairs]], off[[m for _, m in pairs]]
    coef = (left.unsqueeze(-1) * right.unsqueeze(-2)).reshape(len(pairs), dim * dim)
    quad = coef @ a.reshape(-1, dim * dim).T.contiguous()  # [R, N]
    k = len(st.offsets)
    root = torch.sqrt(quad[:k]).reshape(k, *grid)
    ee = quad[k:].reshape(len(st.edges), 3, *grid)
    be = (off @ b.reshape(-1, dim).T.contiguous()).reshape(k, *grid)
    ainv = torch.linalg.inv(a) if st.triangles else None
    return Precomputed(ee.transpose(0, 1).contiguous(), be.contiguous(), root, ainv, b, spacing)


def _shift(t: torch.Tensor, offset: tuple[int, ...], pad: int) -> torch.Tensor:
    """Values at `x + offset` for every node from the padded array `t` (padding `pad`)."""
    sl = tuple(slice(pad + o, pad + o + n) for o, n in zip(offset, _shape(t, pad), strict=True))
    return t[sl].contiguous()


def _pad(t: torch.Tensor, pad: int) -> torch.Tensor:
    """`t` padded with `inf` (outside the grid: not reached) by `pad` nodes on every side."""
    out = torch.full([n + 2 * pad for n in t.shape], float("inf"), dtype=t.dtype, device=t.device)
    out[tuple(slice(pad, pad + n) for n in t.shape)] = t
    return out


def _shape(t: torch.Tensor, pad: int) -> tuple[int, ...]:
    return tuple(n - 2 * pad for n in t.shape)


def _edge_min(t0, t1, s0, s1, aee, be0, be1, r0, r1):
    r"""$\min_{\lambda \in [0,1]} (1-\lambda) t_0 + \lambda t_1 + F(x, -e_\lambda)$,
    $e_\lambda = (1-\lambda) s_0 e_0 + \lambda s_1 e_1$ (closed form, end points included)."""
    if isinstance(s0, float) and isinstance(s1, float):
        q00, q01, q11 = aee[0], aee[1], aee[2]
    else:
        q00, q01, q11 = s0 * s0 * aee[0], s0 * s1 * aee[1], s1 * s1 * aee[2]
    fin0, fin1 = torch.isfinite(t0), torch.isfinite(t1)
    z0 = torch.where(fin0, t0, torch.zeros_like(t0))
    z1 = torch.where(fin1, t1, torch.zeros_like(t1))
    c0 = z0 - s0 * be0
    d1 = z1 - s1 * be1
    f0 = c0 + s0 * r0
    f1 = d1 + s1 * r1
    c1 = d1 - c0
    qq0, qq1, qq2 = q00, q01 - q00, q00 - 2 * q01 + q11
    delta = (qq0 * qq2 - qq1 * qq1).clamp_min(0)
    room = qq2 - c1 * c1
    inner = fin0 & fin1 & (room > 0)
    room_s = torch.where(inner, room, torch.ones_like(room))
    m = -torch.sign(c1) * torch.sqrt(c1 * c1 * delta / room_s + torch.finfo(t0.dtype).tiny)
    lam = ((m - qq1) / qq2).clamp(0, 1)
    flam = c0 + c1 * lam + torch.sqrt((qq0 + 2 * qq1 * lam + qq2 * lam * lam).clamp_min(0))
    inf = torch.full_like(t0, float("inf"))
    out = torch.minimum(torch.where(fin0, f0, inf), torch.where(fin1, f1, inf))
    return torch.minimum(out, torch.where(inner, flam, inf))


def _triangle(ts, ss, signs, spacing, b, ainv):
    r"""The octant-facet solution (3-D) where the characteristic arrives from inside the facet, else inf."""
    fin = torch.isfinite(ts[0]) & torch.isfinite(ts[1]) & torch.isfinite(ts[2])
    dk = [signs[k] * spacing[k] * ss[k] for k in range(3)]
    # solved for T - ref, ref the smallest of the three values: the quadratic's terms stay O(1/h^2)
    # (in T itself they are O(T^2/h^4) and cancel to O(1/h^2): rounding eps T^2/h instead of eps T)
    zs = [torch.where(fin, ts[k], torch.zeros_like(ts[k])) for k in range(3)]
    ref = torch.minimum(torch.minimum(zs[0], zs[1]), zs[2])
    u = torch.stack([(zs[k] - ref) / dk[k] for k in range(3)], -1)
    w = torch.stack([1.0 / dk[k] * torch.ones_like(ts[k]) for k in range(3)], -1)
    r = u - b
    aw = (ainv @ w.unsqueeze(-1)).squeeze(-1)
    ar = (ainv @ r.unsqueeze(-1)).squeeze(-1)
    a2, a1, a0 = (w * aw).sum(-1), (w * ar).sum(-1), (r * ar).sum(-1) - 1
    disc = a1 * a1 - a2 * a0
    ok = fin & (disc >= 0)
    # the root with a zero derivative where disc = 0: there the line of planes through the three
    # values is tangent to the unit sphere of F*, the characteristic lies in the facet's plane and the
    # upwind test below fails in exact arithmetic (a tangent facet never wins); sqrt's derivative
    # there is 0 * inf = NaN even where the facet loses (measured: a source on a grid node, constant
    # metric, factorization: tangent facets along the source's diagonal planes made every gradient NaN)
    pos = fin & (disc > 0)
    root = torch.where(pos, torch.sqrt(torch.where(pos, disc, torch.ones_like(disc))), torch.zeros_like(disc))
    t = (a1 + root) / a2
    direction = ar - t.unsqueeze(-1) * aw  # a^{-1}(p - b), p = u - t w
    for k in range(3):
        ok = ok & (direction[..., k] * signs[k] <= 0)
    return torch.where(ok, ref + t, torch.full_like(t, float("inf")))


def jacobi_step(
    tau: torch.Tensor,
    st: Stencil,
    pre: Precomputed,
    *,
    order: int,
    base: torch.Tensor | None = None,
    slope: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""One Jacobi update of every node: the new arrival times $T$ (not yet masked).

    Args:
        tau: Tensor `[*grid]`, the current unknowns ($T$, or $\tau = T - T_0$ when factored).
        st: the stencil.
        pre: the per-node metric quantities.
        order: 1 or 2.
        base: Tensor `[*grid]`, $T_0$ (factorization) or `None`.
        slope: Tensor `[K, *grid]`, $\nabla T_0(x) \cdot e_k$ per offset, or `None`.

    Returns:
        Tensor `[*grid]`: the updated $T$ (add nothing: already $T$, not $\tau$).
    """
    pad = 2
    padded = _pad(tau, pad)
    base_padded = _pad(base, pad) if (base is not None and order == 2) else None
    k = len(st.offsets)
    values, scales = [], []
    for i in range(k):
        o = st.offsets[i]
        t1 = _shift(padded, o, pad)
        if order == 2:
            t2 = _shift(padded, tuple(2 * c for c in o), pad)
            if base_padded is not None:
                b1 = _shift(base_padded, o, pad)
                b2 = _shift(base_padded, tuple(2 * c for c in o), pad)
                upwind = torch.isfinite(t2) & torch.isfinite(t1) & (t2 + b2 <= t1 + b1)
            else:
                upwind = torch.isfinite(t2) & torch.isfinite(t1) & (t2 <= t1)
            t2s = torch.where(upwind, t2, t1)
            v = torch.where(upwind, (4 * t1 - t2s) / 3, t1)
            s = torch.where(upwind, torch.full_like(t1, 2.0 / 3.0), torch.ones_like(t1))
        else:
            v, s = t1, 1.0
        if base is not None:
            v = v + base + s * slope[i]
        values.append(v)
        scales.append(s)
    # every edge of the stencil at once: [E, *grid] tensors
    first = torch.tensor([i for i, _ in st.edges], device=tau.device)
    second = torch.tensor([j for _, j in st.edges], device=tau.device)
    stacked = torch.stack(values)
    if order == 2:
        scale = torch.stack(scales)
        s0, s1 = scale[first], scale[second]
    else:
        s0 = s1 = 1.0
    out = _edge_min(
        stacked[first],
        stacked[second],
        s0,
        s1,
        pre.aee,
        pre.be[first],
        pre.be[second],
        pre.root[first],
        pre.root[second],
    ).amin(0)
    for tri in st.triangles:
        signs = [st.offsets[m][axis] for axis, m in enumerate(tri)]
        tv, ts = [values[m] for m in tri], [scales[m] for m in tri]
        out = torch.minimum(out, _triangle(tv, ts, signs, pre.spacing, pre.b, pre.ainv))
    return out
