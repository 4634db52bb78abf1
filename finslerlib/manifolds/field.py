r"""`RandersField`: user-defined position-dependent Randers metrics with numerical geodesics.

$F(x, v) = \sqrt{v^\top a(x)\, v} + b(x)^\top v$ with $a(x)$ symmetric positive definite and
$\|b(x)\|_{a(x)^{-1}} < 1$ given by the user (callables, `nn.Module`s, or by subclassing).
Pointwise quantities (norm, dual norm, Legendre maps, fundamental tensor, Finsler gradient) are
the closed forms of `finslerlib.math.randers` evaluated at $(a(x), b(x))$, exactly as for
`Randers`. Geodesics are numerical (`finslerlib.geodesics`): `expmap` integrates Hamilton's
equations with RK4 (`exponential_map`); `logmap`, `dist`, `cdist` and `solve` keep the shortest
geodesic over several starting paths per pair, with an estimated discretization error
(`shortest_geodesics`), and attach gradients analytically (`distance_with_gradient`,
`logmap_with_gradient`). The solver options are a `GeodesicSolver` held as `field.solver` and
overridable per call (`field.dist(x, y, steps=32)`); it documents what `converged` guarantees.
"""

from __future__ import annotations

import threading

import geoopt
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from finslerlib.geodesics import (
    GeodesicSolution,
    GeodesicSolver,
    StartProvider,
    distance_with_gradient,
    exponential_map,
    guarded,
    logmap_with_gradient,
    raise_unconverged,
    shortest_geodesics,
)
from finslerlib.geodesics.transport import GeodesicTransport, transport_along_geodesic
from finslerlib.manifolds.base import FinslerManifold
from finslerlib.math import randers as rmath
from finslerlib.math.validation import check_cdist_shapes, check_randers, format_values, randers_validity

