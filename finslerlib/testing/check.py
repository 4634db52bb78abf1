r"""`check_manifold`: a numerical conformance suite for any `FinslerManifold`.

The suite samples points, vectors and covectors with a seeded torch generator (no hypothesis
needed) and checks the laws every Finsler (Randers) manifold must obey, each against an
*independent* computation where one exists: autograd derivatives of $\tfrac12 F^2$, a numerical
supremum for the dual norm, finite differences for gradients of `dist`, first-order Taylor
expansions for retractions and gradient steps.

A violated law raises `AssertionError` that names the property, the tolerance and the worst
counterexample found (the point, the vectors, the two compared values). Properties whose methods
the manifold does not implement (`NotImplementedError`) are reported as skipped, with the reason.

The properties, by name (pass names to `properties=` or `skip=`):

* `sampling`: `random`/`origin` points, sampled vectors and gradients pass the manifold's own
  checks; `projx` keeps points on the manifold.
* `dtype_device`: results keep the input's dtype and device.
* `norm_positive`: $F(x, 0) = 0$, $F(x, v) > 0$ for $v \ne 0$ (random and numerically minimized).
* `norm_homogeneous`: $F(x, c v) = c F(x, v)$ for $c > 0$.
* `norm_triangle`: $F(x, u + v) \le F(x, u) + F(x, v)$ (random and nearly parallel pairs).
* `strong_convexity`: $g_u$ symmetric positive definite, $g_u(u, u) = F^2$, `inner` agrees, and
  $g$ equals the autograd Hessian of $\tfrac12 F^2$.
* `dual_norm`: $F^*(\xi)$ equals $\sup_{F(v)=1} \xi(v)$ computed by Newton's method from `norm`
  alone; Fenchel–Young $\xi(v) \le F^*(\xi) F(v)$; homogeneity of $F^*$.
* `legendre`: $\ell$ = autograd $\partial_v \tfrac12 F^2$; $\ell(v)(v) = F^2$;
  $\ell^{-1}\ell = \mathrm{id}$, $\ell\ell^{-1} = \mathrm{id}$, $F^*(\ell v) = F(v)$.
* `finsler_gradient`: $F(\nabla f) = F^*(df)$, $df(\nabla f) = F^*(df)^2$, and
  `retr(x, -t grad)` lowers a smooth random $f$ by $t F^*(df)^2 + O(t^2)$ (geoopt's step).
* `exp_log_inverse`: $\exp_x \log_x y = y$, $\log_x \exp_x v = v$, $\exp_x 0 = x$, $\log_x x = 0$.
* `dist_is_norm_of_log`: $F(x, \log_x y) = d(x \to y)$.
* `short_geodesics`: $d(x \to \exp_x v) = F(x, v)$ for short $v$.
* `dist_metric`: $d(x \to x) = 0$, $d(x \to y) > 0$, triangle inequality (random and tight
  triples).
* `cdist`: `cdist(X, Y)[i, j]` $= d(x_i \to y_j)$, shape `[N, M]`, batched like unbatched.
* `retr_first_order`: $|\mathrm{retr}_x(tv) - \exp_x(tv)| = o(t)$.
* `large_steps`: `expmap`/`retr` of long vectors stay on the manifold.
* `reverse`: `reverse().norm(x, v)` $= F(x, -v)$, `reverse().dist(x, y)` $= d(y \to x)$.
* `dist_gradient`: autograd gradients of `dist` are finite at $x = y$ and equal central
  differences.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable, Iterable

import torch

__all__ = ["PROPERTIES", "CheckReport", "PropertyResult", "PropertyViolation", "check_manifold"]

# name -> one-line statement of the law (the order is the order in which they run)
PROPERTIES: dict[str, str] = {
    "sampling": "sampled points and vectors pass the manifold's own checks; projx keeps points",
    "dtype_device": "results keep the input's dtype and device",
    "norm_positive": "F(x, 0) = 0 and F(x, v) > 0 for v != 0",
    "norm_homogeneous": "F(x, c v) = c F(x, v) for c > 0",
    "norm_triangle": "F(x, u + v) <= F(x, u) + F(x, v)",
    "strong_convexity": "fundamental tensor g_u is SPD, g_u(u, u) = F(u)^2, equals the Hessian of F^2/2",
    "dual_norm": "F*(xi) is the sup of xi(v) over F(v) = 1; Fenchel-Young xi(v) <= F*(xi) F(v)",
    "legendre": "legendre = grad of F^2/2; Legendre round trips; F*(legendre(v)) = F(v)",
    "finsler_gradient": "egrad2rgrad is the Finsler gradient and a small step along -grad decreases f",
    "exp_log_inverse": "expmap and logmap are inverse",
    "dist_is_norm_of_log": "F(x, logmap(x, y)) = dist(x, y)",
    "short_geodesics": "dist(x, expmap(x, v)) = F(x, v) for short v",
    "dist_metric": "d(x, x) = 0, d(x, y) > 0 for x != y, triangle inequality of dist",
    "cdist": "cdist(X, Y)[i, j] = dist(X[i], Y[j])",
    "retr_first_order": "retr agrees with expmap to first order",
    "large_steps": "expmap / retr of long vectors stay on the manifold",
    "reverse": "reverse() is the metric F(x, -v), with reversed distances",
    "dist_gradient": "gradients of dist are finite at x = y and match finite differences",
}


class PropertyViolation(AssertionError):
    """A conformance property failed; `property` names it, the message has the counterexample."""

    def __init__(self, prop: str, message: str):
        super().__init__(message)
        self.property = prop


@dataclasses.dataclass
class PropertyResult:
    """Outcome of one property: `status` is `"passed"`, `"failed"` or `"skipped"`."""

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclasses.dataclass
class CheckReport:
    """What `check_manifold` ran: one `PropertyResult` per property, in order.

    Attributes:
        manifold: `repr` of the checked manifold.
        results: `{name: PropertyResult}`.
        settings: the resolved options (n, seed, dtype, tolerances, scale).
    """

    manifold: str
    results: dict[str, PropertyResult]
    settings: dict

    @property
    def passed(self) -> list[str]:
        """Names of the properties that held."""
        return [r.name for r in self.results.values() if r.status == "passed"]

    @property
    def skipped(self) -> dict[str, str]:
        """`{name: reason}` of the properties that did not run."""
        return {r.name: r.detail for r in self.results.values() if r.status == "skipped"}

    @property
    def failed(self) -> dict[str, str]:
        """`{name: message}` of the violated properties."""
        return {r.name: r.detail for r in self.results.values() if r.status == "failed"}

    @property
    def ok(self) -> bool:
        """`True` when no property failed (skips do not count as failures)."""
        return not self.failed

    def __str__(self) -> str:
        lines = [f"check_manifold({self.manifold}): {len(self.passed)} passed, "
                 f"{len(self.failed)} failed, {len(self.skipped)} skipped"]
        for r in self.results.values():
            extra = f"  ({r.detail.splitlines()[0]})" if r.status != "passed" and r.detail else ""
            lines.append(f"  {r.status:7s} {r.name}{extra}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- formatting
def _fmt(t) -> str:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.numel() == 1:
            return f"{t.item():.10g}"
        if t.numel() > 64:
            return f"tensor of shape {tuple(t.shape)}, |.| = {t.double().norm().item():.6g}"
        return "[" + ", ".join(_fmt(s) for s in t.unbind(0)) + "]"
    if isinstance(t, float):
        return f"{t:.10g}"
    return str(t)


def _default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for closed-form identities in `dtype`."""
    if dtype == torch.float64:
        return 1e-9, 1e-7
    if dtype == torch.float32:
        return 1e-5, 2e-4
    return 1e-2, 2e-2  # half precisions: only coarse checks make sense


