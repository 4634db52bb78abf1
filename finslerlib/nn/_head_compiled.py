r"""Fused CPU passes of the head's logits kernel (`finslerlib.nn._kernels`), compiled on first use.

The logits kernel works in the metric's factor coordinates, $d_{ij} = |m_j - s_i| + \sigma\,
(u_j - v_i)$ with $u = m w$, $v = s w$, from one Gram product per column block. Around that
product the torch path makes about five elementwise passes over the `[B, C]` block forward and
six backward, and some forty small torch calls per step; these C++ loops do the same work in one
pass each, row by row while the row is in cache, parallel over rows (`at::parallel_for`):

* `centre`: the prototypes' mean $c$ (accumulated in float64) and $|m_j - c|^2$ (differences, no
  cancellation), reading $m$ twice and writing nothing of its size;
* `prep`: the Gram product's left operand $[s - c;\, -w/2]$, $|s_i - c|^2 + 2 (s_i - c) \cdot c$
  and $v_i = s_i \cdot w$, one pass over the batch;
* `forward`: from the product $G = [s - c; -w/2]\, m^\top$, in place
  $\alpha_{ij} = \sqrt{\max(0, \text{col}_i + |m_j - c|^2 - 2 G_{ij})}$ and $u_j = -2 G_{Bj}$,
  and $d_{ij} = \text{scale}\, \alpha_{ij} + k\,(u_j - v_i)$ ($k = \sigma \cdot \text{scale}$),
  or $\text{scale}\,(\alpha_{ij} + |u_j - v_i|)$ for `"max"`;
* `backward`: $g = \text{grad} / \alpha$ (0 where that is not finite, as `nan_to_num`), its row
  and column sums, the row and column sums of grad (times $\operatorname{sign}(u_j - v_i)$ for
  `"max"`, with $\sum \text{grad}\, |u_j - v_i|$), in one pass; column sums are formed per
  block of 64 rows and added in a fixed order (the same result for any thread count).

`logits_forward` / `logits_backward` (the kernel of `unit_randers_logits`) and `head_forward` /
`head_backward` (the whole of `factor_head_logits`: projection, factor $L$ with its zero blocks
skipped, bounded drift, scale, the kernel) call these and the matmuls as ATen functions from C++,
mirroring the torch code of `finslerlib.nn._kernels` step by step, so that a training step makes a
few Python-level calls instead of some hundred. The backward forms the prototypes' gradient as
one product $g^\top s$ and one pass over its rows ($-k$, the drift's and the diagonal term).

float32 and float64, CPU; the loops are compiled for AVX-512, AVX2 and plain x86-64
(`target_clones`, picked at load time). Built with `torch.utils.cpp_extension.load_inline`
(`finslerlib.math.compiled.load_compiled`): where it cannot be built, one `RuntimeWarning` says
why and the kernel runs its torch path, which computes the same values.

This file is over 500 lines because it holds the C++ source as one string (the loops and the
ATen-level kernels it binds).
"""

from __future__ import annotations

import torch

from finslerlib.math.compiled import load_compiled, module_name

__all__ = ["MIN_ENTRIES", "use_compiled"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FL_CLONES
#endif
#define FL_INLINE inline __attribute__((always_inline))

constexpr int64_t W = 16;      // lanes of the row reductions (kept apart so that the loops vectorize)
constexpr int64_t ROWS = 64;   // rows per partial column sum in `backward` (fixed: deterministic sums)

template <typename T>
FL_INLINE T lanes_sum(const T* a) {
  T s = 0;
  for (int64_t k = 0; k < W; ++k) s += a[k];
  return s;
}

// ---------------------------------------------------------------- forward epilogue, one row
template <typename T, int Mode>  // Mode 1: scale a + k t; Mode 0: scale (a + |t|)
FL_INLINE void fwd_impl(const T* g, T* alpha, T* d, const T* __restrict y2, const T* __restrict u, T col,
                        T v, T sc, T k, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    T q = (col + y2[j]) + T(-2) * g[j];
    q = q < T(0) ? T(0) : q;  // NaN stays NaN (as clamp_min)
    const T a = std::sqrt(q);
    const T t = u[j] - v;
    alpha[j] = a;
    if constexpr (Mode == 0)
      d[j] = sc * (a + std::abs(t));
    else
      d[j] = sc * a + k * t;
  }
}

FL_CLONES void fwd_row(const float* g, float* alpha, float* d, const float* y2, const float* u, float col,
                       float v, float sc, float k, int64_t n, bool max_mode) {
  if (max_mode) fwd_impl<float, 0>(g, alpha, d, y2, u, col, v, sc, k, n);
  else fwd_impl<float, 1>(g, alpha, d, y2, u, col, v, sc, k, n);
}

FL_CLONES void fwd_row(const double* g, double* alpha, double* d, const double* y2, const double* u,
                       double col, double v, double sc, double k, int64_t n, bool max_mode) {
  if (max_mode) fwd_impl<double, 0>(g, alpha, d, y2, u, col, v, sc, k, n);
  else fwd_impl<double, 1>(g, alpha, d, y2, u, col, v, sc, k, n);
}

