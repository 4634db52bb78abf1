r"""Compiled CPU root find of the Killing-wind arrival time on the sphere, built on first use.

`finslerlib.math.navigation.killing_arrival_time` with the `Spectrum` of a rotation on the unit
sphere is a scalar iteration per pair: the first-order start, `steps` clamped Newton steps, one
convergence check, then the safeguarded iteration for the pairs not converged. In torch every
step is a dozen passes over the whole batch (about 300 small operations per call). This C++ loop
runs the same iteration on 32 pairs at a time in lockstep (the lane loops vectorize; compiled
for AVX-512, AVX2 and plain x86-64 with `target_clones`), parallel over blocks
(`at::parallel_for`), float32 and float64; the few pairs the Newton phase leaves unconverged go
through the safeguarded iteration one by one. The per-pair data (the chord $|x - y|^2/2$, the
coefficients $c_i$) are formed in the same pass from the points.

Each evaluation is the torch path's formulas (`_Increment.at` of a rotation, `SphereDomain.form_distance`)
with branch-free elementary functions: $\sin$ and $\cos$ of $bT/2$ from fdlibm's kernels after a
Cody-Waite reduction by $\pi/2$ (so $\sin bT = 2 \sin(bT/2) \cos(bT/2)$), and Cephes' `atan`
(a rational in $x^2$ after reduction to $|x| \le 0.66$), each within about one unit in the last
place; so both paths agree to a few units in the last place times the root's conditioning
$1 / (1 - w)$.

The module is built with `torch.utils.cpp_extension.load_inline` (a C++ compiler and `ninja`
needed) and cached in torch's extension directory under a name carrying a hash of the source.
Where it cannot be built, one `RuntimeWarning` says why and the caller runs its torch iteration.
"""

from __future__ import annotations

import torch

from finslerlib.math.compiled import load_compiled, module_name

__all__ = ["MAX_TERMS", "load_arrival", "use_arrival"]

MAX_TERMS = 16
"""Most eigenvalue terms (conjugate pairs and real eigenvalues) the kernel takes; more use torch."""

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
#define FL_INLINE inline __attribute__((always_inline))

constexpr int64_t MAXM = 16;  // eigenvalue terms
constexpr int64_t W = 32;     // pairs run in lockstep (the lane loops vectorize, several vectors in flight)

template <typename T> struct Consts;
template <> struct Consts<double> {
  // fdlibm's split of pi/2 (n * P1 exact for |n| < 2^20) and the rounding shift 1.5 * 2^52
  static constexpr double P1 = 1.57079632673412561417e+00, P2 = 6.07710050650619224932e-11, P3 = 0.0;
  static constexpr double SHIFT = 6755399441055744.0;
  using Bits = std::uint64_t;
};
template <> struct Consts<float> {
  static constexpr float P1 = 1.5703125f, P2 = 4.837512969970703125e-4f, P3 = 7.54978995489188216e-8f;
  static constexpr float SHIFT = 12582912.0f;
  using Bits = std::uint32_t;
};

// sin and cos of a (|a| up to about 1e5): a = n pi/2 + r, |r| <= pi/4, fdlibm's kernels on r
template <typename T>
FL_INLINE void sin_cos(T a, T* s_out, T* c_out) {
  using K = Consts<T>;
  const T k = a * T(0.636619772367581382433) + K::SHIFT;
  typename K::Bits bits;
  std::memcpy(&bits, &k, sizeof(T));
  const int q = static_cast<int>(bits & 3u);
  const T n = k - K::SHIFT;
  const T r = ((a - n * K::P1) - n * K::P2) - n * K::P3;
  const T z = r * r;
  const T ps = T(8.33333333332248946124e-03) +
               z * (T(-1.98412698298579493134e-04) +
                    z * (T(2.75573137070700676789e-06) +
                         z * (T(-2.50507602534068634195e-08) + z * T(1.58969099521155010221e-10))));
  const T s = r + (z * r) * (T(-1.66666666666666324348e-01) + z * ps);
  const T pc = z * (T(4.16666666666666019037e-02) +
                    z * (T(-1.38888888888741095749e-03) +
                         z * (T(2.48015872894767294178e-05) +
                              z * (T(-2.75573143513906633035e-07) +
                                   z * (T(2.08757232129817482790e-09) +
                                        z * T(-1.13596475577881948265e-11))))));
  const T hz = T(0.5) * z;
  const T wv = T(1) - hz;
  const T c = wv + (((T(1) - wv) - hz) + z * pc);
  const T sv = (q & 1) ? c : s;
  const T cv = (q & 1) ? s : c;
  *s_out = (q & 2) ? -sv : sv;
  *c_out = ((q + 1) & 2) ? -cv : cv;
}

