r"""Fused CPU epilogues of the Gram-form `cdist` kernels (float32), compiled on first use.

After the one matmul of `finslerlib.math.pairwise.pairwise_randers` or `finslerlib.math.funk.cdist`,
the torch epilogue makes four to eight passes over each `[B, M]` row block (square root, drift
terms, logarithm, the row extremes the error model needs). These C++ loops make one, row by row
while the row is in cache, parallel over rows (`at::parallel_for`):

* `randers`: $F_{ij} = \sqrt{q_{ij}} + (b^y_j - b^x_i)$ in place, with the row minima of $q$ and $F$;
* `funk`: with $z$ the matmul's entries, $r = \sqrt{z^2 - Q_{y_j}}$ and
  $d = \log(z + r) + l^x_i + l^y_j$ in place (and $r$ kept for the backward), with the row
  extremes of $z$ and the row minima of $d$;
* `funk_points`: the per-point data of `funk` in one pass over the points, $Q = R^2 - |x|^2$ in
  float64 and the matmul operand rows $[x\,Q^{-1/2}, R^2 Q^{-1/2}]$ (products in float64,
  rounded once) or $[-y, 1]$;
* `funk_grad`: the backward of `funk`'s cdist in one pass over a row block: the weights
  $A_{ij} = r_i\,g_{ij} / s_{ij}$ of its two matmuls ($r_i = (R^2 - |x_i|^2)^{-1/2}$ from the
  points in float64; $g$ the upstream gradient, dense or broadcast along rows; $s$ the kept root;
  0 at the entries the forward flagged), the sums $\sum_j A_{ij} t_{ij}$ and
  $\sum_i A_{ij} / t_{ij}$ with $t = e^{\mp d}$ (in float64; the column sums per chunk of 64 rows,
  added in chunk order: the same whatever the threads) and $x_i \sum_j A_{ij} t_{ij}$.

`funk` and `funk_grad` hand their chunks of rows to the threads one at a time (an atomic counter),
so that on a busy machine a held-up thread does not keep the others waiting.

The exponential is Cephes' `expf` (a degree-6 polynomial on $|r| \le \log(2)/2$, within one unit
in the last place).

The logarithm is Cephes' `logf` (a degree-9 polynomial on $[\sqrt{1/2}, \sqrt 2)$, at most about
one unit in the last place, the same as torch's), written so that the compiler vectorizes it; the
loops are compiled for AVX-512, AVX2 and plain x86-64 (`target_clones`, picked at load time).
Negative or NaN arguments give NaN as in torch (the error model flags those rows).

The module is built with `torch.utils.cpp_extension.load_inline` (a C++ compiler and `ninja`
needed) and cached in torch's extension directory under a name carrying a hash of the source, so
that builds of different versions never overwrite each other. Where it cannot be built, one
`RuntimeWarning` says why and the callers run their torch epilogues. Traced code (`torch.compile`,
`torch.export`) never reaches it: the callers check first.
"""

from __future__ import annotations

import torch

from finslerlib.math.compiled import load_compiled, module_name

__all__ = ["MIN_ENTRIES", "load_epilogue", "use_epilogue"]

_SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FL_CLONES
#endif

constexpr int64_t W = 16;  // lanes of the row reductions (kept apart so that the loops vectorize)

#define FL_INLINE inline __attribute__((always_inline))

FL_INLINE float log_poly(float v) {
  // Cephes logf for finite v > 0 (subnormals rescaled); other v are patched by the caller
  const bool sub = v < 1.17549435e-38f;
  v = sub ? v * 8388608.0f : v;
  std::uint32_t bits;
  std::memcpy(&bits, &v, 4);
  int e = static_cast<int>(bits >> 23) - 126 - (sub ? 23 : 0);
  bits = (bits & 0x007fffffu) | 0x3f000000u;
  float m;
  std::memcpy(&m, &bits, 4);
  const bool lo = m < 0.707106781186547524f;
  const float x = lo ? (m + m - 1.0f) : (m - 1.0f);
  const float fe = static_cast<float>(lo ? e - 1 : e);
  const float z = x * x;
  float y = 7.0376836292e-2f;
  y = y * x - 1.1514610310e-1f;
  y = y * x + 1.1676998740e-1f;
  y = y * x - 1.2420140846e-1f;
  y = y * x + 1.4249322787e-1f;
  y = y * x - 1.6668057665e-1f;
  y = y * x + 2.0000714765e-1f;
  y = y * x - 2.4999993993e-1f;
  y = y * x + 3.3333331174e-1f;
  y = y * x * z;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  float r = x + y;
  r += 0.693359375f * fe;
  return r;
}

