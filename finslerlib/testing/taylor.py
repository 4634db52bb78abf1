r"""Derivative checks by the order of the Taylor remainder: no tolerance to tune.

If `df` is the derivative of `f` at `x` in direction `u`, Taylor's theorem says that the remainder

$$ r(t) = |f(c(t)) - f(x) - t\, df| = O(t^2) $$

along any smooth curve with $c(0) = x$, $c'(0) = u$ (a straight line, a retraction), and with a
second-order term $\tfrac12 t^2\, d^2\!f$ along a curve with $c''(0) = 0$ (a straight line),
$r(t) = O(t^3)$. On a log-log plot of $r$ against $t$ the remainder is a line of slope 2 (3) for
small `t`; a wrong derivative, even off by $10^{-3}$ relative, leaves a first-order term and slope 1
(2) there. Pymanopt's `check_gradient` plots this and fits the line on the window where it is most
linear; here the slope is fitted and asserted automatically:

* the grid is `t = t_max * 10**(-k / per_decade)`, `k = 0 .. decades * per_decade`, evaluated in
  one batched call;
* points whose remainder is not above `margin` times the rounding floor of the compared values
  (`rtol * (|f(c(t))| + |f(x)| + t |df| + ...)`, with `rtol` a few ulps of the dtype times the
  problem's conditioning, or the accuracy of a numerical `f`) are left out: there the remainder
  is noise;
* the slope is the least-squares slope of $\log r$ against $\log t$ over `window` consecutive
  grid points (one decade by default), at the *smallest* `t` where such a window lies above the
  floor and fits a line well (Taylor's theorem is a statement about $t \to 0$; a large-`t` window
  can show slope 2 even for a wrong derivative, once the second-order term dominates; pymanopt
  picks the best-fitting window anywhere, which can miss a small first-order error);
* the check passes where the slope is at least `order - slack` (`slack = 0.25` in float64, 0.5 in
  float32: a property of Taylor's theorem, not a tuned tolerance: a first-order error gives
  slope `order - 1`),
  and also where no well-fitting window lies above the floor (inconclusive: the model is exact
  to rounding, or the remainder clears it over less than a clean decade, as happens in float32),
  or where the slope, below the order, still rises toward small `t` across the window (the
  remainder of a correct derivative just crossed zero: $r = |c_2 t^2 + c_3 t^3|$ has slope below
  2 for a while under $t = -c_2 / c_3$; a wrong derivative's slope settles at `order - 1`).
  What it detects: a relative error `e` of the derivative leaves a first-order term `e t |df|`
  that must clear the floor before the true `t^2` term takes over: in float64 errors down to
  about `1e-6`, in float32 (a narrow band between rounding and the curvature's scale) about
  `1e-2`.

Example:
    >>> import torch
    >>> from finslerlib.testing.taylor import check_gradient
    >>> f = lambda x: (x ** 3).sum(-1)            # f(x) = sum x_i^3, gradient 3 x^2
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    >>> u = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    >>> check_gradient(f, x, u, (3 * x ** 2 * u).sum(-1)).ok
    True
    >>> wrong = check_gradient(f, x, u, (3.003 * x ** 2 * u).sum(-1))  # 1e-3 off
    >>> wrong.ok, [round(s, 1) for s in wrong.slope.tolist()][:2]
    (False, [1.0, 1.0])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

__all__ = ["TaylorCheck", "check_gradient", "check_hessian", "remainder_slope", "taylor_check",
           "default_floor_rtol", "default_slack", "step_grid"]

SLACK = 0.25
"""How far below the Taylor order a fitted slope may fall in float64 (a wrong derivative is a whole
order lower)."""

RISING = 0.2
"""A fitted slope below the order counts as still rising (inconclusive) when the slope over the
window's small-step half exceeds that over its large-step half by more than this."""

SLACK_NARROW = 0.5
"""The same in float32, where the fitted window (0.6 decade) sits next to the end of the Taylor
regime and the next-order term bends the slope by up to about half an order: the slope must be
closer to the Taylor order than to the order of a wrong derivative."""


def default_slack(dtype: torch.dtype) -> float:
    """`SLACK` in float64, `SLACK_NARROW` in lower precisions."""
    return SLACK if torch.finfo(dtype).eps < 1e-10 else SLACK_NARROW


