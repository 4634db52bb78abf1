r"""Distance maps of Randers metrics on 2-D and 3-D grids: `eikonal_map` (metric as a function) and
`distance_map` (any object with Randers data).

The scheme (`finslerlib.eikonal.scheme`) is iterated by parallel fast sweeping
(`finslerlib.eikonal.sweep`: one vectorized update per grid hyperplane, no loop per node) until no
value changes by more than the tolerance, then by Jacobi steps of the whole grid until one changes
no value by more than it: first order from $T = \infty$ (values only decrease), then, for
`order=2`, second-order sweeps from the first-order map.
Sources anywhere in the grid's box: the nodes within `source_radius` cells of a source are fixed at
$F(m, x - s)$, $m = (x + s)/2$ (exact for constant metrics, $O(|x - s|^3)$ otherwise), where no
other source's frozen distance $T_0$ is smaller (else the sweeps solve them).

Gradients: the map is the fixed point $T = G(T, \theta)$ of the last sweep; its derivative with
respect to anything $G$ depends on (the metric's parameters, the sources) follows from the implicit
function theorem, $\bar\theta = \partial_\theta G^\top \bar g$ with
$\bar g = \bar T + \partial_T G^\top \bar g$, solved by fixed-point iteration in the backward pass
(adjoint sweeps of the same upwind graph).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from finslerlib.eikonal.kernel import CompiledSweeper, compiled_validity, load_kernel
from finslerlib.eikonal.scheme import Precomputed, Stencil, jacobi_step, precompute, stencil
from finslerlib.eikonal.sweep import Sweeper
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_sqrt
from finslerlib.math.validation import randers_validity, symmetry_tolerance

__all__ = ["DistanceMap", "eikonal_map", "distance_map", "grid_points", "metric_function"]

CoefficientFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class DistanceMap:
    """An arrival-time map on a grid, with how it was computed.

    Attributes:
        values: Tensor of the grid's shape: $T(x) = \\min_s d(s \\to x)$ (forward) or
            $\\min_s d(x \\to s)$ (`reverse`); `inf` where unreachable or outside the metric's domain.
        axes: the grid's 1-D coordinate tensors (`indexing="ij"`).
        sources: Tensor `[S, D]`.
        reverse: whether the map is the reverse one.
        order: 1 or 2.
        iterations: sweeps run (directional fast sweeps and Jacobi steps, both orders together).
        converged: whether the last sweep changed no value by more than `tolerance`.
        change: the largest change of the last sweep.
        tolerance: the stopping tolerance on that change.
        valid: bool Tensor of the grid's shape, where the metric is a Randers metric.
    """

    values: torch.Tensor
    axes: tuple[torch.Tensor, ...]
    sources: torch.Tensor
    reverse: bool
    order: int
    iterations: int
    converged: bool
    change: float
    tolerance: float
    valid: torch.Tensor


def grid_points(axes: Sequence[torch.Tensor]) -> torch.Tensor:
    """The grid's nodes, Tensor `[*grid, D]` (`indexing="ij"`).

    Example:
        >>> grid_points((torch.arange(2.0), torch.arange(3.0))).shape
        torch.Size([2, 3, 2])
    """
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def metric_function(metric) -> CoefficientFn:
    """`x -> (a, b)` from a callable or an object with `raw_coefficients` or `coefficients`.

    Where the object's `coefficients` raises `ValueError` (points outside its domain), the batch
    is split in halves and each retried, so that the points where it does not raise get their
    data and the others `(I, NaN)` (invalid, so `inf` in a distance map).
    """
    if callable(metric) and not hasattr(metric, "coefficients"):
        return metric
    fn = getattr(metric, "raw_coefficients", None) or getattr(metric, "coefficients", None)
    if fn is None:
        raise TypeError(
            f"metric must be a callable x -> (a, b) or have coefficients(x), got {type(metric).__name__}"
        )

    def split(x: torch.Tensor):
        try:
            a, b = fn(x)
            d = x.shape[-1]
            return a.expand(*x.shape[:-1], d, d), b.expand(*x.shape)
        except ValueError:
            if x.shape[0] <= 1:
                d = x.shape[-1]
                eye = torch.eye(d, dtype=x.dtype, device=x.device).expand(x.shape[0], d, d)
                return eye, torch.full_like(x, float("nan"))
            h = x.shape[0] // 2
            (a0, b0), (a1, b1) = split(x[:h]), split(x[h:])
            return torch.cat([a0, a1]), torch.cat([b0, b1])

    def safe(x: torch.Tensor):
        shape = x.shape[:-1]
        a, b = split(x.reshape(-1, x.shape[-1]))
        return a.reshape(*shape, *a.shape[-2:]), b.reshape(*shape, b.shape[-1])

    return safe


def _check_axes(axes, sources):
    if not isinstance(axes, (tuple, list)) or not all(isinstance(t, torch.Tensor) for t in axes):
        raise TypeError("axes must be a tuple of 1-D tensors")
    dim = len(axes)
    if dim not in (2, 3):
        raise ValueError(f"axes: distance maps are implemented on 2-D and 3-D grids, got {dim} axes")
    spacing = []
    for k, t in enumerate(axes):
        if not t.is_floating_point():
            raise TypeError(f"axes[{k}] must be a floating-point tensor, got dtype {t.dtype}")
        if t.dtype != axes[0].dtype or t.device != axes[0].device:
            raise TypeError(
                f"axes must share one dtype and device, got axes[0] {axes[0].dtype} on {axes[0].device} "
                f"and axes[{k}] {t.dtype} on {t.device}"
            )
        if t.dim() != 1 or t.numel() < 3:
            raise ValueError(f"axes[{k}] must be 1-D with at least 3 points, got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"axes[{k}] must be finite, got {t.tolist()[:8]}...")
        step = t[1:] - t[:-1]
        h = (t[-1] - t[0]) / (t.numel() - 1)
        if not bool((step > 0).all()):
            j = int((step <= 0).nonzero()[0, 0])
            raise ValueError(
                f"axes[{k}] must be increasing, got axes[{k}][{j}] = {float(t[j]):.6g} and "
                f"axes[{k}][{j + 1}] = {float(t[j + 1]):.6g} (reverse it, or flip the map)"
            )
        slack = max(1e-6 * float(h.abs()), 64 * torch.finfo(t.dtype).eps * float(t.abs().max()))
        if float((step - h).abs().max()) > slack:
            raise ValueError(
                f"axes[{k}] must be uniformly spaced: steps between {float(step.min()):.6g} and "
                f"{float(step.max()):.6g} (largest deviation {float((step - h).abs().max()):.3g} "
                f"from the mean step {float(h):.6g})"
            )
        spacing.append(h)
    if not isinstance(sources, torch.Tensor):
        raise TypeError(f"sources must be a Tensor [S, D], got {type(sources).__name__}")
    if sources.dim() != 2 or sources.shape[-1] != dim or sources.shape[0] == 0:
        raise ValueError(f"sources must have shape [S, {dim}] with S >= 1, got {tuple(sources.shape)}")
    finite = torch.isfinite(sources).all(-1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0, 0])
        raise ValueError(f"sources[{i}] = {sources[i].tolist()} is not finite")
    lo = torch.stack([t[0] for t in axes])
    hi = torch.stack([t[-1] for t in axes])
    outside = ((sources < lo) | (sources > hi)).any(-1)
    if bool(outside.any()):
        i = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"sources[{i}] = {sources[i].tolist()} is outside the grid's box [{lo.tolist()}, {hi.tolist()}]"
        )
    return torch.stack(spacing)


def _source_data(fn, axes, sources, spacing, radius, valid, x=None):
    """Fixed values near the sources and the factorization's $T_0$ and its gradient at every node
    (`x`: the grid's nodes, `grid_points(axes)`, where the caller has them)."""
    x = grid_points(axes) if x is None else x
    a_s, b_s = fn(sources)
    ok = randers_validity(a_s, b_s)[0]
    if not bool(ok.all()):
        i = int((~ok).nonzero()[0, 0])
        raise ValueError(
            f"sources[{i}] = {sources[i].tolist()} lies where the metric is not a Randers metric"
        )
    count = sources.shape[0]
    base = second = nearest = grad = None
    for s in range(count):
        v = x - sources[s]
        av = v @ a_s[s]
        alpha = safe_sqrt((av * v).sum(-1))  # zero gradient at the source's own node (v = 0)
        t0 = alpha + v @ b_s[s]
        safe_alpha = torch.where(alpha > 0, alpha, torch.ones_like(alpha))
        g = av / safe_alpha.unsqueeze(-1) + b_s[s]
        if base is None:  # the first source is the nearest everywhere so far
            base, grad = t0, g
            nearest = torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
            second = torch.full_like(t0, float("inf"))  # the second smallest T0 over the sources
            continue
        closer = t0 < base
        second = torch.where(closer, base, torch.minimum(second, t0))
        base = torch.where(closer, t0, base)
        nearest = torch.where(closer, torch.full_like(nearest, s), nearest)
        grad = torch.where(closer.unsqueeze(-1), g, grad)
    fixed_val = torch.full_like(base, float("inf"))
    for s in range(count):
        # the nodes of the window around the source (within `radius` cells on every axis, the test
        # per axis on the axis' own values): exact local values, fixed where no other source
        # reaches the node sooner (else left to the sweeps: a node fixed at one source's value
        # while another reaches it sooner would never take the smaller value)
        ranges = [
            (((ax - sources[s, k]) / spacing[k]).abs() <= radius).nonzero().flatten()
            for k, ax in enumerate(axes)
        ]
        if any(r.numel() == 0 for r in ranges):  # pragma: no cover - radius >= 1 always holds a node
            raise ValueError(f"no node within source_radius of sources[{s}] = {sources[s].tolist()}")
        idx = tuple(m.reshape(-1) for m in torch.meshgrid(*ranges, indexing="ij"))
        xn = x[idx]
        a_m, b_m = fn(0.5 * (xn + sources[s]))
        val = rmath.norm(xn - sources[s], a_m, b_m)
        others = torch.where(nearest[idx] == s, second[idx], base[idx]).detach()
        first = val.detach() <= others
        local = torch.where(first, val, torch.full_like(val, float("inf")))
        fixed_val = fixed_val.index_put(idx, torch.minimum(fixed_val[idx], local))
    fixed = valid & torch.isfinite(fixed_val)
    return fixed, fixed_val, base, grad


class _Problem:
    """Everything one sweep needs; `step(T)` is the scheme's map $G$."""

    def __init__(self, st: Stencil, pre: Precomputed, order, fixed, fixed_val, valid, base, slope):
        self.st, self.pre, self.order = st, pre, order
        self.fixed, self.fixed_val, self.valid = fixed, fixed_val, valid
        self.base, self.slope = base, slope

    def step(self, t: torch.Tensor, order: int) -> torch.Tensor:
        inf = torch.full_like(t, float("inf"))
        if self.base is not None:
            tau = torch.where(
                torch.isfinite(t), t - torch.where(torch.isfinite(self.base), self.base, 0 * t), inf
            )
            new = jacobi_step(tau, self.st, self.pre, order=order, base=self.base, slope=self.slope)
        else:
            new = jacobi_step(t, self.st, self.pre, order=order)
        new = torch.where(self.fixed, self.fixed_val, new)
        return torch.where(self.valid, new, inf)


def _change(new: torch.Tensor, old: torch.Tensor) -> float:
    """The largest change between two states (`inf` where a value became finite or infinite)."""
    # |new - old|: inf where one is finite and the other not, 0 where both are inf (equal), NaN (not
    # converged) where a value is NaN
    diff = torch.where(new == old, torch.zeros((), dtype=new.dtype, device=new.device), (new - old).abs())
    return float(diff.max())


def _iterate(step, t: torch.Tensor, order: int, tol: float, max_iter: int):
    """Jacobi steps `t <- step(t, order)` until the largest change is within `tol`;
    returns `(T, steps, change)`."""
    change = float("inf")
    steps = 0
    while steps < max_iter:
        new = step(t, order)
        steps += 1
        change = _change(new, t)
        t = new
        if change <= tol:
            break
    return t, steps, change


def _term_scale(st: Stencil, a: torch.Tensor, b: torch.Tensor, spacing: torch.Tensor, valid) -> float:
    r"""The largest term the local solver adds to a neighbour's value, over the valid nodes:
    $\max_{x, k} |b(x) \cdot e_k| + |e_k|_{a(x)}$ (in units of $T$).

    Near the edge of a metric's domain (a Zermelo wind $|W| \to 1$) $a$ and $b$ blow up like
    $1/(1 - |W|^2)^2$ while $F$ stays bounded: the update of such a node is a difference of terms of
    this size, so its rounding is relative to them, not to $T$ (measured: on the bench's 81^3
    strong-drift map the second-order sweeps cycled at $1.4 \cdot 10^{-13}$, 19 eps times this
    scale, at the nodes where it peaks, $|b| = 871$, while $T = 0.34$ there).
    """
    off = torch.tensor(st.offsets, dtype=a.dtype, device=a.device) * spacing  # [K, D]
    d = off.shape[-1]
    keep = valid.reshape(-1)
    top, block = 0.0, 1 << 20  # [block, K] at a time
    if bool(((off != 0).sum(-1) == 1).all()):
        # axis offsets (3-D), +-h_k e_k: e^T a e = a_kk h_k^2 and |b . e| = |b_k h_k|, read from the
        # diagonal (the same products as the general form's, whose other terms are exact zeros)
        diag, b2 = a.diagonal(dim1=-2, dim2=-1).reshape(-1, d), b.reshape(-1, d)
        h = spacing.to(a.dtype)
        for start in range(0, diag.shape[0], block):
            sl = slice(start, start + block)
            term = ((diag[sl] * (h * h)).clamp_min(0).sqrt() + (b2[sl] * h).abs()).amax(-1)
            term = torch.where(keep[sl], term, torch.zeros_like(term))
            top = max(top, float(term.max()))
        return top
    outer = (off[:, :, None] * off[:, None, :]).reshape(len(off), d * d).T  # [D*D, K]
    a2, b2 = a.reshape(-1, d * d), b.reshape(-1, d)
    for start in range(0, a2.shape[0], block):
        sl = slice(start, start + block)
        term = ((a2[sl] @ outer).clamp_min(0).sqrt() + (b2[sl] @ off.T).abs()).amax(-1)
        term = torch.where(keep[sl], term, torch.zeros_like(term))
        top = max(top, float(term.max()))
    return top


def _step_cost(fn, st: Stencil, sources: torch.Tensor, spacing: torch.Tensor) -> float:
    """The largest cost $|e_k|_a + |b \\cdot e_k|$ of one stencil step at the sources."""
    a_s, b_s = fn(sources)
    off = torch.tensor(st.offsets, dtype=sources.dtype, device=sources.device) * spacing  # [K, D]
    quad = torch.einsum("kd,sde,ke->sk", off, a_s.detach(), off).clamp_min(0)
    return float((quad.sqrt() + (b_s.detach() @ off.T).abs()).max())


def _rounding_tol(t: torch.Tensor, dim: int, terms: float = 0.0, dtype: torch.dtype | None = None) -> float:
    r"""`8 D eps max(1, max |T|, terms)`: an update is a minimum over facets, each value a sum of
    terms of size $T$ or `terms` (`_term_scale`) with $D$-term dot products inside, so each is
    within a few $D arepsilon$ times that size of exact; where two facets nearly tie the choice can
    flip between sweeps, and the sweeps cannot settle below that (measured: 3-D strong-drift maps
    cycle at 13 eps T, 2-D ones settle exactly; second-order ones at 19 eps `terms` where the
    metric is nearly degenerate). `dtype`: the map's (eps), where `t` is held wider."""
    finite = t[torch.isfinite(t)]
    top = float(finite.abs().max()) if finite.numel() else 1.0
    return 8 * dim * torch.finfo(dtype or t.dtype).eps * max(1.0, top, terms)


def _sweep(
    sweeper,
    step,
    t,
    order: int,
    tol: float,
    max_rounds: int,
    max_iter: int,
    check=True,
    relative=False,
    terms: float = 0.0,
    dtype: torch.dtype | None = None,
):
    """Rounds of fast sweeps until no value changes by more than `tol`, then (`check`) Jacobi steps
    until one changes no value by more than `tol` (the stopping test of the Jacobi map itself).
    `relative`: `tol` grows to `_rounding_tol` of the values once they are known (the default
    tolerance starts from the source window's values). Returns `(T, sweeps, change, tol)`."""
    flat = sweeper.pad(t)
    rounds, change = sweeper.rounds(flat, order, tol, min(max_rounds, 12) if relative else max_rounds)
    # the kernel stops its sweeps as stalled when they cycle above tol: more of them will not settle
    stalled = getattr(sweeper, "stalled", False)
    if relative:
        tol = max(tol, _rounding_tol(flat, len(sweeper.shape), terms, dtype))
        if change > tol and rounds < max_rounds and not stalled:
            more, change = sweeper.rounds(flat, order, tol, max_rounds - rounds)
            rounds += more
            stalled = getattr(sweeper, "stalled", False)
    stalled = stalled and change > tol
    t = sweeper.unpad(flat)
    swept = rounds * sweeper.sweeps_per_round
    if not check:
        return t, swept, change, tol
    if isinstance(sweeper, CompiledSweeper):
        # the kernel's sweeps reach the fixed point far faster than Jacobi steps: a Jacobi step checks
        # it, and where it moves a value by more than tol the sweeps go on from there (a few times)
        for _ in range(4):
            new = step(t, order)
            swept += 1
            jacobi = _change(new, t)
            t = new
            if stalled:  # reported: the larger of the stalled sweeps' change and the Jacobi step's
                change = max(change, jacobi)
                break
            change = jacobi
            if change <= tol or swept >= max_iter:
                break
            flat = sweeper.pad(t)
            more, stalled = sweeper.rounds(flat, order, tol, max_rounds)
            t = sweeper.unpad(flat)
            swept += more * sweeper.sweeps_per_round
            if stalled > tol:  # the sweeps cycle above tol: more of them will not settle
                change = max(change, stalled)
                break
        return t, swept, change, tol
    t, more, change = _iterate(step, t, order, tol, max(1, max_iter - swept))
    return t, swept + more, change, tol


_BACKENDS = ("auto", "cpp", "torch")


def _ill_conditioned(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> bool:
    r"""Whether some valid node's local solve is ill conditioned, by the compiled kernel's test:
    $|b|^2_{a^{-1}} > 0.95$ (next to the domain's edge) or $\mathrm{tr}(a) \mathrm{tr}(a^{-1}) > 10^4$.

    There the solves difference terms up to $\mathrm{cond}(a)$ (and $1 / (1 - |b|^2_{a^{-1}})$)
    times $T$; the kernel solves such nodes in a wider type, the torch sweeps of a float32 map run
    in float64 (measured: float32, constant Randers with cond(a) = 1e5, $|b|_{a^{-1}} = 0.95$, 3^3
    nodes: float32 sweeps settled 3.4e-2 from the closed form, 19 times the tolerance).
    """
    a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
    ainv = torch.linalg.inv(a64)
    beta = torch.einsum("...i,...ij,...j->...", b64, ainv, b64)
    spread = a64.diagonal(dim1=-2, dim2=-1).sum(-1) * ainv.diagonal(dim1=-2, dim2=-1).sum(-1)
    bad = (beta > 0.95) | (spread > 1e4) | ~(beta >= 0)
    return bool((bad & valid).any())


def _check_symmetric(a: torch.Tensor) -> None:
    """`ValueError` naming the largest $|a - a^\\top|$ where it exceeds `symmetry_tolerance`
    relative to $\\max(1, \\max_i |a_{ii}|)$ (the largest entry of an SPD matrix is on its
    diagonal; a matrix that is not SPD is rejected by the validity test anyway): the scheme reads
    all of `a`, the Randers norm only its symmetric part, so a non-symmetric `a` would give a map
    of no metric. NaN entries (invalid nodes) are skipped; a few in-place passes per entry pair."""
    d = a.shape[-1]
    top = 1.0
    for i in range(d):
        top = max(top, float(a[..., i, i].abs().nan_to_num_(0.0, 0.0, 0.0).max()))
    worst = 0.0
    for i in range(d):
        for j in range(i):
            diff = (a[..., i, j] - a[..., j, i]).abs_().nan_to_num_(0.0, 0.0, 0.0)
            worst = max(worst, float(diff.max()))
    tol = symmetry_tolerance(a.dtype) * top
    if not worst <= tol:
        raise ValueError(
            f"coefficients: a must be symmetric, got max |a - a^T| = {worst:.3g} (tolerance {tol:.3g})"
        )


def _uses_kernel(backend: str, device: torch.device) -> bool:
    return backend != "torch" and device.type == "cpu" and load_kernel() is not None


def _sweeper(backend: str, st, a, b, spacing, free, base, grad, build_problem):
    """The sweeper of `backend` and its Jacobi step."""
    if backend != "torch" and free.device.type == "cpu":
        module = load_kernel()
        if module is not None:
            sweeper = CompiledSweeper(module, st, a, b, spacing, free, base, grad)
            return sweeper, sweeper.step
        if backend == "cpp":
            raise RuntimeError(
                "backend='cpp': the compiled sweep kernel could not be built (see the warning)"
            )
    elif backend == "cpp":
        raise ValueError(f"backend='cpp' runs on CPU tensors, got the device {free.device}")
    problem = build_problem()
    return Sweeper(st, problem.pre, free, base, problem.slope), problem.step


class _ImplicitHook:
    """Backward of $T = G(T, \\theta)$: $\\bar g = \\bar T + \\partial_T G^\\top \\bar g$ by iteration.

    Where the scheme is causal the iteration ends exactly, after as many steps as the longest
    upwind chain. Where it is not (an ill-conditioned local solve reads a later neighbour), it
    contracts at a rate $\\rho$ measured from the last changes $c_k$: after `max_iter` steps the
    gradient is returned where the remaining error $|c_k| \\rho / (1 - \\rho)$ is within
    $\\sqrt{\\epsilon} \\max |\\bar g|$ (a derivative's usual accuracy), and otherwise an error is
    raised: an unsettled gradient is never returned.
    """

    def __init__(self, t0: torch.Tensor, f0: torch.Tensor, max_iter: int, converged: bool = True):
        self.t0, self.f0, self.max_iter, self.converged = t0, f0, max_iter, converged

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        if not self.converged:
            warnings.warn(
                "eikonal_map backward: the map did not converge (converged=False), so its gradient "
                "is that of an unfinished iteration, not of the scheme's solution",
                RuntimeWarning,
                stacklevel=2,
            )
        grad = grad.to(self.t0.dtype)
        if grad.numel() == 0:
            return grad
        eps = torch.finfo(grad.dtype).eps
        g = grad
        changes: list[float] = []
        history: list[torch.Tensor] = []  # the last iterates, to tell a drift from rounding noise
        for _ in range(self.max_iter):
            (jg,) = torch.autograd.grad(self.f0, self.t0, g, retain_graph=True)
            jg = torch.nan_to_num(jg, nan=0.0, posinf=0.0, neginf=0.0)
            new = grad + jg
            change, size = float((new - g).abs().max()), float(new.abs().max())
            g = new
            if change <= 8 * eps * (1 + size):
                return g
            changes.append(change)
            history = [*history[-(_WINDOW - 1) :], g]
        remaining = self._remaining(changes, history)
        if remaining <= eps**0.5 * float(g.abs().max()):
            return g
        raise RuntimeError(
            f"eikonal_map backward: the adjoint iteration did not settle in {self.max_iter} steps "
            f"(estimated remaining error {remaining:.3g}, gradient size {float(g.abs().max()):.3g}): "
            "the discrete scheme is not causal at this metric's conditioning; use order=1 or a "
            "better-conditioned metric"
        )

    @staticmethod
    def _remaining(changes: list[float], history: list[torch.Tensor]) -> float:
        """The error left after the last step: $c \\rho / (1 - \\rho)$ for a contraction at rate
        $\\rho < 1$ (the largest ratio of successive changes over the window); where the changes
        stopped shrinking, the net move over the window if it is no larger than a couple of
        single steps (rounding noise about the fixed point), else `inf` (a drift or growth)."""
        if len(changes) < _WINDOW:
            return float("inf")
        last = changes[-_WINDOW:]
        rate = max(c1 / c0 if c0 > 0 else float("inf") for c0, c1 in zip(last[:-1], last[1:], strict=True))
        if rate < 1:
            return last[-1] * rate / (1 - rate)
        net = float((history[-1] - history[0]).abs().max())
        return net if net <= 2 * max(last) else float("inf")


# iterates over which the adjoint iteration's convergence is judged
_WINDOW = 8


def eikonal_map(
    coefficients: CoefficientFn,
    axes: Sequence[torch.Tensor],
    sources: torch.Tensor,
    *,
    reverse: bool = False,
    order: int = 2,
    factor: bool = True,
    source_radius: float = 1.0,
    tol: float | None = None,
    max_iter: int | None = None,
    backend: str = "auto",
) -> DistanceMap:
    r"""The Randers distance map $T(x) = \min_s d(s \to x)$ on a grid, metric given as a function.

    Args:
        coefficients: callable `x -> (a(x), b(x))`, `x` of shape `[..., D]`.
        axes: `D` (2 or 3) increasing, uniformly spaced 1-D tensors; the grid is their product.
        sources: Tensor `[S, D]`, anywhere in the grid's box.
        reverse: `True` for $T(x) = \min_s d(x \to s)$ (the map of the reversed metric $b \to -b$).
        order: 1 or 2 (second-order differences where upwind). Measured max-norm error rates of
            `order=2` on a smooth closed drift: 2.0 in 2-D, but only about 1.16 in 3-D (see
            docs/concepts/eikonal.md, "Order, and where the error concentrates").
        factor: solve for $T - T_0$, $T_0$ the frozen-metric distance to the nearest source
            (removes the source singularity's first-order error).
        source_radius: nodes within this many cells (max norm) of a source are fixed at the
            local value $F(m, x - s)$.
        tol: stopping tolerance on the largest change per sweep (default
            `8 D eps max(1, max T, max |b . e| + |e|_a)`, `e` the stencil's offsets: an update's
            rounding, a few `D eps` times the size of its terms).
        max_iter: sweeps per order, fast sweeps and Jacobi steps together (default 20 times the
            grid's largest side).
        backend: how the forward iteration runs: `"cpp"` the compiled CPU kernel
            (`finslerlib.eikonal.kernel`, built with the C++ compiler on first use, then cached),
            `"torch"` the vectorized torch sweeps (any device), `"auto"` (default) the kernel on CPU
            tensors where it can be built (else the torch sweeps, with one warning). Both iterate
            the same scheme to the same fixed point (to rounding); gradients are the same torch step
            either way. Where the metric is ill conditioned ($|b|^2_{a^{-1}} > 0.95$ or
            $\mathrm{tr}(a)\,\mathrm{tr}(a^{-1}) > 10^4$ at some node) the kernel solves those
            nodes in a wider type, and the torch sweeps of a float32 map run in float64.

    Returns:
        `DistanceMap`; differentiable in the metric's parameters and the sources.

    Example:
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype).expand(*x.shape[:-1], 2, 2), torch.zeros_like(x))
        >>> ax = torch.linspace(-1, 1, 21, dtype=torch.float64)
        >>> m = eikonal_map(euclid, (ax, ax), torch.zeros(1, 2, dtype=torch.float64))
        >>> round(m.values[-1, -1].item(), 6)  # the corner: sqrt(2)
        1.414214
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    axes = tuple(axes)
    spacing = _check_axes(axes, sources)
    dtype, device = axes[0].dtype, axes[0].device
    sources = sources.to(dtype=dtype, device=device)
    fn = coefficients
    if reverse:
        fn = lambda x: (lambda ab: (ab[0], -ab[1]))(coefficients(x))  # noqa: E731
    x = grid_points(axes)
    a, b = fn(x)
    d = x.shape[-1]
    a = a.expand(*x.shape[:-1], d, d)
    b = b.expand(*x.shape)
    _check_symmetric(a.detach())
    valid = compiled_validity(a.detach(), b.detach()) if _uses_kernel(backend, device) else None
    if valid is None:
        valid = randers_validity(a.detach(), b.detach())[0]
    raw_a, raw_b = a, b
    masked: list[torch.Tensor] = []

    ill: list[bool] = []

    def ill_conditioned() -> bool:
        """`_ill_conditioned` of the masked metric, computed once (the float32 forward and its
        gradient's step both ask; it inverts `a` at every node)."""
        if not ill:
            ill.append(_ill_conditioned(*metric(), valid))
        return ill[0]

    def metric() -> list[torch.Tensor]:
        """`(a, b)` with the identity and zero where the metric is not valid (formed on first use:
        the compiled kernel reads the metric at valid nodes only and needs no copy)."""
        if not masked:
            if bool(valid.all()):
                masked.extend((raw_a, raw_b))
            else:
                # recorded even when first formed inside the sweeps' no_grad: the gradient's step
                # differentiates through it
                with torch.enable_grad():
                    eye = torch.eye(d, dtype=dtype, device=device)
                    masked.append(torch.where(valid[..., None, None], raw_a, eye))
                    masked.append(torch.where(valid[..., None], raw_b, torch.zeros_like(raw_b)))
        return masked

    st = stencil(d)
    fixed, fixed_val, base, grad = _source_data(fn, axes, sources, spacing, source_radius, valid, x)
    if not factor:
        base = grad = None

    def build_problem(w: torch.dtype | None = None, symmetric: bool = False) -> _Problem:
        """The scheme's map in the dtype `w` (default: the map's); `symmetric` reads `a` as
        $(a + a^\\top) / 2$, so that its gradient is symmetric (`a` is checked symmetric above)."""
        a, b = metric()
        sp, fv, t0, g0 = spacing, fixed_val, base, grad
        if w is not None and w != dtype:
            a, b, sp, fv = a.to(w), b.to(w), sp.to(w), fv.to(w)
            t0 = None if t0 is None else t0.to(w)
            g0 = None if g0 is None else g0.to(w)
        if symmetric:
            a = 0.5 * (a + a.mT)
        slope = None
        if t0 is not None:
            off = torch.tensor(st.offsets, dtype=sp.dtype, device=device) * sp
            slope = torch.einsum("...i,ki->k...", g0, off)
        return _Problem(st, precompute(st, a, b, sp), order, fixed, fv, valid, t0, slope)

    side = max(t.numel() for t in axes)
    max_iter = 20 * side if max_iter is None else int(max_iter)
    with torch.no_grad():
        t = torch.where(fixed, fixed_val, torch.full_like(fixed_val, float("inf"))).detach()
        scale = float(fixed_val[fixed].abs().max()) if bool(fixed.any()) else 1.0
        terms = _term_scale(st, raw_a.detach(), raw_b.detach(), spacing, valid)
        tol_ = 8 * d * torch.finfo(dtype).eps * max(1.0, scale, terms) if tol is None else float(tol)
        wide = dtype == torch.float32 and not _uses_kernel(backend, device) and ill_conditioned()
        if wide:  # the forward sweeps in float64 (so does the gradient's step, below)
            w = torch.float64
            a, b = metric()
            st_a, st_b, st_sp = a.detach().to(w), b.detach().to(w), spacing.to(w)
            st_base = None if base is None else base.detach().to(w)
            st_grad = None if grad is None else grad.detach().to(w)
            st_fv = fixed_val.detach().to(w)

            def build_wide() -> _Problem:
                slope = None
                if st_base is not None:
                    off = torch.tensor(st.offsets, dtype=w, device=device) * st_sp
                    slope = torch.einsum("...i,ki->k...", st_grad, off)
                pre = precompute(st, st_a, st_b, st_sp)
                return _Problem(st, pre, order, fixed, st_fv, valid, st_base, slope)

            t = t.to(w)
            sweeper, step = _sweeper(
                "torch", st, st_a, st_b, st_sp, valid & ~fixed, st_base, st_grad, build_wide
            )
        else:
            sweeper, step = _sweeper(
                backend, st, raw_a, raw_b, spacing, valid & ~fixed, base, grad, build_problem
            )
        rounds = max(2, max_iter // (4 * sweeper.sweeps_per_round))
        auto = tol is None
        if order == 2:
            # the first-order map only starts the second-order sweeps, which move every value by
            # O(h): a guess within (a step's cost at the sources) * h / L ~ h^2 / L (L the grid's
            # longest side) is as good as a converged one (measured on the bench's 501^2 drift:
            # 3.1 instead of 5.2 updates per node, the second-order sweeps unchanged)
            extent = max(float(ax[-1] - ax[0]) for ax in axes)
            guess_tol = max(tol_, _step_cost(fn, st, sources, spacing) * float(spacing.min()) / extent)
            t, sweeps, _, _ = _sweep(sweeper, step, t, 1, guess_tol, rounds, max_iter, check=False)
        else:
            t, sweeps, change, tol_ = _sweep(
                sweeper,
                step,
                t,
                1,
                tol_,
                rounds,
                max_iter,
                check=True,
                relative=auto,
                terms=terms,
                dtype=dtype,
            )
        if order == 2:
            tol2 = _rounding_tol(t, d, terms, dtype) if auto else tol_
            t, more, change, tol_ = _sweep(
                sweeper, step, t, 2, tol2, rounds, max_iter, relative=auto, terms=terms, dtype=dtype
            )
            sweeps += more
        t = t.to(dtype)
    converged = change <= tol_
    values = t
    inputs = (raw_a, raw_b, fixed_val) if base is None else (raw_a, raw_b, fixed_val, base, grad)
    if torch.is_grad_enabled() and any(z.requires_grad for z in inputs):
        # one differentiable sweep at the fixed point; the hook applies (I - dG/dT)^-T to its
        # gradient. A float32 map of an ill-conditioned metric differentiates a float64 sweep: the
        # local solves' derivatives difference terms up to cond(a) times T, and in float32 the
        # adjoint iteration measured 610x off (order 2) or did not settle
        w = torch.float64 if dtype == torch.float32 and ill_conditioned() else dtype
        # outside no_grad: differentiable in the metric and the sources
        problem = build_problem(w, symmetric=raw_a.requires_grad)
        tw = t.detach().to(w)
        out = problem.step(tw, order)
        if out.requires_grad:
            t0 = tw.requires_grad_(True)
            f0 = problem.step(t0, order)
            out.register_hook(_ImplicitHook(t0, f0, max_iter, bool(converged)))
            out = out.to(dtype)
            values = out + (t - out).detach()  # the converged value, the sweep's derivative
    return DistanceMap(
        values=values,
        axes=axes,
        sources=sources,
        reverse=reverse,
        order=order,
        iterations=sweeps,
        converged=bool(converged),
        change=change,
        tolerance=tol_,
        valid=valid,
    )


def distance_map(
    metric,
    axes: Sequence[torch.Tensor],
    sources: torch.Tensor,
    *,
    reverse: bool = False,
    order: int = 2,
    **options,
) -> DistanceMap:
    r"""The distance map of a manifold with Randers data (or of a function `x -> (a, b)`).

    `metric` is a callable `x -> (a, b)` or any object with `raw_coefficients(x)` or
    `coefficients(x)` (`Randers`, `FunkBall`, `RandersField`, `Navigation` over a flat base, ...):
    points where `coefficients` raises (outside the Funk ball, where $|W| \ge 1$) are `inf`.
    See `eikonal_map` for the options.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(a=torch.eye(2, dtype=torch.float64), b=torch.tensor([0.5, 0.0], dtype=torch.float64))
        >>> ax = torch.linspace(-1, 1, 21, dtype=torch.float64)
        >>> dm = distance_map(m, (ax, ax), torch.zeros(1, 2, dtype=torch.float64), order=1)
        >>> round(dm.values[-1, 10].item(), 6), round(dm.values[0, 10].item(), 6)  # F(e1), F(-e1)
        (1.5, 0.5)
    """
    return eikonal_map(metric_function(metric), axes, sources, reverse=reverse, order=order, **options)