// ---------------------------------------------------------------- backward pass, one row
template <typename T, bool Max>
FL_INLINE void bwd_impl(const T* __restrict gr, const T* __restrict al, T* __restrict go,
                        const T* __restrict u, T v, int64_t n, T* __restrict colp, T* __restrict gcolp,
                        T* rows, T* grows, T* absp) {
  T ra[W], ga[W], aa[W];
  for (int64_t k = 0; k < W; ++k) ra[k] = ga[k] = aa[k] = 0;
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    for (int64_t k = 0; k < W; ++k) {
      T x = gr[j + k];
      T q = x / al[j + k];
      q = (q - q == T(0)) ? q : T(0);  // 0 where not finite (nan_to_num)
      go[j + k] = q;
      if constexpr (Max) {
        const T t = u[j + k] - v;
        x = (t > T(0) ? x : T(0)) - (t < T(0) ? x : T(0));  // sign(t) x, sign(NaN) = 0 (as torch)
        aa[k] += x * t;
      }
      ra[k] += x;
      ga[k] += q;
      colp[j + k] += x;
      gcolp[j + k] += q;
    }
  }
  for (; j < n; ++j) {
    T x = gr[j];
    T q = x / al[j];
    q = (q - q == T(0)) ? q : T(0);
    go[j] = q;
    if constexpr (Max) {
      const T t = u[j] - v;
      x = (t > T(0) ? x : T(0)) - (t < T(0) ? x : T(0));
      aa[0] += x * t;
    }
    ra[0] += x;
    ga[0] += q;
    colp[j] += x;
    gcolp[j] += q;
  }
  *rows += lanes_sum(ra);
  *grows += lanes_sum(ga);
  if constexpr (Max) *absp += lanes_sum(aa);
}

FL_CLONES void bwd_row(const float* gr, const float* al, float* go, const float* u, float v, int64_t n,
                       float* colp, float* gcolp, float* rows, float* grows, float* absp, bool max_mode) {
  if (max_mode) bwd_impl<float, true>(gr, al, go, u, v, n, colp, gcolp, rows, grows, absp);
  else bwd_impl<float, false>(gr, al, go, u, v, n, colp, gcolp, rows, grows, absp);
}

FL_CLONES void bwd_row(const double* gr, const double* al, double* go, const double* u, double v,
                       int64_t n, double* colp, double* gcolp, double* rows, double* grows, double* absp,
                       bool max_mode) {
  if (max_mode) bwd_impl<double, true>(gr, al, go, u, v, n, colp, gcolp, rows, grows, absp);
  else bwd_impl<double, false>(gr, al, go, u, v, n, colp, gcolp, rows, grows, absp);
}

void check_rows(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 2 && t.device().is_cpu() && (t.stride(1) == 1 || t.size(0) == 0 || t.size(1) <= 1),
              name, ": CPU [rows, cols] with contiguous rows");
}

void check_vec(const torch::Tensor& v, int64_t n, at::ScalarType dtype, const char* name) {
  TORCH_CHECK(v.dim() == 1 && v.numel() == n && v.scalar_type() == dtype && (n == 0 || v.stride(0) == 1),
              name, ": contiguous vector of length ", n);
}

template <typename T>
void forward_t(torch::Tensor& gram, torch::Tensor& col, torch::Tensor& y2, torch::Tensor& v,
               torch::Tensor& alpha, torch::Tensor& u, torch::Tensor& d, double scale, double k,
               bool max_mode) {
  const int64_t b = alpha.size(0), n = alpha.size(1);
  const T* pg = gram.data_ptr<T>();
  const int64_t lg = gram.stride(0);
  T* pu = u.data_ptr<T>();
  const T* urow = pg + b * lg;
  for (int64_t j = 0; j < n; ++j) pu[j] = T(-2) * urow[j];  // may be in place (u is gram's last row)
  const T* py2 = y2.data_ptr<T>();
  const T* pc = col.data_ptr<T>();
  const T* pv = v.data_ptr<T>();
  T* pa = alpha.data_ptr<T>();
  T* pd = d.data_ptr<T>();
  const int64_t la = alpha.stride(0), ld = d.stride(0);
  at::parallel_for(0, b, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      fwd_row(pg + i * lg, pa + i * la, pd + i * ld, py2, pu, pc[i], pv[i], T(scale), T(k), n, max_mode);
  });
}