class TaylorCheck(NamedTuple):
    """Result of a Taylor-remainder check, one entry per sample."""

    ok: bool
    """Every sample's slope is at least `order - slack` (or the sample is exact to rounding)."""
    passed: torch.Tensor
    """bool `[K]`: the same per sample."""
    slope: torch.Tensor
    """Fitted log-log slope of the remainder, `[K]` (NaN where no window lies above the floor)."""
    order: int
    """The slope Taylor's theorem predicts: 2 for a first derivative, 3 with the second."""
    conclusive: torch.Tensor
    """bool `[K]`: a window above the rounding floor was found and judged (else the model is exact
    to rounding, or the slope was still rising toward the order where rounding cut the fit off)."""
    t: torch.Tensor
    """The step sizes, `[T]` (times `t_max` per sample), largest first."""
    remainder: torch.Tensor
    """`[T, K]` remainders."""
    floor: torch.Tensor
    """`[T, K]` rounding floors of the remainders (before the margin)."""
    window: torch.Tensor
    """`[K, 2]` first and last grid index of the fitted window (-1 where none)."""

    def describe(self, i: int) -> list[str]:
        """Lines for a failure message about sample `i`."""
        lo, hi = (int(j) for j in self.window[i])
        lines = [f"log-log slope of the Taylor remainder = {self.slope[i].item():.3g}, "
                 f"Taylor's theorem gives {self.order} (a wrong derivative gives {self.order - 1})"]
        if lo >= 0:
            ts = ", ".join(f"{self.t[j].item():.2e}" for j in range(lo, hi + 1))
            rs = ", ".join(f"{self.remainder[j, i].item():.2e}" for j in range(lo, hi + 1))
            lines += [f"fitted on steps t / t_max = [{ts}]", f"remainders = [{rs}]"]
        return lines


def default_floor_rtol(dtype: torch.dtype, condition: float = 1.0) -> float:
    """Relative rounding of evaluated values: `8 * eps(dtype) * condition`."""
    return 8 * torch.finfo(dtype).eps * max(1.0, float(condition))


def remainder_slope(t: torch.Tensor, remainder: torch.Tensor, floor: torch.Tensor, *, order: int,
                    window: int = 6, margin: float = 4.0, slack: float = SLACK,
                    fit_rms: float = 0.1) -> TaylorCheck:
    r"""Fit the log-log slope of Taylor remainders and compare it with `order`.

    Args:
        t: step sizes `[T]`, decreasing (only their ratios matter).
        remainder: `[T, K]` remainders $r(t)$ (NaN / inf where the curve left the domain).
        floor: `[T, K]` rounding floors: a remainder below `margin * floor` is noise.
        order: the predicted slope (2 for a gradient, 3 for a Hessian).
        window: grid points per fitted window.
        margin: how far above the floor a remainder must be to enter a fit.
        slack: the check passes for slopes `>= order - slack`.
        fit_rms: a window fits a line when the RMS of its log10 residuals is below this; the
            smallest-`t` such window is used. A sample without one (the remainder is above the
            floor over too few steps, or bends there) is inconclusive and passes: there is no
            clean power law to judge, and a wrong derivative shows one (slope `order - 1` down
            to the floor).

    Returns:
        A `TaylorCheck`.
    """
    t = t.detach().to(torch.float64)
    r = remainder.detach().to(torch.float64)
    fl = floor.detach().to(torch.float64)
    n_t, k = r.shape
    usable = torch.isfinite(r) & (r > margin * fl) & (r > 0)
    log_t = torch.log10(t).unsqueeze(-1).expand(n_t, k)
    log_r = torch.log10(torch.where(usable, r, torch.ones_like(r)))
    slope = torch.full((k,), math.nan, dtype=torch.float64)
    win = torch.full((k, 2), -1, dtype=torch.long)
    # windows from large t to small t: the last good one (smallest t) wins
    for start in range(0, n_t - window + 1):
        sl = slice(start, start + window)
        ok = usable[sl].all(0)
        if not bool(ok.any()):
            continue
        xs, ys = log_t[sl], log_r[sl]
        xm, ym = xs.mean(0), ys.mean(0)
        s = ((xs - xm) * (ys - ym)).sum(0) / ((xs - xm) ** 2).sum(0)
        rms = ((ys - ym - s * (xs - xm)) ** 2).mean(0).sqrt()
        good = ok & (rms <= fit_rms)
        slope = torch.where(good, s, slope)
        win = torch.where(good.unsqueeze(-1), torch.tensor([start, start + window - 1]), win)
    # a slope below the order that rises toward small t (by more than RISING between the window's
    # halves) is still approaching it: the remainder just crossed zero (r = |c2 t^2 + c3 t^3|
    # vanishes at t = -c2 / c3 and has slope below 2 for some way under it) and the floor cuts the
    # fit off before the asymptotic regime: inconclusive. A wrong derivative's slope does not rise
    # toward small t: it settles at order - 1.
    found = win[:, 0] >= 0
    rising = torch.zeros(k, dtype=torch.bool)
    if bool(found.any()):
        idx = torch.where(found.unsqueeze(-1), win, torch.zeros_like(win))
        half = window // 2
        cols = torch.arange(k)

        def part_slope(first):
            rows = first.unsqueeze(0) + torch.arange(half + 1).unsqueeze(-1)  # [half + 1, K]
            xs, ys = log_t[rows, cols], log_r[rows, cols]
            xm, ym = xs.mean(0), ys.mean(0)
            return ((xs - xm) * (ys - ym)).sum(0) / ((xs - xm) ** 2).sum(0)

        s_large, s_small = part_slope(idx[:, 0]), part_slope(idx[:, 1] - half)
        rising = found & (s_small - s_large > RISING)
    conclusive = found & ~(rising & (slope < order - slack))
    passed = ~conclusive | (slope >= order - slack)
    return TaylorCheck(bool(passed.all()), passed, slope, order, conclusive, t, r, fl, win)