FL_INLINE float log_full(float v) {
  const float r = log_poly(v);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float out = v > 0.0f ? r : (v == 0.0f ? -inf : nan);
  return v == inf ? inf : out;
}

// running minimum / maximum that keeps a NaN once one was seen (as torch's amin / amax)
FL_INLINE float nan_min(float a, float m) { return (a < m || a != a) ? a : m; }
FL_INLINE float nan_max(float a, float m) { return (a > m || a != a) ? a : m; }

template <bool Refine>
FL_INLINE void randers_impl(float* __restrict out, const float* __restrict by, float bx, int64_t m,
                            float* amin, float* fmin) {
  const float inf = std::numeric_limits<float>::infinity();
  float qa[W], fa[W];
  for (int64_t k = 0; k < W; ++k) qa[k] = fa[k] = inf;
  int64_t j = 0;
  for (; j + W <= m; j += W) {
    for (int64_t k = 0; k < W; ++k) {
      float q = out[j + k];
      qa[k] = nan_min(q, qa[k]);
      if constexpr (!Refine) q = q < 0.0f ? 0.0f : q;
      const float f = std::sqrt(q) + (by[j + k] - bx);  // negative q: NaN (flagged)
      fa[k] = nan_min(f, fa[k]);
      out[j + k] = f;
    }
  }
  for (; j < m; ++j) {
    float q = out[j];
    qa[0] = nan_min(q, qa[0]);
    if constexpr (!Refine) q = q < 0.0f ? 0.0f : q;
    const float f = std::sqrt(q) + (by[j] - bx);
    fa[0] = nan_min(f, fa[0]);
    out[j] = f;
  }
  float a_min = inf, f_min = inf;
  for (int64_t k = 0; k < W; ++k) {
    a_min = nan_min(qa[k], a_min);
    f_min = nan_min(fa[k], f_min);
  }
  *amin = a_min;
  *fmin = f_min;
}

FL_CLONES
void randers_row(float* out, const float* by, float bx, int64_t m, bool refine, float* amin, float* fmin) {
  if (refine)
    randers_impl<true>(out, by, bx, m, amin, fmin);
  else
    randers_impl<false>(out, by, bx, m, amin, fmin);
}

template <bool Refine, bool Keep>
FL_INLINE void funk_impl(float* __restrict out, float* __restrict root, const float* __restrict mqy,
                         const float* __restrict ly, float lx, int64_t m, float* zmin, float* zmax,
                         float* dmin) {
  const float inf = std::numeric_limits<float>::infinity();
  float za[W], zb[W], da[W];
  for (int64_t k = 0; k < W; ++k) {
    za[k] = da[k] = inf;
    zb[k] = -inf;
  }
  int64_t j = 0;
  for (; j + W <= m; j += W) {
    for (int64_t k = 0; k < W; ++k) {
      const float z = out[j + k];
      za[k] = nan_min(z, za[k]);
      zb[k] = nan_max(z, zb[k]);
      float q = mqy[j + k] + z * z;  // below 0 by rounding: NaN (flagged)
      if constexpr (!Refine) q = q < 0.0f ? 0.0f : q;
      const float r = std::sqrt(q);
      if constexpr (Keep) root[j + k] = r;
      float d = log_full(z + r) + (lx + ly[j + k]);
      if constexpr (!Refine) d = d < 0.0f ? 0.0f : d;
      da[k] = nan_min(d, da[k]);
      out[j + k] = d;
    }
  }
  for (; j < m; ++j) {
    const float z = out[j];
    za[0] = nan_min(z, za[0]);
    zb[0] = nan_max(z, zb[0]);
    float q = mqy[j] + z * z;
    if constexpr (!Refine) q = q < 0.0f ? 0.0f : q;
    const float r = std::sqrt(q);
    if constexpr (Keep) root[j] = r;
    float d = log_full(z + r) + (lx + ly[j]);
    if constexpr (!Refine) d = d < 0.0f ? 0.0f : d;
    da[0] = nan_min(d, da[0]);
    out[j] = d;
  }
  float z_lo = inf, z_hi = -inf, d_lo = inf;
  for (int64_t k = 0; k < W; ++k) {
    z_lo = nan_min(za[k], z_lo);
    z_hi = nan_max(zb[k], z_hi);
    d_lo = nan_min(da[k], d_lo);
  }
  *zmin = z_lo;
  *zmax = z_hi;
  *dmin = d_lo;
}