template <typename T>
double backward_t(torch::Tensor& grad, torch::Tensor& alpha, torch::Tensor& out, torch::Tensor& u,
                  torch::Tensor& v, torch::Tensor& rows, torch::Tensor& grows, torch::Tensor& gcols,
                  bool max_mode, bool negate_cols, bool first) {
  const int64_t b = alpha.size(0), n = alpha.size(1);
  const int64_t chunks = (b + ROWS - 1) / ROWS;
  // per chunk: partial column sums of the two kinds, and the chunk's |t| part
  std::vector<T> colp(static_cast<size_t>(2 * chunks * n), T(0)), absp(static_cast<size_t>(chunks), T(0));
  const T* pgr = grad.data_ptr<T>();
  const T* pal = alpha.data_ptr<T>();
  T* po = out.data_ptr<T>();
  const T* pu = u.data_ptr<T>();
  const T* pv = v.data_ptr<T>();
  T* pr = rows.data_ptr<T>();
  T* pgrw = grows.data_ptr<T>();
  const int64_t lgr = grad.stride(0), lal = alpha.stride(0), lo_ = out.stride(0);
  if (first) {
    for (int64_t i = 0; i < b; ++i) pr[i] = pgrw[i] = T(0);
  }
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* cp = colp.data() + 2 * c * n;
      for (int64_t i = c * ROWS; i < std::min(b, (c + 1) * ROWS); ++i)
        bwd_row(pgr + i * lgr, pal + i * lal, po + i * lo_, pu, max_mode ? pv[i] : T(0), n, cp, cp + n,
                pr + i, pgrw + i, &absp[c], max_mode);
    }
  });
  T* pcols = po + b * lo_;  // the block's last row
  T* pgc = gcols.data_ptr<T>();
  const T sgn = negate_cols ? T(-1) : T(1);
  for (int64_t j = 0; j < n; ++j) {
    T s = 0, gs = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      s += colp[2 * c * n + j];
      gs += colp[(2 * c + 1) * n + j];
    }
    pcols[j] = sgn * s;
    pgc[j] = gs;
  }
  double total = 0;
  for (int64_t c = 0; c < chunks; ++c) total += absp[c];
  return total;
}

// ---------------------------------------------------------------- per-point passes, one row
template <typename T>
FL_INLINE void acc_impl(T* __restrict acc, const T* __restrict row, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
}

template <typename T>
FL_INLINE T sqdiff_impl(const T* __restrict row, const T* __restrict c, int64_t n) {
  T acc[W];
  for (int64_t k = 0; k < W; ++k) acc[k] = 0;
  int64_t j = 0;
  for (; j + W <= n; j += W)
    for (int64_t k = 0; k < W; ++k) {
      const T e = row[j + k] - c[j + k];
      acc[k] += e * e;
    }
  for (; j < n; ++j) {
    const T e = row[j] - c[j];
    acc[0] += e * e;
  }
  return lanes_sum(acc);
}

template <typename T>
FL_INLINE void prep_impl(const T* __restrict row, const T* __restrict c, const T* __restrict w,
                         T* __restrict out, int64_t n, T* col, T* v) {
  T sq[W], cr[W], vw[W];
  for (int64_t k = 0; k < W; ++k) sq[k] = cr[k] = vw[k] = 0;
  int64_t j = 0;
  for (; j + W <= n; j += W)
    for (int64_t k = 0; k < W; ++k) {
      const T x = row[j + k], e = x - c[j + k];
      out[j + k] = e;
      sq[k] += e * e;
      cr[k] += e * c[j + k];
      vw[k] += x * w[j + k];
    }
  for (; j < n; ++j) {
    const T x = row[j], e = x - c[j];
    out[j] = e;
    sq[0] += e * e;
    cr[0] += e * c[j];
    vw[0] += x * w[j];
  }
  *col = lanes_sum(sq) + T(2) * lanes_sum(cr);
  *v = lanes_sum(vw);
}

FL_CLONES void acc_row(float* acc, const float* row, int64_t n) { acc_impl<float>(acc, row, n); }
FL_CLONES void acc_row(double* acc, const double* row, int64_t n) { acc_impl<double>(acc, row, n); }
FL_CLONES float sqdiff_row(const float* row, const float* c, int64_t n) {
  return sqdiff_impl<float>(row, c, n);
}
FL_CLONES double sqdiff_row(const double* row, const double* c, int64_t n) {
  return sqdiff_impl<double>(row, c, n);
}
FL_CLONES void prep_row(const float* row, const float* c, const float* w, float* out, int64_t n, float* col,
                        float* v) {
  prep_impl<float>(row, c, w, out, n, col, v);
}
FL_CLONES void prep_row(const double* row, const double* c, const double* w, double* out, int64_t n,
                        double* col, double* v) {
  prep_impl<double>(row, c, w, out, n, col, v);
}

