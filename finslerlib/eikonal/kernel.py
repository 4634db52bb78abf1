r"""A compiled CPU kernel for the sweeps of `finslerlib.eikonal.scheme` (the forward iteration only).

Plain C++ loops over the grid, built once with `torch.utils.cpp_extension.load_inline` (a C++
compiler and `ninja` needed; cached in torch's extension directory, `TORCH_EXTENSIONS_DIR`):

* `rounds`: Gauss–Seidel fast sweeping, the $2^D$ lexicographic orderings of the grid
  (axis 0 outermost, each axis forwards or backwards), every facet of the stencil. First order:
  each node takes $\min(T, \text{update})$ (values only decrease, from $T = \infty$); second
  order: the update. A node is visited only when a value it reads has changed (by more than a
  hundredth of the tolerance) since its last update (locking, Bak, McLaughlin & Renzi 2010).
  Rounds of $2^D$ sweeps until a round changes no value by more than the tolerance, or until
  several rounds pass without lowering the largest change (stalled: the caller reports the map
  as not converged).
  In 3-D the sweeps run on `torch.get_num_threads()` threads: axis 1 cut into one chunk per
  thread, the threads going down axis 0 as a pipeline 3 planes apart (deterministic for a thread
  count); 2-D maps sweep on one thread (measured faster there).
* `jacobi`: one Jacobi step of the whole grid (the scheme's map $G$, every facet), planes on
  torch's intra-op threads.

The local solver is the one of `finslerlib.eikonal.scheme` (`_edge_min`, `_triangle`), so both
backends iterate to the same fixed point (to rounding). In 3-D it visits fewer facets for the same
minimum: the octant facet the characteristic $a^{-1}(g - b)$ arrives from ($g$ the central
differences of the neighbours) is solved first; where its triangle holds, with value $T$ and
gradient $p$ ($F^*(x, p) = 1$, so $F(x, -y) \ge -p \cdot y$), a facet whose vertices all have
$v_k - p \cdot y_k \ge T$ cannot go below $T$ and is skipped, and an octant whose triangle holds
needs none of its edges. Nodes where the metric is ill conditioned (next to the domain's edge,
$|b|_{a^{-1}} > 0.95$) are solved in `long double` (the inverse of $a$ and the triangle's quadratic
cancel like $\mathrm{cond}(a)^2$ there; in double the sweeps cycled above the tolerance).
Gradients do not go through the kernel: the solver differentiates one torch step of $G$ at the
fixed point (implicit function theorem), whichever backend found it.
"""

from __future__ import annotations

import torch

from finslerlib.eikonal.scheme import Stencil
from finslerlib.math.compiled import load_compiled, module_name

__all__ = ["CompiledSweeper", "compiled_available", "load_kernel"]

_PAD = 2
# rounds without a new lowest change after which the kernel's sweeps stop as stalled (a map of the
# bench's drift settles in 8 to 12 rounds, each round lowering the change; a cycle does not)
_PATIENCE = 6

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