def step_grid(dtype: torch.dtype, *, decades: float | None = None, per_decade: int | None = None,
              window: int | None = None) -> tuple[torch.Tensor, int]:
    """Relative steps `10**(-k / per_decade)` (float64, largest first) and the fit's window
    length: the defaults of `taylor_check` for `dtype`."""
    wide = torch.finfo(dtype).eps < 1e-10  # float64: many decades between rounding and curvature
    if decades is None:
        decades = 8.0 if wide else 4.0
    if per_decade is None:
        per_decade = 5 if wide else 10
    if window is None:
        window = per_decade + 1 if wide else int(0.6 * per_decade) + 1
    n_t = int(round(decades * per_decade)) + 1
    return 10.0 ** (-torch.arange(n_t, dtype=torch.float64) / per_decade), window


def taylor_check(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, u: torch.Tensor,
                 derivatives: Sequence[torch.Tensor], *, curve: Callable | None = None,
                 t_max: float | torch.Tensor = 1.0, rtol: float | None = None,
                 atol: float | torch.Tensor = 0.0, atol_t: float | torch.Tensor = 0.0,
                 decades: float | None = None, per_decade: int | None = None, window: int | None = None,
                 margin: float | None = None, slack: float | None = None) -> TaylorCheck:
    r"""Check derivatives of `f` at `x` along `u` by the order of the Taylor remainder.

    $r(t) = |f(c(t)) - f(x) - \sum_j t^j d_j / j!|$ with $c(t)$ = `curve(x, t u)` (default
    `x + t u`) and `derivatives = [d_1, d_2, ...]`; Taylor's theorem gives slope
    `len(derivatives) + 1`. See the module docstring for the fit.

    Args:
        f: sample-wise function of points `[..., K, N] -> [..., K]` (extra leading dimensions
            are broadcast: all steps are evaluated in one call).
        x: points `[K, N]`.
        u: directions `[K, N]` (tangent at `x` on an embedded domain).
        derivatives: `[K]` tensors: the first derivative $df(x)[u]$, then optionally the second
            $d^2 f(x)[u, u]$ (only along a curve with zero acceleration, such as a straight line).
        curve: `(x, v) -> point` with first derivative `v` at `v = 0` (e.g. a manifold's `retr`);
            broadcast over `[T, K, N]`.
        t_max: the largest step (a float or `[K]`): the curve must stay in the domain and `f`
            smooth up to it.
        rtol: relative accuracy of the evaluated values (default `default_floor_rtol(dtype)`;
            pass the solver's tolerance for a numerical `f`).
        atol: absolute rounding of the evaluated values (a float or `[K]`), added to the floor
            (e.g. the rounding of the points' coordinates times the gradient's size).
        atol_t: absolute rounding per unit step (a float or `[K]`): the floor grows by
            `atol_t * t` (the rounding of `t u` in the dtype, times the gradient's size).
        decades: how far below `t_max` the grid goes (default: down to where a t^2 remainder meets
            the floor `margin rtol`, at most 8 in float64 and 4 in float32,
            where rounding swamps the remainder sooner).
        per_decade: grid points per decade (default 5 in float64, 10 in float32).
        window: grid points per fitted window (default: one decade in float64; 0.6 decade in
            float32, where the remainder clears rounding over about a decade only).
        margin: see `remainder_slope` (default 10 in float64, 4 in float32).
        slack: see `remainder_slope` (default `default_slack(dtype)`).

    Returns:
        A `TaylorCheck`; `.ok` is True when every sample shows the predicted order.
    """
    x, u = x.detach(), u.detach()
    dtype = x.dtype
    rtol = default_floor_rtol(dtype) if rtol is None else float(rtol)
    slack = default_slack(dtype) if slack is None else float(slack)
    if margin is None:  # float64 has decades to spare: fit far above rounding
        margin = 10.0 if torch.finfo(dtype).eps < 1e-10 else 4.0
    if decades is None:
        # a remainder ~ t^2 falls to the floor `margin rtol` (relative) within about
        # log10(1 / (margin rtol)) / 2 decades below t_max: no need to step further (a numerical
        # f given its solver's rtol = 1e-4 needs 3 decades, closed forms the whole default grid)
        full = 8.0 if torch.finfo(dtype).eps < 1e-10 else 4.0
        needed = 0.5 * math.log10(1.0 / max(margin * rtol, 1e-300)) + 1.5
        decades = min(full, math.ceil(2 * needed) / 2)
    rel, window = step_grid(dtype, decades=decades, per_decade=per_decade, window=window)
    t_max_t = torch.as_tensor(t_max, dtype=torch.float64).reshape(-1)
    steps = (rel.unsqueeze(-1) * t_max_t).to(dtype=dtype, device=x.device)  # [T, K] or [T, 1]
    derivatives = [d.detach() for d in derivatives]
    with torch.no_grad():
        f0 = f(x)
        v = steps.unsqueeze(-1) * u  # [T, K, N]
        xt = x + v if curve is None else curve(x.expand_as(v), v)
        ft = f(xt)
    # the remainder is formed in float64: its own cancellation adds no rounding of the dtype
    f0, ft = f0.detach().to(torch.float64), ft.detach().to(torch.float64)
    steps = steps.to(torch.float64)
    model = f0.expand_as(ft).clone()
    size = f0.abs() + ft.abs()
    for j, d in enumerate(derivatives, start=1):
        term = steps ** j / math.factorial(j) * d.to(torch.float64)
        model = model + term
        size = size + term.abs()
    remainder = (ft - model).abs()
    floor = (rtol * size + torch.as_tensor(atol, dtype=torch.float64, device=size.device)
             + steps * torch.as_tensor(atol_t, dtype=torch.float64, device=size.device))
    return remainder_slope(rel, remainder, floor, order=len(derivatives) + 1, window=window,
                           margin=margin, slack=slack)


