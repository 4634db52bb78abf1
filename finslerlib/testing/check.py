r"""`check_manifold`: run the registered conformance properties on a manifold and report.

The properties live in `finslerlib.testing.properties` (one module per family, registered by
name through `finslerlib.testing.registry.register_property`); this module is the driver: it
resolves the options, gives each property a `Context` seeded from the property's name, and turns
what the property raises into a `PropertyResult`:

* nothing: passed (with the property's note, if any);
* `PropertyViolation`: failed, with the law, the tolerance and the worst counterexample;
* `NotImplementedError`: skipped, with the missing method;
* any other exception (the manifold raised on valid inputs): failed, with the full traceback in
  the message, and chained as the `__cause__` of the `AssertionError` raised at the end.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable

import torch

from finslerlib.testing import properties as _properties  # noqa: F401  (registers the properties)
from finslerlib.testing import sampling
from finslerlib.testing.context import Context
from finslerlib.testing.registry import PROPERTIES, property_seed, registered
from finslerlib.testing.report import CheckReport, PropertyResult, PropertyViolation

__all__ = ["PROPERTIES", "CheckReport", "PropertyResult", "PropertyViolation", "check_manifold"]


# Closed-form identities (homogeneity, F(log) = d, Legendre round trips, ...) lose a few ulps per
# operation, amplified by the metric's conditioning: `RTOL_ULPS * eps * condition` relative.
RTOL_ULPS = 2.0**8


def working_eps(manifold, dtype: torch.dtype) -> float:
    """The coarsest machine epsilon among `dtype` and the manifold's floating parameters and
    buffers (`geoopt.Scaled` keeps its scale in float32 whatever the metric's dtype: its maps are
    exact to float32 only)."""
    eps = torch.finfo(dtype).eps
    try:
        tensors = list(manifold.parameters()) + list(manifold.buffers())
    except AttributeError:  # not an nn.Module
        return eps
    return max([eps] + [torch.finfo(t.dtype).eps for t in tensors if t.is_floating_point()])


def default_tolerances(dtype: torch.dtype, condition: float = 1.0,
                       length: float = 1.0, eps: float | None = None) -> tuple[float, float]:
    r"""(atol, rtol) of the closed-form laws: derived from the dtype and the problem, not tuned.

    Error model: a law's two sides are each computed with a few hundred floating-point operations
    whose rounding (`eps` relative each) is amplified by the metric's conditioning: the
    anisotropy $\kappa = \max_u F(x, u) / \min_u F(x, u)$ over Euclidean-unit tangent `u` (for
    Randers data $\kappa pprox \sqrt{\mathrm{cond}(a)}\,(1 + |b|_a) / (1 - |b|_a)$: the
    cancellation in $F(x, v)$ for $v$ against the drift, and the solves with `a`). So
    `rtol = 2**8 * eps * condition`; `atol = rtol * length`, the same relative accuracy of a
    value of the size of a typical Finsler length (compared values that should vanish,
    $F(x, 0)$, $d(x, x)$).

    Args:
        dtype: dtype of the computation.
        condition: $\kappa$ above (measured by `check_manifold` on the sampled points).
        length: typical Finsler length of the sampled vectors.
        eps: the machine epsilon to use (default `dtype`'s; `check_manifold` passes
            `working_eps(manifold, dtype)`).
    """
    eps = torch.finfo(dtype).eps if eps is None else float(eps)
    rtol = RTOL_ULPS * eps * max(1.0, float(condition))
    return rtol * float(length), rtol


def _median(t: torch.Tensor) -> float:
    t = t[torch.isfinite(t) & (t > 0)]
    return float(t.median()) if t.numel() else 1.0


def _scales(manifold, make_context, scale, seed) -> tuple[float, float, float]:
    """(length, spread, condition): the typical Finsler length $F(x, y - x)$ (tangent part) and
    Euclidean distance $|x - y|$ between sampled points, and the metric's anisotropy (see
    `default_tolerances`) at the worst sampled point. Errors fall back to 1 here: the
    properties meet them again and report them."""
    length, spread, condition = (1.0 if scale is None else float(scale)), 1.0, 1.0
    try:
        ctx = make_context("sampling", property_seed(seed, "<scales>"))
        x, y = ctx.points(ctx.n), ctx.points(ctx.n)
        spread = _median((x - y).norm(dim=-1))
        if scale is None:
            chord = sampling.tangent(manifold, x, y - x)
            length = _median(manifold.norm(x, chord).detach())
        condition = _condition(manifold, ctx, x)
    except Exception:  # noqa: BLE001 - reported by the properties, with tracebacks
        pass
    return length, spread, condition


def _condition(manifold, ctx, x) -> float:
    """max over the points of max_u F(x, u) / min_u F(x, u), `u` Euclidean-unit tangent: the
    orthonormal basis, its negatives and 8 random directions, both signs."""
    e = ctx.basis(x).mT  # [K, dim, N]
    u = torch.cat([e, ctx.directions(x.unsqueeze(1).expand(-1, 8, -1).reshape(-1, ctx.N))
                   .reshape(x.shape[0], 8, ctx.N)], dim=1)
    u = torch.cat([u, -u], dim=1)
    f = manifold.norm(x.unsqueeze(1).expand_as(u), u).detach().double()
    ratio = f.amax(-1) / f.amin(-1)
    ratio = ratio[torch.isfinite(ratio) & (ratio > 0)]
    return float(ratio.max()) if ratio.numel() else 1.0


def check_manifold(
    manifold,
    *,
    n: int | None = None,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    dtype: torch.dtype | None = None,
    device=None,
    scale: float | None = None,
    properties: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    large_steps: Iterable[float] = (10.0, 1e4),
    points: torch.Tensor | None = None,
    thorough: bool = False,
    raise_on_failure: bool = True,
) -> CheckReport:
    r"""Run the Finsler conformance suite on `manifold` and report what held.

    Points come from `manifold.random` (which must return points that pass the manifold's own
    `check_point_on_manifold`), or from the `points` pool; without either, Gaussian candidates
    moved onto the manifold (`projx` on embedded domains, shrinking toward `origin()` on open
    subsets of $\mathbb{R}^D$). Vectors are tangent (`proju` of ambient ones on embedded
    domains), rescaled to a *Finsler* length: log-uniform in `[0.2, 2] * scale` for pointwise
    laws; the geodesic laws use fractions of `logmap(x, y)` toward sampled points, so that they
    stay within the metric's reach (a forward-incomplete metric such as the reverse Funk metric
    reaches its boundary at a finite distance); `large_steps * scale` for the stay-on-the-manifold
    checks. `scale` defaults to the median Finsler length $F(x, y - x)$ between sampled points,
    so rescaled metrics (`geoopt.Scaled`, a small ball, a large `a`) are checked at their own
    scale; finite-difference steps are Finsler lengths too.

    Tolerances are derived, never tuned; each failure message states the one it used:

    * identities (homogeneity, $F(\log) = d$, Legendre maps, cdist, ...): sample-wise
      `|actual - expected| <= atol + rtol * |expected|` with `rtol = 2**8 eps condition` and
      `atol = rtol * scale` (`default_tolerances`): `eps` of the coarsest floating dtype among
      the samples and the manifold's tensors, `condition` the anisotropy
      $\max_u F(x, u) / \min_u F(x, u)$ over Euclidean-unit tangent `u` at the sampled points
      (it bounds the cancellation in $F$ and the conditioning of `a`; for Randers data about
      $\sqrt{\mathrm{cond}(a)}\,(1 + |b|) / (1 - |b|)$). Some laws add the error of what they
      compare: Legendre round trips `cond(g_v) eps`, Gram-matrix cdists `sqrt(eps)`, the
      coordinates' rounding, the curvature's nested derivatives `cond(a)**2 eps`;
    * derivatives (`dist_gradient`, `legendre`, the descent step of `finsler_gradient`,
      `retr_first_order`): the log-log slope of the Taylor remainder must be 2
      (`finslerlib.testing.taylor`), fitted above the rounding floor (`8 eps condition` relative
      for values, `8 eps` for coordinates, or the caller's `rtol`): no tolerance at all;
    * the dual norm against its supremum by Newton's method on `norm` (`max(rtol, 1e3 eps)`,
      compared where the solve converged, or where it already exceeds the dual norm).

    The properties are listed in `PROPERTIES`.

    Args:
        manifold: any `FinslerManifold` (a `geoopt.Manifold` with the Finsler API).
        n: samples per property (default 16; 64 with `thorough=True`).
        seed: seed of the sampling; the same seed gives the same samples. Each property draws
            from its own stream, derived from `seed` and the property's name.
        atol: absolute tolerance (default `rtol * scale`, see above).
        rtol: relative tolerance (default `2**8 eps condition`, see above). Numerical manifolds
            (geodesics by integration or shooting) need their solver's tolerance here; it is
            then also the rounding floor of the Taylor checks.
        dtype: dtype of the samples (default: the manifold's parameter/buffer dtype, else torch's
            default dtype).
        device: device of the samples (default: the manifold's, else CPU).
        scale: typical Finsler length of the sampled vectors (default: measured, see above), and
            the spread of fallback Gaussian points (default 1).
        properties: names of the properties to run (default all, see `PROPERTIES`).
        skip: names of properties not to run (reported as skipped, "skipped by the caller").
        large_steps: Finsler lengths (times `scale`) of the long steps `expmap`/`retr` must survive.
        points: optional `[K, N]` pool of points to sample from instead of `manifold.random`.
        thorough: more samples and more optimizer iterations (slower).
        raise_on_failure: raise `AssertionError` on the first report with failures (default), or
            return the report with them.

    Returns:
        A `CheckReport`: `.passed`, `.skipped` (`{name: reason}`), `.failed`, `.ok`; `str()` is a
        one-line-per-property summary.

    Raises:
        AssertionError: (a `PropertyViolation`) naming every violated property, each with its
            tolerance and the worst counterexample: the inputs and the two compared values. An
            exception the manifold raised is its `__cause__` (traceback included).
        ValueError: an unknown property name, or `n < 2`.

    Example:
        >>> import torch
        >>> from finslerlib import Randers
        >>> a, b = torch.eye(3, dtype=torch.float64), torch.tensor([0.3, 0.0, -0.2], dtype=torch.float64)
        >>> m = Randers(a, b)
        >>> report = check_manifold(m)
        >>> report.ok, len(report.passed)
        (True, 20)
        >>> check_manifold(m, properties=["norm_homogeneous", "cdist"]).passed
        ['norm_homogeneous', 'cdist']
    """
    unknown = (set(properties or ()) | set(skip)) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}; known: {list(PROPERTIES)}")
    m_dtype, m_device = sampling.manifold_dtype_device(manifold)
    dtype = dtype or m_dtype
    device = torch.device(device) if device is not None else m_device
    user_atol, user_rtol = atol, rtol
    n = int(n) if n is not None else (64 if thorough else 16)
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if points is not None:
        points = torch.as_tensor(points).as_subclass(torch.Tensor).detach().to(dtype=dtype, device=device)
        points = points.reshape(-1, sampling.ambient_dim(manifold))
    options = {"n": n, "user_seed": seed, "dtype": dtype, "device": device,
               "large_steps": large_steps, "thorough": thorough, "points": points,
               "fallback_std": 1.0 if scale is None else float(scale)}

    def make_context(name, prop_seed, length=1.0, spread=1.0, atol=1.0, rtol=1.0, accuracy=None,
                     coordinates=None):
        return Context(manifold, name, seed=prop_seed, length=length, spread=spread, atol=atol, rtol=rtol,
                       accuracy=accuracy, coordinate_accuracy=coordinates, **options)

    length, spread, condition = _scales(manifold, make_context, scale, seed)
    eps = working_eps(manifold, dtype)
    d_atol, d_rtol = default_tolerances(dtype, condition, length, eps)
    atol = d_atol if user_atol is None else float(user_atol)
    rtol = d_rtol if user_rtol is None else float(user_rtol)
    # relative accuracy of single evaluated values and of computed coordinates (the rounding floors
    # of the Taylor checks): the caller's rtol (a numerical manifold's solver tolerance), else a few
    # ulps (times the condition for values)
    accuracy = 8 * eps * max(1.0, condition) if user_rtol is None else rtol
    coordinates = 8 * eps if user_rtol is None else rtol
    chosen = list(PROPERTIES) if properties is None else [p for p in PROPERTIES if p in set(properties)]
    skip = set(skip)
    settings = {"n": n, "seed": seed, "atol": atol, "rtol": rtol, "dtype": dtype, "device": device,
                "scale": length, "spread": spread, "condition": condition, "thorough": thorough}
    results = {name: _run(name, manifold, make_context(name, property_seed(seed, name), length, spread,
                                                        atol, rtol, accuracy, coordinates))
               if name not in skip else PropertyResult(name, "skipped", "skipped by the caller")
               for name in chosen}
    report = CheckReport(repr(manifold).replace("\n", " "), results, settings)
    if raise_on_failure and not report.ok:
        failed = report.failed
        msg = "\n\n".join(failed.values())
        if len(failed) > 1:
            msg = f"{len(failed)} properties violated: {', '.join(failed)}\n\n" + msg
        cause = next((r.error for r in results.values() if r.error is not None), None)
        raise PropertyViolation(next(iter(failed)), msg) from cause
    return report


def _run(name: str, manifold, ctx: Context) -> PropertyResult:
    start = time.perf_counter()
    try:
        result = PropertyResult(name, "passed", registered(name).fn(ctx) or "")
    except NotImplementedError as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1].name
        reason = str(exc) or f"{type(manifold).__name__}.{where} is not implemented"
        result = PropertyResult(name, "skipped", f"needs a missing method: {reason}")
    except PropertyViolation as exc:
        result = PropertyResult(name, "failed", str(exc))
    except Exception as exc:  # an error on valid inputs is a violation; its traceback is kept
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        result = PropertyResult(
            name, "failed",
            f"check_manifold({ctx.name}): property '{name}' violated: {PROPERTIES[name]}\n"
            f"  the manifold raised on valid inputs: {last}\n\n{tb}", error=exc)
    result.seconds = time.perf_counter() - start
    return result