template <typename T>
std::tuple<torch::Tensor, torch::Tensor> centre_t(const torch::Tensor& m) {
  // c: the mean (sums of 256 rows in T, added in float64; c only needs to be near the points: the
  // same rounded c enters every term), then |m_j - c|^2
  const int64_t count = m.size(0), dim = m.size(1);
  auto c = torch::zeros({dim}, m.options());
  auto y2 = torch::empty({count}, m.options());
  if (count == 0) return std::make_tuple(c, y2);
  const T* pm = m.data_ptr<T>();
  const int64_t chunk = 256, chunks = (count + chunk - 1) / chunk;
  std::vector<T> part(static_cast<size_t>(chunks * dim), T(0));
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t q = c0; q < c1; ++q)
      for (int64_t i = q * chunk; i < std::min(count, (q + 1) * chunk); ++i)
        acc_row(part.data() + q * dim, pm + i * dim, dim);
  });
  T* pc = c.data_ptr<T>();
  for (int64_t j = 0; j < dim; ++j) {
    double s = 0.0;
    for (int64_t q = 0; q < chunks; ++q) s += static_cast<double>(part[q * dim + j]);
    pc[j] = static_cast<T>(s / static_cast<double>(count));
  }
  T* py = y2.data_ptr<T>();
  at::parallel_for(0, count, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) py[i] = sqdiff_row(pm + i * dim, pc, dim);
  });
  return std::make_tuple(c, y2);
}

template <typename T>
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> prep_t(const torch::Tensor& s, const torch::Tensor& c,
                                                               const torch::Tensor& w) {
  const int64_t b = s.size(0), dim = s.size(1);
  auto left = torch::empty({b + 1, dim}, s.options());
  auto col = torch::empty({b}, s.options());
  auto v = torch::empty({b}, s.options());
  const T* ps = s.data_ptr<T>();
  const T* pc = c.data_ptr<T>();
  const T* pw = w.data_ptr<T>();
  T* pl = left.data_ptr<T>();
  T* pcol = col.data_ptr<T>();
  T* pv = v.data_ptr<T>();
  at::parallel_for(0, b, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) prep_row(ps + i * dim, pc, pw, pl + i * dim, dim, pcol + i, pv + i);
  });
  T* last = pl + b * dim;
  for (int64_t j = 0; j < dim; ++j) last[j] = T(-0.5) * pw[j];
  return std::make_tuple(left, col, v);
}

template <typename T>
FL_INLINE void gradm_impl(T* __restrict o, const T* __restrict mr, const T* __restrict w, T a, T bc, T cm,
                          int64_t dim) {
  for (int64_t r = 0; r < dim; ++r) o[r] = a * o[r] + bc * w[r] + cm * mr[r];
}

FL_CLONES void gradm_row(float* o, const float* mr, const float* w, float a, float bc, float cm,
                         int64_t dim) {
  gradm_impl<float>(o, mr, w, a, bc, cm, dim);
}

FL_CLONES void gradm_row(double* o, const double* mr, const double* w, double a, double bc, double cm,
                         int64_t dim) {
  gradm_impl<double>(o, mr, w, a, bc, cm, dim);
}

template <typename T>
void rows_update(torch::Tensor& out, const torch::Tensor& m, const T* cols, const torch::Tensor& gc,
                 const torch::Tensor& w, double a, double kb, double kc) {
  // out_j <- a out_j + kb cols_j w + kc gc_j m_j, row by row (the prototypes' gradient: a = -k,
  // kb = kc = k; the features': rows and g's row sums, a = kb = -k, kc = k)
  const int64_t n = out.size(0), dim = out.size(1), lo = out.stride(0), lm = m.stride(0);
  T* po = out.data_ptr<T>();
  const T* pm = m.data_ptr<T>();
  const T* pg = gc.data_ptr<T>();
  const T* pw = w.data_ptr<T>();
  at::parallel_for(0, n, 16, [&](int64_t lo_, int64_t hi) {
    for (int64_t j = lo_; j < hi; ++j)
      gradm_row(po + j * lo, pm + j * lm, pw, T(a), T(kb) * cols[j], T(kc) * pg[j], dim);
  });
}

void rows_update(torch::Tensor& out, const torch::Tensor& m, const torch::Tensor& cols,
                 const torch::Tensor& gc, const torch::Tensor& w, double a, double kb, double kc) {
  if (out.scalar_type() == at::kFloat)
    rows_update<float>(out, m, cols.data_ptr<float>(), gc, w, a, kb, kc);
  else
    rows_update<double>(out, m, cols.data_ptr<double>(), gc, w, a, kb, kc);
}

}  // namespace

void forward(torch::Tensor gram, torch::Tensor col, torch::Tensor y2, torch::Tensor v, torch::Tensor alpha,
             torch::Tensor u, torch::Tensor d, double scale, double k, bool max_mode) {
  // gram [B + 1, n] (rows < B: (s_i - c) . m_j, row B: -w/2 . m_j); writes alpha [B, n] (may be gram's
  // first B rows), u [n] (may be gram's last row) and d [B, n]
  check_rows(gram, "gram"); check_rows(alpha, "alpha"); check_rows(d, "d");
  const int64_t b = alpha.size(0), n = alpha.size(1);
  const auto dt = gram.scalar_type();
  TORCH_CHECK(gram.size(0) == b + 1 && gram.size(1) == n && d.size(0) == b && d.size(1) == n, "shapes");
  TORCH_CHECK(alpha.scalar_type() == dt && d.scalar_type() == dt, "one dtype");
  check_vec(col, b, dt, "col"); check_vec(v, b, dt, "v");
  check_vec(y2, n, dt, "y2"); check_vec(u, n, dt, "u");
  if (dt == at::kFloat) forward_t<float>(gram, col, y2, v, alpha, u, d, scale, k, max_mode);
  else if (dt == at::kDouble) forward_t<double>(gram, col, y2, v, alpha, u, d, scale, k, max_mode);
  else TORCH_CHECK(false, "float32 or float64");
}

