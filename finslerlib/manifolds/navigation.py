r"""`Navigation`: Randers metrics on geoopt's Riemannian manifolds by Zermelo navigation.

The unit ball of $F(x, \cdot)$ is the base's $h$-unit ball translated by a wind $W(x)$:
$F(x, v) = 1 \iff |v - W(x)|_h = 1$, a Randers metric wherever $|W(x)|_h < 1$ (the manifold's
domain; every input point is checked). Points, shapes, `projx` and `proju` are the base's (ambient
coordinates: $n + 1$ numbers on the sphere and the hyperboloid).

* `KillingWind` winds (isometric flows): exact geodesics,
  $\exp_x(v) = \varphi_{F}(\exp^h_x(v - F W(x)))$, $d(x \to y)$ = the root of
  $d_h(x, \varphi_{-T} y) = T$ (a safeguarded Newton iteration per pair, to dtype precision),
  gradients by the implicit function theorem (`finslerlib.math.navigation`).
* Any other wind (a callable or `nn.Module`): numerical geodesics of a `RandersField` in a chart
  of the base's atlas (`Domain.atlas`), with its solver options, convergence reports and
  gradients; every node of a solved path is checked for $|W|_h < 1$. Charts: the identity for
  `Euclidean` and the stereographic models; on the sphere
  two stereographic projections, from $-e_0$ and from $+e_0$, the pair's chart chosen with its
  pole away from both points and their midpoint (`Domain.chart_index`), and a pair whose path
  comes near that pole solved again in the other chart or a turned one; the Poincaré ball of
  radius $\sqrt{k}$ for the hyperboloid (global).

The base is an object (`finslerlib.manifolds.domains`, built by `domain_of` from the geoopt
base): its metric, geodesics, transport, checks and charts; this class only adds the wind.
"""

from __future__ import annotations

from typing import NamedTuple

import geoopt
import torch
from torch import nn

from finslerlib.geodesics import (
    GeodesicConvergenceError,
    distance_with_gradient,
    logmap_with_gradient,
)
from finslerlib.geodesics.transport import GeodesicTransport, transport_along_geodesic
from finslerlib.manifolds.base import FinslerManifold
from finslerlib.manifolds.domains import domain_of
from finslerlib.manifolds.domains.base import format_values
from finslerlib.manifolds.field import RandersField
from finslerlib.manifolds.killing import KillingWind
from finslerlib.math import navigation as nmath
from finslerlib.math import randers as rmath
from finslerlib.math.validation import value_checks_enabled

__all__ = ["Navigation"]

_PATH_SAMPLES = 16
"""Points per geodesic at which a Killing wind's path is checked to stay where |W|_h < 1."""

_CHART_REACH = 0.1
"""Smallest `Chart.reach` allowed along a general wind's solved path. On the sphere the reach is the
conformal factor $1 + s x_0$ of the stereographic chart: above 0.1 the chart magnifies errors at
most tenfold (one digit); a path that comes nearer the pole is solved again in the other chart of
the atlas, and is certified by neither otherwise."""


class _PathReport(NamedTuple):
    """`Navigation._path_report` of a batch of `B` paths."""

    resolved: torch.Tensor
    """`[B]` bool: the path keeps `chart.reach >= _CHART_REACH` (the chart keeps its digits)."""
    admissible: torch.Tensor
    """`[B]` bool: every node is finite and has $|W|_h < 1$."""
    worst: torch.Tensor
    """`[B]`: the largest $|W|_h$ over the finite nodes."""
    at: torch.Tensor
    """`[B, N]`: where (ambient coordinates)."""
    last: torch.Tensor
    """`[B, N]`: the last finite node before the first non-finite one (the end for a finite path)."""
    broken: torch.Tensor
    """`[B]` bool: the path has a non-finite node (an integration that failed)."""
    nodes: torch.Tensor
    """`[S + 1, B, N]`: the nodes in ambient coordinates, in the base's frame."""


class _Negated(nn.Module):
    """`x -> -wind(x)`, sharing the wind's parameters."""

    def __init__(self, wind):
        super().__init__()
        self.wind = wind

    def forward(self, x):
        return -self.wind(x)