FL_CLONES
void funk_row(float* out, float* root, const float* mqy, const float* ly, float lx, int64_t m, bool refine,
              float* zmin, float* zmax, float* dmin) {
  if (refine) {
    if (root)
      funk_impl<true, true>(out, root, mqy, ly, lx, m, zmin, zmax, dmin);
    else
      funk_impl<true, false>(out, root, mqy, ly, lx, m, zmin, zmax, dmin);
  } else {
    if (root)
      funk_impl<false, true>(out, root, mqy, ly, lx, m, zmin, zmax, dmin);
    else
      funk_impl<false, false>(out, root, mqy, ly, lx, m, zmin, zmax, dmin);
  }
}

FL_CLONES
void log_row(float* __restrict out, const float* __restrict in, int64_t m) {
  for (int64_t j = 0; j < m; ++j) out[j] = log_full(in[j]);
}

FL_INLINE float exp_full(float v) {
  // Cephes expf: e^v = 2^n e^r, |r| <= ln(2) / 2, a degree-6 polynomial (about one unit in the last
  // place); 2^n applied in two halves (no overflow of the scale for n = 128, none below for -126);
  // below -87.33: 0, above ln(FLT_MAX): inf, NaN: NaN
  const float x = v < -87.33654475f ? -87.33654475f : (v > 88.72283905f ? 88.72283905f : v);
  const float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - fx * 0.693359375f;
  r = r + fx * 2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  const int n = static_cast<int>(fx);
  const int n1 = n >> 1;
  const int n2 = n - n1;
  const std::uint32_t b1 = static_cast<std::uint32_t>(n1 + 127) << 23;
  const std::uint32_t b2 = static_cast<std::uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  const float out = (y * s1) * s2;
  const float inf = std::numeric_limits<float>::infinity();
  const float res = v > 88.72283905f ? inf : (v < -87.33654475f ? 0.0f : out);
  return v != v ? v : res;
}

FL_CLONES
void exp_row(float* __restrict out, const float* __restrict in, int64_t m) {
  for (int64_t j = 0; j < m; ++j) out[j] = exp_full(in[j]);
}

// The weights of the Funk cdist backward for one row (see `funk_grad` below).
template <bool Reverse, bool RowGrad, bool Sanitize>
FL_INLINE void funk_grad_impl(float* __restrict a, const float* __restrict g, const float* __restrict s,
                              const float* __restrict d, float rx, int64_t m, const int64_t* fc, int64_t nf,
                              double* __restrict cols, float* row) {
  const float g0 = g[0];
  for (int64_t j = 0; j < m; ++j) {
    float v = ((RowGrad ? g[j] : g0) / s[j]) * rx;
    if constexpr (Sanitize) v = std::fabs(v) <= std::numeric_limits<float>::max() ? v : 0.0f;
    a[j] = v;
  }
  for (int64_t k = 0; k < nf; ++k) a[fc[k]] = 0.0f;  // flagged: differentiated elsewhere
  double acc[W];
  for (int64_t k = 0; k < W; ++k) acc[k] = 0.0;
  int64_t j = 0;
  for (; j + W <= m; j += W) {
    for (int64_t k = 0; k < W; ++k) {
      const float e = exp_full(d[j + k]);
      const float v = a[j + k];
      const float tr = Reverse ? v * e : v / e;  // A t (t = e^-d forward, e^d reverse)
      const float tc = Reverse ? v / e : v * e;  // A / t
      acc[k] += static_cast<double>(tr);
      cols[j + k] += static_cast<double>(tc);
    }
  }
  for (; j < m; ++j) {
    const float e = exp_full(d[j]);
    const float v = a[j];
    acc[0] += static_cast<double>(Reverse ? v * e : v / e);
    cols[j] += static_cast<double>(Reverse ? v / e : v * e);
  }
  double total = 0.0;
  for (int64_t k = 0; k < W; ++k) total += acc[k];
  *row = static_cast<float>(total);
}