double backward(torch::Tensor grad, torch::Tensor alpha, torch::Tensor out, torch::Tensor u, torch::Tensor v,
                torch::Tensor rows, torch::Tensor grows, torch::Tensor gcols, bool max_mode, bool negate_cols,
                bool first) {
  // out [B + 1, n]: rows < B get g = grad / alpha, row B the column sums of grad (signed); rows, grows
  // [B] get (or, first = false, add) the row sums; gcols [n] the column sums of g; returns sum grad |t|
  check_rows(grad, "grad"); check_rows(alpha, "alpha"); check_rows(out, "out");
  const int64_t b = alpha.size(0), n = alpha.size(1);
  const auto dt = alpha.scalar_type();
  TORCH_CHECK(grad.size(0) == b && grad.size(1) == n && out.size(0) == b + 1 && out.size(1) == n, "shapes");
  TORCH_CHECK(grad.scalar_type() == dt && out.scalar_type() == dt, "one dtype");
  check_vec(u, n, dt, "u"); check_vec(v, b, dt, "v"); check_vec(rows, b, dt, "rows");
  check_vec(grows, b, dt, "grows"); check_vec(gcols, n, dt, "gcols");
  if (dt == at::kFloat)
    return backward_t<float>(grad, alpha, out, u, v, rows, grows, gcols, max_mode, negate_cols, first);
  TORCH_CHECK(dt == at::kDouble, "float32 or float64");
  return backward_t<double>(grad, alpha, out, u, v, rows, grows, gcols, max_mode, negate_cols, first);
}

std::tuple<torch::Tensor, torch::Tensor> centre(torch::Tensor m) {
  TORCH_CHECK(m.dim() == 2 && m.device().is_cpu(), "m: CPU [C, R]");
  auto mc = m.contiguous();
  if (mc.scalar_type() == at::kFloat) return centre_t<float>(mc);
  TORCH_CHECK(mc.scalar_type() == at::kDouble, "float32 or float64");
  return centre_t<double>(mc);
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> prep(torch::Tensor s, torch::Tensor c,
                                                             torch::Tensor w) {
  TORCH_CHECK(s.dim() == 2 && s.device().is_cpu(), "s: CPU [B, R]");
  auto sc = s.contiguous();
  const auto dt = sc.scalar_type();
  auto cc = c.contiguous();
  auto wc = w.contiguous();
  check_vec(cc, sc.size(1), dt, "c"); check_vec(wc, sc.size(1), dt, "w");
  if (dt == at::kFloat) return prep_t<float>(sc, cc, wc);
  TORCH_CHECK(dt == at::kDouble, "float32 or float64");
  return prep_t<double>(sc, cc, wc);
}
// ---------------------------------------------------------------- whole kernels (ATen calls from C++)
namespace {

using torch::Tensor;
using Opt = c10::optional<Tensor>;

Tensor block_view(const Tensor& buf, int64_t rows, int64_t cols) {
  return buf.narrow(0, 0, rows * cols).view({rows, cols});
}

// the backward's [B + 1, chunk] block is scratch (nothing of it leaves the call): one buffer per
// thread is kept between steps (up to SCRATCH_BYTES), so that a step does not fault in fresh pages
constexpr int64_t SCRATCH_BYTES = int64_t(32) << 20;

Tensor scratch(int64_t numel, const at::TensorOptions& options) {
  thread_local Tensor cache;
  const int64_t bytes = numel * static_cast<int64_t>(options.dtype().itemsize());
  if (bytes > SCRATCH_BYTES) return at::empty({numel}, options);
  const bool fits = cache.defined() && cache.dtype() == options.dtype() && cache.numel() >= numel;
  if (!fits || cache.use_count() > 1 || cache.storage().use_count() > 1) cache = at::empty({numel}, options);
  return cache.narrow(0, 0, numel);
}

std::vector<std::pair<int64_t, int64_t>> column_blocks(int64_t classes, int64_t chunk) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t j0 = 0; j0 < std::max<int64_t>(classes, 1); j0 += chunk)
    out.emplace_back(j0, std::min(j0 + chunk, classes));
  return out;
}

std::vector<std::pair<int64_t, int64_t>> tri_splits(int64_t dim, int64_t count) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t k = 0; k < count; ++k) out.emplace_back(dim * k / count, dim * (k + 1) / count);
  return out;
}

