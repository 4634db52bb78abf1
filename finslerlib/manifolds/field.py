r"""`RandersField`: user-defined position-dependent Randers metrics with numerical geodesics.

$F(x, v) = \sqrt{v^\top a(x)\, v} + b(x)^\top v$ with $a(x)$ symmetric positive definite and
$\|b(x)\|_{a(x)^{-1}} < 1$ given by the user (callables, `nn.Module`s, or by subclassing).
Pointwise quantities (norm, dual norm, Legendre maps, fundamental tensor, Finsler gradient) are
the closed forms of `finslerlib.math.randers` evaluated at $(a(x), b(x))$, exactly as for
`Randers`. Geodesic quantities come from `finslerlib.geodesics`:

* `expmap`: RK4 integration of Hamilton's equations for $H = \tfrac12 F^{*2}$ over $[0, 1]$;
  differentiable by autograd through the integrator.
* `logmap`, `dist`, `cdist`: a batched boundary-value solve (quasi-Newton shooting). Gradients
  are attached analytically: `dist` by the first variation formula
  ($\partial_y d = \ell_y(\dot\gamma(1))/d$, $\partial_x d = -\ell_x(\dot\gamma(0))/d$, and
  $\partial_\theta d = \int_0^1 \partial_\theta F(\gamma, \dot\gamma)\, dt$ for the field's
  parameters, by Simpson quadrature on the trajectory nodes), `logmap` by the implicit function
  theorem on the shooting equation. Both are first-order only (no double backward).

Accuracy: the RK4 discretization error decreases like `steps`$^{-4}$; the shooting residual
$|x(1) - y|$ is driven below `atol + rtol * |y - x|`. A pair that does not converge raises
`GeodesicConvergenceError` (`on_failure="raise"`, default) or yields NaN for that element
(`on_failure="nan"`); `solve(x, y)` returns the full per-element report.
"""

from __future__ import annotations

import geoopt
import torch

from finslerlib.geodesics import (
    BoundarySolution,
    GeodesicConvergenceError,
    endpoint_jacobian,
    geodesic_flow,
    guarded,
    simpson_weights,
    solve_boundary_value,
)
from finslerlib.manifolds.base import FinslerManifold
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_div
from finslerlib.math.validation import check_cdist_shapes, check_randers, randers_validity

__all__ = ["RandersField"]

_ON_FAILURE = ("raise", "nan")


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in t.detach().cpu().reshape(-1).tolist()) + "]"


