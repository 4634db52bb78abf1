r"""Parallel fast sweeping (Detrixhe, Gibou & Min 2013) for the scheme of `finslerlib.eikonal.scheme`.

A sweep visits the grid's nodes by the hyperplanes $s \cdot i = c$ ($i$ the node's index, $s$ one
of the $2^D$ sign vectors) in increasing $c$: all nodes of one hyperplane are updated at once (a few
gathers, the local solver vectorized, a scatter), and they read their neighbours' values from the
grid as it is, so the hyperplanes behind are already updated in this sweep (Gauss–Seidel).

* First order: a sweep uses only the facets of the stencil whose vertices lie behind
  ($s_d o_d \le 0$ for every offset $o$), and keeps $\min(T, \text{update})$; from $T = \infty$
  the values only decrease, and $2^D$ sweeps carry every characteristic whose direction lies in one
  of the orthants, so a few rounds reach the fixed point of the Jacobi map.
* Second order (its upwind choice depends on the values, so the scheme is not monotone): a sweep
  replaces each value by the full stencil's update (Gauss–Seidel on the Jacobi map itself, same
  fixed point), starting from the first-order map.

Per-node data (the metric's stencil quantities, the factorization's $T_0$ and slopes) are packed in
one `[N, C]` matrix, gathered once per hyperplane.
"""

from __future__ import annotations

import itertools

import torch

from finslerlib.eikonal.scheme import Precomputed, Stencil, _edge_min, _triangle

__all__ = ["Sweeper"]

_PAD = 2