// L = tril(raw, -1) + diag(softplus(diag raw) + eps); with column blocks, row block i is copied up to
// its diagonal block only and zeroed right of it (one write of each entry)
Tensor lower_factor(const Tensor& raw, double eps, int64_t count) {
  Tensor chol;
  if (count <= 1) {
    chol = raw.clone(at::MemoryFormat::Contiguous).tril_(-1);
  } else {
    const int64_t dim = raw.size(0);
    chol = at::empty({dim, dim}, raw.options());
    for (auto [i0, i1] : tri_splits(dim, count)) {
      auto rows = chol.narrow(0, i0, i1 - i0);
      rows.narrow(1, 0, i1).copy_(raw.narrow(0, i0, i1 - i0).narrow(1, 0, i1));
      rows.narrow(1, i0, i1 - i0).tril_(-1);
      if (i1 < dim) rows.narrow(1, i1, dim - i1).zero_();
    }
  }
  chol.diagonal().copy_(at::softplus(raw.diagonal()).add_(eps));
  return chol;
}

Tensor times_lower(const Tensor& z, const Tensor& chol, int64_t count) {  // z @ chol, chol lower
  if (count <= 1) return at::mm(z, chol);
  auto out = at::empty({z.size(0), chol.size(1)}, z.options());
  for (auto [j0, j1] : tri_splits(chol.size(0), count)) {
    auto o = out.narrow(1, j0, j1 - j0);
    auto rows = chol.narrow(0, j0, chol.size(0) - j0).narrow(1, j0, j1 - j0);
    at::mm_out(o, z.narrow(1, j0, z.size(1) - j0), rows);
  }
  return out;
}

Tensor times_upper(const Tensor& g, const Tensor& chol, int64_t count) {  // g @ chol^T
  if (count <= 1) return at::mm(g, chol.t());
  auto out = at::empty({g.size(0), chol.size(0)}, g.options());
  for (auto [i0, i1] : tri_splits(chol.size(0), count)) {
    auto o = out.narrow(1, i0, i1 - i0);
    at::mm_out(o, g.narrow(1, 0, i1), chol.narrow(0, i0, i1 - i0).narrow(1, 0, i1).t());
  }
  return out;
}

Tensor lower_outer(const Tensor& z, const Tensor& g, int64_t count) {  // tril(z^T g)
  if (count <= 1) return at::mm(z.t(), g).tril_();
  auto out = at::empty({z.size(1), g.size(1)}, z.options());
  for (auto [i0, i1] : tri_splits(z.size(1), count)) {
    auto o = out.narrow(0, i0, i1 - i0).narrow(1, 0, i1);
    at::mm_out(o, z.narrow(1, i0, i1 - i0).t(), g.narrow(1, 0, i1));
    out.narrow(0, i0, i1 - i0).narrow(1, i0, i1 - i0).tril_();  // the diagonal block
    if (i1 < out.size(1)) out.narrow(0, i0, i1 - i0).narrow(1, i1, out.size(1) - i1).zero_();
  }
  return out;
}

// d and the saved [left, col (B x 1), y2, alpha, u, v]
std::vector<Tensor> logits_fwd(const Tensor& s_in, const Tensor& m_in, const Tensor& w, double factor,
                               int64_t sign, const Opt& labels, double margin, int64_t chunk) {
  auto s = s_in.contiguous();
  auto m = m_in.contiguous();
  auto [c, y2] = centre(m);
  auto [left, col, v] = prep(s, c, w);
  const int64_t b = s.size(0), classes = m.size(0);
  auto blocks = column_blocks(classes, chunk);
  auto buf = at::empty({(b + 1) * (blocks[0].second - blocks[0].first)}, s.options());
  auto d = at::empty({b, classes}, s.options());
  Tensor alpha, u;
  if (blocks.size() == 1) {
    auto gram = block_view(buf, b + 1, classes);
    alpha = gram.narrow(0, 0, b);
    u = gram.select(0, b);
  } else {
    alpha = at::empty({b, classes}, s.options());
    u = at::empty({classes}, s.options());
  }
  for (auto [j0, j1] : blocks) {
    const int64_t n = j1 - j0;
    auto gram = block_view(buf, b + 1, n);
    at::mm_out(gram, left, m.narrow(0, j0, n).t());
    forward(gram, col, y2.narrow(0, j0, n), v, alpha.narrow(1, j0, n), u.narrow(0, j0, n), d.narrow(1, j0, n),
            factor, sign * factor, sign == 0);
  }
  if (labels.has_value() && margin != 0.0 && b > 0)
    d.scatter_add_(1, labels->unsqueeze(1), at::full({b, 1}, margin * factor, d.options()));
  return {d, left, col.unsqueeze(1), y2, alpha, u, v};
}