class RandersField(FinslerManifold):
    r"""A Randers metric $F(x, v) = \sqrt{v^\top a(x) v} + b(x)^\top v$ with position-dependent data.

    Give the fields as callables or `nn.Module`s mapping points `[..., D]` to `a(x)`
    `[..., D, D]` (or a constant `[D, D]`) and `b(x)` `[..., D]`; module parameters are registered
    and train through `dist`, `logmap` and `expmap`. Or subclass and override `a(x)` and `b(x)`, or
    `raw_coefficients(x)` to compute both at once. `a(x)` must be symmetric (checked, with
    the other validations, unless `validate=False`).

    Args:
        a: callable `x -> a(x)`, or `None` for the identity (Euclidean $\alpha$).
        b: callable `x -> b(x)`, or `None` for zero drift (a Riemannian metric).
        dim: the dimension `D`.
        validate: check the evaluated coefficients (a batched Cholesky and the drift size) and raise
            `ValueError` naming the offending point; `False` skips the checks for speed (invalid
            data then give NaN or a `torch.linalg` error instead of a clear message).
        steps: default number of RK4 steps per unit-time geodesic.
        atol: default absolute shooting tolerance on $|x(1) - y|$ (`None`: 1e-10 in float64,
            1e-5 in float32).
        rtol: default relative shooting tolerance (`None`: 1e-9 in float64, 1e-5 in float32).
        max_iter: default maximum number of shooting iterations.
        jacobian: `"broyden"` (default) or `"newton"`; see `finslerlib.geodesics.solve_boundary_value`.
        on_failure: `"raise"` (default) or `"nan"`: what `logmap`/`dist`/`cdist` do with a pair
            whose boundary-value solve does not converge.

    Raises:
        ValueError: (when a point is used) $a(x)$ is not positive definite or
            $\|b(x)\|_{a(x)^{-1}} \ge 1$; the message names the point and the value.

    Example:
        >>> field = RandersField(
        ...     a=lambda x: (1 + (x * x).sum(-1))[..., None, None] * torch.eye(2),
        ...     b=lambda x: 0.3 * torch.tanh(x),
        ...     dim=2,
        ... )
        >>> x, y = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.5])
        >>> v = field.logmap(x, y)
        >>> torch.allclose(field.expmap(x, v), y, atol=1e-4)
        True
        >>> torch.allclose(field.norm(x, v), field.dist(x, y))
        True
    """

    name = "RandersField"

    def __init__(
        self,
        a=None,
        b=None,
        *,
        dim: int,
        validate: bool = True,
        steps: int = 16,
        atol: float | None = None,
        rtol: float | None = None,
        max_iter: int = 30,
        jacobian: str = "broyden",
        on_failure: str = "raise",
    ):
        super().__init__(dim)
        for name, fn in (("a", a), ("b", b)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or nn.Module (or None), got {type(fn).__name__}")
        if on_failure not in _ON_FAILURE:
            raise ValueError(f"on_failure must be one of {_ON_FAILURE}, got {on_failure!r}")
        if jacobian not in ("broyden", "newton"):
            raise ValueError(f"jacobian must be 'broyden' or 'newton', got {jacobian!r}")
        if int(steps) < 1 or int(max_iter) < 0:
            raise ValueError(f"steps must be >= 1 and max_iter >= 0, got {steps}, {max_iter}")
        # nn.Module values register as submodules (their parameters train); plain callables don't.
        self.metric_fn = a
        self.drift_fn = b
        self.validate = bool(validate)
        self.steps = int(steps)
        self.atol = atol
        self.rtol = rtol
        self.max_iter = int(max_iter)
        self.jacobian = jacobian
        self.on_failure = on_failure

    # ------------------------------------------------------------------ the fields
    def a(self, x: torch.Tensor) -> torch.Tensor:
        """The SPD field `a(x)`, shape `[..., D, D]` (or `[D, D]`); override in subclasses."""
        if self.metric_fn is None:
            return torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return self.metric_fn(x)

    def b(self, x: torch.Tensor) -> torch.Tensor:
        """The drift field `b(x)`, shape `[..., D]`; override in subclasses."""
        if self.drift_fn is None:
            return torch.zeros_like(x)
        return self.drift_fn(x)

    def raw_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(a(x), b(x))` without validation: what the geodesic solvers integrate.

        Override this (instead of `a` and `b`) when both come from one computation.

        Args:
            x: Tensor, shape `[..., D]`.

        Returns:
            `(a, b)`, shapes `[..., D, D]` (or `[D, D]`) and `[..., D]`.
        """
        # No symmetrization here (it would cost ~13% of every geodesic step): `a(x)` must be
        # symmetric, which `check_coefficients` enforces with a clear error.
        return self.a(x), self.b(x)

    def check_coefficients(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        r"""Raise `ValueError` naming the first point where $(a, b)$ is not strongly convex.

        `finslerlib.math.validation.check_randers` (one batched factorization; no
        eigen-decomposition unless a point fails).

        Args:
            x: Tensor, shape `[..., D]`, the points the coefficients belong to.
            a: Tensor, shape `[..., D, D]`.
            b: Tensor, shape `[..., D]`.
        """
        n = self.ambient_dim
        if a.shape[-2:] != (n, n) or b.shape[-1] != n:
            raise ValueError(
                f"a(x) must have shape [..., {n}, {n}] and b(x) [..., {n}], got {tuple(a.shape)} and "
                f"{tuple(b.shape)}"
            )
        check_randers(a, b, points=x, label=self.name, a_name="a(x)", b_name="b(x)")

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a(x), b(x))`, validated unless `validate=False`.

        Args:
            x: Tensor, shape `[..., D]`.

        Returns:
            `(a, b)` with shapes broadcastable to `[..., D, D]` and `[..., D]`.
        """
        a, b = self.raw_coefficients(x)
        if self.validate:
            self.check_coefficients(x, a, b)
        return a, b

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_navigation(cls, h=None, wind=None, *, dim: int, **options) -> RandersField:
        r"""Build from Zermelo navigation data: $F(x, v) = 1 \iff |v - W(x)|_{h(x)} = 1$.

        $(a, b)$ come from `finslerlib.math.randers.navigation_to_randers` at each point; the
        metric is valid where $|W(x)|_{h(x)} < 1$ (checked like $\|b\|_{a^{-1}}$, which equals it).

        Args:
            h: callable `x -> h(x)` `[..., D, D]` SPD, or `None` for the Euclidean metric.
            wind: callable `x -> W(x)` `[..., D]`, or `None` for no wind.
            dim: the dimension `D`.
            **options: the keyword options of `RandersField`.

        Example:
            >>> rotation = RandersField.from_navigation(
            ...     wind=lambda x: 0.5 * torch.stack([-x[..., 1], x[..., 0]], -1), dim=2
            ... )
            >>> x = torch.tensor([1.0, 0.0])
            >>> rotation.norm(x, torch.tensor([0.0, 1.5]))  # along the wind, speed 1 + 0.5
            tensor(1.)
        """
        return _NavigationField(h, wind, dim=dim, **options)

    # ------------------------------------------------------------------ options
    def _options(self, steps, atol, rtol, max_iter, on_failure):
        on_failure = self.on_failure if on_failure is None else on_failure
        if on_failure not in _ON_FAILURE:
            raise ValueError(f"on_failure must be one of {_ON_FAILURE}, got {on_failure!r}")
        return (
            self.steps if steps is None else int(steps),
            self.atol if atol is None else atol,
            self.rtol if rtol is None else rtol,
            self.max_iter if max_iter is None else int(max_iter),
            on_failure,
        )

    def _flat(self, x, y, names):
        self._validate(x, y, names=names)
        shape = torch.broadcast_shapes(x.shape, y.shape)
        return x.expand(shape), y.expand(shape), shape[:-1]

    def _solver_coefficients(self):
        return guarded(self.raw_coefficients) if self.validate else self.raw_coefficients

    # ------------------------------------------------------------------ geodesics
    def expmap(self, x: torch.Tensor, u: torch.Tensor, *, steps: int | None = None) -> torch.Tensor:
        r"""Exponential map: end point at $t = 1$ of the geodesic with $\gamma(0) = x$, $\dot\gamma(0) = u$.

        RK4 with `steps` steps (default: the field's `steps`) on Hamilton's equations; error
        $O(\text{steps}^{-4})$. Differentiable (autograd through the integrator) with respect to
        `x`, `u` and the field's parameters.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, initial velocities.
            steps: RK4 steps for this call.

        Returns:
            Tensor, shape `[..., D]`.

        Raises:
            ValueError: the geodesic leaves the region where the metric is strongly convex.

        Example:
            >>> euclid = RandersField(dim=2)
            >>> euclid.expmap(torch.zeros(2), torch.tensor([1.0, 2.0]), steps=4)
            tensor([1., 2.])
        """
        x, u, batch = self._flat(x, u, ("x", "u"))
        steps = self.steps if steps is None else int(steps)
        xf, uf = x.reshape(-1, self.dim), u.reshape(-1, self.dim)
        p = rmath.legendre(uf, *self.coefficients(xf))
        out, _, path, _ = geodesic_flow(self._solver_coefficients(), xf, p, steps=steps, return_path=True)
        if self.validate:
            with torch.no_grad():
                finite = torch.isfinite(out).all(-1)
                if not bool(finite.all()):
                    i = (~finite).nonzero()[0, 0]
                    nodes = path[:, i]
                    last = nodes[torch.isfinite(nodes).all(-1)][-1]
                    self.check_coefficients(last, *self.raw_coefficients(last))
                    raise ValueError(
                        f"{self.name}: the geodesic from x = {_fmt(xf[i])} with u = {_fmt(uf[i])} leaves "
                        f"the region where the metric is strongly convex after x = {_fmt(last)}"
                    )
        return out.reshape(*batch, self.dim)

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """First-order retraction $x + u$ (cheap; `expmap` integrates the geodesic)."""
        return x + u

    # ------------------------------------------------------------------ parallel transport
    # Small hooks: the transport lives in finslerlib.curvature.transport (imported when used,
    # since curvature builds on the manifolds).
    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport along the geodesic $x \\to y$ (a log map); `finslerlib.curvature.transp`."""
        from finslerlib.curvature import transport

        return transport.transp(self, x, y, v)

    def transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport along $t \\mapsto \\exp_x(t u)$ (`finslerlib.curvature`)."""
        from finslerlib.curvature import transport

        return transport.transp_follow_expmap(self, x, u, v)

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector transport to `retr(x, u)`; see `finslerlib.curvature.transp_follow_retraction`."""
        from finslerlib.curvature import transport

        return transport.transp_follow_retraction(self, x, u, v)

    def expmap_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(expmap(x, u), transp_follow_expmap(x, u, v))` from one integration."""
        from finslerlib.curvature import transport

        out = transport.geodesic_transport(self, x, u, v)
        return out.point, out.vector

    def retr_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(retr(x, u), transp_follow_retr(x, u, v))`: what geoopt's optimizers call for momenta."""
        return self.retr(x, u), self.transp_follow_retr(x, u, v)

    def solve(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        steps: int | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        max_iter: int | None = None,
    ) -> BoundarySolution:
        """The per-element report of the boundary-value solves $x \\to y$ (no gradients).

        Args:
            x: Tensor, shape `[..., D]`.
            y: Tensor, shape `[..., D]`.
            steps: overrides the field's default number of RK4 steps.
            atol: overrides the field's absolute shooting tolerance.
            rtol: overrides the field's relative shooting tolerance.
            max_iter: overrides the field's maximum number of shooting iterations.

        Returns:
            `finslerlib.geodesics.BoundarySolution` over the flattened broadcast batch: the
            momenta, trajectories, `residual`, `tolerance` and `converged` of every pair.

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> report = field.solve(torch.zeros(3, 2), torch.randn(3, 2), max_iter=0)
            >>> report.converged.shape, report.residual.shape  # after 0 iterations: maybe not
            (torch.Size([3]), torch.Size([3]))
        """
        x, y, _ = self._flat(x, y, ("x", "y"))
        steps, atol, rtol, max_iter, _ = self._options(steps, atol, rtol, max_iter, None)
        xf, yf = x.reshape(-1, self.dim), y.reshape(-1, self.dim)
        if self.validate:
            self.coefficients(xf)
            self.coefficients(yf)
        return solve_boundary_value(
            self.raw_coefficients, xf, yf, steps=steps, atol=atol, rtol=rtol, max_iter=max_iter,
            jacobian=self.jacobian,
        )

    def _solved(self, x, y, steps, atol, rtol, max_iter, on_failure):
        x, y, batch = self._flat(x, y, ("x", "y"))
        steps, atol, rtol, max_iter, on_failure = self._options(steps, atol, rtol, max_iter, on_failure)
        xf, yf = x.reshape(-1, self.dim), y.reshape(-1, self.dim)
        sol = self.solve(xf, yf, steps=steps, atol=atol, rtol=rtol, max_iter=max_iter)
        failed = ~sol.converged
        if on_failure == "raise" and bool(failed.any()):
            idx = failed.nonzero().squeeze(-1)
            i = idx[0]
            raise GeodesicConvergenceError(
                f"{self.name}: the geodesic boundary-value solve did not converge for {idx.numel()} of "
                f"{failed.numel()} pairs (first: x = {_fmt(xf[i])} -> y = {_fmt(yf[i])}, residual "
                f"{sol.residual[i].item():.3g} > tolerance {sol.tolerance[i].item():.3g} after "
                f"{sol.iterations} iterations). Increase max_iter or steps, bring the points closer, or "
                f"pass on_failure='nan' to get NaN for these pairs.",
                idx,
                sol.residual[idx],
            )
        return xf, yf, batch, sol, failed, steps

    def logmap(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        steps: int | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        max_iter: int | None = None,
        on_failure: str | None = None,
    ) -> torch.Tensor:
        r"""Log map: initial velocity of the geodesic from `x` reaching `y` at $t = 1$.

        A batched shooting solve; the gradient (with respect to `x`, `y` and the field's parameters)
        follows from the implicit function theorem on $x(1; x, p_0) = y$, at the cost of one more
        integration and one autograd Jacobian when a gradient is needed.

        Args:
            x: Tensor, shape `[..., D]`.
            y: Tensor, shape `[..., D]`.
            steps: overrides the field's default number of RK4 steps.
            atol: overrides the field's absolute shooting tolerance.
            rtol: overrides the field's relative shooting tolerance.
            max_iter: overrides the field's maximum number of shooting iterations.
            on_failure: `"raise"` or `"nan"` (NaN rows for pairs that did not converge).

        Returns:
            Tensor, shape `[..., D]`, with `norm(x, logmap(x, y)) == dist(x, y)`.

        Raises:
            GeodesicConvergenceError: a pair did not converge and `on_failure="raise"`.

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> x, y = torch.zeros(2), torch.tensor([1.0, -0.5])
            >>> torch.allclose(field.expmap(x, field.logmap(x, y)), y, atol=1e-5)
            True
        """
        xf, yf, batch, sol, failed, steps = self._solved(x, y, steps, atol, rtol, max_iter, on_failure)
        p = sol.momentum
        a, b = self.raw_coefficients(xf)
        needs_grad = any(t.requires_grad for t in (xf, yf, a, b))
        if torch.is_grad_enabled() and needs_grad:
            # Implicit function theorem: p = p* - J^{-1} R(p*; x, y, theta) has value p* (R = 0) and
            # the exact first derivatives of the solution of R = 0.
            with torch.no_grad():
                jac = endpoint_jacobian(self.raw_coefficients, xf.detach(), p, steps=steps)
                eye = torch.eye(self.dim, dtype=jac.dtype, device=jac.device)
                # x = y and failed pairs get a placeholder (their outputs are set below)
                jac = torch.where(((p == 0).all(-1) | failed)[:, None, None], eye, jac)
            end = geodesic_flow(self.raw_coefficients, xf, p, steps=steps)[0]
            p = p - torch.linalg.solve(jac, (end - yf).unsqueeze(-1)).squeeze(-1)
        v = rmath.inverse_legendre(p, a, b)
        # At y = x the log map is 0 with derivative dv/dy = I (exp is C^1 at 0 with d exp = I),
        # while the shooting Jacobian degenerates there (l^{-1} is not differentiable at 0).
        chord = yf - xf
        trivial = (chord.detach() == 0).all(-1, keepdim=True)
        v = torch.where(trivial, chord - chord.detach(), v)
        v = torch.where(failed.unsqueeze(-1), torch.full_like(v, float("nan")), v)
        return v.reshape(*batch, self.dim)

    def dist(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        keepdim: bool = False,
        steps: int | None = None,
        atol: float | None = None,
        rtol: float | None = None,
        max_iter: int | None = None,
        on_failure: str | None = None,
    ) -> torch.Tensor:
        r"""Forward distance $d(x \to y) = F(x, \log_x y)$ by a batched boundary-value solve.

        Gradients by the first variation formula (no backpropagation through the solver):
        $\partial_y d = \ell_y(\dot\gamma(1)) / d$, $\partial_x d = -\ell_x(\dot\gamma(0)) / d$, and
        for parameters $\theta$ of `a`, `b`: $\int_0^1 \partial_\theta F(\gamma, \dot\gamma)\, dt$
        (Simpson on the `steps + 1` trajectory nodes). Finite (zero) at $x = y$.

        Args:
            x: Tensor, shape `[..., D]`, sources.
            y: Tensor, shape `[..., D]`, targets.
            keepdim: keep the last dimension.
            steps: overrides the field's default number of RK4 steps.
            atol: overrides the field's absolute shooting tolerance.
            rtol: overrides the field's relative shooting tolerance.
            max_iter: overrides the field's maximum number of shooting iterations.
            on_failure: `"raise"` or `"nan"` (NaN for pairs that did not converge).

        Returns:
            Tensor, shape `[...]`.

        Raises:
            GeodesicConvergenceError: a pair did not converge and `on_failure="raise"`.

        Example:
            >>> drift = torch.nn.Linear(2, 2)  # its parameters get gradients through dist
            >>> field = RandersField(b=lambda x: 0.3 * torch.tanh(drift(x)), dim=2)
            >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.5], requires_grad=True)
            >>> field.dist(x, y).backward()
            >>> y.grad.shape, drift.weight.grad.shape
            (torch.Size([2]), torch.Size([2, 2]))
        """
        xf, yf, batch, sol, failed, steps = self._solved(x, y, steps, atol, rtol, max_iter, on_failure)
        with torch.no_grad():
            a0, b0 = self.raw_coefficients(xf.detach())
            v0 = rmath.inverse_legendre(sol.momentum, a0, b0)
            d = rmath.norm(v0, a0, b0)
        if torch.is_grad_enabled():
            d = d + self._first_variation(xf, yf, sol, d)
        d = torch.where(failed, torch.full_like(d, float("nan")), d)
        d = d.reshape(batch)
        return d.unsqueeze(-1) if keepdim else d

    def _first_variation(self, xf, yf, sol, d):
        """A zero-valued term whose gradient is that of $d(x \\to y)$ (first variation formula)."""
        start = safe_div(sol.momentum, d.unsqueeze(-1))
        end = safe_div(sol.end_momentum, d.unsqueeze(-1))
        term = (end * (yf - yf.detach())).sum(-1) - (start * (xf - xf.detach())).sum(-1)
        nodes, moms = sol.path, sol.path_momentum
        a, b = self.raw_coefficients(nodes)
        if a.requires_grad or b.requires_grad:
            with torch.no_grad():
                vel = rmath.inverse_legendre(moms, a.detach(), b.detach())
            weights = simpson_weights(nodes.shape[0] - 1, dtype=d.dtype, device=d.device)
            length = (weights.unsqueeze(-1) * rmath.norm(vel, a, b)).sum(0)
            term = term + (length - length.detach())
        return term

    def cdist(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$.

        There is no closed form for a numerical metric: this solves the `N * M` boundary-value
        problems as one batch (memory and time proportional to `N * M * steps`).

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.
            **options: `steps`, `atol`, `rtol`, `max_iter`, `on_failure` as in `dist`.

        Returns:
            Tensor, shape `[..., N, M]`.

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> field.cdist(torch.zeros(1, 2), torch.zeros(3, 2))
            tensor([[0., 0., 0.]])
        """
        check_cdist_shapes(x, y)
        self._validate(x, y, names=("x", "y"), batch_dims=2)
        return self.dist(x.unsqueeze(-2), y.unsqueeze(-3), **options)

    def random(self, *size, dtype=None, device=None, std: float = 1.0) -> geoopt.ManifoldTensor:
        """Gaussian points `N(0, std^2 I)` of shape `size`; choose `std` inside the field's domain."""
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        x = torch.randn(*size, dtype=dtype, device=device) * std
        return geoopt.ManifoldTensor(x, manifold=self)

    random_normal = random

    def reverse(self) -> RandersField:
        r"""The reverse metric $F(x, -v)$ (same `a`, drift $-b$), sharing this field's parameters.

        Its forward distances are this field's backward ones: `reverse().dist(x, y) == dist(y, x)`.

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> x, u = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
            >>> bool(field.reverse().norm(x, u) == field.norm(x, -u))
            True
        """
        return super().reverse()

    # the reverse metric's geodesics are those of the field with drift -b (used by `reverse()`)
    def _reverse_expmap(self, x: torch.Tensor, u: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).expmap(x, u, **options)

    def _reverse_logmap(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).logmap(x, y, **options)

    def _reverse_cdist(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).cdist(x, y, **options)

    def _reverse_transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return _NegatedDrift(self).transp_follow_expmap(x, u, v)

    def _reverse_transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return _NegatedDrift(self).transp_follow_retr(x, u, v)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, steps={self.steps}, jacobian={self.jacobian!r}, validate={self.validate}"


class _NavigationField(RandersField):
    """A `RandersField` given by Zermelo navigation data `(h(x), W(x))`."""

    def __init__(self, h, wind, *, dim, **options):
        super().__init__(dim=dim, **options)
        for name, fn in (("h", h), ("wind", wind)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or nn.Module (or None), got {type(fn).__name__}")
        self.h_fn = h
        self.wind_fn = wind

    def navigation(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Navigation data `(h(x), W(x))` at the points."""
        h = torch.eye(self.dim, dtype=x.dtype, device=x.device) if self.h_fn is None else self.h_fn(x)
        wind = torch.zeros_like(x) if self.wind_fn is None else self.wind_fn(x)
        return 0.5 * (h + h.mT), wind

    def raw_coefficients(self, x):
        return rmath.navigation_to_randers(*self.navigation(x))

    def check_coefficients(self, x, a, b):
        # Name the navigation quantity: past |W|_h = 1 the Randers data stop being meaningful.
        with torch.no_grad():
            h, wind = self.navigation(x)
            ok, size, _ = randers_validity(h, rmath.matvec(h, wind))
            shape = torch.broadcast_shapes(ok.shape, x.shape[:-1])
            spd_ok = randers_validity(h, torch.zeros_like(wind))[0].expand(shape)
            strong = (~ok.expand(shape) & spd_ok).reshape(-1)
            if bool(strong.any()):
                i = strong.nonzero()[0, 0]
                point = x.expand(*shape, self.dim).reshape(-1, self.dim)[i]
                raise ValueError(
                    f"{self.name}: wind too strong at x = {_fmt(point)}: |W(x)|_h(x) = "
                    f"{size.expand(shape).reshape(-1)[i].item():.4g} >= 1 (need < 1)"
                )
        super().check_coefficients(x, a, b)

    def a(self, x):
        return self.raw_coefficients(x)[0]

    def b(self, x):
        return self.raw_coefficients(x)[1]


class _NegatedDrift(RandersField):
    """The field with data `(a, -b)`: the geodesic engine of `Reversed(field)` (built per call)."""

    def __init__(self, source: RandersField):
        super().__init__(
            dim=source.dim, validate=source.validate, steps=source.steps, atol=source.atol,
            rtol=source.rtol, max_iter=source.max_iter, jacobian=source.jacobian,
            on_failure=source.on_failure,
        )
        object.__setattr__(self, "source", source)  # not a submodule: no cycle in the module tree

    def raw_coefficients(self, x):
        a, b = self.source.raw_coefficients(x)
        return a, -b

    def a(self, x):
        return self.source.raw_coefficients(x)[0]

    def b(self, x):
        return -self.source.raw_coefficients(x)[1]

    def reverse(self) -> RandersField:
        return self.source