namespace {

// the type the inverse of the metric (3-D) is formed in: one step wider than the map's values.
// Its determinant is a difference of products of a's entries whose relative rounding grows like
// cond(a)^2 (next to the domain's edge, |W| -> 1, cond(a) ~ 1 / (1 - |W|^2)), and a triangle's
// value inherits it: in the values' own type the sweeps of a 3-D map with |W| = 0.999 cycled at
// 7 times the tolerance (5.6e-11). Where the metric is ill conditioned the local solves run in it
// too (`update3`), elsewhere in the values' type
template <typename S>
struct Wide {
  using T = double;
};
#ifndef FINSLERLIB_NARROW
template <>
struct Wide<double> {
  using T = long double;
};
#endif

template <typename S>
struct Grid {
  int dim = 0, K = 0, E = 0, NT = 0;
  int64_t n[3] = {1, 1, 1}, N = 1;
  int64_t stride[3] = {0, 0, 0}, pstride[3] = {0, 0, 0};
  int off[8][3] = {};
  int64_t shift[8] = {};
  int edges[12][2] = {};
  int tris[8][3] = {};
  int edge_tris[12][2] = {};  // the two octant facets (3-D) each edge bounds
  S sg[8][3] = {};
  S ev[8][3] = {};  // the offsets times the grid steps
  const S *a = nullptr, *b = nullptr, *grad = nullptr, *base = nullptr, *spacing = nullptr;
  const bool* free_ = nullptr;
  bool factored = false;
};

template <typename S>
inline S edge_min(S t0, S t1, S s0, S s1, S a0, S a1, S a2, S be0, S be1, S r0, S r1) {
  const S inf = std::numeric_limits<S>::infinity();
  const S q00 = s0 * s0 * a0, q01 = s0 * s1 * a1, q11 = s1 * s1 * a2;
  const bool fin0 = std::isfinite(t0), fin1 = std::isfinite(t1);
  const S z0 = fin0 ? t0 : S(0), z1 = fin1 ? t1 : S(0);
  const S c0 = z0 - s0 * be0;
  const S d1 = z1 - s1 * be1;
  const S f0 = c0 + s0 * r0;
  const S f1 = d1 + s1 * r1;
  const S c1 = d1 - c0;
  if (!fin0 && !fin1) return inf;
  const S qq0 = q00, qq1 = q01 - q00, qq2 = q00 - 2 * q01 + q11;
  const S delta = std::max(qq0 * qq2 - qq1 * qq1, S(0));
  const S room = qq2 - c1 * c1;
  S out = std::min(fin0 ? f0 : inf, fin1 ? f1 : inf);
  if (fin0 && fin1 && room > 0) {
    const S sgn = c1 > 0 ? S(1) : (c1 < 0 ? S(-1) : S(0));
    const S m = -sgn * std::sqrt(c1 * c1 * delta / room + std::numeric_limits<S>::min());
    S lam = (m - qq1) / qq2;
    lam = std::min(std::max(lam, S(0)), S(1));
    const S flam = c0 + c1 * lam + std::sqrt(std::max(qq0 + 2 * qq1 * lam + qq2 * lam * lam, S(0)));
    out = std::min(out, flam);
  }
  return out;
}

// the octant facet m's value where the characteristic arrives from inside it (else inf), in the
// type R; p (if not null) receives the facet's gradient (F*(x, p) = 1)
template <typename S, typename R>
inline R triangle_w(const Grid<S>& g, const R* bb, const R* ai, const R* tv, const R* ts, const S* sg,
                    R* p) {
  const R inf = std::numeric_limits<R>::infinity();
  if (!(std::isfinite(tv[0]) && std::isfinite(tv[1]) && std::isfinite(tv[2]))) return inf;
  R u[3], w[3], r[3], aw[3], ar[3], dk[3];
  // solved for T - ref, ref the smallest of the three values (as in scheme._triangle)
  const R ref = std::min(std::min(tv[0], tv[1]), tv[2]);
  for (int k = 0; k < 3; ++k) {
    dk[k] = R(sg[k]) * R(g.spacing[k]) * ts[k];
    w[k] = R(1) / dk[k];
    u[k] = (tv[k] - ref) * w[k];
    r[k] = u[k] - bb[k];
  }
  for (int k = 0; k < 3; ++k) {
    aw[k] = ai[3 * k] * w[0] + ai[3 * k + 1] * w[1] + ai[3 * k + 2] * w[2];
    ar[k] = ai[3 * k] * r[0] + ai[3 * k + 1] * r[1] + ai[3 * k + 2] * r[2];
  }
  const R a2 = w[0] * aw[0] + w[1] * aw[1] + w[2] * aw[2];
  const R a1 = w[0] * ar[0] + w[1] * ar[1] + w[2] * ar[2];
  const R a0 = (r[0] * ar[0] + r[1] * ar[1] + r[2] * ar[2]) - 1;
  const R disc = a1 * a1 - a2 * a0;
  if (!(disc >= 0)) return inf;
  const R t = (a1 + std::sqrt(disc)) / a2;
  for (int k = 0; k < 3; ++k) {
    if (!((ar[k] - t * aw[k]) * R(sg[k]) <= 0)) return inf;
  }
  if (p)
    for (int k = 0; k < 3; ++k) p[k] = u[k] - t * w[k];
  return ref + t;
}

// the inverse of the symmetric 3x3 matrix m (adjugate over determinant)
template <typename R>
inline void inverse3w(const R* m, R* out) {
  const R c00 = m[4] * m[8] - m[5] * m[7], c01 = m[5] * m[6] - m[3] * m[8], c02 = m[3] * m[7] - m[4] * m[6];
  const R inv = R(1) / (m[0] * c00 + m[1] * c01 + m[2] * c02);
  out[0] = c00 * inv;
  out[1] = out[3] = c01 * inv;
  out[2] = out[6] = c02 * inv;
  out[4] = (m[0] * m[8] - m[2] * m[6]) * inv;
  out[5] = out[7] = (m[2] * m[3] - m[0] * m[5]) * inv;
  out[8] = (m[0] * m[4] - m[1] * m[3]) * inv;
}

// the 3-D update (6 axis neighbours, 8 octant facets, 12 edges) from the neighbour values v and
// scales s, in R. The minimum over the facets is the minimum over the octants of each
// octant's own minimum: its triangle's value where the characteristic arrives from inside it (the
// stationary point of a convex function on the facet), else the least of its three edges. The
// octant the characteristic likely arrives from goes first; where its triangle holds, with value
// T and gradient p (F*(x, p) = 1, so F(x, -y) >= -p . y for every y), a facet whose vertices y_k
// all have v_k - p . y_k >= T cannot go below T (its value is at least the least of these) and is
// skipped; otherwise a facet whose smallest vertex value is not below the best so far is skipped
template <typename S, typename R, typename W>
inline S update3r(const Grid<S>& g, const S* v, const S* s, const S* A, const S* B, const W* aiw, S start) {
  const R inf = std::numeric_limits<R>::infinity();
  R vw[8], sw[8], lb[8], Aw[9], Bw[3], ai[9];
  for (int k = 0; k < g.K; ++k) {
    vw[k] = v[k];
    sw[k] = s[k];
  }
  for (int k = 0; k < 9; ++k) {
    Aw[k] = A[k];
    ai[k] = R(aiw[k]);
  }
  for (int k = 0; k < 3; ++k) Bw[k] = B[k];
  R out = std::isfinite(start) ? R(start) : inf;
  // the octant first solved (tris are ordered by the signs, + first): the one the characteristic
  // a^{-1}(g - b) arrives from, g the central differences of the neighbour values, where all six
  // are finite; else the octant of the smaller neighbour on every axis
  int first = 0;
  bool central = true;
  R gb[3];
  for (int k = 0; k < 3; ++k) {
    const R up = vw[2 * k], down = vw[2 * k + 1];
    central = central && std::isfinite(up) && std::isfinite(down);
    gb[k] = (up - down) / (R(g.spacing[k]) * (sw[2 * k] + sw[2 * k + 1])) - Bw[k];
  }
  if (central) {
    for (int k = 0; k < 3; ++k)
      if (ai[3 * k] * gb[0] + ai[3 * k + 1] * gb[1] + ai[3 * k + 2] * gb[2] > 0) first |= 4 >> k;
  } else {
    for (int k = 0; k < 3; ++k)
      if (vw[2 * k + 1] < vw[2 * k]) first |= 4 >> k;
  }
  // state per octant: 0 to do, 1 settled (skipped or triangle held), 2 its edges needed
  int state[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  bool bounded = false;
  auto tri = [&](int m, R* p) {
    R tv[3], ts[3];
    for (int k = 0; k < 3; ++k) {
      tv[k] = vw[g.tris[m][k]];
      ts[k] = sw[g.tris[m][k]];
    }
    const R val = triangle_w<S, R>(g, Bw, ai, tv, ts, g.sg[m], p);
    state[m] = std::isfinite(val) ? 1 : 2;
    return val;
  };
  {
    R p[3];
    const R val = tri(first, p);
    if (std::isfinite(val) && val < out) {
      out = val;
      bounded = true;
      for (int k = 0; k < g.K; ++k) {
        int axis = 0;
        while (g.off[k][axis] == 0) ++axis;
        lb[k] = vw[k] - p[axis] * R(g.off[k][axis]) * R(g.spacing[axis]) * sw[k];
      }
      for (int k = 0; k < 3; ++k) lb[g.tris[first][k]] = out;  // exactly T at its own vertices
    }
  }
  for (int m = 0; m < g.NT; ++m) {
    if (m == first) continue;
    R low = inf, lowb = inf;
    for (int k = 0; k < 3; ++k) {
      low = std::min(low, vw[g.tris[m][k]]);
      if (bounded) lowb = std::min(lowb, lb[g.tris[m][k]]);
    }
    if (!(low < out) || (bounded && !(lowb < out))) {
      state[m] = 1;
      continue;
    }
    out = std::min(out, tri(m, nullptr));
  }
  for (int e = 0; e < g.E; ++e) {
    if (state[g.edge_tris[e][0]] != 2 && state[g.edge_tris[e][1]] != 2) continue;
    const int a = g.edges[e][0], c = g.edges[e][1];
    if (!(std::min(vw[a], vw[c]) < out)) continue;
    if (bounded && !(std::min(lb[a], lb[c]) < out)) continue;
    int ia = 0, ic = 0;
    while (g.off[a][ia] == 0) ++ia;
    while (g.off[c][ic] == 0) ++ic;
    const R ha = R(g.off[a][ia]) * R(g.spacing[ia]), hc = R(g.off[c][ic]) * R(g.spacing[ic]);
    const R q00 = ha * ha * Aw[4 * ia], q11 = hc * hc * Aw[4 * ic], q01 = ha * hc * Aw[3 * ia + ic];
    out = std::min(out, edge_min<R>(vw[a], vw[c], sw[a], sw[c], q00, q01, q11, ha * Bw[ia], hc * Bw[ic],
                                    std::sqrt(q00), std::sqrt(q11)));
  }
  return S(out);
}

// the 3-D update: the local solves in the values' type, or in the wide type where the metric is ill
// conditioned (|b|_{a^{-1}} within 5% of 1, the edge of the domain, or tr(a) tr(a^{-1}) > 1e4): there
// the solves difference terms up to 1 / (1 - |b|^2_{a^{-1}}) times T, and in double the 3-D sweeps of
// a map with |W| = 0.999 cycled at 6 times the tolerance (5.6e-11 against 8.6e-12) and missed the
// closed form by 1.4e-10; in the wide type they settle (change 2.8e-14) within 6e-13 of it
template <typename S>
inline S update3(const Grid<S>& g, const S* v, const S* s, const S* A, const S* B, S start) {
  using W = typename Wide<S>::T;
  double ad[9], ai[9];
  for (int k = 0; k < 9; ++k) ad[k] = A[k];
  inverse3w<double>(ad, ai);
  double beta = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) beta += double(B[i]) * ai[3 * i + j] * double(B[j]);
  const double spread = (ad[0] + ad[4] + ad[8]) * (ai[0] + ai[4] + ai[8]);
  // the test in double: its rounding (relative eps cond(a)^2) is far below its margins
  if (beta > 0.95 || spread > 1e4 || !(beta >= 0)) {
    W aw[9], iw[9];
    for (int k = 0; k < 9; ++k) aw[k] = A[k];
    inverse3w<W>(aw, iw);
    return update3r<S, W, W>(g, v, s, A, B, iw, start);
  }
  return update3r<S, S, double>(g, v, s, A, B, ai, start);
}

// the update of node i (padded index p) from the facets listed; the metric's stencil quantities
// (e_k^T a e_l, b . e_k, |e_k|_a, grad T0 . e_k) are formed from a, b at the node
template <typename S>
inline S update(const Grid<S>& g, const S* t, int64_t i, int64_t p, int order, const std::vector<int>& edges,
                const std::vector<int>& tris, S out) {
  const S inf = std::numeric_limits<S>::infinity();
  const int D = g.dim;
  S v[8], s[8];
  bool any = false;
  const S bp = g.factored ? g.base[p] : S(0);
  for (int k = 0; k < g.K; ++k) {
    const int64_t q = p + g.shift[k];
    S t1 = t[q];
    S sk = 1, val;
    if (order == 2) {
      S t2 = t[q + g.shift[k]];
      const bool up = std::isfinite(t2) && t2 <= t1;
      if (g.factored) {
        t1 = t1 - g.base[q];
        t2 = t2 - g.base[q + g.shift[k]];
      }
      if (up) {
        val = (4 * t1 - t2) / 3;
        sk = S(2.0 / 3.0);
      } else {
        val = t1;
      }
    } else {
      if (g.factored) t1 = t1 - g.base[q];
      val = t1;
    }
    if (g.factored && std::isfinite(val)) {
      const S* gr = g.grad + D * i;
      S sl = 0;
      for (int d = 0; d < D; ++d) sl += gr[d] * g.ev[k][d];
      val = (val + bp) + sk * sl;
    }
    v[k] = val;
    s[k] = sk;
    any = any || std::isfinite(val);
  }
  if (!any) return out;
  const S* A = g.a + D * D * i;
  const S* B = g.b + D * i;
  if (g.NT > 0) return update3<S>(g, v, s, A, B, out);
  S ae[8][3], quad[8], root[8], be[8];
  bool rooted[8];
  int kmin = 0;
  for (int k = 0; k < g.K; ++k) {
    S q = 0, bk = 0;
    for (int d = 0; d < D; ++d) {
      S x = 0;
      for (int j = 0; j < D; ++j) x += A[D * d + j] * g.ev[k][j];
      ae[k][d] = x;
      q += x * g.ev[k][d];
      bk += B[d] * g.ev[k][d];
    }
    quad[k] = q;
    rooted[k] = false;
    be[k] = bk;
    if (v[k] < v[kmin]) kmin = k;
  }
  // a facet's value is a convex combination of its vertices' values plus F(x, -e) > 0: a facet whose
  // smallest vertex value is not below the best so far cannot win and is skipped; the facets at the
  // smallest neighbour value first
  auto edge = [&](int e) {
    const int a = g.edges[e][0], c = g.edges[e][1];
    if (!(std::min(v[a], v[c]) < out)) return;
    for (int k : {a, c})
      if (!rooted[k]) {
        root[k] = std::sqrt(quad[k]);
        rooted[k] = true;
      }
    S qac = 0;
    for (int d = 0; d < D; ++d) qac += ae[c][d] * g.ev[a][d];
    out = std::min(out, edge_min<S>(v[a], v[c], s[a], s[c], quad[a], qac, quad[c], be[a], be[c], root[a],
                                    root[c]));
  };
  for (int e : edges)
    if (g.edges[e][0] == kmin || g.edges[e][1] == kmin) edge(e);
  for (int e : edges)
    if (g.edges[e][0] != kmin && g.edges[e][1] != kmin) edge(e);
  return out;
}

template <typename S>
Grid<S> make_grid(torch::Tensor a, torch::Tensor b, torch::Tensor grad, torch::Tensor base,
                  torch::Tensor spacing, torch::Tensor free_, torch::Tensor offsets, torch::Tensor edges,
                  torch::Tensor tris) {
  Grid<S> g;
  g.dim = free_.dim();
  TORCH_CHECK(g.dim == 2 || g.dim == 3, "the eikonal kernel needs a 2-D or 3-D grid");
  g.K = offsets.size(0);
  g.E = edges.size(0);
  g.NT = tris.numel() ? tris.size(0) : 0;
  TORCH_CHECK(g.K <= 8 && g.E <= 12 && g.NT <= 8, "the eikonal kernel's stencil is too large");
  g.N = 1;
  for (int d = 0; d < g.dim; ++d) {
    g.n[d] = free_.size(d);
    g.N *= g.n[d];
  }
  int64_t st = 1, pst = 1;
  for (int d = g.dim - 1; d >= 0; --d) {
    g.stride[d] = st;
    g.pstride[d] = pst;
    st *= g.n[d];
    pst *= g.n[d] + 4;
  }
  auto off = offsets.accessor<int64_t, 2>();
  for (int k = 0; k < g.K; ++k) {
    g.shift[k] = 0;
    for (int d = 0; d < g.dim; ++d) {
      g.off[k][d] = off[k][d];
      g.shift[k] += off[k][d] * g.pstride[d];
    }
  }
  auto ed = edges.accessor<int64_t, 2>();
  for (int e = 0; e < g.E; ++e) {
    g.edges[e][0] = ed[e][0];
    g.edges[e][1] = ed[e][1];
  }
  if (g.NT) {
    auto tr = tris.accessor<int64_t, 2>();
    for (int m = 0; m < g.NT; ++m)
      for (int k = 0; k < 3; ++k) {
        g.tris[m][k] = tr[m][k];
        g.sg[m][k] = S(g.off[tr[m][k]][k]);
        TORCH_CHECK(g.off[tr[m][k]][k] == (((m >> (2 - k)) & 1) ? -1 : 1),
                    "the eikonal kernel: the octant facets are ordered by their signs, + first");
      }
    TORCH_CHECK(g.K == 6 && g.E == 12 && g.NT == 8, "the eikonal kernel's 3-D stencil: 6 axis neighbours");
    for (int e = 0; e < g.E; ++e) {
      int found = 0;
      for (int m = 0; m < g.NT && found < 2; ++m) {
        bool has0 = false, has1 = false;
        for (int k = 0; k < 3; ++k) {
          has0 = has0 || g.tris[m][k] == g.edges[e][0];
          has1 = has1 || g.tris[m][k] == g.edges[e][1];
        }
        if (has0 && has1) g.edge_tris[e][found++] = m;
      }
      TORCH_CHECK(found == 2, "the eikonal kernel: an edge of the 3-D stencil bounds two octants");
    }
  }
  TORCH_CHECK(a.numel() == g.N * g.dim * g.dim && b.numel() == g.N * g.dim,
              "the eikonal kernel: bad metric sizes");
  g.a = a.data_ptr<S>();
  g.b = b.data_ptr<S>();
  g.factored = grad.numel() > 0;
  g.grad = g.factored ? grad.data_ptr<S>() : nullptr;
  g.base = g.factored ? base.data_ptr<S>() : nullptr;
  g.spacing = spacing.data_ptr<S>();
  for (int k = 0; k < g.K; ++k)
    for (int d = 0; d < g.dim; ++d) g.ev[k][d] = S(g.off[k][d]) * g.spacing[d];
  g.free_ = free_.data_ptr<bool>();
  return g;
}

// the nodes of plane a0 (the a0-th along axis 0 in the sweep's order) whose a1 (position along axis 1
// in the sweep's order) is in [lo, hi), active nodes only; the largest change (inf where a value
// became finite) goes into change
template <typename S>
void sweep_plane(const Grid<S>& g, S* t, std::atomic<uint8_t>* active, const int* sgn, int order,
                 double act, const std::vector<int>& edges, const std::vector<int>& tris, int64_t a0,
                 int64_t lo, int64_t hi, double& change, int64_t& updates) {
  const int64_t n0 = g.n[0], n1 = g.n[1], n2 = g.dim == 3 ? g.n[2] : 1;
  const double inf = std::numeric_limits<double>::infinity();
  const auto relaxed = std::memory_order_relaxed;
  const int64_t i0 = sgn[0] > 0 ? a0 : n0 - 1 - a0;
  for (int64_t a1 = lo; a1 < hi; ++a1) {
    const int64_t i1 = sgn[1] > 0 ? a1 : n1 - 1 - a1;
    for (int64_t a2 = 0; a2 < n2; ++a2) {
      const int64_t i2 = (g.dim == 2 || sgn[2] > 0) ? a2 : n2 - 1 - a2;
      int64_t i, p;
      if (g.dim == 2) {
        i = i0 * g.stride[0] + i1 * g.stride[1];
        p = (i0 + 2) * g.pstride[0] + (i1 + 2) * g.pstride[1];
      } else {
        i = i0 * g.stride[0] + i1 * g.stride[1] + i2 * g.stride[2];
        p = (i0 + 2) * g.pstride[0] + (i1 + 2) * g.pstride[1] + (i2 + 2) * g.pstride[2];
      }
      if (!active[p].load(relaxed) || !g.free_[i]) continue;
      active[p].store(0, relaxed);
      ++updates;
      const S old = t[p];
      // 2-D first order keeps min(T, update) (a monotone scheme: the old value bounds the facets
      // worth solving); with the octant facets (3-D), whose upwind test can drop a facet as its
      // values decrease, and at second order, the node takes the update (the map's fixed point)
      const bool keep = order == 1 && g.NT == 0;
      const S nw = update<S>(g, t, i, p, order, edges, tris, keep ? old : S(INFINITY));
      t[p] = nw;
      const bool f0 = std::isfinite(old), f1 = std::isfinite(nw);
      const double d = (f0 && f1) ? (double)std::abs(nw - old) : (f0 != f1 ? inf : 0.0);
      if (d > act) {  // the nodes that read this one are due for an update
        for (int k = 0; k < g.K; ++k) {
          active[p + g.shift[k]].store(1, relaxed);
          if (order == 2) active[p + 2 * g.shift[k]].store(1, relaxed);
        }
      }
      change = std::max(change, d);
    }
  }
}

// one sweep in the lexicographic ordering with signs sgn (axis 0 outermost), active nodes only;
// returns the largest change. With several threads, axis 1 is cut into `threads` chunks of
// consecutive positions (in the sweep's order), chunk c on thread c, and the threads go down axis 0
// as a pipeline: thread c starts plane j once thread c - 1 has finished plane j + 2. A node reads
// and wakes nodes at most 2 cells away, so no two threads ever touch the same plane of the same
// chunk at once and every node reads the same values whatever the timing (the result depends on
// the thread count, not on the scheduling): nodes of chunk c - 1 read chunk c's values of the
// previous sweep up to 2 planes behind (the serial order would read this sweep's)
template <typename S>
double sweep(const Grid<S>& g, S* t, std::atomic<uint8_t>* active, const int* sgn, int order, double act,
             const std::vector<int>& edges, const std::vector<int>& tris, int64_t& updates, int threads) {
  const int64_t n0 = g.n[0], n1 = g.n[1];
  if (threads <= 1) {
    double change = 0;
    for (int64_t a0 = 0; a0 < n0; ++a0)
      sweep_plane<S>(g, t, active, sgn, order, act, edges, tris, a0, 0, n1, change, updates);
    return change;
  }
  std::vector<std::atomic<int64_t>> done(threads);
  for (auto& d : done) d.store(0);
  std::vector<double> changes(threads, 0.0);
  std::vector<int64_t> counts(threads, 0);
  auto work = [&](int c) {
    const int64_t lo = n1 * c / threads, hi = n1 * (c + 1) / threads;
    for (int64_t a0 = 0; a0 < n0; ++a0) {
      if (c > 0) {
        const int64_t need = std::min(a0 + 3, n0);
        int spins = 0;
        while (done[c - 1].load(std::memory_order_acquire) < need)
          if (++spins > 64) std::this_thread::yield();
      }
      sweep_plane<S>(g, t, active, sgn, order, act, edges, tris, a0, lo, hi, changes[c], counts[c]);
      done[c].store(a0 + 1, std::memory_order_release);
    }
  };
  std::vector<std::thread> pool;
  for (int c = 1; c < threads; ++c) pool.emplace_back(work, c);
  work(0);
  for (auto& th : pool) th.join();
  double change = 0;
  for (int c = 0; c < threads; ++c) {
    change = std::max(change, changes[c]);
    updates += counts[c];
  }
  return change;
}

// rounds of the 2^D sweeps (every facet; a node is skipped where no value it reads has changed by
// more than act since its last update) until a round changes no value by more than tol
template <typename S>
std::tuple<int64_t, double, int64_t> rounds_impl(torch::Tensor t, const Grid<S>& g, int order, double tol,
                                                 int64_t max_rounds, double act, int64_t threads,
                                                 int64_t patience) {
  S* tp = t.data_ptr<S>();
  const int64_t total = t.numel();
  std::vector<int> all_edges, all_tris;
  for (int e = 0; e < g.E; ++e) all_edges.push_back(e);
  for (int m = 0; m < g.NT; ++m) all_tris.push_back(m);
  const int count = 1 << g.dim;
  // chunks of at least 8 positions along axis 1 (a node reaches 2 cells to each side)
  const int nthreads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, g.n[1] / 8));
  std::unique_ptr<std::atomic<uint8_t>[]> active(new std::atomic<uint8_t>[total]);
  for (int64_t k = 0; k < total; ++k) active[k].store(1, std::memory_order_relaxed);
  int64_t rounds = 0, updates = 0, flat = 0;
  double change = std::numeric_limits<double>::infinity(), lowest = change;
  while (rounds < max_rounds) {
    change = 0;
    for (int c = 0; c < count; ++c) {
      int sgn[3] = {1, 1, 1};
      for (int d = 0; d < g.dim; ++d) sgn[d] = (c >> d) & 1 ? -1 : 1;
      const double ch =
          sweep<S>(g, tp, active.get(), sgn, order, act, all_edges, all_tris, updates, nthreads);
      change = std::max(change, ch);
    }
    ++rounds;
    if (change <= tol) break;
    // stalled: `patience` rounds (with finite changes) without a new lowest change, the sweeps
    // cycle above tol (rounding where the update is ill-conditioned) and more will not settle
    if (std::isfinite(change) && change >= lowest) {
      if (++flat >= patience) break;
    } else {
      flat = 0;
    }
    lowest = std::min(lowest, change);
  }
  return std::make_tuple(rounds, change, updates);
}