// [grad_s, grad_m, grad_w, grad_scale] (undefined where not needed)
std::vector<Tensor> logits_bwd(const Tensor& grad_in, const Tensor& s_in, const Tensor& m_in,
                               const Tensor& w_in, const Opt& scale, const Tensor& left, const Tensor& col,
                               const Tensor& y2, const Tensor& alpha, const Tensor& u, const Tensor& v,
                               const Opt& labels,
                               int64_t sign, double margin, bool need_s, bool need_m, bool need_w,
                               bool need_scale, int64_t chunk) {
  const int64_t b = alpha.size(0), classes = alpha.size(1);
  const double k = scale.has_value() ? scale->item<double>() : 1.0;
  auto grad = (grad_in.stride(1) == 1 || grad_in.numel() == 0) ? grad_in : grad_in.contiguous();
  auto s = s_in.contiguous();
  auto m = m_in.contiguous();
  auto w = w_in.contiguous();
  auto rows = at::empty({b}, s.options());
  auto g_rows = at::empty({b}, s.options());
  double abs_part = 0.0;
  auto blocks = column_blocks(classes, chunk);
  auto buf = scratch((b + 1) * (blocks[0].second - blocks[0].first), s.options());
  Tensor g_cols, cols, grad_m, gm;
  const bool multi = blocks.size() > 1;
  if (multi) {
    g_cols = at::empty({classes}, s.options());
    cols = at::empty({classes}, s.options());
    if (need_m) grad_m = at::empty_like(m);
  }
  for (auto [j0, j1] : blocks) {
    const int64_t n = j1 - j0;
    auto tmp = block_view(buf, b + 1, n);
    auto gc = multi ? g_cols.narrow(0, j0, n) : at::empty({n}, s.options());
    abs_part += backward(grad.narrow(1, j0, n), alpha.narrow(1, j0, n), tmp, u.narrow(0, j0, n), v, rows,
                         g_rows, gc, sign == 0, sign == -1, j0 == 0);
    auto mj = m.narrow(0, j0, n);
    if (need_m) {
      // sum_i g_ij (m_j - s_i) + cols_j w, times k: one product, then one pass over the rows
      auto gmj = multi ? grad_m.narrow(0, j0, n) : at::empty({n, s.size(1)}, s.options());
      at::mm_out(gmj, tmp.narrow(0, 0, b).t(), s);
      rows_update(gmj, mj, tmp.select(0, b), gc, w, -k, k, k);
      if (!multi) grad_m = gmj;
    }
    if (gm.defined())
      gm.addmm_(tmp, mj);
    else
      gm = at::mm(tmp, mj);
    if (multi) {
      cols.narrow(0, j0, n).copy_(tmp.select(0, b));
    } else {
      g_cols = gc;
      cols = tmp.select(0, b);
    }
  }
  if (sign == -1) rows.neg_();
  Tensor grad_s, grad_w, grad_scale;
  if (need_w) grad_w = at::addmv(gm.select(0, b), s.t(), rows, 1, -1).mul_(k);
  if (need_scale) {
    // sum grad * alpha from the small results (no pass over [B, C])
    auto cross = at::dot(left.narrow(0, 0, b).reshape(-1), gm.narrow(0, 0, b).reshape(-1));
    auto total = at::dot(col.squeeze(1), g_rows) + at::dot(y2, g_cols) - 2.0 * cross;
    total = sign == 0 ? total + abs_part : total + (at::dot(cols, u) - at::dot(rows, v));
    if (labels.has_value() && margin != 0.0)
      total = total + margin * grad.gather(1, labels->unsqueeze(1)).sum();
    grad_scale = total.reshape(scale->sizes());
  }
  if (need_s) {  // k (sum_j g_ij (s_i - m_j) - rows_i w) (the centre cancels), in place in gm
    grad_s = gm.narrow(0, 0, b);
    rows_update(grad_s, s, rows, g_rows, w, -k, -k, k);
  }
  return {grad_s, grad_m, grad_w, grad_scale};
}

}  // namespace

std::vector<Tensor> logits_forward(Tensor s, Tensor m, Tensor w, Opt scale, int64_t sign, Opt labels,
                                   double margin, int64_t chunk) {
  return logits_fwd(s, m, w, scale.has_value() ? scale->item<double>() : 1.0, sign, labels, margin, chunk);
}

std::vector<Tensor> logits_backward(Tensor grad, Tensor s, Tensor m, Tensor w, Opt scale, Tensor left,
                                    Tensor col, Tensor y2, Tensor alpha, Tensor u, Tensor v, Opt labels,
                                    int64_t sign, double margin, std::vector<bool> needs, int64_t chunk) {
  return logits_bwd(grad, s, m, w, scale, left, col, y2, alpha, u, v, labels, sign, margin, needs[0],
                    needs[1], needs[2], needs[3], chunk);
}