FL_CLONES
void funk_grad_row(float* a, const float* g, bool row_grad, const float* s, const float* d, float rx,
                   int64_t m, const int64_t* fc, int64_t nf, double* cols, float* row, bool reverse,
                   bool sanitize) {
#define FL_GRAD(R, G, S) funk_grad_impl<R, G, S>(a, g, s, d, rx, m, fc, nf, cols, row)
  if (reverse) {
    if (row_grad) { if (sanitize) FL_GRAD(true, true, true); else FL_GRAD(true, true, false); }
    else { if (sanitize) FL_GRAD(true, false, true); else FL_GRAD(true, false, false); }
  } else {
    if (row_grad) { if (sanitize) FL_GRAD(false, true, true); else FL_GRAD(false, true, false); }
    else { if (sanitize) FL_GRAD(false, false, true); else FL_GRAD(false, false, false); }
  }
#undef FL_GRAD
}

// [0, n) in chunks of `chunk` handed out one at a time to at::parallel_for's threads (an atomic
// counter): a thread held up on a busy machine leaves its share to the others instead of making
// them wait at the end (a static split waits for the slowest thread). f(chunk index, lo, hi).
template <typename F>
void dynamic_for(int64_t n, int64_t chunk, const F& f) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), chunks);
  if (workers <= 1 || at::in_parallel_region()) {
    for (int64_t c = 0; c < chunks; ++c) f(c, c * chunk, std::min(n, (c + 1) * chunk));
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1))
      f(c, c * chunk, std::min(n, (c + 1) * chunk));
  });
}

void check_block(const torch::Tensor& out) {
  TORCH_CHECK(out.dim() == 2 && out.scalar_type() == at::kFloat && out.device().is_cpu(),
              "float32 CPU block");
  TORCH_CHECK(out.stride(1) == 1, "rows must be contiguous");
}

void check_vec(const torch::Tensor& v, int64_t n) {
  TORCH_CHECK(v.dim() == 1 && v.numel() == n && v.scalar_type() == at::kFloat && v.is_contiguous(),
              "float32 contiguous vector of length ", n);
}

}  // namespace

void randers(torch::Tensor out, torch::Tensor bx, torch::Tensor by, torch::Tensor amin, torch::Tensor fmin,
             bool refine) {
  check_block(out);
  const int64_t n = out.size(0), m = out.size(1), ld = out.stride(0);
  check_vec(bx, n); check_vec(by, m); check_vec(amin, n); check_vec(fmin, n);
  float* o = out.data_ptr<float>();
  const float* pbx = bx.data_ptr<float>();
  const float* pby = by.data_ptr<float>();
  float* pa = amin.data_ptr<float>();
  float* pf = fmin.data_ptr<float>();
  at::parallel_for(0, n, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) randers_row(o + i * ld, pby, pbx[i], m, refine, pa + i, pf + i);
  });
}

void funk(torch::Tensor out, torch::Tensor root, torch::Tensor mqy, torch::Tensor lx, torch::Tensor ly,
          torch::Tensor zmin, torch::Tensor zmax, torch::Tensor dmin, bool refine) {
  check_block(out);
  const int64_t n = out.size(0), m = out.size(1), ld = out.stride(0);
  const bool keep = root.numel() > 0;
  if (keep) {
    check_block(root);
    TORCH_CHECK(root.size(0) == n && root.size(1) == m, "root must match out");
  }
  const int64_t ldr = keep ? root.stride(0) : 0;
  check_vec(mqy, m); check_vec(ly, m); check_vec(lx, n);
  check_vec(zmin, n); check_vec(zmax, n); check_vec(dmin, n);
  float* o = out.data_ptr<float>();
  float* r = keep ? root.data_ptr<float>() : nullptr;
  const float* pq = mqy.data_ptr<float>();
  const float* plx = lx.data_ptr<float>();
  const float* ply = ly.data_ptr<float>();
  float* pzl = zmin.data_ptr<float>();
  float* pzh = zmax.data_ptr<float>();
  float* pd = dmin.data_ptr<float>();
  dynamic_for(n, 16, [&](int64_t, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      funk_row(o + i * ld, keep ? r + i * ldr : nullptr, pq, ply, plx[i], m, refine, pzl + i, pzh + i,
               pd + i);
  });
}