def _manifold_dtype_device(manifold):
    tensors = list(manifold.parameters()) + list(manifold.buffers())
    floats = [t for t in tensors if t.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    device = floats[0].device if floats else torch.device("cpu")
    return dtype, device


def _batched_jacobian(fn: Callable, v: torch.Tensor) -> torch.Tensor:
    """`J[k, i, j] = d fn(v)[k, i] / d v[k, j]` for a sample-wise map `[K, D] -> [K, D]`."""
    v = v.detach().requires_grad_(True)
    with torch.enable_grad():
        out = fn(v)
        rows = [
            torch.autograd.grad(out[:, i].sum(), v, retain_graph=True, allow_unused=False)[0]
            for i in range(out.shape[-1])
        ]
    return torch.stack(rows, dim=-2)


def _half_sq_grad(norm_fn: Callable, v: torch.Tensor, *, create_graph=False) -> torch.Tensor:
    """Autograd $\\partial_v \\tfrac12 F(v)^2$, sample-wise."""
    v = v if v.requires_grad else v.detach().requires_grad_(True)
    with torch.enable_grad():
        half_sq = 0.5 * norm_fn(v) ** 2
        (grad,) = torch.autograd.grad(half_sq.sum(), v, create_graph=create_graph)
    return grad


def _minimize_on_sphere(fn: Callable, starts: torch.Tensor, *, iters: int):
    """Minimize a sample-wise `fn(u)` over Euclidean-unit `u` from candidate starts `[C, K, D]`.

    Best candidate per sample, then Riemannian gradient descent on the sphere with a per-sample
    backtracking step (never accepts an increase). Returns `(min_value [K], argmin [K, D])`.
    (Plain torch on purpose: `torch.optim` imports the compiler stack, seconds on first use.)
    """
    starts = starts / starts.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        values = torch.stack([fn(s) for s in starts.unbind(0)])
        values = torch.nan_to_num(values, nan=math.inf)
        u = starts[values.argmin(0), torch.arange(starts.shape[1])]
        val = fn(u)
    step = torch.ones_like(val)
    for _ in range(iters):
        w = u.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(fn(w).sum(), w)
        g = torch.nan_to_num(g - (g * u).sum(-1, keepdim=True) * u)
        with torch.no_grad():
            step = step * 2
            for _ in range(30):
                trial = u - step.unsqueeze(-1) * g
                trial = trial / trial.norm(dim=-1, keepdim=True)
                better = fn(trial) < val
                if bool((better | (step < 1e-12)).all()):  # converged samples stop shrinking
                    break
                step = torch.where(better, step, 0.5 * step)
            trial = u - step.unsqueeze(-1) * g
            trial = trial / trial.norm(dim=-1, keepdim=True)
            new = fn(trial)
            better = new < val
            u = torch.where(better.unsqueeze(-1), trial, u)
            val = torch.where(better, new, val)
    return val, u


def _numerical_dual_norm(norm_fn: Callable, xi: torch.Tensor, starts: torch.Tensor, *, iters: int):
    r"""$\sup_{v \ne 0} \xi(v) / F(v)$ computed from `norm_fn` alone (no dual norm, no Legendre map).

    The sup is attained where $\psi(v) = \xi(v) - \tfrac12 F(v)^2$ is maximal (a strongly concave
    problem: its maximum is $\tfrac12 F^*(\xi)^2$ at $v = \ell^{-1}(\xi)$). Start from the best
    of the candidate directions `starts` (`[C, K, D]`), rescaled to the optimal length along it, and
    run damped Newton steps with the autograd gradient and Hessian of $\tfrac12 F^2$. The returned
    value $\xi(v)/F(v)$ is a certified lower bound of $F^*(\xi)$ for any $v$, and accurate to
    second order in the error of $v$.

    Returns:
        `(sup [K], maximizer [K, D])`.
    """
    with torch.no_grad():
        ratios = torch.stack([(xi * s).sum(-1) / norm_fn(s) for s in starts.unbind(0)])
        ratios = torch.nan_to_num(ratios, nan=-math.inf)
        best = ratios.argmax(0)
        u = starts[best, torch.arange(starts.shape[1])]
        # along a fixed direction u, psi(c u) is maximal at c = xi(u) / F(u)^2
        v = u * ((xi * u).sum(-1) / norm_fn(u) ** 2).clamp_min(0).unsqueeze(-1)
        v = torch.where(torch.isfinite(v) & (v.norm(dim=-1, keepdim=True) > 0), v, u)

    def psi(w):
        return (xi * w).sum(-1) - 0.5 * norm_fn(w) ** 2

    for _ in range(iters):
        grad_half_sq = _half_sq_grad(norm_fn, v, create_graph=False).detach()
        hess = _batched_jacobian(lambda w: _half_sq_grad(norm_fn, w, create_graph=True), v).detach()
        hess = 0.5 * (hess + hess.mT)
        rhs = (xi - grad_half_sq).unsqueeze(-1)
        step, info = torch.linalg.cholesky_ex(hess)
        newton = torch.cholesky_solve(rhs, step).squeeze(-1)
        # where the Hessian is not positive definite (a broken norm), take a gradient step
        newton = torch.where((info == 0).unsqueeze(-1), newton, rhs.squeeze(-1))
        newton = torch.nan_to_num(newton)
        with torch.no_grad():
            base = psi(v)
            scale = torch.ones_like(base)
            for _ in range(30):  # backtracking: never accept a step that lowers psi
                trial = v + scale.unsqueeze(-1) * newton
                better = psi(trial) >= base
                if bool((better | (scale < 1e-9)).all()):  # converged samples stop shrinking
                    break
                scale = torch.where(better, scale, 0.5 * scale)
            trial = v + scale.unsqueeze(-1) * newton
            v = torch.where((psi(trial) >= base).unsqueeze(-1), trial, v)
    with torch.no_grad():
        return (xi * v).sum(-1) / norm_fn(v), v


# ---------------------------------------------------------------------------------- the checker
class _Checker:
    def __init__(self, manifold, *, n, seed, atol, rtol, dtype, device, scale, large_steps, thorough,
                 points, user_seed=None):
        self.m = manifold
        self.user_seed = seed if user_seed is None else user_seed
        self.D = getattr(manifold, "ambient_dim", manifold.dim)  # tensor size (ambient coordinates)
        self.n = n
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.atol = atol
        self.rtol = rtol
        self.scale = scale
        self.large_steps = tuple(float(s) for s in large_steps)
        self.thorough = thorough
        self.eps = torch.finfo(dtype).eps
        self.gen = torch.Generator().manual_seed(seed)
        self.random_rejected: str | None = None
        self.random_used = False
        self._points_given = points
        self.name = repr(manifold).replace("\n", " ")

    # ----------------------------------------------------------------- sampling
    def randn(self, *shape) -> torch.Tensor:
        t = torch.randn(*shape, generator=self.gen, dtype=torch.float64)
        return t.to(dtype=self.dtype, device=self.device)

    def rand(self, *shape) -> torch.Tensor:
        t = torch.rand(*shape, generator=self.gen, dtype=torch.float64)
        return t.to(dtype=self.dtype, device=self.device)

    def on_manifold(self, x: torch.Tensor) -> torch.Tensor:
        """Per-point acceptance by the manifold's own check, `[K]` bool."""
        if bool(self.m.check_point_on_manifold(x)):
            return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
        flat = x.reshape(-1, self.D)
        ok = [bool(self.m.check_point_on_manifold(p)) for p in flat]
        return torch.tensor(ok, dtype=torch.bool, device=x.device).reshape(x.shape[:-1])

    def accept_or_shrink(self, x: torch.Tensor) -> torch.Tensor:
        """Pull rejected points toward the origin (halving) until the manifold accepts them."""
        origin = torch.as_tensor(self.m.origin(self.D, dtype=self.dtype, device=self.device))
        origin = origin.as_subclass(torch.Tensor).detach()
        for _ in range(60):
            ok = self.on_manifold(x)
            if ok.all():
                return x
            x = torch.where(ok.unsqueeze(-1), x, origin + 0.5 * (x - origin))
        raise PropertyViolation(
            "sampling",
            f"check_manifold({self.name}): could not sample points the manifold accepts, even after "
            f"shrinking toward its origin {_fmt(origin)}; last candidate {_fmt(x[~self.on_manifold(x)][0])}",
        )

    def points(self, k: int) -> torch.Tensor:
        if self._points_given is not None:
            pool = self._points_given
            idx = torch.randint(pool.shape[0], (k,), generator=self.gen)
            return pool[idx.to(pool.device)]
        x = None
        try:
            state = torch.random.get_rng_state()
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=self.gen)))
            try:
                x = self.m.random(k, self.D, dtype=self.dtype, device=self.device)
            finally:
                torch.random.set_rng_state(state)
            x = torch.as_tensor(x).as_subclass(torch.Tensor).detach().to(self.dtype)
            self.random_used = True
        except (NotImplementedError, TypeError):
            x = self.randn(k, self.D) * self.scale
        if self.random_used and self.random_rejected is None:
            ok = self.on_manifold(x)
            if not ok.all():
                bad = x[~ok][0]
                _, reason = self.m.check_point_on_manifold(bad, explain=True)
                self.random_rejected = (
                    f"manifold.random() returned a point its own check rejects: x = {_fmt(bad)} "
                    f"(reason: {reason})"
                )
        return self.accept_or_shrink(x)

    def f_normalize(self, x, u, length):
        """Rescale `u` to Finsler length `length` at `x` (Euclidean length if F is unavailable)."""
        try:
            f = self.m.norm(x, u).detach().abs()
        except NotImplementedError:
            f = u.norm(dim=-1)
        f = torch.where(torch.isfinite(f) & (f > 0), f, u.norm(dim=-1))
        return u * (length / f).unsqueeze(-1)

    def vectors(self, x, lo=0.2, hi=2.0):
        """Random vectors at `x` with Finsler lengths log-uniform in `[lo, hi] * scale`."""
        k = x.shape[0]
        lengths = self.scale * lo * (hi / lo) ** self.rand(k)
        return self.f_normalize(x, self.randn(k, self.D), lengths)

    def covectors(self, k):
        return self.randn(k, self.D) / self.scale

    # ----------------------------------------------------------------- assertions
    def tol_text(self, atol=None, rtol=None, extra=""):
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        return f"atol={atol:.3g}, rtol={rtol:.3g}{extra}"

    def fail(self, prop, law, tol, context: dict, i: int, lines: list[str]):
        body = [f"check_manifold({self.name}): property '{prop}' violated: {law}",
                f"  tolerance: {tol} ({self.dtype}, n={self.n}, seed={self.user_seed})",
                "  counterexample:"]
        for key, val in context.items():
            if isinstance(val, torch.Tensor) and val.dim() >= 1 and val.shape[0] > i:
                val = val[i]
            body.append(f"    {key} = {_fmt(val)}")
        body += [f"    {line}" for line in lines]
        raise PropertyViolation(prop, "\n".join(body))

    def fail_shape(self, prop, law, lines: list[str]):
        """A violation without a numerical tolerance (shapes, dtypes, membership)."""
        body = [f"check_manifold({self.name}): property '{prop}' violated: {law}",
                f"  tolerance: exact ({self.dtype}, n={self.n}, seed={self.user_seed})",
                "  counterexample:"] + [f"    {line}" for line in lines]
        raise PropertyViolation(prop, "\n".join(body))

    def close(self, prop, law, actual, expected, context, *, names=("actual", "expected"), ref=None,
              atol=None, rtol=None, tol_extra=""):
        """Sample-wise |actual - expected| <= atol + rtol * ref (Euclidean norm for vectors)."""
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        actual, expected = actual.detach(), expected.detach()
        if actual.shape != expected.shape:
            self.fail_shape(prop, law, [f"{names[0]} has shape {tuple(actual.shape)}",
                                        f"{names[1]} has shape {tuple(expected.shape)}"])
        # dimension 0 indexes the samples; anything after it is one vector / matrix per sample
        diff = actual - expected
        vector = actual.dim() >= 2
        err = diff.flatten(1).norm(dim=-1) if vector else diff.abs()
        if ref is None:
            ref = expected.flatten(1).norm(dim=-1) if vector else expected.abs()
        allowed = atol + rtol * ref.detach()
        bad = ~(err <= allowed)
        if bad.any():
            excess = torch.where(torch.isfinite(err), err - allowed, torch.full_like(err, math.inf))
            excess = torch.where(bad, excess, torch.full_like(err, -math.inf))
            i = int(excess.argmax())
            self.fail(prop, law, self.tol_text(atol, rtol, tol_extra), context, i, [
                f"{names[0]} = {_fmt(actual[i])}",
                f"{names[1]} = {_fmt(expected[i])}",
                f"|difference| = {_fmt(err[i])} > allowed {_fmt(allowed[i])}",
                f"({int(bad.sum())} of {bad.numel()} samples violate it)",
            ])

    def holds(self, prop, law, ok, context, lines_at: Callable[[int], list[str]], tol=None):
        ok = ok.detach().reshape(-1)
        if not ok.all():
            i = int((~ok).nonzero()[0])
            self.fail(prop, law, tol or self.tol_text(), context, i,
                      lines_at(i) + [f"({int((~ok).sum())} of {ok.numel()} samples violate it)"])

    def leq(self, prop, law, lhs, rhs, context, *, names=("lhs", "rhs"), slack=None):
        """Sample-wise lhs <= rhs + atol + rtol * |rhs| (or `+ slack`)."""
        lhs, rhs = lhs.detach().reshape(-1), rhs.detach().reshape(-1)
        allowed = self.atol + self.rtol * rhs.abs() if slack is None else slack.reshape(-1)
        ok = lhs <= rhs + allowed
        self.holds(prop, law, ok, context, lambda i: [
            f"{names[0]} = {_fmt(lhs[i])}", f"{names[1]} = {_fmt(rhs[i])}",
            f"excess {names[0]} - {names[1]} = {_fmt(lhs[i] - rhs[i])} > allowed {_fmt(allowed[i])}"])

    def check_finite(self, prop, what, t, context):
        t = t.detach()
        ok = torch.isfinite(t).reshape(t.shape[0], -1).all(-1) if t.dim() else torch.isfinite(t)
        self.holds(prop, f"{what} is finite", ok, context, lambda i: [f"{what} = {_fmt(t[i])}"])

    # ----------------------------------------------------------------- properties
    def prop_sampling(self):
        P = "sampling"
        x = self.points(self.n)
        if self.random_rejected:
            self.fail_shape(P, "manifold.random() returns points on the manifold", [self.random_rejected])
        origin = torch.as_tensor(self.m.origin(3, self.D, dtype=self.dtype, device=self.device))
        ok, reason = self.m.check_point_on_manifold(origin, explain=True)
        if not ok:
            self.fail(P, "origin() is on the manifold", "exact", {"origin": origin}, 0,
                      [f"reason: {reason}"])
        v = self.vectors(x)
        bad = [i for i in range(self.n) if not self.m.check_vector_on_tangent(x[i], v[i])]
        self.holds(P, "sampled vectors pass check_vector_on_tangent",
                   torch.tensor([i not in bad for i in range(self.n)]), {"x": x, "v": v},
                   lambda i: [f"reason: {self.m.check_vector_on_tangent(x[i], v[i], explain=True)[1]}"])
        px = self.m.projx(x)
        self.close(P, "projx(x) = x for points on the manifold", px, x, {"x": x},
                   names=("projx(x)", "x"), ref=x.norm(dim=-1))
        df = self.covectors(self.n)
        grad = self.m.egrad2rgrad(x, df)
        bad = [i for i in range(self.n) if not self.m.check_vector_on_tangent(x[i], grad[i])]
        self.holds(P, "egrad2rgrad(x, df) passes check_vector_on_tangent",
                   torch.tensor([i not in bad for i in range(self.n)]), {"x": x, "df": df, "grad": grad},
                   lambda i: [f"reason: {self.m.check_vector_on_tangent(x[i], grad[i], explain=True)[1]}"])
        return "random points" if self.random_used else "Gaussian points (manifold.random unavailable)"

    def prop_dtype_device(self):
        P = "dtype_device"
        x, y = self.points(4), self.points(4)
        v = self.vectors(x)
        results = {}
        calls = {
            "norm": lambda: self.m.norm(x, v),
            "dual_norm": lambda: self.m.dual_norm(x, v),
            "egrad2rgrad": lambda: self.m.egrad2rgrad(x, v),
            "expmap": lambda: self.m.expmap(x, v),
            "retr": lambda: self.m.retr(x, v),
            "logmap": lambda: self.m.logmap(x, y),
            "dist": lambda: self.m.dist(x, y),
            "cdist": lambda: self.m.cdist(x, y),
        }
        missing = []
        for name, call in calls.items():
            try:
                results[name] = call()
            except NotImplementedError:
                missing.append(name)
        for name, out in results.items():
            if out.dtype != self.dtype or out.device != x.device:
                self.fail_shape(P, PROPERTIES[P], [
                    f"x of shape {tuple(x.shape)}: {name} on {self.dtype} inputs on {x.device} returned "
                    f"{out.dtype} on {out.device}"])
        if not results:
            raise NotImplementedError("no method of the manifold could be called")
        return f"not implemented: {', '.join(missing)}" if missing else ""

    def prop_norm_positive(self):
        P = "norm_positive"
        x = self.points(self.n)
        zero = torch.zeros_like(x)
        f0 = self.m.norm(x, zero)
        self.close(P, "F(x, 0) = 0", f0, torch.zeros_like(f0), {"x": x}, names=("F(x, 0)", "0"))
        u = self.randn(self.n, self.D)
        u = u / u.norm(dim=-1, keepdim=True)
        f = self.m.norm(x, u)
        self.holds(P, "F(x, v) > 0 for v != 0 (random Euclidean-unit v)", f > 0, {"x": x, "v": u},
                   lambda i: [f"F(x, v) = {_fmt(f[i])}"])
        # the direction where F is smallest per unit Euclidean length, found numerically
        starts = self.randn(16 if self.thorough else 8, self.n, self.D)
        fmin, umin = _minimize_on_sphere(lambda w: self.m.norm(x, w), starts,
                                         iters=60 if self.thorough else 20)
        self.holds(P, "F(x, v) > 0 for v != 0 (numerical minimum over Euclidean-unit v)", fmin > 0,
                   {"x": x, "v": umin}, lambda i: [f"F(x, v) = {_fmt(fmin[i])}"])

    def prop_norm_homogeneous(self):
        P = "norm_homogeneous"
        x = self.points(self.n)
        v = self.vectors(x)
        f = self.m.norm(x, v)
        for c in (1e-3, 0.5, 3.0, 1e3):
            fc = self.m.norm(x, c * v)
            self.close(P, f"F(x, c v) = c F(x, v) with c = {c:g}", fc, c * f, {"x": x, "v": v, "c": c},
                       names=("F(x, c v)", "c F(x, v)"))

    def prop_norm_triangle(self):
        P = "norm_triangle"
        x = self.points(self.n)
        u, v = self.vectors(x), self.vectors(x)
        # nearly parallel pairs make the inequality nearly tight (where broken norms show it)
        w = self.f_normalize(x, u + 0.05 * self.randn(self.n, self.D) * u.norm(dim=-1, keepdim=True), 1.0)
        for a, b in ((u, v), (u, w)):
            lhs = self.m.norm(x, a + b)
            rhs = self.m.norm(x, a) + self.m.norm(x, b)
            self.leq(P, PROPERTIES[P], lhs, rhs, {"x": x, "u": a, "v": b},
                     names=("F(x, u + v)", "F(x, u) + F(x, v)"))

    def prop_strong_convexity(self):
        P = "strong_convexity"
        x = self.points(self.n)
        u = self.vectors(x)
        g = self.m.fundamental_tensor(x, u)
        ctx = {"x": x, "u": u}
        if g.shape != (self.n, self.D, self.D):
            self.fail_shape(P, "fundamental_tensor(x, u) has shape [..., D, D]",
                            [f"x, u of shape {tuple(x.shape)} gave shape {tuple(g.shape)}"])
        self.close(P, "g_u is symmetric", g, g.mT, {**ctx, "g_u": g}, names=("g_u", "g_u^T"),
                   ref=g.flatten(-2).norm(dim=-1))
        eig = torch.linalg.eigvalsh(0.5 * (g + g.mT))
        self.holds(P, "g_u is positive definite", eig[:, 0] > 0, {**ctx, "g_u": g},
                   lambda i: [f"eigenvalues = {_fmt(eig[i])}"])
        f = self.m.norm(x, u)
        guu = (u.unsqueeze(-2) @ g @ u.unsqueeze(-1)).reshape(-1)
        self.close(P, "g_u(u, u) = F(x, u)^2", guu, f * f, ctx, names=("u^T g_u u", "F(x, u)^2"))
        self.close(P, "inner(x, u) = F(x, u)^2", self.m.inner(x, u), f * f, ctx,
                   names=("inner(x, u)", "F(x, u)^2"))
        v = self.vectors(x)
        guv = (u.unsqueeze(-2) @ g @ v.unsqueeze(-1)).reshape(-1)
        self.close(P, "inner(x, u, v) = u^T g_u v", self.m.inner(x, u, v), guv, {**ctx, "v": v},
                   names=("inner(x, u, v)", "u^T g_u v"), ref=f * self.m.norm(x, v))
        # independent computation: the Hessian of F^2 / 2 by automatic differentiation
        hess = _batched_jacobian(
            lambda w: _half_sq_grad(lambda z: self.m.norm(x, z), w, create_graph=True), u)
        self.close(P, "fundamental_tensor = autograd Hessian of F(x, .)^2 / 2", g, hess, ctx,
                   names=("fundamental_tensor", "Hessian"), ref=hess.flatten(-2).norm(dim=-1))

    def prop_dual_norm(self):
        P = "dual_norm"
        x = self.points(self.n)
        xi = self.covectors(self.n)
        dual = self.m.dual_norm(x, xi)
        k = 32 if self.thorough else 12
        starts = torch.cat([xi.unsqueeze(0), self.randn(k, self.n, self.D)])
        sup, arg = _numerical_dual_norm(lambda w: self.m.norm(x, w), xi, starts,
                                        iters=20 if self.thorough else 10)
        sup_rtol = max(self.rtol, 1e3 * self.eps)
        ctx = {"x": x, "xi": xi, "argmax v": arg}
        self.close(P, "F*(x, xi) = sup_{F(x, v) = 1} xi(v) (numerical sup by Newton's method)", dual,
                   sup, ctx, names=("dual_norm", "numerical sup"), rtol=sup_rtol)
        # Fenchel-Young on random pairs and on the (near-)maximizers
        v = self.vectors(x)
        for vv, what in ((v, "random v"), (arg, "near-maximizing v")):
            lhs = (xi * vv).sum(-1)
            rhs = dual * self.m.norm(x, vv)
            self.leq(P, f"Fenchel-Young xi(v) <= F*(xi) F(v) ({what})", lhs, rhs,
                     {"x": x, "xi": xi, "v": vv}, names=("xi(v)", "F*(xi) F(v)"))
        for c in (0.25, 4.0):
            self.close(P, f"F*(x, c xi) = c F*(x, xi) with c = {c:g}", self.m.dual_norm(x, c * xi), c * dual,
                       {"x": x, "xi": xi}, names=("F*(c xi)", "c F*(xi)"))

    def prop_legendre(self):
        P = "legendre"
        x = self.points(self.n)
        v = self.vectors(x)
        ell = self.m.legendre(x, v)
        auto = _half_sq_grad(lambda z: self.m.norm(x, z), v)
        f = self.m.norm(x, v)
        ctx = {"x": x, "v": v}
        self.close(P, "legendre(x, v) = autograd gradient of F(x, v)^2 / 2", ell, auto, ctx,
                   names=("legendre", "autograd"))
        self.close(P, "legendre(x, v)(v) = F(x, v)^2 (Euler)", (ell * v).sum(-1), f * f, ctx,
                   names=("legendre(v)(v)", "F(v)^2"))
        back = self.m.inverse_legendre(x, ell)
        self.close(P, "inverse_legendre(legendre(v)) = v", back, v, ctx, names=("round trip", "v"))
        self.close(P, "F*(x, legendre(x, v)) = F(x, v)", self.m.dual_norm(x, ell), f, ctx,
                   names=("F*(legendre(v))", "F(v)"))
        xi = self.covectors(self.n)
        there = self.m.inverse_legendre(x, xi)
        self.close(P, "legendre(inverse_legendre(xi)) = xi", self.m.legendre(x, there), xi,
                   {"x": x, "xi": xi}, names=("round trip", "xi"))
        zero = torch.zeros_like(v)
        self.close(P, "legendre(x, 0) = 0", self.m.legendre(x, zero), zero, {"x": x},
                   names=("legendre(0)", "0"), ref=torch.zeros_like(f))

    def test_function(self):
        """A smooth random f: R^D -> R (sum of sines), the same for every point."""
        k = 4
        # evaluated in float64 whatever the sample dtype: the descent test compares tiny differences
        w = self.randn(k, self.D).double() / self.scale
        phase = self.rand(k).double() * 2 * math.pi
        c = self.randn(k).double()

        def f(z):
            return (c * torch.sin(z.double() @ w.mT + phase)).sum(-1)

        return f

    def prop_finsler_gradient(self):
        P = "finsler_gradient"
        x = self.points(self.n)
        f = self.test_function()
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (df,) = torch.autograd.grad(f(xr).sum(), xr)
        df = df.to(self.dtype)
        grad = self.m.egrad2rgrad(x, df)
        dual = self.m.dual_norm(x, df)
        ctx = {"x": x, "df": df, "grad": grad}
        self.close(P, "F(x, grad f) = F*(x, df)", self.m.norm(x, grad), dual, ctx,
                   names=("F(grad)", "F*(df)"))
        self.close(P, "df(grad f) = F*(x, df)^2", (df * grad).sum(-1), dual * dual, ctx,
                   names=("df(grad)", "F*(df)^2"))
        # descent: retr(x, -t grad) with F(t grad) = h lowers f by t F*(df)^2 + O(t^2). The
        # relative error of that first-order model must drop below 5 % for some h in a
        # decreasing sequence (a wrong gradient or retraction keeps a constant error as h -> 0).
        usable = dual > 1e-2 * dual.median()  # away from critical points of f
        # step lengths are measured by F(x, -t grad), the length of the step actually taken
        back = self.m.norm(x, -grad).detach()
        usable = usable & (back > 0)
        safe_back = torch.where(usable, back, torch.ones_like(back))
        steps = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
        if self.dtype == torch.float64:
            steps += (1e-6, 1e-7)
        best_rel = torch.full_like(dual, math.inf, dtype=torch.float64)
        best = {}
        f0 = f(x)
        for h in steps:
            t = self.scale * h / safe_back
            y = self.m.retr(x, -t.unsqueeze(-1) * grad)
            decrease = f0 - f(y)
            predicted = (t * dual * dual).double()
            rel = torch.where(decrease > 0, (decrease - predicted).abs() / predicted,
                              torch.full_like(predicted, math.inf))
            rel = torch.nan_to_num(rel, nan=math.inf)
            take = rel < best_rel
            best_rel = torch.where(take, rel, best_rel)
            for key, val in (("t", t), ("decrease", decrease), ("predicted", predicted)):
                best[key] = torch.where(take, val, best.get(key, val))
        self.holds(P, "f(retr(x, -t grad f)) = f(x) - t F*(df)^2 + O(t^2): a small step along -grad "
                   "decreases f at the predicted rate", ~usable | (best_rel <= 0.05), ctx,
                   lambda i: [f"best over F(x, -t grad) in {steps} x scale: t = {_fmt(best['t'][i])}",
                              f"f(x) - f(retr(x, -t grad)) = {_fmt(best['decrease'][i])}",
                              f"predicted t F*(df)^2 = {_fmt(best['predicted'][i])}",
                              f"relative error = {_fmt(best_rel[i])} > 0.05"],
                   tol="relative error of the first-order model <= 0.05 at some step size")

    def prop_exp_log_inverse(self):
        P = "exp_log_inverse"
        x, y = self.points(self.n), self.points(self.n)
        pair_ref = x.norm(dim=-1) + y.norm(dim=-1) + self.scale
        back = self.m.expmap(x, self.m.logmap(x, y))
        self.close(P, "expmap(x, logmap(x, y)) = y", back, y, {"x": x, "y": y},
                   names=("expmap(x, logmap(x, y))", "y"), ref=pair_ref)
        v = self.vectors(x, 0.05, 1.0)
        back_v = self.m.logmap(x, self.m.expmap(x, v))
        self.close(P, "logmap(x, expmap(x, v)) = v for short v", back_v, v, {"x": x, "v": v},
                   names=("logmap(x, expmap(x, v))", "v"), ref=v.norm(dim=-1) + x.norm(dim=-1))
        zero = torch.zeros_like(x)
        self.close(P, "expmap(x, 0) = x", self.m.expmap(x, zero), x, {"x": x},
                   names=("expmap(x, 0)", "x"), ref=x.norm(dim=-1) + self.scale)
        self.close(P, "logmap(x, x) = 0", self.m.logmap(x, x), zero, {"x": x},
                   names=("logmap(x, x)", "0"), ref=x.norm(dim=-1) + self.scale)

    def prop_dist_is_norm_of_log(self):
        P = "dist_is_norm_of_log"
        x, y = self.points(self.n), self.points(self.n)
        d = self.m.dist(x, y)
        self.close(P, PROPERTIES[P], self.m.norm(x, self.m.logmap(x, y)), d, {"x": x, "y": y},
                   names=("F(x, logmap(x, y))", "dist(x, y)"))
        dk = self.m.dist(x, y, keepdim=True)
        if dk.shape != (*d.shape, 1):
            self.fail_shape(P, "dist(x, y, keepdim=True) has shape [..., 1]",
                            [f"x, y of shape {tuple(x.shape)} gave shape {tuple(dk.shape)}"])

    def prop_short_geodesics(self):
        P = "short_geodesics"
        x = self.points(self.n)
        v = self.vectors(x, 0.01, 0.5)
        y = self.m.expmap(x, v)
        self.close(P, PROPERTIES[P], self.m.dist(x, y), self.m.norm(x, v), {"x": x, "v": v, "y": y},
                   names=("dist(x, expmap(x, v))", "F(x, v)"))

    def prop_dist_metric(self):
        P = "dist_metric"
        x, y, z = self.points(self.n), self.points(self.n), self.points(self.n)
        dxx = self.m.dist(x, x)
        self.close(P, "dist(x, x) = 0", dxx, torch.zeros_like(dxx), {"x": x}, names=("dist(x, x)", "0"),
                   ref=torch.full_like(dxx, self.scale))
        dxy = self.m.dist(x, y)
        sep = (x - y).norm(dim=-1) > 1e-3 * self.scale
        self.holds(P, "dist(x, y) > 0 for x != y", ~sep | (dxy > self.atol), {"x": x, "y": y},
                   lambda i: [f"dist(x, y) = {_fmt(dxy[i])}"])
        triples = [(x, y, z)]
        try:  # nearly tight triples: y on (or next to) the geodesic from x to z
            s = self.rand(self.n, 1) * 0.6 + 0.2
            mid = self.m.expmap(x, s * self.m.logmap(x, z))
            if bool(self.on_manifold(mid).all()):
                triples.append((x, mid, z))
        except NotImplementedError:
            pass
        for a, b, c in triples:
            dab, dbc, dac = self.m.dist(a, b), self.m.dist(b, c), self.m.dist(a, c)
            rhs = dab + dbc
            self.leq(P, "triangle inequality dist(x, z) <= dist(x, y) + dist(y, z)", dac, rhs,
                     {"x": a, "y": b, "z": c}, names=("dist(x, z)", "dist(x, y) + dist(y, z)"))

    def prop_cdist(self):
        P = "cdist"
        m_rows = max(2, self.n // 2) + 1
        x, y = self.points(self.n), self.points(m_rows)
        c = self.m.cdist(x, y)
        if c.shape != (self.n, m_rows):
            self.fail_shape(P, "cdist(X, Y) has shape [N, M]", [
                f"X of shape {tuple(x.shape)}, Y of shape {tuple(y.shape)} gave shape {tuple(c.shape)}, "
                f"expected {(self.n, m_rows)}"])
        d = self.m.dist(x.unsqueeze(-2), y.unsqueeze(-3))
        rows = torch.arange(self.n).repeat_interleave(m_rows)
        cols = torch.arange(m_rows).repeat(self.n)
        # Gram-matrix cdists lose ~sqrt(eps) x (spread of the points) on nearly coincident pairs
        gram = 4 * math.sqrt(self.eps) * d.abs().median()
        extra = f", + 4 sqrt(eps) median(d) = {gram.item():.3g} (Gram-matrix cancellation)"
        self.close(P, "cdist(X, Y)[i, j] = dist(X[i], Y[j])", c.reshape(-1), d.reshape(-1),
                   {"X[i]": x[rows], "Y[j]": y[cols], "(i, j)": torch.stack([rows, cols], -1)},
                   names=("cdist[i, j]", "dist(X[i], Y[j])"), atol=self.atol + gram.item(), tol_extra=extra)
        cb = self.m.cdist(x.unsqueeze(0).expand(2, -1, -1), y.unsqueeze(0).expand(2, -1, -1))
        if cb.shape != (2, *c.shape):
            self.fail_shape(P, "batched cdist has shape [B, N, M]", [
                f"X of shape (2, {self.n}, {self.D}), Y of shape (2, {m_rows}, {self.D}) gave shape "
                f"{tuple(cb.shape)}, expected {(2, *c.shape)}"])
        self.close(P, "batched cdist agrees with unbatched", cb[1].reshape(-1), c.reshape(-1),
                   {"X[i]": x[rows], "Y[j]": y[cols]}, names=("cdist(batch)[1][i, j]", "cdist[i, j]"),
                   atol=self.atol + gram.item(), tol_extra=extra)

    def prop_retr_first_order(self):
        P = "retr_first_order"
        x = self.points(self.n)
        v = self.vectors(x, 1.0, 1.0)
        vn = v.norm(dim=-1)
        ratios = []
        for t in (1e-2, 1e-3):
            e = (self.m.retr(x, t * v) - self.m.expmap(x, t * v)).norm(dim=-1)
            ratios.append(e / (t * vn))
        r_mid, r_small = ratios
        floor = 64 * self.eps * (x.norm(dim=-1) + 1e-3 * vn) / (1e-3 * vn)
        ok = (r_small <= floor) | ((r_small <= 0.1) & (r_small <= 0.3 * r_mid))
        self.holds(P, "|retr(x, t v) - expmap(x, t v)| / (t |v|) -> 0 as t -> 0 (error O(t^2))", ok,
                   {"x": x, "v": v}, lambda i: [
                       f"|retr - expmap| / (t |v|) = {_fmt(r_mid[i])} at t = 1e-2, "
                       f"{_fmt(r_small[i])} at t = 1e-3 (should shrink ~10x, or stay below the "
                       f"rounding floor {_fmt(floor[i])})"],
                   tol="ratio at t = 1e-3 <= 0.3 x ratio at t = 1e-2 and <= 0.1, or below the rounding floor")

    def prop_large_steps(self):
        P = "large_steps"
        x = self.points(self.n)
        u = self.randn(self.n, self.D)
        ran = []
        for name in ("expmap", "retr"):
            for length in self.large_steps:
                v = self.f_normalize(x, u, length * self.scale)
                try:
                    y = getattr(self.m, name)(x, v)
                except NotImplementedError:
                    continue
                ran.append(name)
                ok = self.on_manifold(y) & torch.isfinite(y).all(-1)
                self.holds(P, f"{name}(x, v) stays on the manifold for F(x, v) = {length:g} x scale", ok,
                           {"x": x, "v": v, f"{name}(x, v)": y}, lambda i, y=y: [
                               f"reason: {self.m.check_point_on_manifold(y[i], explain=True)[1]}"],
                           tol="the manifold's own check_point_on_manifold")
        if not ran:
            raise NotImplementedError("neither expmap nor retr is implemented")

    def prop_reverse(self):
        P = "reverse"
        rev = self.m.reverse()
        x, y = self.points(self.n), self.points(self.n)
        v = self.vectors(x)
        self.close(P, "reverse().norm(x, v) = F(x, -v)", rev.norm(x, v), self.m.norm(x, -v),
                   {"x": x, "v": v}, names=("reverse().norm(x, v)", "norm(x, -v)"))
        try:
            d_rev, d = rev.dist(x, y), self.m.dist(y, x)
        except NotImplementedError:
            return "dist not implemented: only the norm was compared"
        self.close(P, "reverse().dist(x, y) = dist(y, x)", d_rev, d, {"x": x, "y": y},
                   names=("reverse().dist(x, y)", "dist(y, x)"))

    def prop_dist_gradient(self):
        P = "dist_gradient"
        x, y = self.points(self.n), self.points(self.n)
        xs = x.detach().requires_grad_(True)
        ys = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            gx, gy = torch.autograd.grad(self.m.dist(xs, ys).sum(), (xs, ys), allow_unused=True)
        for g, what in ((gx, "d/dx dist(x, x)"), (gy, "d/dy dist(x, x)")):
            if g is not None:
                self.check_finite(P, what, g, {"x": x})
        xs, ys = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        with torch.enable_grad():
            gx, gy = torch.autograd.grad(self.m.dist(xs, ys).sum(), (xs, ys))
        h = self.scale * (1e-5 if self.dtype == torch.float64 else 3e-3)
        fd_rtol = 1e-5 if self.dtype == torch.float64 else 2e-2
        for which, g in (("x", gx), ("y", gy)):
            delta = self.randn(self.n, self.D)
            delta = delta / delta.norm(dim=-1, keepdim=True)
            if which == "x":
                plus, minus = self.m.dist(x + h * delta, y), self.m.dist(x - h * delta, y)
                shifted = (x + h * delta, x - h * delta)
            else:
                plus, minus = self.m.dist(x, y + h * delta), self.m.dist(x, y - h * delta)
                shifted = (y + h * delta, y - h * delta)
            inside = self.on_manifold(shifted[0]) & self.on_manifold(shifted[1])
            fd = (plus - minus) / (2 * h)
            ad = (g * delta).sum(-1)
            ref = g.norm(dim=-1)
            self.close(P, f"autograd d/d{which} dist(x, y) . delta = central finite difference",
                       torch.where(inside, ad, fd), fd, {"x": x, "y": y, "delta": delta},
                       names=("autograd", "finite difference"), ref=ref, rtol=max(self.rtol, fd_rtol),
                       atol=self.atol)


def check_manifold(
    manifold,
    *,
    n: int | None = None,
    seed: int = 0,
    atol: float | None = None,
    rtol: float | None = None,
    dtype: torch.dtype | None = None,
    device=None,
    scale: float = 1.0,
    properties: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    large_steps: Iterable[float] = (10.0, 1e4),
    points: torch.Tensor | None = None,
    thorough: bool = False,
    raise_on_failure: bool = True,
) -> CheckReport:
    r"""Run the Finsler conformance suite on `manifold` and report what held.

    Points come from `manifold.random` (which must return points that pass the manifold's own
    `check_point_on_manifold`); without it, Gaussian points of standard deviation `scale`, pulled
    toward `manifold.origin()` until the manifold accepts them. Vectors are random directions
    rescaled to a *Finsler* length (so "short" means short in the metric, also next to a boundary):
    log-uniform in `[0.2, 2] * scale` for pointwise laws, `[0.01, 0.5] * scale` for
    $d(x \to \exp_x v) = F(x, v)$, `large_steps * scale` for the stay-on-the-manifold checks.

    Each comparison is sample-wise `|actual - expected| <= atol + rtol * |expected|`. Laws checked
    against numerical procedures use a tolerance derived from the procedure, stated in the message:
    the dual norm's numerical sup (`max(rtol, 1e3 eps)`), central differences of `dist`
    (`1e-5` in float64, `2e-2` in float32), the first-order models of a gradient step (5 %) and of
    the retraction (the error ratio between $t = 10^{-2}$ and $t = 10^{-3}$). See the module
    docstring for the list of properties.

    Args:
        manifold: any `FinslerManifold` (a `geoopt.Manifold` with the Finsler API).
        n: samples per property (default 16; 64 with `thorough=True`).
        seed: seed of the sampling; the same seed gives the same samples.
        atol: absolute tolerance (default `1e-9` float64, `1e-5` float32).
        rtol: relative tolerance (default `1e-7` float64, `2e-4` float32). Numerical manifolds
            (geodesics by integration or shooting) need their solver's tolerance here.
        dtype: dtype of the samples (default: the manifold's parameter/buffer dtype, else torch's
            default dtype).
        device: device of the samples (default: the manifold's, else CPU).
        scale: typical Finsler length of vectors, and the spread of fallback points.
        properties: names of the properties to run (default all, see `PROPERTIES`).
        skip: names of properties not to run (reported as skipped, "skipped by the caller").
        large_steps: Finsler lengths (times `scale`) of the long steps `expmap`/`retr` must survive.
        points: optional `[K, D]` pool of points to sample from instead of `manifold.random`.
        thorough: more samples and more optimizer iterations (slower).
        raise_on_failure: raise `AssertionError` on the first report with failures (default), or
            return the report with them.

    Returns:
        A `CheckReport`: `.passed`, `.skipped` (`{name: reason}`), `.failed`, `.ok`; `str()` is a
        one-line-per-property summary.

    Raises:
        AssertionError: (a `PropertyViolation`) naming every violated property, each with its
            tolerance and the worst counterexample: the inputs and the two compared values.
        ValueError: an unknown property name.

    Example:
        >>> import torch
        >>> from finslerlib import Randers
        >>> a, b = torch.eye(3, dtype=torch.float64), torch.tensor([0.3, 0.0, -0.2], dtype=torch.float64)
        >>> m = Randers(a, b)
        >>> report = check_manifold(m)
        >>> report.ok, len(report.passed)
        (True, 18)
        >>> check_manifold(m, properties=["norm_homogeneous", "cdist"]).passed
        ['norm_homogeneous', 'cdist']
    """
    unknown = (set(properties or ()) | set(skip)) - set(PROPERTIES)
    if unknown:
        raise ValueError(f"unknown properties {sorted(unknown)}; known: {list(PROPERTIES)}")
    m_dtype, m_device = _manifold_dtype_device(manifold)
    dtype = dtype or m_dtype
    device = torch.device(device) if device is not None else m_device
    d_atol, d_rtol = _default_tolerances(dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    n = int(n) if n is not None else (64 if thorough else 16)
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if points is not None:
        points = torch.as_tensor(points).as_subclass(torch.Tensor).detach().to(dtype=dtype, device=device)
        points = points.reshape(-1, getattr(manifold, "ambient_dim", manifold.dim))
    chosen = list(PROPERTIES) if properties is None else [p for p in PROPERTIES if p in set(properties)]
    skip = set(skip)
    settings = {"n": n, "seed": seed, "atol": atol, "rtol": rtol, "dtype": dtype, "device": device,
                "scale": scale, "thorough": thorough}
    results: dict[str, PropertyResult] = {}
    for name in chosen:
        if name in skip:
            results[name] = PropertyResult(name, "skipped", "skipped by the caller")
            continue
        # a fresh checker per property: the samples of one property do not depend on which others ran
        checker = _Checker(manifold, n=n, seed=seed * 1000 + list(PROPERTIES).index(name), atol=atol,
                           rtol=rtol, dtype=dtype, device=device, scale=scale,
                           large_steps=large_steps, thorough=thorough, points=points, user_seed=seed)
        start = time.perf_counter()
        try:
            detail = getattr(checker, f"prop_{name}")() or ""
            results[name] = PropertyResult(name, "passed", detail)
        except NotImplementedError as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1].name
            reason = str(exc) or f"{type(manifold).__name__}.{where} is not implemented"
            results[name] = PropertyResult(name, "skipped", f"needs a missing method: {reason}")
        except PropertyViolation as exc:
            results[name] = PropertyResult(name, "failed", str(exc))
        except Exception as exc:  # an error on valid inputs is a violation too
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            results[name] = PropertyResult(
                name, "failed",
                f"check_manifold({checker.name}): property '{name}' violated: {PROPERTIES[name]}\n"
                f"  the manifold raised on valid inputs: {tb}")
        results[name].seconds = time.perf_counter() - start
    report = CheckReport(repr(manifold).replace("\n", " "), results, settings)
    if raise_on_failure and not report.ok:
        failed = report.failed
        first = next(iter(failed))
        msg = "\n\n".join(failed.values())
        if len(failed) > 1:
            msg = f"{len(failed)} properties violated: {', '.join(failed)}\n\n" + msg
        raise PropertyViolation(first, msg)
    return report