// atan(u) for u >= 0 (inf and NaN pass through): Cephes' reduction and rational
template <typename T>
FL_INLINE T atan_pos(T u) {
  const bool big = u > T(2.41421356237309504880);
  const bool mid = u > T(0.66);
  const T x = big ? T(-1) / u : (mid ? (u - T(1)) / (u + T(1)) : u);
  const T y0 = big ? T(1.57079632679489661923) : (mid ? T(0.785398163397448309616) : T(0));
  const T more = big ? T(6.123233995736765886130e-17) : (mid ? T(3.061616997868382943065e-17) : T(0));
  const T z = x * x;
  const T p = (((T(-8.750608600031904122785e-01) * z - T(1.615753718733365076637e+01)) * z -
                T(7.500855792314704667340e+01)) * z - T(1.228866684490136173410e+02)) * z -
              T(6.485021904942025371773e+01);
  const T qd = ((((z + T(2.485846490142306297962e+01)) * z + T(1.650270098316988542046e+02)) * z +
                 T(4.328810604912902668951e+02)) * z + T(4.853903996359136964868e+02)) * z +
               T(1.945506571482613964425e+02);
  return y0 + ((x + x * (z * p / qd)) + more);
}

FL_INLINE double clampv(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }
FL_INLINE float clampv(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// the sphere's (d, slope) from q0, the increment and its T-derivative (SphereDomain.form_distance)
template <typename T>
FL_INLINE void form(T q0, T s_delta, T ds, T* d, T* slope) {
  const T half = clampv((q0 - s_delta) * T(0.5), T(0), T(1));
  const T rest = T(1) - half;
  *d = T(2) * atan_pos(std::sqrt(half / rest));
  T den = std::sqrt(half * rest);
  den = den < std::numeric_limits<T>::min() ? std::numeric_limits<T>::min() : den;
  *slope = (ds / den) * T(-0.5);
}

// the increment s(T) - s(0) = sum_i -2 c_r sin^2(bT/2) + c_i sin bT and its T-derivative
template <typename T>
FL_INLINE void increment(T t, const T* cr, const T* ci, const T* b, int64_t m, int64_t stride, T* sd, T* ds) {
  T a = 0, e = 0;
  for (int64_t i = 0; i < m; ++i) {
    const T c_r = cr[i * stride], c_i = ci[i * stride];
    T sh, ch;
    sin_cos((t * b[i]) * T(0.5), &sh, &ch);
    const T sn = T(2) * sh * ch;
    const T hs2 = sh * sh;
    a += c_i * sn + (T(-2) * c_r) * hs2;
    const T bci = b[i] * c_i;
    e += (bci + (T(-2) * bci) * hs2) + (-b[i] * c_r) * sn;
  }
  *sd = a;
  *ds = e;
}

template <typename T>
struct Lanes {
  T cr[MAXM * W], ci[MAXM * W];
  T q0[W], t[W], d[W], slope[W], lo[W], hi[W], smin[W], smax[W], tol[W];
};

// the start, the fixed Newton phase and the check evaluation for W pairs in lockstep
template <typename T>
FL_INLINE void newton_block(Lanes<T>& L, const T* w, const T* b, int64_t m, int64_t steps) {
  const T eps = std::numeric_limits<T>::epsilon();
  T s0[W];
  for (int64_t l = 0; l < W; ++l) {
    T a = 0;
    for (int64_t i = 0; i < m; ++i) a += b[i] * L.ci[i * W + l];
    s0[l] = a;
  }
  for (int64_t l = 0; l < W; ++l) {
    T d0, sl0;
    form(L.q0[l], T(0), s0[l], &d0, &sl0);
    const T opw = T(1) + w[l], omw = T(1) - w[l];
    L.lo[l] = d0 / opw;
    L.hi[l] = d0 / omw;
    L.smin[l] = -opw;
    L.smax[l] = -omw;
    L.tol[l] = (L.hi[l] + T(1)) * (T(64) * eps);
    // the first-order expansion of the arrival time in the wind: T = d0 / (1 - s0)
    L.t[l] = clampv(d0 / clampv(T(1) - sl0, omw, opw), L.lo[l], L.hi[l]);
  }
  for (int64_t k = 0; k <= steps; ++k) {
    T sd[W], ds[W];
    for (int64_t l = 0; l < W; ++l) sd[l] = ds[l] = T(0);
    for (int64_t i = 0; i < m; ++i) {
      const T bi = b[i];
      const T* cr = L.cr + i * W;
      const T* ci = L.ci + i * W;
      for (int64_t l = 0; l < W; ++l) {
        T sh, ch;
        sin_cos((L.t[l] * bi) * T(0.5), &sh, &ch);
        const T sn = T(2) * sh * ch;
        const T hs2 = sh * sh;
        sd[l] += ci[l] * sn + (T(-2) * cr[l]) * hs2;
        const T bci = bi * ci[l];
        ds[l] += (bci + (T(-2) * bci) * hs2) + (-bi * cr[l]) * sn;
      }
    }
    for (int64_t l = 0; l < W; ++l) form(L.q0[l], sd[l], ds[l], &L.d[l], &L.slope[l]);
    if (k == steps) break;
    for (int64_t l = 0; l < W; ++l) {
      const T step = (L.d[l] - L.t[l]) / clampv(L.slope[l] - T(1), L.smin[l], L.smax[l]);
      L.t[l] = clampv(L.t[l] - step, L.lo[l], L.hi[l]);
    }
  }
}

FL_CLONES void newton_block_d(Lanes<double>& L, const double* w, const double* b, int64_t m, int64_t steps) {
  newton_block<double>(L, w, b, m, steps);
}
FL_CLONES void newton_block_f(Lanes<float>& L, const float* w, const float* b, int64_t m, int64_t steps) {
  newton_block<float>(L, w, b, m, steps);
}
void run_block(Lanes<double>& L, const double* w, const double* b, int64_t m, int64_t steps) {
  newton_block_d(L, w, b, m, steps);
}
void run_block(Lanes<float>& L, const float* w, const float* b, int64_t m, int64_t steps) {
  newton_block_f(L, w, b, m, steps);
}

template <typename T>
void solve(const T* gx, const T* y, const T* w, const T* left, const T* right, const T* b,
           int64_t n, int64_t m, int64_t batch, int64_t max_iter, int64_t steps, T* t_out, T* g_out,
           T* tol_out, bool* done_out, int64_t* it_out, int64_t j_lo, int64_t j_hi) {
  Lanes<T> L;
  T wl[W];
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += W) {
    const int64_t cnt = j_hi - j0 < W ? j_hi - j0 : W;
    for (int64_t l = 0; l < W; ++l) {
      const int64_t j = j0 + (l < cnt ? l : cnt - 1);  // padded lanes repeat the last pair
      const T* xj = gx + j * n;
      const T* yj = y + j * n;
      // c_i = (V^T G x)_i (V^{-1} y)_i in real arithmetic
      for (int64_t i = 0; i < m; ++i) {
        T xr = 0, xi = 0, yr = 0, yi = 0;
        for (int64_t c = 0; c < n; ++c) {
          xr += xj[c] * left[c * 2 * m + i];
          xi += xj[c] * left[c * 2 * m + m + i];
          yr += yj[c] * right[c * 2 * m + i];
          yi += yj[c] * right[c * 2 * m + m + i];
        }
        L.cr[i * W + l] = xr * yr - xi * yi;
        L.ci[i * W + l] = xr * yi + xi * yr;
      }
      // the chord term q0 = |x - y|^2 / 2 (the sphere's form_chord)
      T sq = 0;
      for (int64_t c = 0; c < n; ++c) {
        const T diff = xj[c] - yj[c];
        sq += diff * diff;
      }
      L.q0[l] = T(0.5) * sq;
      wl[l] = w[j];
    }
    run_block(L, wl, b, m, steps);
    for (int64_t l = 0; l < cnt; ++l) {
      const int64_t j = j0 + l;
      T t = L.t[l], slope = L.slope[l], lo = L.lo[l], hi = L.hi[l];
      const T tol = L.tol[l], smin = L.smin[l], smax = L.smax[l];
      T g = L.d[l] - t;
      int64_t it = steps + 1;
      bool done = std::abs(g) - tol <= T(0);
      if (!done) {
        // the safeguarded iteration (Newton inside the shrinking bracket, else bisection)
        lo = g > 0 ? (t > lo ? t : lo) : lo;
        hi = g < 0 ? (t < hi ? t : hi) : hi;
        T g_prev = std::numeric_limits<T>::infinity();
        done = (std::abs(g) <= tol) || (hi - lo <= tol);
        for (int64_t s = it; s < max_iter && !done; ++s) {
          lo = g > 0 ? t : lo;
          hi = g < 0 ? t : hi;
          const T newton = t - g / clampv(slope - T(1), smin, smax);
          const bool slow = std::abs(g) > T(0.5) * std::abs(g_prev);
          const bool take = (newton > lo) && (newton < hi) && !slow;
          g_prev = g;
          t = take ? newton : T(0.5) * (lo + hi);
          T sd, ds, d;
          increment(t, L.cr + l, L.ci + l, b, m, W, &sd, &ds);
          form(L.q0[l], sd, ds, &d, &slope);
          g = d - t;
          ++it;
          done = (std::abs(g) <= tol) || (hi - lo <= tol);
        }
      }
      t_out[j] = t;
      g_out[j] = std::abs(g);
      tol_out[j] = tol;
      done_out[j] = done;
      it_out[j] = it;
    }
  }
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor, torch::Tensor, int64_t> arrival(
    torch::Tensor gx, torch::Tensor y, torch::Tensor w, torch::Tensor left,
    torch::Tensor right, torch::Tensor b, int64_t max_iter, int64_t steps) {
  TORCH_CHECK(gx.dim() == 2 && y.sizes() == gx.sizes(), "gx, y: [B, N]");
  TORCH_CHECK(gx.device().is_cpu(), "CPU tensors");
  const auto dtype = gx.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64");
  const int64_t batch = gx.size(0), n = gx.size(1), m = b.numel();
  TORCH_CHECK(m >= 1 && m <= MAXM, "1 to 16 eigenvalue terms");
  TORCH_CHECK(left.dim() == 2 && left.size(0) == n && left.size(1) == 2 * m && right.sizes() == left.sizes(),
              "left, right: [N, 2m]");
  TORCH_CHECK(w.numel() == batch, "w: [B]");
  auto c = [&](const torch::Tensor& v) { return v.to(dtype).contiguous(); };
  auto gx_ = c(gx), y_ = c(y), w_ = c(w), l_ = c(left), r_ = c(right), b_ = c(b);
  auto t = torch::empty({batch}, gx_.options());
  auto g = torch::empty({batch}, gx_.options());
  auto tol = torch::empty({batch}, gx_.options());
  auto done = torch::empty({batch}, gx_.options().dtype(at::kBool));
  auto its = torch::zeros({batch}, gx_.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(dtype, "arrival", [&] {
    const scalar_t* pg = gx_.data_ptr<scalar_t>();
    const scalar_t* py = y_.data_ptr<scalar_t>();
    const scalar_t* pw = w_.data_ptr<scalar_t>();
    const scalar_t* pl = l_.data_ptr<scalar_t>();
    const scalar_t* pr = r_.data_ptr<scalar_t>();
    const scalar_t* pb = b_.data_ptr<scalar_t>();
    scalar_t* pt = t.data_ptr<scalar_t>();
    scalar_t* pgo = g.data_ptr<scalar_t>();
    scalar_t* ptol = tol.data_ptr<scalar_t>();
    bool* pd = done.data_ptr<bool>();
    int64_t* pi = its.data_ptr<int64_t>();
    at::parallel_for(0, (batch + W - 1) / W, 64, [&](int64_t lo, int64_t hi) {
      const int64_t j_hi = hi * W < batch ? hi * W : batch;
      solve<scalar_t>(pg, py, pw, pl, pr, pb, n, m, batch, max_iter, steps, pt, pgo, ptol, pd, pi,
                      lo * W, j_hi);
    });
  });
  const int64_t iterations = batch ? its.max().item<int64_t>() : 0;
  return std::make_tuple(t, g, tol, done, iterations);
}
"""

_NAME = module_name("finslerlib_arrival_", _SOURCE)
_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")  # the vectorized loops' targets
_STATE: dict[str, object] = {}


def load_arrival():
    """The compiled module (built on first use, then cached), or `None` where it cannot be built.

    The first failure warns once (`RuntimeWarning`, with the reason) and is remembered
    (`finslerlib.math.compiled.load_compiled`).

    Returns:
        The module (function `arrival`) or `None`.

    Example:
        >>> module = load_arrival()  # doctest: +SKIP
    """
    return load_compiled(
        _STATE,
        name=_NAME,
        source=_SOURCE,
        functions=["arrival"],
        what="finslerlib.math: the compiled Killing arrival-time kernel",
        fallback="the torch iteration (slower)",
        extra_cflags=["-O3", "-fno-math-errno", "-fno-trapping-math"],
        machines=_MACHINES,
    )


def use_arrival(x: torch.Tensor, terms: int):
    """The compiled module where it applies, else `None`.

    It applies to float32 and float64 CPU inputs with 1 to `MAX_TERMS` eigenvalue terms, outside
    traced code.

    Args:
        x: Tensor, the sources.
        terms: the number of kept eigenvalue terms of the `Spectrum`.

    Returns:
        The module or `None`.

    Example:
        >>> use_arrival(torch.zeros(2, 3, dtype=torch.float16), 1) is None
        True
    """
    if x.dtype not in (torch.float32, torch.float64) or x.device.type != "cpu" or not 1 <= terms <= MAX_TERMS:
        return None
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return None
    return load_arrival()