std::tuple<torch::Tensor, torch::Tensor> funk_points(torch::Tensor x, double r2, bool source) {
  // per point Q = R^2 - |x|^2 in float64 and the matmul operand row: sources [x rx, R^2 rx] with
  // rx = Q^-1/2 (products in float64, rounded once), targets [-x, 1]
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat && x.device().is_cpu(), "float32 CPU [N, D]");
  auto xc = x.contiguous();
  const int64_t n = xc.size(0), d = xc.size(1);
  auto out = torch::empty({n, d + 1}, xc.options());
  auto q = torch::empty({n}, xc.options().dtype(at::kDouble));
  const float* px = xc.data_ptr<float>();
  float* po = out.data_ptr<float>();
  double* pq = q.data_ptr<double>();
  at::parallel_for(0, n, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float* row = px + i * d;
      float* o = po + i * (d + 1);
      double sq = 0.0;
      for (int64_t j = 0; j < d; ++j) sq += static_cast<double>(row[j]) * row[j];
      const double qi = r2 - sq;
      pq[i] = qi;
      if (source) {
        const double rx = 1.0 / std::sqrt(qi);
        for (int64_t j = 0; j < d; ++j) o[j] = static_cast<float>(row[j] * rx);
        o[d] = static_cast<float>(r2 * rx);
      } else {
        for (int64_t j = 0; j < d; ++j) o[j] = -row[j];
        o[d] = 1.0f;
      }
    }
  });
  return std::make_tuple(out, q);
}

torch::Tensor log_f32(torch::Tensor x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu(), "float32 CPU tensor");
  auto in = x.contiguous();
  auto out = torch::empty_like(in);
  log_row(out.data_ptr<float>(), in.data_ptr<float>(), in.numel());
  return out;
}