// d, then the saved [z, chol, f, slope, s, w, scale, left, col, y2, alpha, u, v] (scale undefined without
// log_scale)
std::vector<Tensor> head_forward(Tensor x, Opt proj, Tensor raw, Tensor drift, Tensor m, Opt log_scale,
                                 double eps, double max_drift, double scale_sign, int64_t sign, Opt labels,
                                 double margin, int64_t chunk, int64_t tri) {
  auto z = proj.has_value() ? at::mm(x, proj->t()) : x;
  auto chol = lower_factor(raw, eps, tri);
  auto s = times_lower(z, chol, tri);
  // the bounded drift w = max_drift f(r) u, f(r) = tanh(r) / r, and f'(r) / r (Taylor below 1e-4)
  const double r = at::linalg_vector_norm(drift).item<double>();
  double f, slope;
  if (r < 1e-4) {
    f = 1.0 - r * r / 3.0;
    slope = -2.0 / 3.0;
  } else {
    const double th = std::tanh(r);
    f = th / r;
    slope = (r * (1.0 - th * th) - th) / (r * r * r);
  }
  auto f_t = at::scalar_tensor(f, drift.options());
  auto slope_t = at::scalar_tensor(slope, drift.options());
  auto w = drift * (f * max_drift);
  Tensor scale;
  double factor = 1.0;
  if (log_scale.has_value()) {
    scale = log_scale->exp().mul_(scale_sign);
    factor = scale.item<double>();
  }
  auto out = logits_fwd(s, m, w, factor, sign, labels, margin, chunk);
  return {out[0], z, chol, f_t, slope_t, s, w, scale, out[1], out[2], out[3], out[4], out[5], out[6]};
}

// [grad_x, grad_proj, grad_raw, grad_drift, grad_m, grad_log_scale]
std::vector<Tensor> head_backward(Tensor grad, Tensor x, Opt proj, Tensor raw, Tensor drift, Tensor z,
                                  Tensor chol, Tensor f, Tensor slope, Tensor s, Tensor m, Tensor w,
                                  Opt scale, Tensor left, Tensor col, Tensor y2, Tensor alpha, Tensor u,
                                  Tensor v, Opt labels, double max_drift, int64_t sign, double margin,
                                  std::vector<bool> needs, int64_t chunk, int64_t tri) {
  const bool need_x = needs[0], need_proj = needs[1], need_raw = needs[2], need_drift = needs[3];
  const bool need_m = needs[4], need_scale = needs[5];
  auto g = logits_bwd(grad, s, m, w, scale, left, col, y2, alpha, u, v, labels, sign, margin,
                      need_x || need_proj || need_raw, need_m, need_drift, need_scale, chunk);
  Tensor grad_x, grad_proj, grad_raw, grad_drift, grad_ls;
  if (need_scale) grad_ls = g[3].mul_(*scale);  // d scale / d log_scale = scale
  if (need_drift)  // grad_u = max_drift (f grad_w + f'(r)/r (u . grad_w) u)
    grad_drift = at::addcmul(g[2] * f, drift, at::dot(drift, g[2]) * slope).mul_(max_drift);
  if (need_raw) {
    grad_raw = lower_outer(z, g[0], tri);
    auto d = raw.diagonal();
    grad_raw.diagonal().mul_(at::where(d > 20.0, at::ones_like(d), at::sigmoid(d)));
  }
  if (need_x || need_proj) {
    auto grad_z = times_upper(g[0], chol, tri);
    if (!proj.has_value()) {
      grad_x = grad_z;
    } else {
      if (need_x) grad_x = at::mm(grad_z, *proj);
      if (need_proj) grad_proj = at::mm(grad_z.t(), x);
    }
  }
  return {grad_x, grad_proj, grad_raw, grad_drift, g[1], grad_ls};
}
"""

_NAME = module_name("finslerlib_head_", _SOURCE)
_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")  # the vectorized loops' targets
_STATE: dict[str, object] = {}

MIN_ENTRIES = 1 << 14
"""Logits with fewer `[B, C]` entries keep the torch path (small workloads never wait for the
first build)."""


def load_head_kernel():
    """The compiled head module (built on first use, then cached), or `None` where it cannot be built."""
    return load_compiled(
        _STATE,
        name=_NAME,
        source=_SOURCE,
        functions=[
            "forward", "backward", "centre", "prep",
            "logits_forward", "logits_backward", "head_forward", "head_backward",
        ],
        what="finslerlib.nn: the compiled head kernel",
        fallback="the torch head kernel (slower)",
        extra_cflags=["-O3", "-fno-math-errno", "-fno-trapping-math"],
        machines=_MACHINES,
    )


def use_compiled(s: torch.Tensor, entries: int):
    """The compiled module where it applies, else `None`.

    It applies to float32 and float64 CPU tensors with at least `MIN_ENTRIES` logits, outside
    traced code (`torch.compile`, `torch.export`).

    Args:
        s: Tensor, the features (their dtype and device decide).
        entries: number of logits, `B * C`.

    Returns:
        The module (functions `centre`, `prep`, `forward`, `backward`) or `None`.

    Example:
        >>> use_compiled(torch.zeros(2, 2, dtype=torch.float16), 1 << 20) is None
        True
    """
    if s.device.type != "cpu" or s.dtype not in (torch.float32, torch.float64) or entries < MIN_ENTRIES:
        return None
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    return load_head_kernel()