__all__ = ["RandersField", "renormalized_transport"]


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
        solver: the `finslerlib.geodesics.GeodesicSolver` options of the geodesic solvers
            (`None`: the defaults); available as `field.solver`.
        **options: single `GeodesicSolver` fields overriding `solver` (`steps`, `atol`, `rtol`,
            `dist_atol`, `dist_rtol`, `max_iter`, `jacobian`, `candidates`, `graph`,
            `on_failure`, ...).

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

    def __init__(self, a=None, b=None, *, dim: int, validate: bool = True, solver=None, **options):
        super().__init__(dim)
        for name, fn in (("a", a), ("b", b)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or nn.Module (or None), got {type(fn).__name__}")
        # nn.Module values register as submodules (their parameters train); plain callables don't.
        self.metric_fn = a
        self.drift_fn = b
        self.validate = bool(validate)
        self.solver = self._solver_for(GeodesicSolver() if solver is None else solver, options)

    def _solver_for(self, solver, options) -> GeodesicSolver:
        solver = getattr(self, "solver", None) if solver is None else solver
        if not isinstance(solver, GeodesicSolver):
            raise ValueError(f"solver must be a GeodesicSolver, got {type(solver).__name__}")
        return solver.replace(**options)

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
        if a.numel() == 0 or b.numel() == 0:
            return  # an empty batch has nothing to validate
        check_randers(a, b, points=x, label=self.name, a_name="a(x)", b_name="b(x)")

    @property
    def _identity_a(self) -> bool:
        """Whether `a(x)` is the identity by construction: no metric callable, and none of `a`,
        `raw_coefficients`, `coefficients`, `tangent_coefficients`, `check_coefficients`
        overridden (a structural test, never a comparison of values)."""
        cls = type(self)
        return (
            self.metric_fn is None
            and cls.a is RandersField.a
            and cls.raw_coefficients is RandersField.raw_coefficients
            and cls.coefficients is RandersField.coefficients
            and cls.tangent_coefficients is FinslerManifold.tangent_coefficients
            and cls.check_coefficients is RandersField.check_coefficients
        )

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a(x), b(x))`, validated unless `validate=False`.

        Args:
            x: Tensor, shape `[..., D]`.

        Returns:
            `(a, b)` with shapes broadcastable to `[..., D, D]` and `[..., D]`.
        """
        a, b = self._pointwise_coefficients(x)
        if a is None:
            a = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        return a, b

    def _pointwise_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """`(a(x), b(x))` validated, with `a = None` when it is the identity by construction
        (`_identity_a`: then only `b(x)` is evaluated, checked by $|b| < 1$ in one reduction).
        Inside an optimizer step, the data `egrad2rgrad` evaluated at `x` (see below)."""
        memo = self._step_memo
        if memo is not None and memo[0] is x and memo[1] == (x._version, _STEP.token) and memo[3] > 0:
            memo[3] -= 1
            return memo[2]
        if self._identity_a:
            a, b = None, self.b(x)
            if self.validate and not _in_unit_ball(b, x):
                # the full check words the error (shapes, finiteness, the drift size at a point)
                self.check_coefficients(x, torch.eye(self.dim, dtype=x.dtype, device=x.device), b)
        else:
            if type(self).coefficients is not RandersField.coefficients:
                return super()._pointwise_coefficients(x)  # a subclass's own `coefficients`
            a, b = self.raw_coefficients(x)
            if self.validate:
                self.check_coefficients(x, a, b)
        if self._record is x:
            object.__setattr__(self, "_step_memo", [x, (x._version, _STEP.token), (a, b), 2])
        return a, b

    def _known_finite(self, t: torch.Tensor) -> bool:
        # the point of this optimizer step's `egrad2rgrad`, checked there, unchanged since
        memo = self._step_memo
        return memo is not None and memo[0] is t and memo[1] == (t._version, _STEP.token)

    # ------------------------------------------------------------------ one optimizer step
    # geoopt's optimizers call `egrad2rgrad(x, ...)`, `component_inner(x, ...)` (Adam) and
    # `retr_transp(x, ...)` at the same point in a row, inside `Optimizer.step`: the coefficients
    # `egrad2rgrad` evaluated (and validated) at `x` serve the next two evaluations at that same
    # tensor, unchanged in place (its version), in the same optimizer step (`_STEP.token`, moved
    # by torch.optim's global step hooks at the start and the end of every step). Only the
    # optimizer's own arithmetic runs in between, so neither a parameter of the metric nor state
    # the field cannot see (a closure, a global) changes under the memo. Outside an optimizer
    # step, or under autograd, nothing is remembered; `retr_transp` drops the memo.
    _step_memo = None
    _record = None

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        _StepScope.install()
        arm = _STEP.active and not torch.is_grad_enabled()
        object.__setattr__(self, "_step_memo", None)  # plain attributes: no module registration
        object.__setattr__(self, "_record", x if arm else None)
        try:
            return super().egrad2rgrad(x, u)
        finally:
            object.__setattr__(self, "_record", None)

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

    # ------------------------------------------------------------------ solver plumbing
    def _flat(self, x, y, names):
        self.validate_inputs(x, y, names=names)
        shape = torch.broadcast_shapes(x.shape, y.shape)
        return x.expand(shape).reshape(-1, self.dim), y.expand(shape).reshape(-1, self.dim), shape[:-1]

    def _solver_coefficients(self):
        return guarded(self.raw_coefficients) if self.validate else self.raw_coefficients

    # ------------------------------------------------------------------ geodesics
    def expmap(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        *,
        steps: int | None = None,
        solver=None,
        return_path: bool = False,
        **options,
    ):
        r"""Exponential map: end point at $t = 1$ of the geodesic with $\gamma(0) = x$, $\dot\gamma(0) = u$.

        RK4 on Hamilton's equations with `steps` steps if given, else the steps of
        `finslerlib.geodesics.search.adaptive_steps` (the rule `logmap` uses). Differentiable by autograd
        through the integrator in `x`, `u` and the field's parameters; identity Jacobian at $u = 0$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, initial velocities.
            steps: RK4 steps for this call (no step doubling).
            solver: a `GeodesicSolver` for this call (default: `field.solver`).
            return_path: also return the integrator's nodes; a geodesic that leaves the region
                where the metric is strongly convex is then not an error: its nodes from there on
                are NaN, for the caller to diagnose.
            **options: single `GeodesicSolver` fields overriding it.

        Returns:
            Tensor, shape `[..., D]`; with `return_path`, `(end, path)`, `path` the RK4 nodes
            `[S + 1, ..., D]` from `x` to the end point.

        Raises:
            ValueError: `x` or `u` is not finite, or (without `return_path`) the geodesic leaves
                the region where the metric is strongly convex.

        Example:
            >>> euclid = RandersField(dim=2)
            >>> euclid.expmap(torch.zeros(2), torch.tensor([1.0, 2.0]), steps=4)
            tensor([1., 2.])
        """
        xf, uf, batch = self._flat(x, u, ("x", "u"))
        solver = self._solver_for(solver, options)
        coefficients = self._solver_coefficients()
        out, path = exponential_map(coefficients, xf, uf, *self.coefficients(xf), solver=solver, steps=steps)
        if self.validate and not return_path:
            with torch.no_grad():
                finite = torch.isfinite(out).all(-1)
                if not bool(finite.all()):
                    i = (~finite).nonzero()[0, 0]
                    nodes = path[:, i]
                    last = nodes[torch.isfinite(nodes).all(-1)][-1]
                    self.check_coefficients(last, *self.raw_coefficients(last))
                    raise ValueError(
                        f"{self.name}: the geodesic from x = {format_values(xf[i])} with u = "
                        f"{format_values(uf[i])} leaves "
                        f"the region where the metric is strongly convex after x = {format_values(last)}"
                    )
        out = out.reshape(*batch, self.dim)
        if return_path:
            # zero rows integrate a dummy geodesic (`exponential_map`): their path is x
            path = torch.where((uf == 0).all(-1)[:, None], xf, path)
            return out, path.reshape(path.shape[0], *batch, self.dim)
        return out

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """First-order retraction $x + u$ (cheap; `expmap` integrates the geodesic)."""
        return x + u

    # ------------------------------------------------------------------ parallel transport
    def geodesic_transport(self, x, u, v, *, time: float = 1.0, steps: int | None = None):
        """Parallel transport (Chern) of `v` along $t \\mapsto \\exp_x(t u)$ up to `time`.

        `finslerlib.geodesics.transport_along_geodesic` on this field's Randers data (RK4,
        `steps`, default the solver's); `finslerlib.curvature.geodesic_transport` calls this.

        Returns:
            `GeodesicTransport(point, velocity, vector)`, each of the broadcast shape.
        """
        self.validate_inputs(x, u, v, names=("x", "u", "v"))
        shape = torch.broadcast_shapes(x.shape, u.shape, v.shape)
        xf, uf, vf = (t.expand(shape).reshape(-1, self.dim).contiguous() for t in (x, u, v))
        self.coefficients(xf)  # raises ValueError naming a point where (a, b) is invalid
        steps = int(self.solver.steps) if steps is None else steps
        out = transport_along_geodesic(self.raw_coefficients, xf, uf, vf, time=time, steps=steps)
        return GeodesicTransport(*(t.reshape(shape) for t in out))

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport along the geodesic $x \\to y$ (a log map, then `geodesic_transport`)."""
        return self.geodesic_transport(x, self.logmap(x, y), v).vector

    def transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport along $t \\mapsto \\exp_x(t u)$ (`geodesic_transport`)."""
        return self.geodesic_transport(x, u, v).vector

    #: The vector transport of `transp_follow_retr` / `retr_transp` (what geoopt's optimizers use
    #: for their momenta): `None` for the parallel transport along the geodesic (one RK4 step of
    #: `geodesic_transport`), or a first-order one such as
    #: `renormalized_transport` (set the attribute: `field.vector_transport = renormalized_transport`).
    #: Measured on `bench_finsler_descent.py`'s field problem (300 `RiemannianAdam` steps, lr 0.01):
    #: the first-order transport costs about 1/75 of the parallel one per step (2 ms against
    #: 140 ms of CPU) but leaves a larger gap (0.53 against 0.36), so the parallel transport stays
    #: the default.
    vector_transport = None

    #: The global start of `solve` / `dist` / `logmap` / `cdist` for `D = 2, 3` (a
    #: `finslerlib.geodesics.StartProvider`, used when the solver's `graph` is on; other dimensions
    #: get the search's roadmap). `None` (the default): the search's grid-graph shortest path
    #: (Dijkstra). `MapStart()`: the minimal paths of eikonal distance maps, one map per distinct
    #: start (or end) point (`field.global_start = MapStart()`): no metrication bias, minimal up to
    #: the map's $O(h)$ error, but still 6 to 15 times the graph's cost per pair (a 9^3 map and its
    #: share of the batched backtracking about 9 ms of CPU, 13^3 about 20 ms, a 13^3 Dijkstra run
    #: 1.1 to 1.7 ms), which is why it is not the default.
    global_start: StartProvider | None = None

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r"""Vector transport to `retr(x, u)` (see `vector_transport`); by default the parallel
        transport along $t \mapsto \exp_x(t u)$ by one RK4 step."""
        try:
            if self.vector_transport is not None:
                return self.vector_transport(self, x, u, v)
            return self.geodesic_transport(x, u, v, steps=1).vector
        finally:
            object.__setattr__(self, "_step_memo", None)

    def expmap_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(expmap(x, u), transp_follow_expmap(x, u, v))`."""
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def retr_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(retr(x, u), transp_follow_retr(x, u, v))`: what geoopt's optimizers call for momenta."""
        return self.retr(x, u), self.transp_follow_retr(x, u, v)

    def solve(self, x: torch.Tensor, y: torch.Tensor, *, solver=None, **options) -> GeodesicSolution:
        """The per-pair report of the geodesic solves $x \\to y$ (no gradients).

        Args:
            x: Tensor, shape `[..., D]`.
            y: Tensor, shape `[..., D]`.
            solver: a `GeodesicSolver` for this call (default: `field.solver`).
            **options: single `GeodesicSolver` fields overriding it (`steps`, `atol`, `max_iter`, ...).

        Returns:
            `finslerlib.geodesics.GeodesicSolution` over the flattened broadcast batch (`distance`,
            `error`, `converged`, `candidates_converged`, `gap`, trajectories, ...).

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> report = field.solve(torch.zeros(3, 2), torch.randn(3, 2), max_iter=0)
            >>> report.converged.shape, report.residual.shape  # after 0 iterations: maybe not
            (torch.Size([3]), torch.Size([3]))
        """
        xf, yf, _ = self._flat(x, y, ("x", "y"))
        solver = self._solver_for(solver, options)
        if self.validate:
            self.coefficients(xf)
            self.coefficients(yf)
        start = self.global_start if 2 <= self.dim <= 3 else None  # eikonal maps: 2-D and 3-D grids
        return shortest_geodesics(self.raw_coefficients, xf, yf, solver, start=start)

    def _solved(self, x, y, solver, options):
        xf, yf, batch = self._flat(x, y, ("x", "y"))
        solver = self._solver_for(solver, options)
        sol = self.solve(xf, yf, solver=solver)
        if solver.on_failure == "raise":
            raise_unconverged(sol, xf, yf, name=self.name)
        return xf, yf, batch, sol, ~sol.converged

    def logmap(self, x: torch.Tensor, y: torch.Tensor, *, solver=None, **options) -> torch.Tensor:
        r"""Log map: initial velocity of the shortest geodesic found from `x` reaching `y` at $t = 1$.

        Gradients by the implicit function theorem (`finslerlib.geodesics.logmap_with_gradient`).

        Args:
            x: Tensor, shape `[..., D]`.
            y: Tensor, shape `[..., D]`.
            solver: a `GeodesicSolver` for this call (default: `field.solver`).
            **options: single `GeodesicSolver` fields overriding it (`on_failure="nan"`: NaN rows).

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
        xf, yf, batch, sol, failed = self._solved(x, y, solver, options)
        v = logmap_with_gradient(self.raw_coefficients, xf, yf, sol, steps=sol.steps)
        v = torch.where(failed.unsqueeze(-1), torch.full_like(v, float("nan")), v)
        return v.reshape(*batch, self.dim)

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, solver=None, **options):
        r"""Forward distance $d(x \to y)$: the length of the shortest geodesic found (see `solve`).

        Gradients by the first variation formula (`finslerlib.geodesics.distance_with_gradient`),
        also for the parameters of `a`, `b`; at $x = y$ those of $F(x, y - x)$, as for `Randers`.

        Args:
            x: Tensor, shape `[..., D]`, sources.
            y: Tensor, shape `[..., D]`, targets.
            keepdim: keep the last dimension.
            solver: a `GeodesicSolver` for this call (default: `field.solver`).
            **options: single `GeodesicSolver` fields overriding it (`on_failure="nan"`: NaN).

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
        xf, yf, batch, sol, failed = self._solved(x, y, solver, options)
        d = distance_with_gradient(self.raw_coefficients, xf, yf, sol)
        d = torch.where(failed, torch.full_like(d, float("nan")), d)
        d = d.reshape(batch)
        return d.unsqueeze(-1) if keepdim else d

    def cdist(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$.

        Solves the `N * M` boundary-value problems as one batch (cost proportional to `N * M`).

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.
            **options: `solver` and single `GeodesicSolver` fields, as in `dist`.

        Returns:
            Tensor, shape `[..., N, M]`.

        Example:
            >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
            >>> field.cdist(torch.zeros(1, 2), torch.zeros(3, 2))
            tensor([[0., 0., 0.]])
        """
        check_cdist_shapes(x, y)
        self.validate_inputs(x, y, names=("x", "y"), batch_dims=2)
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
    def reverse_expmap(self, x: torch.Tensor, u: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).expmap(x, u, **options)

    def reverse_logmap(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).logmap(x, y, **options)

    def reverse_cdist(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        return _NegatedDrift(self).cdist(x, y, **options)

    def reverse_transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return _NegatedDrift(self).transp_follow_expmap(x, u, v)

    def reverse_transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return _NegatedDrift(self).transp_follow_retr(x, u, v)

    def extra_repr(self) -> str:
        default = GeodesicSolver()
        changed = [f"{k}={v!r}" for k, v in vars(self.solver).items() if v != getattr(default, k)]
        return ", ".join([f"dim={self.dim}", f"validate={self.validate}", *changed])


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
            strong = (~ok.expand(shape) & spd_ok & torch.isfinite(size).expand(shape)).reshape(-1)
            if bool(strong.any()):
                i = strong.nonzero()[0, 0]
                point = x.expand(*shape, self.dim).reshape(-1, self.dim)[i]
                raise ValueError(
                    f"{self.name}: wind too strong at x = {format_values(point)}: |W(x)|_h(x) = "
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
        super().__init__(dim=source.dim, validate=source.validate, solver=source.solver)
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


def renormalized_transport(manifold, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""First-order vector transport to `retr(x, u)` = $y$: $v \, F(x, v) / F(y, v)$.

    The differential of the chart retraction $x + u$ is the identity (every tangent space is
    $\mathbb{R}^D$); rescaling keeps the Finsler length, $g_v(v, v) = F^2$, as the parallel
    transport does. Two norm evaluations instead of a geodesic step with Christoffel symbols.
    Use it as `RandersField.vector_transport`.

    Args:
        manifold: a manifold with `retr` and `norm` (a `RandersField`).
        x: Tensor, shape `[..., D]`.
        u: Tensor, shape `[..., D]`, the step.
        v: Tensor, shape `[..., D]`, the vector to move.

    Returns:
        Tensor, shape `[..., D]`, at `retr(x, u)`.

    Example:
        >>> field = RandersField(b=lambda x: 0.5 * torch.tanh(x), dim=1)
        >>> x, u, v = torch.zeros(1), torch.ones(1), torch.ones(1)
        >>> w = renormalized_transport(field, x, u, v)
        >>> torch.allclose(field.norm(x + u, w), field.norm(x, v))
        True
    """
    y = manifold.retr(x, u)
    before = manifold.norm(x, v, keepdim=True)
    after = manifold.norm(y, v, keepdim=True)
    return v * torch.where(after > 0, before / torch.where(after > 0, after, torch.ones_like(after)), 1.0)


class _StepScope(threading.local):
    """Per thread: `token` moves at the start and at the end of every `torch.optim` optimizer
    step, `active` says whether one is running (torch.optim's global step hooks, installed once,
    by the first `RandersField.egrad2rgrad`)."""

    token = 0
    active = False
    installed = False

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return
        cls.installed = True
        register_optimizer_step_pre_hook(_step_started)
        register_optimizer_step_post_hook(_step_ended)


_STEP = _StepScope()


def _step_started(optimizer, args, kwargs) -> None:
    _STEP.token += 1
    _STEP.active = True


def _step_ended(optimizer, args, kwargs) -> None:
    _STEP.token += 1
    _STEP.active = False


def _in_unit_ball(b: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether `b` `[..., D]` (the last dimension and dtype of the points `x`) has $|b| < 1$
    everywhere (False for NaN / inf): strong convexity for $a = I$, one reduction, one sync."""
    if b.dim() < 1 or b.shape[-1] != x.shape[-1] or b.dtype != x.dtype or b.numel() == 0:
        return False
    bd = b.detach()
    return (bd * bd).sum(-1).amax().item() < 1.0  # a NaN maximum compares False