template <typename S>
void jacobi_impl(torch::Tensor t, torch::Tensor out, const Grid<S>& g, int order) {
  const S* tp = t.data_ptr<S>();
  S* op = out.data_ptr<S>();
  std::vector<int> all_edges, all_tris;
  for (int e = 0; e < g.E; ++e) all_edges.push_back(e);
  for (int m = 0; m < g.NT; ++m) all_tris.push_back(m);
  const int64_t n2 = g.dim == 3 ? g.n[2] : 1;
  // every node reads t and writes out: the planes are independent (torch's intra-op threads)
  at::parallel_for(0, g.n[0], 1, [&](int64_t begin, int64_t end) {
    for (int64_t i0 = begin; i0 < end; ++i0)
      for (int64_t i1 = 0; i1 < g.n[1]; ++i1)
        for (int64_t i2 = 0; i2 < n2; ++i2) {
          const bool d3 = g.dim == 3;
          const int64_t i = i0 * g.stride[0] + i1 * g.stride[1] + (d3 ? i2 * g.stride[2] : 0);
          const int64_t p =
              (i0 + 2) * g.pstride[0] + (i1 + 2) * g.pstride[1] + (d3 ? (i2 + 2) * g.pstride[2] : 0);
          if (g.free_[i]) op[p] = update<S>(g, tp, i, p, order, all_edges, all_tris, S(INFINITY));
        }
  });
}

}  // namespace