class Sweeper:
    """Fast sweeping of one problem: the hyperplanes, the facets per sweep and the packed node data.

    Args:
        st: the stencil.
        pre: the per-node metric quantities.
        free: bool Tensor of the grid's shape, the nodes to update (not fixed, valid).
        base: Tensor of the grid's shape ($T_0$, factorization) or `None`.
        slope: Tensor `[K, *grid]` or `None`.
    """

    def __init__(self, st: Stencil, pre: Precomputed, free: torch.Tensor, base, slope):
        self.st, self.shape = st, tuple(free.shape)
        dim = len(self.shape)
        device, dtype = free.device, pre.be.dtype
        self.dim, self.spacing = dim, pre.spacing
        padded = [n + 2 * _PAD for n in self.shape]
        self.padded_shape = padded
        pstride = [1] * dim
        for d in range(dim - 2, -1, -1):
            pstride[d] = pstride[d + 1] * padded[d + 1]
        self.offsets = torch.tensor(st.offsets, dtype=torch.long, device=device)
        self.shift = (self.offsets * torch.tensor(pstride, device=device)).sum(-1)  # [K]
        grids = torch.meshgrid(*[torch.arange(n, device=device) for n in self.shape], indexing="ij")
        index = torch.stack([g.reshape(-1) for g in grids], -1)  # [N, D]
        flat = torch.arange(index.shape[0], device=device)
        keep = free.reshape(-1)
        index, flat = index[keep], flat[keep]
        pflat = ((index + _PAD) * torch.tensor(pstride, device=device)).sum(-1)
        # packed node data [N_free, C]
        k, e = len(st.offsets), len(st.edges)
        n = int(torch.tensor(self.shape).prod())
        cols = [pre.aee.reshape(3 * e, n), pre.be.reshape(k, n), pre.root.reshape(k, n)]
        self.factored = base is not None
        if base is not None:
            fin = torch.where(torch.isfinite(base), base, torch.zeros_like(base))
            cols += [slope.reshape(k, n), fin.reshape(1, n)]
            self.base_pad = torch.zeros(padded, dtype=dtype, device=device)
            self.base_pad[tuple(slice(_PAD, _PAD + m) for m in self.shape)] = fin
            self.base_pad = self.base_pad.reshape(-1)
        cols.append(pre.b.reshape(n, dim).T)
        if pre.ainv is not None:
            cols.append(pre.ainv.reshape(n, dim * dim).T)
        self.data = torch.cat(cols).T[flat].contiguous()
        self.k, self.e = k, e
        # the hyperplanes of each family (sign vectors with s_0 = +1; -s walks them backwards)
        self.sweeps = []
        if dim == 2:  # rows and columns: the 8-neighbour stencil has a facet cone behind each
            families = [(1, 0), (0, 1)]
        else:  # the anti-diagonal planes: the octant facets of the 6-neighbour stencil lie behind
            families = [(1, *tail) for tail in itertools.product((1, -1), repeat=dim - 1)]
        for family in families:
            level = (index * torch.tensor(family, device=device)).sum(-1)
            order = torch.argsort(level, stable=True)
            counts = torch.unique_consecutive(level[order], return_counts=True)[1].tolist()
            rows = list(torch.split(order, counts))
            for sign in (1, -1):
                sv = [sign * c for c in family]
                behind = [i for i, o in enumerate(st.offsets) if sum(sv[d] * o[d] for d in range(dim)) < 0]
                self.sweeps.append((rows if sign == 1 else rows[::-1], self._facets(behind, dtype)))
        self.full = self._facets(list(range(k)), dtype)
        self.pflat = pflat
        self.lean = [self._lean(rows, facets) for rows, facets in self.sweeps] if dim == 2 else None

    def _lean(self, rows, facets):
        """First-order 2-D sweep data in the sweep's node order (a hyperplane is a slice of it)."""
        k, e = self.k, self.e
        perm = torch.cat(rows)
        ends = torch.tensor([len(r) for r in rows]).cumsum(0).tolist()
        data = self.data[perm]
        at = self.pflat[perm]
        used, first, second = facets["used"], facets["first"], facets["second"]
        where = at.unsqueeze(0) + facets["shift"].unsqueeze(1)
        cst = None
        if self.factored:
            col = 3 * e + 2 * k
            cst = data[:, col + k].unsqueeze(0) + data[:, col : col + k].T[used] - self.base_pad[where]
        be = data[:, 3 * e : 3 * e + k].T[used]
        root = data[:, 3 * e + k : 3 * e + 2 * k].T[used]
        ids = facets["edge_ids"]
        aee = torch.stack([data[:, c * e : (c + 1) * e].T[ids] for c in range(3)])
        return {
            "bounds": list(zip([0, *ends[:-1]], ends, strict=True)),
            "at": at,
            "where": where,
            "cst": cst,
            "aee": aee.contiguous(),
            "edge": [x.contiguous() for x in (be[first], be[second], root[first], root[second])],
            "first": first,
            "second": second,
        }

    def _lean_round(self, t: torch.Tensor) -> None:
        """First-order sweeps in 2-D: per row, one gather, the edge solutions, a scatter of the minimum."""
        for lean in self.lean:
            at, where, cst, aee, (be0, be1, r0, r1) = (
                lean["at"],
                lean["where"],
                lean["cst"],
                lean["aee"],
                lean["edge"],
            )
            first, second = lean["first"], lean["second"]
            for a, b in lean["bounds"]:
                v = t[where[:, a:b]]
                if cst is not None:
                    v = v + cst[:, a:b]
                out = _edge_min(
                    v[first],
                    v[second],
                    1.0,
                    1.0,
                    aee[:, :, a:b],
                    be0[:, a:b],
                    be1[:, a:b],
                    r0[:, a:b],
                    r1[:, a:b],
                ).amin(0)
                rows = at[a:b]
                t[rows] = torch.minimum(t[rows], out)

    def _facets(self, used: list[int], dtype: torch.dtype):
        """The offsets `used`, the edges and triangles among them (local indices, stencil edge ids)."""
        local = {m: i for i, m in enumerate(used)}
        edges = [(i, a, b) for i, (a, b) in enumerate(self.st.edges) if a in local and b in local]
        tris = [tri for tri in self.st.triangles if all(m in local for m in tri)]
        dev = self.offsets.device
        return {
            "used": torch.tensor(used, device=dev),
            "shift": self.shift[used],
            "edge_ids": torch.tensor([i for i, _, _ in edges], device=dev, dtype=torch.long),
            "first": torch.tensor([local[a] for _, a, _ in edges], device=dev, dtype=torch.long),
            "second": torch.tensor([local[b] for _, _, b in edges], device=dev, dtype=torch.long),
            "tris": (
                torch.tensor([[local[m] for m in tri] for tri in tris], device=dev, dtype=torch.long),
                [
                    torch.tensor([[self.st.offsets[t[axis]][axis]] for t in tris], device=dev, dtype=dtype)
                    for axis in range(self.dim)
                ],
            )
            if tris
            else None,
        }

    def pad(self, t: torch.Tensor) -> torch.Tensor:
        """`t` (grid's shape) as the flat padded state (`inf` outside)."""
        out = torch.full(self.padded_shape, float("inf"), dtype=t.dtype, device=t.device)
        out[tuple(slice(_PAD, _PAD + m) for m in self.shape)] = t
        return out.reshape(-1)

    def unpad(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(self.padded_shape)[tuple(slice(_PAD, _PAD + m) for m in self.shape)].clone()

    def _update(self, t: torch.Tensor, rows: torch.Tensor, facets, order: int) -> torch.Tensor:
        """New values of the nodes `rows` (one hyperplane) from the flat padded state `t`."""
        k, e, dim = self.k, self.e, self.dim
        data = self.data[rows]  # [n, C]
        at = self.pflat[rows]
        used = facets["used"]
        where = at.unsqueeze(0) + facets["shift"].unsqueeze(1)  # [k_s, n]
        t1 = t[where]
        col = 3 * e + 2 * k
        if order == 2:
            t2 = t[where + facets["shift"].unsqueeze(1)]
            upwind = torch.isfinite(t2) & (t2 <= t1)
            if self.factored:
                t1 = t1 - self.base_pad[where]
                t2 = t2 - self.base_pad[where + facets["shift"].unsqueeze(1)]
            t2s = torch.where(upwind, t2, t1)
            v = torch.where(upwind, (4 * t1 - t2s) / 3, t1)
            s = torch.where(upwind, torch.full_like(t1, 2.0 / 3.0), torch.ones_like(t1))
        else:
            if self.factored:
                t1 = t1 - self.base_pad[where]
            v, s = t1, torch.ones_like(t1)
        if self.factored:
            slope = data[:, col : col + k].T[used]
            v = v + data[:, col + k].unsqueeze(0) + s * slope
            col += k + 1
        b = data[:, col : col + dim]
        be = data[:, 3 * e : 3 * e + k].T[used]
        root = data[:, 3 * e + k : 3 * e + 2 * k].T[used]
        first, second = facets["first"], facets["second"]
        out = torch.full_like(t1[0], float("inf"))
        if facets["edge_ids"].numel():
            ids = facets["edge_ids"]
            aee = torch.stack([data[:, c * e : (c + 1) * e].T[ids] for c in range(3)])
            s0 = s[first] if order == 2 else 1.0
            s1 = s[second] if order == 2 else 1.0
            out = _edge_min(
                v[first], v[second], s0, s1, aee, be[first], be[second], root[first], root[second]
            ).amin(0)
        if facets["tris"]:
            # every triangle at once: [T, n] tensors, the signs [T, 1]
            ainv = data[:, col + dim : col + dim + dim * dim].reshape(-1, dim, dim)
            tri, signs = facets["tris"]
            tv = [v[tri[:, m]] for m in range(dim)]
            ts = [s[tri[:, m]] for m in range(dim)]
            out = torch.minimum(out, _triangle(tv, ts, signs, self.spacing, b, ainv).amin(0))
        return out

    @property
    def sweeps_per_round(self) -> int:
        return len(self.sweeps)

    def rounds(self, flat: torch.Tensor, order: int, tol: float, max_rounds: int) -> tuple[int, float]:
        """Rounds of all sweeps in place on `flat` until no value changes by more than `tol`;
        returns `(rounds, change)` (`change` is that of the last round)."""
        rounds, change = 0, float("inf")
        while rounds < max_rounds:
            before = flat.clone()
            self.round(flat, order)
            rounds += 1
            if bool((torch.isfinite(flat) != torch.isfinite(before)).any()):
                change = float("inf")
                continue
            both = torch.isfinite(flat)
            change = float(torch.where(both, (flat - before).abs(), torch.zeros_like(flat)).max())
            if change <= tol:
                break
        return rounds, change

    def round(self, t: torch.Tensor, order: int) -> None:
        """All $2^D$ sweeps once, in place on the flat padded state `t`."""
        if order == 1 and self.lean is not None:
            self._lean_round(t)
            return
        for rows, facets in self.sweeps:
            for row in rows:
                at = self.pflat[row]
                if order == 1:
                    new = torch.minimum(t[at], self._update(t, row, facets, 1))
                else:
                    new = self._update(t, row, self.full, 2)
                t[at] = new