def check_gradient(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, u: torch.Tensor,
                   df_u: torch.Tensor, **options) -> TaylorCheck:
    r"""Is `df_u` the derivative of `f` at `x` along `u`? The Taylor remainder must have slope 2.

    Args:
        f: sample-wise `[..., K, N] -> [..., K]`.
        x: points, `[K, N]`.
        u: directions, `[K, N]`.
        df_u: the claimed directional derivatives $df(x)[u]$, `[K]` (e.g.
            `(egrad * u).sum(-1)` for a Euclidean gradient `egrad`).
        **options: of `taylor_check` (`curve=manifold.retr` on a manifold, `t_max`, `rtol`, ...).

    Returns:
        A `TaylorCheck` (`.ok`, `.slope`, `.describe(i)`).

    Example:
        >>> import torch
        >>> from finslerlib import Randers
        >>> from finslerlib.testing import check_gradient
        >>> m = Randers(torch.eye(3, dtype=torch.float64), torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
        >>> x, y = torch.zeros(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
        >>> u = torch.randn(4, 3, dtype=torch.float64)
        >>> xs = x.clone().requires_grad_(True)
        >>> (g,) = torch.autograd.grad(m.dist(xs, y).sum(), xs)
        >>> check_gradient(lambda p: m.dist(p, y), x, u, (g * u).sum(-1), t_max=0.1).ok
        True
    """
    return taylor_check(f, x, u, [df_u], **options)


def check_hessian(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, u: torch.Tensor,
                  df_u: torch.Tensor, d2f_uu: torch.Tensor, **options) -> TaylorCheck:
    r"""Is `d2f_uu` the second derivative $d^2 f(x)[u, u]$ (given the first)? Slope 3 along `x + t u`.

    Args:
        f: sample-wise `[..., K, N] -> [..., K]`.
        x: points, `[K, N]`.
        u: directions, `[K, N]`.
        df_u: first directional derivatives, `[K]`.
        d2f_uu: claimed second directional derivatives $u^\top H u$, `[K]`.
        **options: of `taylor_check` (the default straight-line curve: a retraction's second
            derivative would enter the remainder).

    Example:
        >>> import torch
        >>> from finslerlib.testing import check_hessian
        >>> f = lambda x: torch.exp(x).sum(-1)
        >>> x, u = torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
        >>> g = (torch.exp(x) * u).sum(-1)
        >>> check_hessian(f, x, u, g, (torch.exp(x) * u * u).sum(-1)).ok
        True
        >>> check_hessian(f, x, u, g, 1.01 * (torch.exp(x) * u * u).sum(-1)).ok
        False
    """
    return taylor_check(f, x, u, [df_u, d2f_uu], **options)