void funk_grad(torch::Tensor a, torch::Tensor grad, torch::Tensor sh, torch::Tensor d, torch::Tensor x,
               double r2, torch::Tensor rows, torch::Tensor gx, torch::Tensor cols, torch::Tensor flag_rows,
               torch::Tensor flag_cols, bool reverse, bool sanitize) {
  // A_ij = rx_i grad_ij / sh_ij with rx_i = (R^2 - |x_i|^2)^-1/2 (float64, rounded once), 0 at the
  // flagged entries (flag_rows, flag_cols; rows sorted); rows_i = sum_j A_ij t_ij and
  // cols_j += sum_i A_ij / t_ij with t = exp(-d) (exp(d) reverse), the sums in float64; where gx
  // is not empty, gx_i = rows_i x_i (the matmul -A y is added to it afterwards)
  check_block(a); check_block(sh); check_block(d);
  const int64_t n = a.size(0), m = a.size(1);
  TORCH_CHECK(sh.size(0) == n && sh.size(1) == m && d.size(0) == n && d.size(1) == m,
              "sh and d must match a");
  TORCH_CHECK(grad.dim() == 2 && grad.size(0) == n && grad.size(1) == m && grad.scalar_type() == at::kFloat &&
                  grad.device().is_cpu() && (grad.stride(1) == 1 || grad.stride(1) == 0 || m <= 1),
              "grad: float32 CPU [n, m] with unit or zero column stride");
  TORCH_CHECK(x.dim() == 2 && x.size(0) == n && x.scalar_type() == at::kFloat && x.is_contiguous(),
              "x: float32 contiguous [n, D]");
  const int64_t dim = x.size(1);
  const bool want_gx = gx.numel() > 0;
  if (want_gx)
    TORCH_CHECK(gx.dim() == 2 && gx.size(0) == n && gx.size(1) == dim && gx.scalar_type() == at::kFloat &&
                    gx.stride(1) == 1,
                "gx: float32 [n, D] with contiguous rows, or empty");
  check_vec(rows, n);
  TORCH_CHECK(cols.dim() == 1 && cols.numel() == m && cols.scalar_type() == at::kDouble &&
                  cols.is_contiguous(),
              "cols: float64 contiguous vector of length ", m);
  TORCH_CHECK(flag_rows.scalar_type() == at::kLong && flag_cols.scalar_type() == at::kLong &&
                  flag_rows.is_contiguous() && flag_cols.is_contiguous() &&
                  flag_rows.numel() == flag_cols.numel(),
              "flags: contiguous int64 vectors of one length");
  const int64_t nflag = flag_rows.numel();
  const int64_t* fr = flag_rows.data_ptr<int64_t>();
  const int64_t* fcol = flag_cols.data_ptr<int64_t>();
  for (int64_t k = 0; k < nflag; ++k)
    TORCH_CHECK(fr[k] >= 0 && fr[k] < n && fcol[k] >= 0 && fcol[k] < m && (k == 0 || fr[k - 1] <= fr[k]),
                "flags out of range or rows not sorted");
  const bool row_grad = grad.stride(1) == 1 && m > 1;
  const int64_t ldg = grad.stride(0);
  float* pa = a.data_ptr<float>();
  const float* pg = grad.data_ptr<float>();
  const float* ps = sh.data_ptr<float>();
  const float* pd = d.data_ptr<float>();
  const float* px = x.data_ptr<float>();
  float* pgx = want_gx ? gx.data_ptr<float>() : nullptr;
  const int64_t ldgx = want_gx ? gx.stride(0) : 0;
  float* prow = rows.data_ptr<float>();
  double* pcol = cols.data_ptr<double>();
  const int64_t lda = a.stride(0), lds = sh.stride(0), ldd = d.stride(0);
  // chunks of 64 rows, one float64 column accumulator each, added in chunk order (the same sums
  // whichever thread ran which chunk)
  constexpr int64_t rows_per_chunk = 64;
  const int64_t chunks = (n + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<double> acc(static_cast<size_t>(chunks * m), 0.0);
  dynamic_for(n, rows_per_chunk, [&](int64_t c, int64_t lo, int64_t hi) {
    double* ca = acc.data() + c * m;
    int64_t p = std::lower_bound(fr, fr + nflag, lo) - fr;
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t start = p;
      while (p < nflag && fr[p] == i) ++p;
      const float* xi = px + i * dim;
      double sq = 0.0;
      for (int64_t k = 0; k < dim; ++k) sq += static_cast<double>(xi[k]) * xi[k];
      const float rx = static_cast<float>(1.0 / std::sqrt(r2 - sq));
      funk_grad_row(pa + i * lda, pg + i * ldg, row_grad, ps + i * lds, pd + i * ldd, rx, m, fcol + start,
                    p - start, ca, prow + i, reverse, sanitize);
      if (want_gx) {
        float* gi = pgx + i * ldgx;
        for (int64_t k = 0; k < dim; ++k) gi[k] = xi[k] * prow[i];
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c) {
    const double* ca = acc.data() + c * m;
    for (int64_t j = 0; j < m; ++j) pcol[j] += ca[j];
  }
}

torch::Tensor exp_f32(torch::Tensor x) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.device().is_cpu(), "float32 CPU tensor");
  auto in = x.contiguous();
  auto out = torch::empty_like(in);
  exp_row(out.data_ptr<float>(), in.data_ptr<float>(), in.numel());
  return out;
}
"""

_NAME = module_name("finslerlib_cdist_", _SOURCE)
_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")  # the vectorized loops' targets
_STATE: dict[str, object] = {}


def load_epilogue():
    """The compiled module (built on first use, then cached), or `None` where it cannot be built.

    The first failure warns once (`RuntimeWarning`, with the reason) and is remembered
    (`finslerlib.math.compiled.load_compiled`).

    Returns:
        The module (functions `randers`, `funk`, `funk_points`, `funk_grad`, `log_f32`,
        `exp_f32`) or `None`.

    Example:
        >>> module = load_epilogue()  # doctest: +SKIP
    """
    return load_compiled(
        _STATE,
        name=_NAME,
        source=_SOURCE,
        functions=["randers", "funk", "funk_points", "funk_grad", "log_f32", "exp_f32"],
        what="finslerlib.math: the compiled cdist epilogue",
        fallback="the torch epilogue (slower)",
        extra_cflags=["-O3", "-fno-math-errno", "-fno-trapping-math"],
        machines=_MACHINES,
    )


MIN_ENTRIES = 1 << 16
"""Results with fewer entries keep the torch epilogue (it costs little there, and small workloads
never wait for the first build)."""


def use_epilogue(out: torch.Tensor, entries: int):
    """The compiled module where it applies, else `None`.

    It applies to float32 CPU results of at least `MIN_ENTRIES` entries, outside traced code.

    Args:
        out: Tensor, the result (or a block of it).
        entries: number of entries of the whole result.

    Returns:
        The module or `None`.

    Example:
        >>> use_epilogue(torch.zeros(2, 2, dtype=torch.float64), 4) is None
        True
    """
    if out.dtype != torch.float32 or out.device.type != "cpu" or entries < MIN_ENTRIES:
        return None
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    return load_epilogue()