std::tuple<int64_t, double, int64_t> rounds(torch::Tensor t, torch::Tensor a, torch::Tensor b,
                                            torch::Tensor grad, torch::Tensor base, torch::Tensor spacing,
                                            torch::Tensor free_, torch::Tensor offsets, torch::Tensor edges,
                                            torch::Tensor tris, int64_t order, double tol, int64_t max_rounds,
                                            double act, int64_t threads, int64_t patience) {
  std::tuple<int64_t, double, int64_t> res;
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "eikonal_rounds", [&] {
    auto g = make_grid<scalar_t>(a, b, grad, base, spacing, free_, offsets, edges, tris);
    res = rounds_impl<scalar_t>(t, g, (int)order, tol, max_rounds, act, threads, patience);
  });
  return res;
}

// Randers validity of contiguous [N, D, D] / [N, D] data, D = 2 or 3, by the formulas of
// finslerlib.math.validation.randers_validity (Sylvester's criterion on the lower triangle,
// |b|^2_{a^-1} = b^T adj(a) b / det(a)): writes ok [N] (uint8) and the drift |b|_{a^-1} [N]
// (NaN where a is not SPD or not finite), in a's dtype
template <typename S>
void validity_impl(const S* a, const S* b, uint8_t* ok, S* drift, int64_t n, int d) {
  const S nan = std::numeric_limits<S>::quiet_NaN();
  at::parallel_for(0, n, 4096, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const S* m = a + i * d * d;
      const S* v = b + i * d;
      bool finite = true;
      for (int k = 0; k < d * d; ++k) finite = finite && std::isfinite(m[k]);
      bool spd;
      S quad;
      if (d == 2) {
        S a00 = m[0], a10 = m[2], a11 = m[3];
        S det = a00 * a11 - a10 * a10;
        spd = finite && a00 > 0 && det > 0;
        S w0 = a11 * v[0] - a10 * v[1];
        S w1 = -a10 * v[0] + a00 * v[1];
        quad = (v[0] * w0 + v[1] * w1) / det;
      } else {
        S a00 = m[0], a10 = m[3], a11 = m[4], a20 = m[6], a21 = m[7], a22 = m[8];
        S c00 = a11 * a22 - a21 * a21, c10 = a20 * a21 - a10 * a22, c20 = a10 * a21 - a11 * a20;
        S c11 = a00 * a22 - a20 * a20, c21 = a10 * a20 - a00 * a21, c22 = a00 * a11 - a10 * a10;
        S det = a00 * c00 + a10 * c10 + a20 * c20;
        spd = finite && a00 > 0 && c22 > 0 && det > 0;
        S w0 = c00 * v[0] + c10 * v[1] + c20 * v[2];
        S w1 = c10 * v[0] + c11 * v[1] + c21 * v[2];
        S w2 = c20 * v[0] + c21 * v[1] + c22 * v[2];
        quad = (v[0] * w0 + v[1] * w1 + v[2] * w2) / det;
      }
      S dr = spd ? std::sqrt(std::max(quad, S(0))) : nan;
      if (spd && !(quad == quad)) dr = nan;  // a non-finite b
      drift[i] = dr;
      ok[i] = (spd && dr < S(1)) ? 1 : 0;
    }
  });
}

