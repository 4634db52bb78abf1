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
  rounded once) or $[-y, 1]$.

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
#include <cstring>
#include <limits>
#include <tuple>

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
  at::parallel_for(0, n, 8, [&](int64_t lo, int64_t hi) {
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
"""

_NAME = module_name("finslerlib_cdist_", _SOURCE)
_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")  # the vectorized loops' targets
_STATE: dict[str, object] = {}


def load_epilogue():
    """The compiled module (built on first use, then cached), or `None` where it cannot be built.

    The first failure warns once (`RuntimeWarning`, with the reason) and is remembered
    (`finslerlib.math.compiled.load_compiled`).

    Returns:
        The module (functions `randers`, `funk`, `funk_points`, `log_f32`) or `None`.

    Example:
        >>> module = load_epilogue()  # doctest: +SKIP
    """
    return load_compiled(
        _STATE,
        name=_NAME,
        source=_SOURCE,
        functions=["randers", "funk", "funk_points", "log_f32"],
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