class Navigation(FinslerManifold):
    r"""Zermelo navigation on a Riemannian base: $F(x, v) = 1 \iff |v - W(x)|_h = 1$.

    $F(x, v) = \big(\sqrt{\lambda |v|_h^2 + \langle W, v\rangle_h^2} - \langle W, v\rangle_h\big)
    / \lambda$, $\lambda = 1 - |W|_h^2$: travelling with the wind is cheap. The reverse metric is
    navigation in the wind $-W$.

    Args:
        base: `geoopt.Euclidean(ndim=1)`, `geoopt.Sphere()`, `geoopt.Lorentz(k)`,
            `geoopt.PoincareBall(c)`, `geoopt.SphereProjection(k)` or `geoopt.Stereographic(k)`.
        wind: a `KillingWind` (exact geodesics), any callable / `nn.Module` `x -> W(x)` (projected
            onto the tangent space on the sphere and hyperboloid; numerical geodesics), or `None`
            for no wind (the base's own geometry, exact).
        dim: the intrinsic dimension `n` (points have `n + 1` entries on the sphere and the
            hyperboloid); taken from a `KillingWind`'s size when omitted.
        steps: RK4 steps per geodesic (general winds).
        atol: absolute shooting tolerance in the chart (general winds; `None`: the solver default).
        rtol: relative shooting tolerance (general winds).
        max_iter: maximum shooting iterations (general winds).
        jacobian: `"broyden"` or `"newton"` (general winds).
        on_failure: `"raise"` or `"nan"` for pairs whose solve does not converge (the root find
            of a Killing wind, the shooting of a general wind); a per-call `on_failure=` overrides it.

    Attributes:
        dim: intrinsic dimension `n`.
        ambient_dim: the size of the points' last dimension.
        base: the geoopt base.
        domain: the base as a `finslerlib.manifolds.domains.Domain` (its metric $h$, geodesics,
            checks and charts).
        wind: the wind.
        exact: `True` for a Killing wind (closed-form geodesics).
        options: the solver options (`steps`, `atol`, `rtol`, `max_iter`, `jacobian`, `on_failure`).

    Inputs: every method checks that its points lie on the base (`Domain.check_point`, a
    tolerance from the dtype) and where $|W|_h < 1$, and raises `ValueError` naming the
    argument, the point and the measured value. Tangent-vector arguments are projected onto
    $T_x M$ first (`proju`), in every method (`norm`, `legendre`, `expmap`, `retr`, transports):
    a normal component is ignored, never counted. Geodesics of Killing winds are checked along
    their whole path (where the admissible set $|W|_h < 1$ is not geodesically convex); no
    admissible path is a `ValueError`.

    Raises:
        ValueError: an unsupported base, a `KillingWind` that is not Killing for the base, a
            size mismatch; later, any point off the base or where $|W(x)|_h \ge 1$, named with its value.

    Example:
        >>> import geoopt
        >>> A = torch.zeros(3, 3, dtype=torch.float64)
        >>> A[0, 1], A[1, 0] = -0.5, 0.5  # rotation about the x_2 axis at rate 0.5
        >>> m = Navigation(geoopt.Sphere(), KillingWind(A))
        >>> x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
        >>> y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
        >>> round(m.dist(x, y).item(), 6), round(m.dist(y, x).item(), 6)  # with / against the wind
        (1.047198, 3.141593)
        >>> torch.allclose(m.expmap(x, m.logmap(x, y)), y)
        True
    """

    name = "Navigation"

    def __init__(
        self,
        base,
        wind=None,
        *,
        dim: int | None = None,
        steps: int = 16,
        atol: float | None = None,
        rtol: float | None = None,
        max_iter: int = 30,
        jacobian: str = "broyden",
        on_failure: str = "raise",
    ):
        if wind is not None and not callable(wind):
            raise ValueError(
                f"Navigation: wind must be a KillingWind, a callable or None, got {type(wind).__name__}"
            )
        if on_failure not in ("raise", "nan"):
            raise ValueError(f"Navigation: on_failure must be 'raise' or 'nan', got {on_failure!r}")
        try:
            probe = domain_of(base, 1)
            codim = probe.ambient_dim - probe.dim
            if isinstance(wind, KillingWind):
                ambient = wind.ambient_dim
                if dim is not None and int(dim) + codim != ambient:
                    raise ValueError(
                        f"dim={dim} does not match the KillingWind's size {ambient} "
                        f"(points on {probe.name} have {int(dim) + codim} entries)"
                    )
                dim = ambient - codim
            elif dim is None:
                raise ValueError("pass dim= (the intrinsic dimension) unless the wind is a KillingWind")
            domain = domain_of(base, int(dim))
        except ValueError as exc:
            raise ValueError(f"Navigation: {exc}") from None
        super().__init__(domain=domain)
        self.base = base
        self.base_name = domain.name
        self.embedded = domain.embedded
        if wind is None:
            wind = KillingWind(torch.zeros(domain.ambient_dim, domain.ambient_dim))
        if isinstance(wind, KillingWind):
            wind.check_base(domain)
        self.wind = wind
        self.exact = isinstance(wind, KillingWind)
        self.options = dict(
            steps=steps, atol=atol, rtol=rtol, max_iter=max_iter, jacobian=jacobian, on_failure=on_failure
        )
        self.fields: tuple[RandersField, ...] = ()
        self._convex = self.exact and domain.admissible_set_is_convex(wind.A.detach())
        # |W|_h < 1 at every point of the base: the per-point wind checks are skipped
        self._everywhere = self.exact and domain.admissible_everywhere(wind.A.detach())
        if not self.exact:
            # one chart field per chart of the base's atlas
            self.fields = tuple(
                RandersField.from_navigation(
                    None if chart.flat else chart.metric,
                    self._chart_wind(chart),
                    dim=self.dim,
                    **self.options,
                )
                for chart in domain.atlas
            )

    @property
    def field(self) -> RandersField | None:
        """The chart field of the atlas' first chart (general winds; `None` for Killing winds)."""
        return self.fields[0] if self.fields else None

    # ------------------------------------------------------------------ checks and shapes
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        ok, reason = self.domain.check_point(x, atol=atol, rtol=rtol)
        if not ok:
            return False, f"not a point of the base {self.base_name}: {reason}"
        with torch.no_grad():
            size = self.wind_size(x)
        bad = ~(size < 1)
        if bool(bad.any()):
            i = bad.reshape(-1).nonzero()[0, 0]
            return False, (
                f"outside the domain |W|_h < 1 of the metric: at x = "
                f"{format_values(x.reshape(-1, self.ambient_dim)[i])} the wind has |W(x)|_h = "
                f"{size.reshape(-1)[i].item():.4g} >= 1 (the wind is too strong for a Randers metric there)"
            )
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return self.domain.check_vector(x, u, atol=atol, rtol=rtol)

    def _on_base(self, x: torch.Tensor, name: str) -> None:
        """`ValueError` naming `name` unless its points lie on the base (dtype-aware tolerance)."""
        if not value_checks_enabled():
            return
        ok, reason = self.domain.check_point(x.detach())
        if not ok:
            raise ValueError(
                f"{self.name} over {self.base_name}: {name} is not a point of the base: {reason}"
            )

    def _checked(self, *tensors, names=None, batch_dims: int = 1, points: int = 1) -> None:
        """Shapes, dtypes and finiteness (`FinslerManifold`'s checks), then the first `points`
        tensors are checked to lie on the base."""
        self.validate_inputs(*tensors, names=names, batch_dims=batch_dims)
        names = names or tuple(f"argument {i}" for i in range(len(tensors)))
        for t, name in list(zip(tensors, names, strict=True))[:points]:
            self._on_base(t, name)

    # ------------------------------------------------------------------ the wind
    def wind_at(self, x: torch.Tensor) -> torch.Tensor:
        """The wind $W(x)$ (projected onto $T_x M$ for a general wind on an embedded base).

        Args:
            x: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.
        """
        w = self.wind(x)
        if not isinstance(w, torch.Tensor) or w.shape[-1:] != x.shape[-1:]:
            raise ValueError(
                f"{self.name}: the wind must return a tensor [..., {self.ambient_dim}], got "
                f"{tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}"
            )
        if self.embedded and not self.exact:
            w = self.domain.proju(x, w)
        return w

    def wind_size(self, x: torch.Tensor) -> torch.Tensor:
        """$|W(x)|_h$, shape `[...]`; the metric is defined where it is below 1."""
        w = self.wind_at(x)
        return self.domain.inner(x, w, w).clamp_min(0).sqrt()

    def _wind_checked(self, x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
        """`(W(x), |W(x)|_h^2 [..., 1])`, raising `ValueError` where $|W|_h \\ge 1$ or not finite."""
        w = self.wind_at(x)
        ww = self.domain.inner(x, w, w, keepdim=True)
        with torch.no_grad():
            bad = ~(ww < 1)  # also catches a non-finite wind or point (NaN compares False)
            if bool(bad.any()):
                bad = bad.expand(*torch.broadcast_shapes(bad.shape[:-1], x.shape[:-1]), 1)
                i = bad.reshape(-1).nonzero()[0, 0]
                point = x.expand(*bad.shape[:-1], self.ambient_dim).reshape(-1, self.ambient_dim)[i]
                value = ww.expand(bad.shape).reshape(-1)[i].clamp_min(0).sqrt().item()
                raise ValueError(
                    f"{self.name} over {self.base_name}: {name} = {format_values(point)} is outside the "
                    f"domain: the wind there has |W(x)|_h = {value:.4g} >= 1 (need < 1 for a Randers metric)"
                )
        return w, ww

    def _check_path(self, x: torch.Tensor, v: torch.Tensor, what: str) -> None:
        r"""`ValueError` unless $|W|_h < 1$ along the base geodesic $s \mapsto \exp^h_x(s v)$, $s \in [0, 1]$.

        The geodesics of a Killing wind are $\varphi_{sT}$ of such a base geodesic, and the flow keeps
        $|W|_h$: this is the whole path. Skipped where the admissible set is geodesically convex.
        Between two samples $|W|_h$ rises at most by $L\,\ell$ ($\ell$ the segment's $h$-length, $L$
        a bound of $|\nabla W|_h$: $\|A\|_2$ for a linear wind on the sphere and the plane, and no
        less than twice the steepest slope seen between samples); a segment with
        $|W_i| + |W_{i+1}| + L\ell \ge 2$ is split in 8 until the bound clears it (a thin band
        where $|W|_h \ge 1$ between two samples is found), up to 8 levels; a segment still
        uncleared then is reported as not certified, never passed.
        """
        if self._convex or not value_checks_enabled() or not x.numel():
            return
        with torch.no_grad():
            s = torch.linspace(0.0, 1.0, _PATH_SAMPLES + 1, dtype=x.dtype, device=x.device)
            lengths = self.domain.inner(x, v, v).clamp_min(0).sqrt()  # [B]
            lip = torch.linalg.matrix_norm(self.wind.A.detach().to(x), ord=2)
            xs, vs, lo, hi = x, v, torch.zeros_like(lengths), torch.ones_like(lengths)
            for _ in range(8):
                # samples s in [lo, hi] of each segment still in doubt: [S + 1, B]
                grid = lo + (hi - lo) * s[:, None]
                pts = self.domain.expmap(xs.unsqueeze(0).expand(len(s), *xs.shape), grid[..., None] * vs)
                size = self.wind_size(pts)
                worst, at = size.max(0)
                bad = ~(worst < 1)
                if bool(bad.any()):
                    i = int(bad.nonzero()[0, 0])
                    raise ValueError(
                        f"{self.name} over {self.base_name}: {what}: the geodesic from x = "
                        f"{format_values(xs[i])} leaves the domain |W|_h < 1 on its way (|W|_h = "
                        f"{worst[i].item():.4g} at {format_values(pts[at[i], i])}); no admissible path "
                        f"there ({int(bad.sum())} of {bad.numel()} pairs in doubt)"
                    )
                seg = (hi - lo) * lengths / (len(s) - 1)  # [B]
                rise = (size[1:] - size[:-1]).abs()  # [S, B]
                slope = (rise / seg.clamp_min(torch.finfo(x.dtype).tiny)).amax(0)
                bound = torch.maximum(lip.expand_as(slope), 2 * slope)
                doubt = size[1:] + size[:-1] + bound * seg >= 2  # [S, B]
                if not bool(doubt.any()):
                    return
                seg_i, pair = doubt.nonzero(as_tuple=True)
                width = (hi - lo)[pair] / (len(s) - 1)
                lo = lo[pair] + seg_i.to(x.dtype) * width
                hi = lo + width
                xs, vs, lengths = xs[pair], vs[pair], lengths[pair]
            raise ValueError(
                f"{self.name} over {self.base_name}: {what}: cannot certify that the geodesic from x = "
                f"{format_values(xs[0])} stays where |W|_h < 1 (it passes within rounding of |W|_h = 1)"
            )

    # ------------------------------------------------------------------ pointwise structure
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a, b)` in ambient coordinates from $(h, W)$ (`h` the SPD extension).

        Args:
            x: Tensor, shape `[..., N]`.

        Returns:
            `(a, b)`, shapes `[..., N, N]` and `[..., N]`.
        """
        self._checked(x, names=("x",))
        w, _ = self._wind_checked(x)
        return rmath.navigation_to_randers(self.domain.metric(x), w)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Finsler norm $F(x, u)$ from $h$-inner products (cancellation-free).

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`, tangent vectors.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._checked(x, u, names=("x", "u"))
        out = self._norm(x, self.proju(x, u))
        return out if keepdim else out.squeeze(-1)

    def _norm(self, x, u):
        """$F(x, u)$ `[..., 1]` of tangent `u` (no input checks)."""
        w, ww = self._wind_checked(x)
        h = self.domain
        return nmath.norm(h.inner(x, u, u, keepdim=True), h.inner(x, w, u, keepdim=True), ww)

    def _covector_parts(self, x, xi):
        w, _ = self._wind_checked(x)
        xi = self.domain.tangent_covector(x, xi)
        xs = self.domain.sharp(x, xi)
        return w, xs, (xi * xs).sum(-1, keepdim=True), (xi * w).sum(-1, keepdim=True)

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Dual norm $F^*(\xi) = |\xi|_{h^{-1}} + \xi(W)$ of the covector restricted to $T_x M$.

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]`, ambient covectors (e.g. Euclidean gradients).
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._checked(x, xi, names=("x", "xi"))
        _, _, xx, xw = self._covector_parts(x, xi)
        out = nmath.dual_norm(xx, xw)
        return out if keepdim else out.squeeze(-1)

    def legendre(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Legendre map $\ell_x(u) = \tfrac12 \partial_u F^2$, a covector vanishing on the normal.

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`, tangent.

        Returns:
            Tensor, shape `[..., N]`.
        """
        self._checked(x, u, names=("x", "u"))
        u = self.proju(x, u)
        w, ww = self._wind_checked(x)
        h = self.domain
        return nmath.legendre(
            h.flat(x, u), h.flat(x, w), h.inner(x, u, u, keepdim=True), h.inner(x, w, u, keepdim=True), ww
        )

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""Inverse Legendre map of the covector restricted to $T_x M$: a tangent vector.

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.
        """
        self._checked(x, xi, names=("x", "xi"))
        w, xs, xx, xw = self._covector_parts(x, xi)
        return nmath.inverse_legendre(xs, w, xx, xw)

    def finsler_gradient(self, x: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
        r"""Tangent Finsler gradient $\ell_x^{-1}(df|_{T_x M})$ from the Euclidean gradient `df`.

        The differential is restricted to the tangent space first (on the hyperboloid this is
        not the vector projection of `df`).

        Args:
            x: Tensor, shape `[..., N]`.
            df: Tensor, shape `[..., N]`, the Euclidean gradient (a covector).

        Returns:
            Tensor, shape `[..., N]`, tangent at `x`.
        """
        return self.inverse_legendre(x, df)

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The base's projection onto $T_x M$ (identity on open bases)."""
        return self.domain.proju(x, u)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """The base's projection onto the manifold (sphere: $x / |x|$; hyperboloid: $x_0$ from
        $x_{1:}$; the Poincaré ball: geoopt's pull inside)."""
        return self.domain.projx(x)

    # ------------------------------------------------------------------ charts (general winds)
    def _chart_wind(self, chart):
        def wind(p):
            x = chart.from_chart(p)
            return chart.push(x, self.wind_at(x))

        return wind

    def _path_report(self, chart, path, rot=None) -> _PathReport:
        """The `_PathReport` of the paths `path` `[S + 1, B, d]` (chart coordinates in `chart`, after
        the base isometry `rot` [N, N], or none). The one rule for the solved paths of
        `dist`/`logmap` and the integrated paths of `expmap`: a path is admissible when
        $|W|_h < 1$ at each of its nodes, all finite."""
        with torch.no_grad():
            pts = chart.from_chart(path)  # [S + 1, B, N]
            reach = chart.reach(pts)
            reach = torch.where(torch.isfinite(reach), reach, torch.zeros_like(reach)).amin(0)
            pts = pts if rot is None else pts @ rot  # back to the base's frame: R^T z
            finite = torch.isfinite(pts).all(-1)  # [S + 1, B]
            # nodes up to the first non-finite one (an integrated path that failed there)
            alive = finite.cumprod(0).bool()
            size = self.wind_size(torch.where(alive[..., None], pts, pts[:1]))
            size = torch.where(torch.isfinite(size), size, torch.full_like(size, float("inf")))
            worst, k = torch.where(alive, size, torch.zeros_like(size)).max(0)
            at = pts.gather(0, k[None, :, None].expand(1, -1, pts.shape[-1])).squeeze(0)
            last = pts.gather(0, (alive.sum(0) - 1).clamp_min(0)[None, :, None].expand(1, -1, pts.shape[-1]))
            broken = ~alive[-1]
            admissible = (worst < 1) & ~broken
            return _PathReport(reach >= _CHART_REACH, admissible, worst, at, last.squeeze(0), broken, pts)

    def _inadmissible(self, what, bad, report: _PathReport) -> ValueError:
        """The `ValueError` for the paths `bad` [B] (bool) of `report` that leave $|W|_h < 1$, naming
        the first one (`what(j)` describes path `j`), its worst $|W|_h$ and where."""
        j = int(bad.nonzero()[0, 0])
        worst = report.worst[j].item()
        if worst >= 1:
            where = f"|W|_h = {worst:.4g} at {format_values(report.at[j])}"
        else:  # the integration stopped between two nodes: an RK4 stage met |W|_h >= 1 (the guard)
            last = report.last[j]
            where = (
                f"|W|_h reaches 1 in the integration step after {format_values(last)}, where "
                f"|W|_h = {self.wind_size(last).item():.4g}"
            )
        return ValueError(
            f"{self.name} over {self.base_name}: no admissible path: {what(j)} leaves the domain "
            f"|W|_h < 1 of the metric ({where}; {int(bad.sum())} of {bad.numel()} paths)"
        )

    def _rotated_field(self, rot):
        """A chart field of `atlas[0]` after the base isometry `rot` ([N, N], `z = rot x`)."""
        chart = self.domain.atlas[0]

        def wind(p):
            z = chart.from_chart(p)
            return chart.push(z, self.wind_at(z @ rot) @ rot.mT)

        return RandersField.from_navigation(
            None if chart.flat else chart.metric, wind, dim=self.dim, **self.options
        )

    def _atlas_solve(self, xf, yf, options):
        """Solve the pairs in the atlas: `[(chart, field, rows, xs, ys, sol, failed, rot)]`, with `xs`,
        `ys` the pairs in the frame of the chart (`rot @ x`; `rot` `None`: the base's frame).

        Each pair is solved first in `domain.chart_index`'s chart; a pair whose solve fails or whose
        path comes nearer a chart's pole than `_CHART_REACH` is solved again in the next chart, then
        (one pair at a time) in `atlas[0]` turned so that its pole is opposite the mean of a path
        found before (or of the pair); it counts as failed unless one of them certifies it. A
        certified path that leaves $|W|_h < 1$ at one of its nodes raises `ValueError` (no
        admissible path).
        """
        charts = self.domain.atlas
        opts = dict(options)
        on_failure = opts.pop("on_failure")
        idx = self.domain.chart_index(xf, yf)
        groups = []  # (chart, field, rows, xs, ys, sol, ok, rot)

        def run(chart, field, rows, rot=None):
            xs, ys = xf[rows], yf[rows]
            if rot is not None:
                xs, ys = xs @ rot.mT, ys @ rot.mT
            sol = field.solve(chart.to_chart(xs), chart.to_chart(ys), **opts)
            report = self._path_report(chart, sol.path, rot)
            ok = sol.converged & report.resolved
            bad = ok & ~report.admissible
            if bool(bad.any()):
                raise self._inadmissible(
                    lambda j: (
                        f"the shortest geodesic found from x = {format_values(xf[rows[j]])} to "
                        f"y = {format_values(yf[rows[j]])}"
                    ),
                    bad,
                    report,
                )
            nodes = report.nodes
            return (chart, field, rows, xs, ys, sol, ok, rot), nodes

        everything = torch.arange(xf.shape[0], device=xf.device)
        for i in range(len(charts)):
            rows = everything[idx == i]
            if not rows.numel():
                continue
            first, nodes = run(charts[i], self.fields[i], rows)
            ok = first[6]
            if len(charts) == 1 or bool(ok.all()):
                groups.append(first)
                continue
            if bool(ok.any()):
                groups.append(run(charts[i], self.fields[i], rows[ok])[0])
            retry, centres = rows[~ok], nodes[:, ~ok].mean(0)
            j = (i + 1) % len(charts)
            second, nodes2 = run(charts[j], self.fields[j], retry)
            if bool(second[6].any()):
                groups.append(run(charts[j], self.fields[j], retry[second[6]])[0])
            centres2 = nodes2.mean(0)
            for k in (~second[6]).nonzero().squeeze(-1).tolist():
                attempt = None
                # turned charts with the pole opposite each path found so far, then opposite the pair
                for centre in (centres[k], centres2[k], xf[retry[k]] + yf[retry[k]], xf[retry[k]]):
                    if not bool(torch.isfinite(centre).all()) or float(centre.norm()) < 1e-3:
                        continue
                    rot = self.domain.centring(centre / centre.norm())
                    attempt = run(charts[0], self._rotated_field(rot), retry[k : k + 1], rot)[0]
                    if bool(attempt[6].all()):
                        break
                groups.append(attempt)
        out = []
        for chart, field, rows, xs, ys, sol, ok, rot in groups:
            failed = ~ok
            if on_failure == "raise" and bool(failed.any()):
                bad = failed.nonzero().squeeze(-1)
                j = int(bad[0])
                report = self._path_report(chart, sol.path, rot)
                if not bool(report.admissible[j]):
                    raise self._inadmissible(
                        lambda i, rows=rows: (
                            f"no solve converged, and the best path found from x = "
                            f"{format_values(xf[rows[i]])} to y = {format_values(yf[rows[i]])}"
                        ),
                        failed & ~report.admissible,
                        report,
                    )
                raise GeodesicConvergenceError(
                    f"{self.name} over {self.base_name}: the geodesic solve did not converge in a chart "
                    f"that resolves it for {bad.numel()} of {xf.shape[0]} pairs (first: x = "
                    f"{format_values(xf[rows[j]])} -> y = {format_values(yf[rows[j]])}, residual "
                    f"{sol.residual[j].item():.3g}, in every chart tried; a certified path keeps the "
                    f"chart's reach >= {_CHART_REACH}). Increase max_iter or steps, or pass "
                    "on_failure='nan'.",
                    rows[bad],
                    sol.residual[bad],
                )
            out.append((chart, field, rows, xs, ys, sol, failed, rot))
        return out

    def _assemble(self, xf, parts, width):
        """`[(rows, values [R, width])]` -> `[B, width]` (differentiable)."""
        out = xf.new_zeros(xf.shape[0], width)
        if len(parts) == 1 and parts[0][0].numel() == xf.shape[0]:
            rows, part = parts[0]
            return out.index_put((rows,), part)
        for rows, part in parts:
            out = out.index_put((rows,), part)
        return out

    # ------------------------------------------------------------------ geodesics
    def _pairs(self, x, y, names=("x", "y"), points=2):
        self._checked(x, y, names=names, points=points)
        shape = torch.broadcast_shapes(x.shape, y.shape)
        return (
            x.expand(shape).reshape(-1, self.ambient_dim),
            y.expand(shape).reshape(-1, self.ambient_dim),
            shape,
        )

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Exponential map (`u` is first projected onto $T_x M$).

        Killing wind: $\varphi_{F}(\exp^h_x(u - F\,W(x)))$, $F = F(x, u)$, exact, and the whole path
        is checked to stay where $|W|_h < 1$. General wind: RK4 in the atlas chart whose pole is
        farthest from `x` and $\exp^h_x(u)$ (`steps`; a path near that pole is integrated again in
        a turned chart), and every node of the path is checked for $|W|_h < 1$, as in `dist`.

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.

        Raises:
            ValueError: a point off the base, or the geodesic leaves the domain $|W|_h < 1$.
        """
        xf, uf, shape = self._pairs(x, u, ("x", "u"), points=1)
        uf = self.proju(xf, uf)
        w, _ = self._wind_checked(xf)
        if self.exact:
            f = self._norm(xf, uf).squeeze(-1)
            base_v = uf - f.unsqueeze(-1) * w
            self._check_path(xf, base_v, "expmap")
            out = self.wind.flow(f, self.domain.expmap(xf, base_v))
        else:
            out = self._general_expmap(xf, uf) if xf.numel() else xf
        try:
            self._wind_checked(out, "the end point")
        except ValueError as exc:
            raise ValueError(f"{exc}; the geodesic leaves the domain (shorten the step)") from None
        return out.reshape(shape)

    def _general_expmap(self, xf, uf):
        r"""`expmap` of a general wind, `[B, N]`: RK4 in the atlas chart whose pole is farthest from `x`
        and from the base geodesic's end $\exp^h_x(u)$; a path that comes nearer the pole than
        `_CHART_REACH` is integrated again (one pair at a time) in `atlas[0]` turned so that its
        pole is opposite the mean of the path found. Every node of the integrated path is checked
        for $|W|_h < 1$ (`_path_report`, the rule of `dist`/`logmap`); a path leaving it, or resolved
        by no chart, raises `ValueError`."""
        charts = self.domain.atlas
        if len(charts) == 1:
            idx = torch.zeros(xf.shape[0], dtype=torch.long, device=xf.device)
        else:
            with torch.no_grad():
                idx = self.domain.chart_index(xf, self.domain.expmap(xf, uf))

        def shoot(chart, field, rows, rot=None):
            xs, us = xf[rows], uf[rows]
            if rot is not None:
                xs, us = xs @ rot.mT, us @ rot.mT
            end, path = field.expmap(chart.to_chart(xs), chart.push(xs, us), return_path=True)
            end = chart.from_chart(end)
            return (end if rot is None else end @ rot), self._path_report(chart, path, rot)

        def what(rows):
            return lambda j: (
                f"the geodesic expmap(x, u) from x = {format_values(xf[rows[j]])} with u = "
                f"{format_values(uf[rows[j]])}"
            )

        everything = torch.arange(xf.shape[0], device=xf.device)
        parts = []
        for i in idx.unique().tolist():
            rows = everything[idx == i]
            end, report = shoot(charts[i], self.fields[i], rows)
            # a path that failed is inadmissible in any chart (the wind, not the chart, stopped it)
            bad = (report.resolved | report.broken) & ~report.admissible
            if bool(bad.any()):
                raise self._inadmissible(what(rows), bad, report)
            parts.append((rows[report.resolved], end[report.resolved]))
            for k in (~report.resolved).nonzero().squeeze(-1).tolist():
                row = rows[k : k + 1]
                centre = report.nodes[:, k].mean(0)
                if float(centre.norm()) < 1e-3:
                    centre = xf[rows[k]]
                rot = self.domain.centring(centre / centre.norm())
                end_k, again = shoot(charts[0], self._rotated_field(rot), row, rot)
                if not bool(again.admissible.all()):
                    raise self._inadmissible(what(row), ~again.admissible, again)
                if not bool(again.resolved.all()):
                    raise ValueError(
                        f"{self.name} over {self.base_name}: expmap cannot certify the geodesic from x = "
                        f"{format_values(xf[rows[k]])} with u = {format_values(uf[rows[k]])}: it comes "
                        f"within a chart's reach {_CHART_REACH} of its pole in every chart tried (shorten u)"
                    )
                parts.append((row, end_k))
        return self._assemble(xf, parts, self.ambient_dim)

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Killing winds: the exact `expmap`; general winds: `projx(x + u)` (first order)."""
        if self.exact:
            return self.expmap(x, u)
        self._checked(x, u, names=("x", "u"))
        return self.projx(x + self.proju(x, u))

    # ------------------------------------------------------------------ parallel transport
    def geodesic_transport(
        self, x, u, v, *, time: float = 1.0, steps: int | None = None
    ) -> GeodesicTransport:
        r"""Parallel transport (Chern) of `v` along $t \mapsto \exp_x(t u)$ up to `time`.

        Integrated in `domain.atlas[0]` after the base isometry `domain.centring(x)` (on the sphere
        the chart is then centred at `x`, its pole the antipode $-x$) with the chart's navigation
        data, by `finslerlib.geodesics.transport_along_geodesic` (RK4, `steps`, default the
        `steps` option), and mapped back. `u` and `v` are projected onto $T_x M$ first.

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`.
            v: Tensor, shape `[..., N]`.
            time: end time.
            steps: RK4 steps.

        Returns:
            `GeodesicTransport(point, velocity, vector)`, each of the broadcast shape `[..., N]`.
        """
        self._checked(x, u, v, names=("x", "u", "v"))
        steps = int(self.options["steps"]) if steps is None else int(steps)
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        shape = torch.broadcast_shapes(x.shape, u.shape, v.shape)
        xf, uf, vf = (t.expand(shape).reshape(-1, self.ambient_dim).contiguous() for t in (x, u, v))
        self._wind_checked(xf)
        uf, vf = self.proju(xf, uf), self.proju(xf, vf)
        chart = self.domain.atlas[0]
        rot = self.domain.centring(xf)

        def turn(t, back=False):  # ambient coordinates <-> the frame where x is the chart's centre
            if rot is None:
                return t
            return ((rot.mT if back else rot) @ t.unsqueeze(-1)).squeeze(-1)

        def coef(p):
            y = chart.from_chart(p)
            w = chart.push(y, turn(self.wind_at(turn(y, back=True))))
            h = None if chart.flat else chart.metric(p)
            if h is None:
                h = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device).expand(*p.shape, p.shape[-1])
            return rmath.navigation_to_randers(h, w)

        xr = turn(xf)
        out = transport_along_geodesic(
            coef,
            chart.to_chart(xr),
            chart.push(xr, turn(uf)),
            chart.push(xr, turn(vf)),
            time=time,
            steps=steps,
        )
        point, vel, vec = (
            turn(t, back=True)
            for t in (
                chart.from_chart(out.point),
                chart.pull(out.point, out.velocity),
                chart.pull(out.point, out.vector),
            )
        )
        return GeodesicTransport(point.reshape(shape), vel.reshape(shape), vec.reshape(shape))

    def _transport(self, x, u, v, steps):
        return self.geodesic_transport(x, u, v, steps=steps).vector

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport (Chern) along the geodesic $x \\to y$: `transp_follow_expmap` of `logmap`."""
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport (Chern, reference vector $\\dot\\gamma$) of `v` along
        $t \\mapsto \\exp_x(t u)$: `geodesic_transport` (RK4, `steps`), projected onto the tangent
        space at `expmap(x, u)`."""
        return self.expmap_transp(x, u, v)[1]

    def expmap_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(expmap(x, u), transp_follow_expmap(x, u, v))`."""
        y = self.expmap(x, u)
        return y, self.proju(y, self._transport(x, u, v, None))

    def transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector transport to `retr(x, u)`: the parallel transport along $t \\mapsto \\exp_x(t u)$ by one
        RK4 step (local error $O(|u|^5)$: optimizer steps are short), projected onto the tangent
        space at `retr(x, u)`; what geoopt's optimizers use for momenta (`retr_transp`)."""
        return self.retr_transp(x, u, v)[1]

    def retr_transp(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """`(retr(x, u), transp_follow_retr(x, u, v))`."""
        y = self.retr(x, u)
        return y, self.proju(y, self._transport(x, u, v, 1))

    # transport hooks of the reverse metric for `Reversed(self)`: navigation in -W transports itself
    def reverse_transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """Transport of the reverse metric along its geodesic: navigation in $-W$ transports itself."""
        return self.reverse().transp_follow_expmap(x, u, v)

    def reverse_transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        """Vector transport of the reverse metric to its `retr`: navigation in $-W$."""
        return self.reverse().transp_follow_retr(x, u, v)

    # ------------------------------------------------------------------ distances
    def _on_failure(self, options):
        """The `on_failure` rule of this call; other options are for general winds only."""
        options = dict(options)
        on_failure = options.pop("on_failure", self.options["on_failure"])
        if on_failure not in ("raise", "nan"):
            raise ValueError(f"on_failure must be 'raise' or 'nan', got {on_failure!r}")
        if options and self.exact:
            raise ValueError(
                f"{self.name}: solver options {sorted(options)} apply to general winds only; a KillingWind "
                "has exact geodesics (its root find always runs to dtype precision)"
            )
        return on_failure

    def _killing_dist(self, xf, yf, on_failure):
        if xf.dtype == torch.float32:
            # float32 rounding of d_h near its root leaves residuals of ~1e-4 at strong winds (the
            # bracket closes before |G| is small): solve in float64 on the same float32 inputs
            return self._killing_dist(xf.double(), yf.double(), on_failure).to(xf.dtype)
        if self._everywhere:
            wind_y = self.wind(yf)
            wy = self.domain.inner(yf, wind_y, wind_y, keepdim=True)
        else:
            self._wind_checked(xf)
            _, wy = self._wind_checked(yf, "y")
        t = nmath.killing_distance(
            self.domain,
            xf,
            yf,
            self.wind,
            self.wind.flow,
            speed_y=wy.squeeze(-1).clamp_min(0).sqrt(),
            spectral=self.wind.spectral(xf.dtype, xf.device),
            on_failure=on_failure,
        )
        if not self._convex and value_checks_enabled():
            with torch.no_grad():
                td = t.detach()
                ok = torch.isfinite(td)
                tz = torch.where(ok, td, torch.zeros_like(td))
                z = self.wind.flow(-tz, yf)
                v = self.domain.logmap(xf, z)
                self._check_path(xf[ok], v[ok], "no admissible path from x to y")
        return t

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, **options) -> torch.Tensor:
        r"""Forward distance $d(x \to y)$.

        Killing wind: the root $T$ of $d_h(x, \varphi_{-T} y) = T$ (a safeguarded Newton iteration,
        dtype precision), gradients by the implicit function theorem; the geodesic is checked to
        stay where $|W|_h < 1$. General wind: the chart field's `dist` in the atlas chart whose
        pole is farthest from the pair (`options`: `steps`, `atol`, `rtol`, `max_iter`). Both take
        `on_failure` (`"raise"` or `"nan"`).

        Args:
            x: Tensor, shape `[..., N]`.
            y: Tensor, shape `[..., N]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        on_failure = self._on_failure(options)
        xf, yf, shape = self._pairs(x, y)
        if self.exact:
            d = self._killing_dist(xf, yf, on_failure)
        else:
            self._wind_checked(xf)
            self._wind_checked(yf, "y")
            d = self._general_dist(xf, yf, dict(options, on_failure=on_failure))
        d = d.reshape(shape[:-1])
        return d.unsqueeze(-1) if keepdim else d

    def _general_dist(self, xf, yf, options):
        if not xf.numel():
            return xf.new_zeros(0)
        parts = []
        for chart, field, rows, xs, ys, sol, failed, _ in self._atlas_solve(xf, yf, options):
            d = distance_with_gradient(field.raw_coefficients, chart.to_chart(xs), chart.to_chart(ys), sol)
            parts.append((rows, torch.where(failed, torch.full_like(d, float("nan")), d).unsqueeze(-1)))
        return self._assemble(xf, parts, 1).squeeze(-1)

    def _general_logmap(self, xf, yf, options):
        if not xf.numel():
            return xf
        parts = []
        for chart, field, rows, xs, ys, sol, failed, rot in self._atlas_solve(xf, yf, options):
            p = chart.to_chart(xs)
            v = logmap_with_gradient(field.raw_coefficients, p, chart.to_chart(ys), sol, steps=sol.steps)
            v = chart.pull(p, v)
            v = v if rot is None else v @ rot
            parts.append((rows, torch.where(failed.unsqueeze(-1), torch.full_like(v, float("nan")), v)))
        return self._assemble(xf, parts, self.ambient_dim)

    def logmap(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        r"""Log map, with `norm(x, logmap(x, y)) == dist(x, y)`.

        Killing wind: $\log^h_x(\varphi_{-T} y) + T\, W(x)$, $T = d(x \to y)$ (between two fixed
        points of a rotation at distance $\pi$, one of the minimizing directions). General wind:
        the chart field's `logmap`, pulled back to ambient coordinates.

        Args:
            x: Tensor, shape `[..., N]`.
            y: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.
        """
        on_failure = self._on_failure(options)
        xf, yf, shape = self._pairs(x, y)
        if self.exact:
            t = self._killing_dist(xf, yf, on_failure)
            w, _ = self._wind_checked(xf)
            v = nmath.killing_logmap(self.domain, xf, yf, t, w, self.wind.flow)
        else:
            self._wind_checked(xf)
            self._wind_checked(yf, "y")
            v = self._general_logmap(xf, yf, dict(options, on_failure=on_failure))
        return v.reshape(shape)

    def solve(self, x: torch.Tensor, y: torch.Tensor, **options):
        """Per-pair convergence report (flattened batch, no gradients).

        Killing wind: `finslerlib.math.navigation.ArrivalTime` of the root find; general wind: the
        chart field's `BoundarySolution`, in chart coordinates of the one atlas chart best for the
        whole batch (`domain.atlas[chart_for(x, y)]`).
        """
        self._on_failure(options)
        options.pop("on_failure", None)
        xf, yf, _ = self._pairs(x, y)
        self._wind_checked(xf)
        self._wind_checked(yf, "y")
        if self.exact:
            return nmath.killing_arrival_time(
                self.domain,
                xf,
                yf,
                self.wind,
                self.wind.flow,
                spectral=self.wind.spectral(xf.dtype, xf.device),
            )
        i = self.chart_for(xf, yf)
        chart = self.domain.atlas[i]
        return self.fields[i].solve(chart.to_chart(xf), chart.to_chart(yf), **options)

    def chart_for(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """The index in `domain.atlas` of the chart best for the whole batch of pairs (general winds)."""
        charts = self.domain.atlas
        if len(charts) == 1:
            return 0
        reach = torch.stack([torch.minimum(c.reach(x), c.reach(y)).min() for c in charts])
        return int(reach.argmax())

    def cdist(self, x: torch.Tensor, y: torch.Tensor, *, chunk: int = 1 << 16, **options) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$.

        Killing wind: the root find runs on at most `chunk` pairs at a time (rows of `x` in
        blocks); general wind: the chart field's batched solve. Empty `x` or `y` give an empty result.

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.
            chunk: maximum number of pairs per root-find batch.

        Returns:
            Tensor, shape `[..., N, M]`.
        """
        on_failure = self._on_failure(options)
        self._checked(x, y, names=("x", "y"), batch_dims=2, points=2)
        if x.dim() < 2 or y.dim() < 2:
            raise ValueError(
                f"cdist needs x [..., N, D] and y [..., M, D], got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        batch = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
        n, m, d = x.shape[-2], y.shape[-2], self.ambient_dim
        if n == 0 or m == 0:
            return x.new_zeros(*batch, n, m)
        if not self.exact:
            return self.dist(x.unsqueeze(-2), y.unsqueeze(-3), on_failure=on_failure, **options)
        xb = x.expand(*batch, n, d).reshape(-1, n, d)
        yb = y.expand(*batch, m, d).reshape(-1, m, d)
        rows = max(1, int(chunk) // max(1, m * xb.shape[0]))
        out = []
        for i in range(0, n, rows):
            xs = xb[:, i : i + rows]
            r = xs.shape[1]
            xf = xs.unsqueeze(-2).expand(-1, r, m, d).reshape(-1, d)
            yf = yb.unsqueeze(-3).expand(-1, r, m, d).reshape(-1, d)
            out.append(self._killing_dist(xf, yf, on_failure).reshape(-1, r, m))
        return torch.cat(out, 1).reshape(*batch, n, m)

    # ------------------------------------------------------------------ sampling, origin, reverse
    def origin(self, *size, dtype=None, device=None, seed=42) -> geoopt.ManifoldTensor:
        """The base's origin ($e_0$ on the sphere, $\\sqrt{k}\\, e_0$ on the hyperboloid, else 0)."""
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        return geoopt.ManifoldTensor(self.domain.origin(*size, dtype=dtype, device=device), manifold=self)

    def _origin_like(self, u: torch.Tensor) -> torch.Tensor:
        return self.domain.origin(*u.shape, dtype=u.dtype, device=u.device)

    def random(self, *size, dtype=None, device=None, std: float = 1.0, max_wind: float = 0.9):
        """Random points with $|W|_h \\le$ `max_wind`: the base's random points (`Domain.random`: its
        exponential of Gaussian tangent vectors at the origin, std `std`), pulled toward the origin
        where the wind is too strong.

        Raises:
            ValueError: no such point found near the origin.
        """
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        dtype = dtype or torch.get_default_dtype()
        o = self.domain.origin(*size, dtype=dtype, device=device)
        x = self.domain.random(*size, dtype=dtype, device=device, std=std)
        u = self.domain.logmap(o, x)
        for _ in range(60):
            with torch.no_grad():
                bad = ~(self.wind_size(x) <= max_wind)
            if not bool(bad.any()):
                return geoopt.ManifoldTensor(x, manifold=self)
            u = torch.where(bad.unsqueeze(-1), 0.5 * u, u)
            x = self.projx(self.domain.expmap(o, u))
        raise ValueError(f"{self.name}.random: no point with |W|_h <= {max_wind} found near the origin")

    random_normal = random

    def reverse(self) -> Navigation:
        r"""Navigation in the wind $-W$: $\tilde F(x, v) = F(x, -v)$, $\tilde d(x \to y) = d(y \to x)$."""
        if self.exact:
            shift = None if self.wind.shift is None else -self.wind.shift
            wind = KillingWind(-self.wind.A, shift)
        else:
            wind = self.wind.wind if isinstance(self.wind, _Negated) else _Negated(self.wind)
        return Navigation(self.base, wind, dim=self.dim, **self.options)

    def extra_repr(self) -> str:
        return f"base={self.base_name}, dim={self.dim}, ambient_dim={self.ambient_dim}, exact={self.exact}"