void validity(torch::Tensor a, torch::Tensor b, torch::Tensor ok, torch::Tensor drift) {
  const int64_t n = b.size(0);
  const int d = (int)b.size(1);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "eikonal_validity", [&] {
    validity_impl<scalar_t>(a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), ok.data_ptr<uint8_t>(),
                            drift.data_ptr<scalar_t>(), n, d);
  });
}

void jacobi(torch::Tensor t, torch::Tensor out, torch::Tensor a, torch::Tensor b, torch::Tensor grad,
            torch::Tensor base, torch::Tensor spacing, torch::Tensor free_, torch::Tensor offsets,
            torch::Tensor edges, torch::Tensor tris, int64_t order) {
  AT_DISPATCH_FLOATING_TYPES(t.scalar_type(), "eikonal_jacobi", [&] {
    auto g = make_grid<scalar_t>(a, b, grad, base, spacing, free_, offsets, edges, tris);
    jacobi_impl<scalar_t>(t, out, g, (int)order);
  });
}
"""

_MODULE_NAME = module_name("finslerlib_eikonal_", _SOURCE)

_STATE: dict[str, object] = {}


def load_kernel():
    """The compiled module (built on first use, then cached), or `None` where it cannot be built.

    The first failure warns once (`RuntimeWarning`, with the reason) and is remembered
    (`finslerlib.math.compiled.load_compiled`).
    """
    return load_compiled(
        _STATE,
        name=_MODULE_NAME,
        source=_SOURCE,
        functions=["rounds", "jacobi", "validity"],
        what="finslerlib.eikonal: the compiled sweep kernel",
        fallback="the torch sweeps (slower). Pass backend='torch' to silence this",
    )


def compiled_validity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    r"""`randers_validity(a, b)[0]` in one compiled pass, or `None` where it does not apply.

    It applies to contiguous float32/float64 CPU data of one shape `[..., D, D]` / `[..., D]`,
    D = 2 or 3 (a user metric's materialized grid data, where the elementwise torch formulas make
    some forty passes over the grid), with the same formulas: Sylvester's criterion on the lower
    triangle and $|b|^2_{a^{-1}} = b^\top \mathrm{adj}(a)\, b / \det a$.

    Args:
        a: Tensor, shape `[..., D, D]`.
        b: Tensor, shape `[..., D]`.

    Returns:
        bool Tensor `[...]`, or `None`.
    """
    d = b.shape[-1] if b.dim() else 0
    if (
        d not in (2, 3)
        or a.device.type != "cpu"
        or a.dtype not in (torch.float32, torch.float64)
        or b.dtype != a.dtype
        or a.shape != (*b.shape, d)
        or not (a.is_contiguous() and b.is_contiguous())
        or b.numel() == 0
    ):
        return None
    module = load_kernel()
    if module is None:
        return None
    ok = torch.empty(b.shape[:-1], dtype=torch.uint8)
    drift = torch.empty(b.shape[:-1], dtype=a.dtype)
    module.validity(a.reshape(-1, d, d), b.reshape(-1, d), ok.reshape(-1), drift.reshape(-1))
    return ok.bool()


def compiled_available() -> bool:
    """Whether the compiled kernel can be used (builds it on the first call)."""
    return load_kernel() is not None


class CompiledSweeper:
    """The compiled sweeps of one problem (CPU tensors): same interface as `Sweeper` for the solver.

    Args:
        module: the compiled module (`load_kernel()`).
        st: the stencil.
        a: Tensor `[*grid, D, D]`, b: Tensor `[*grid, D]`: the metric at the nodes (valid there).
        spacing: Tensor `[D]`, the grid steps.
        free: bool Tensor of the grid's shape, the nodes to update (not fixed, valid).
        base: Tensor of the grid's shape ($T_0$, factorization) or `None`.
        grad: Tensor `[*grid, D]` ($\\nabla T_0$) or `None`.
    """

    def __init__(self, module, st: Stencil, a, b, spacing, free: torch.Tensor, base, grad):
        self.module, self.shape = module, tuple(free.shape)
        dtype = b.dtype
        self.padded_shape = [n + 2 * _PAD for n in self.shape]
        empty = torch.empty(0, dtype=dtype)
        if base is not None:
            fin = torch.where(torch.isfinite(base), base, torch.zeros_like(base)).detach()
            base_pad = torch.zeros(self.padded_shape, dtype=dtype)
            base_pad[tuple(slice(_PAD, _PAD + m) for m in self.shape)] = fin
            grad_ = grad.detach().contiguous()
        else:
            base_pad, grad_ = empty, empty
        self.args = (
            a.detach().contiguous(),
            b.detach().contiguous(),
            grad_,
            base_pad.reshape(-1),
            spacing.detach().to(dtype).contiguous(),
            free.contiguous(),
            torch.tensor(st.offsets, dtype=torch.long),
            torch.tensor(st.edges, dtype=torch.long),
            torch.tensor(st.triangles, dtype=torch.long).reshape(-1, 3),
        )
        self.sweeps_per_round = 2 ** len(self.shape)
        # threads for the 3-D sweeps only: measured on this project's 2-core CPU (bench_eikonal.py,
        # quiet machine), two threads take 81^3 second order from 8.0 s to 5.8 s wall-clock, but
        # 1001^2 second order from 2.7 s to 3.8 s (a 2-D plane is too little work per hand-off)
        self.threads = torch.get_num_threads() if len(self.shape) >= 3 else 1

    def pad(self, t: torch.Tensor) -> torch.Tensor:
        """`t` (grid's shape) as the flat padded state (`inf` outside)."""
        out = torch.full(self.padded_shape, float("inf"), dtype=t.dtype)
        out[tuple(slice(_PAD, _PAD + m) for m in self.shape)] = t
        return out.reshape(-1)

    def unpad(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(self.padded_shape)[tuple(slice(_PAD, _PAD + m) for m in self.shape)].clone()

    def rounds(self, flat: torch.Tensor, order: int, tol: float, max_rounds: int) -> tuple[int, float]:
        """Rounds of the $2^D$ sweeps in place on `flat` until a round changes no value by more than
        `tol`, or `_PATIENCE` rounds pass without a new lowest change (stalled); returns
        `(rounds, change)` (`change`: the largest change of the last round)."""
        # a change below tol / 100 does not wake the nodes that read it: each input changes at most
        # once per sweep, so over a few dozen sweeps a skipped node lags by well under tol (the
        # scheme is 1-Lipschitz at first order, 5/3 at second); the solver's Jacobi check decides
        rounds, change, updates = self.module.rounds(
            flat,
            *self.args,
            int(order),
            float(tol),
            int(max_rounds),
            float(tol) / 100,
            self.threads,
            _PATIENCE,
        )
        self.updates = int(updates)
        self.stalled = rounds < max_rounds and change > tol
        return int(rounds), float(change)

    def step(self, t: torch.Tensor, order: int) -> torch.Tensor:
        """One Jacobi step $G(T)$ of the grid `t` (fixed and invalid nodes keep their values)."""
        flat = self.pad(t.detach())
        out = flat.clone()
        self.module.jacobi(flat, out, *self.args, int(order))
        return self.unpad(out)
