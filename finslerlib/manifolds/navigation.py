r"""`Navigation`: Randers metrics on geoopt's Riemannian manifolds by Zermelo navigation.

The unit ball of $F(x, \cdot)$ is the base's $h$-unit ball translated by a wind $W(x)$:
$F(x, v) = 1 \iff |v - W(x)|_h = 1$, a Randers metric wherever $|W(x)|_h < 1$ (the manifold's
domain; every input point is checked). Points, shapes, `projx` and `proju` are the base's (ambient
coordinates: $n + 1$ numbers on the sphere and the hyperboloid).

* `KillingWind` winds (isometric flows): exact geodesics,
  $\exp_x(v) = \varphi_{F}(\exp^h_x(v - F W(x)))$, $d(x \to y)$ = the root of
  $d_h(x, \varphi_{-T} y) = T$ (a safeguarded Newton iteration per pair, to dtype precision),
  gradients by the implicit function theorem (`finslerlib.math.navigation`).
* Any other wind (a callable or `nn.Module`): numerical geodesics of a `RandersField` in a chart,
  with its solver options, convergence reports and gradients. Charts: the identity for
  `Euclidean` and the stereographic models; stereographic projection from $-e_0$ for the sphere
  ($p = x_{1:} / (1 + x_0)$, every point but $-e_0$; accuracy degrades close to it); the Poincaré
  ball of radius $\sqrt{k}$ for the hyperboloid ($p = \sqrt{k}\, x_{1:} / (x_0 + \sqrt{k})$, global).

This file is over 500 lines because it carries both geodesic paths and the chart maps.
"""

from __future__ import annotations

import geoopt
import torch
from torch import nn

from finslerlib.manifolds.base import FinslerManifold
from finslerlib.manifolds.domain import EuclideanDomain, HyperboloidDomain, SphereDomain
from finslerlib.manifolds.field import RandersField
from finslerlib.manifolds.killing import KillingWind
from finslerlib.math import navigation as nmath
from finslerlib.math import randers as rmath
from finslerlib.math import riemannian as bmath

__all__ = ["Navigation"]


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in t.detach().cpu().reshape(-1).tolist()) + "]"


def _base_kind(base) -> tuple[str, float, str]:
    """`(kind, k, name)` of a supported geoopt base, else `ValueError`."""
    if isinstance(base, geoopt.Stereographic):
        k = float(base.k)
        kind_name = "PoincareBall" if k < 0 else "SphereProjection" if k > 0 else "Stereographic"
        return "stereographic", k, f"{kind_name}(k={k:g})"
    if isinstance(base, geoopt.Lorentz):
        k = float(base.k)
        if not k > 0:
            raise ValueError(f"Navigation: Lorentz base needs k > 0, got {k}")
        return "lorentz", k, f"Lorentz(k={k:g})"
    if isinstance(base, geoopt.Sphere):
        if getattr(base, "projector", None) is not None:
            raise ValueError("Navigation: Sphere with intersection/complement is not supported")
        return "sphere", 1.0, "Sphere()"
    if isinstance(base, geoopt.Euclidean):
        if base.ndim != 1:
            raise ValueError(f"Navigation: the Euclidean base must have ndim=1, got ndim={base.ndim}")
        return "euclidean", 0.0, "Euclidean(ndim=1)"
    raise ValueError(
        "Navigation: base must be geoopt's Euclidean(ndim=1), Sphere(), Lorentz(k), PoincareBall(c), "
        f"SphereProjection(k) or Stereographic(k); got {type(base).__name__}"
    )


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
        on_failure: `"raise"` or `"nan"` for pairs whose solve does not converge (general winds).

    Attributes:
        dim: intrinsic dimension `n`.
        ambient_dim: the size of the points' last dimension.
        base: the geoopt base.
        wind: the wind.
        kind: `"euclidean"`, `"sphere"`, `"lorentz"` or `"stereographic"`.
        exact: `True` for a Killing wind (closed-form geodesics).

    Raises:
        ValueError: an unsupported base, a `KillingWind` that is not Killing for the base, a
            size mismatch; later, any point where $|W(x)|_h \ge 1$, named with its value.

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
        kind, k, base_name = _base_kind(base)
        embedded = kind in ("sphere", "lorentz")
        if isinstance(wind, KillingWind):
            ambient = wind.ambient_dim
            if dim is not None and int(dim) + embedded != ambient:
                raise ValueError(
                    f"Navigation: dim={dim} does not match the KillingWind's size {ambient} "
                    f"(points on {base_name} have {int(dim) + embedded} entries)"
                )
        elif dim is None:
            raise ValueError(
                "Navigation: pass dim= (the intrinsic dimension) unless the wind is a KillingWind"
            )
        else:
            ambient = int(dim) + embedded
        if wind is not None and not callable(wind):
            raise ValueError(
                f"Navigation: wind must be a KillingWind, a callable or None, got {type(wind).__name__}"
            )
        if kind == "sphere":
            domain = SphereDomain(ambient - 1)
        elif kind == "lorentz":
            domain = HyperboloidDomain(ambient - 1, k=float(k))
        else:  # Euclidean space and the stereographic models are open subsets of R^n
            domain = EuclideanDomain(ambient)
        super().__init__(domain=domain)
        self.kind, self.k, self.base_name = kind, k, base_name
        self.base = base
        if wind is None:
            wind = KillingWind(torch.zeros(ambient, ambient))
        if isinstance(wind, KillingWind):
            wind.check_base(kind, base_name)
        self.wind = wind
        self.exact = isinstance(wind, KillingWind)
        self.embedded = embedded
        self._options = dict(
            steps=steps, atol=atol, rtol=rtol, max_iter=max_iter, jacobian=jacobian, on_failure=on_failure
        )
        self.field = None
        if not self.exact:
            chart_h = None if kind == "euclidean" else self._chart_metric
            self.field = RandersField.from_navigation(
                chart_h, self._chart_wind, dim=self.dim, **self._options
            )

    # ------------------------------------------------------------------ checks and shapes
    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        if not bool(torch.isfinite(x).all()):
            return False, f"point has non-finite entries ({(~torch.isfinite(x)).sum().item()} of them)"
        ok, reason = self._check_on_base(x, atol, rtol)
        if not ok:
            return False, f"not a point of the base {self.base_name}: {reason}"
        with torch.no_grad():
            size = self.wind_size(x)
        bad = ~(size < 1)
        if bool(bad.any()):
            i = bad.reshape(-1).nonzero()[0, 0]
            return False, (
                f"outside the domain |W|_h < 1 of the metric: at x = "
                f"{_fmt(x.reshape(-1, self.ambient_dim)[i])} the wind has |W(x)|_h = "
                f"{size.reshape(-1)[i].item():.4g} >= 1 (the wind is too strong for a Randers metric there)"
            )
        return True, None

    def _check_on_base(self, x, atol, rtol):
        """The base's own constraint, in `x`'s dtype (geoopt's checks need `k` in it too)."""
        if self.kind == "sphere":
            err = (x.norm(dim=-1) - 1.0).abs().max().item() if x.numel() else 0.0
            return err <= atol + rtol, f"|x| differs from 1 by {err:.3g}"
        if self.kind == "lorentz":
            quad = (x[..., 1:] ** 2).sum(-1) - x[..., 0] ** 2
            err = (quad + self.k).abs().max().item() if x.numel() else 0.0
            if not err <= atol + rtol * self.k:
                return False, f"<x, x>_L differs from -k = {-self.k:g} by {err:.3g}"
            if x.numel() and not bool((x[..., 0] > 0).all()):
                return False, "x_0 <= 0 (the lower sheet of the hyperboloid)"
            return True, None
        if self.kind == "stereographic" and self.k < 0:
            r2 = (x * x).sum(-1).max().item() if x.numel() else 0.0
            if not r2 * -self.k < 1:
                return False, f"|x| = {r2**0.5:.6g} is not inside the ball of radius {(-self.k) ** -0.5:.6g}"
        return True, None

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        if not bool(torch.isfinite(u).all()):
            return False, f"vector has non-finite entries ({(~torch.isfinite(u)).sum().item()} of them)"
        if not self.embedded:
            return True, None
        normal = (u - bmath.proju(self.kind, self.k, x, u)).norm(dim=-1)
        scale = atol + rtol * u.norm(dim=-1)
        if bool((normal <= scale).all()):
            return True, None
        return False, f"vector is not tangent to {self.base_name}: normal component {normal.max().item():.3g}"

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
            w = bmath.proju(self.kind, self.k, x, w)
        return w

    def wind_size(self, x: torch.Tensor) -> torch.Tensor:
        """$|W(x)|_h$, shape `[...]`; the metric is defined where it is below 1."""
        w = self.wind_at(x)
        return bmath.inner(self.kind, self.k, x, w, w).clamp_min(0).sqrt()

    def _wind_checked(self, x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
        """`(W(x), |W(x)|_h^2 [..., 1])`, raising `ValueError` where $|W|_h \\ge 1$ or not finite."""
        w = self.wind_at(x)
        ww = bmath.inner(self.kind, self.k, x, w, w, keepdim=True)
        with torch.no_grad():
            bad = ~(ww < 1)  # also catches a non-finite wind or point (NaN compares False)
            if bool(bad.any()):
                bad = bad.expand(*torch.broadcast_shapes(bad.shape[:-1], x.shape[:-1]), 1)
                i = bad.reshape(-1).nonzero()[0, 0]
                point = x.expand(*bad.shape[:-1], self.ambient_dim).reshape(-1, self.ambient_dim)[i]
                value = ww.expand(bad.shape).reshape(-1)[i].clamp_min(0).sqrt().item()
                raise ValueError(
                    f"{self.name} over {self.base_name}: {name} = {_fmt(point)} is outside the domain: "
                    f"the wind there has |W(x)|_h = {value:.4g} >= 1 (need < 1 for a Randers metric)"
                )
        return w, ww

    # ------------------------------------------------------------------ pointwise structure
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a, b)` in ambient coordinates from $(h, W)$ (`h` the SPD extension).

        Args:
            x: Tensor, shape `[..., N]`.

        Returns:
            `(a, b)`, shapes `[..., N, N]` and `[..., N]`.
        """
        w, _ = self._wind_checked(x)
        return rmath.navigation_to_randers(bmath.base_metric(self.kind, self.k, x), w)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Finsler norm $F(x, u)$ from $h$-inner products (cancellation-free).

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`, tangent vectors.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._validate(x, u, names=("x", "u"))
        w, ww = self._wind_checked(x)
        kind, k = self.kind, self.k
        out = nmath.norm(
            bmath.inner(kind, k, x, u, u, keepdim=True), bmath.inner(kind, k, x, w, u, keepdim=True), ww
        )
        return out if keepdim else out.squeeze(-1)

    def _covector_parts(self, x, xi):
        w, _ = self._wind_checked(x)
        xi = bmath.restrict_covector(self.kind, self.k, x, xi)
        xs = bmath.sharp(self.kind, self.k, x, xi)
        return w, xs, bmath.rowsum(xi * xs, keepdim=True), bmath.rowsum(xi * w, keepdim=True)

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Dual norm $F^*(\xi) = |\xi|_{h^{-1}} + \xi(W)$ of the covector restricted to $T_x M$.

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]`, ambient covectors (e.g. Euclidean gradients).
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._validate(x, xi, names=("x", "xi"))
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
        self._validate(x, u, names=("x", "u"))
        w, ww = self._wind_checked(x)
        kind, k = self.kind, self.k
        return nmath.legendre(
            bmath.flat(kind, k, x, u),
            bmath.flat(kind, k, x, w),
            bmath.inner(kind, k, x, u, u, keepdim=True),
            bmath.inner(kind, k, x, w, u, keepdim=True),
            ww,
        )

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""Inverse Legendre map of the covector restricted to $T_x M$: a tangent vector.

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.
        """
        self._validate(x, xi, names=("x", "xi"))
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
        return bmath.proju(self.kind, self.k, x, u)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """The base's projection onto the manifold (sphere: $x / |x|$; hyperboloid: $x_0$ from
        $x_{1:}$; balls: geoopt's pull inside)."""
        if self.kind == "sphere":
            return x / x.norm(dim=-1, keepdim=True)
        if self.kind == "lorentz":
            return torch.cat([torch.sqrt(self.k + (x[..., 1:] ** 2).sum(-1, keepdim=True)), x[..., 1:]], -1)
        return self.base.projx(x)

    # ------------------------------------------------------------------ charts (general winds)
    def _chart(self, x):
        """Ambient point -> chart coordinates."""
        if self.kind == "sphere":
            return x[..., 1:] / (1.0 + x[..., :1])
        if self.kind == "lorentz":
            rk = self.k**0.5
            return rk * x[..., 1:] / (x[..., :1] + rk)
        return x

    def _chart_push(self, x, u):
        """Ambient tangent vector at x -> chart vector."""
        if self.kind == "sphere":
            den = 1.0 + x[..., :1]
            return u[..., 1:] / den - x[..., 1:] * u[..., :1] / den**2
        if self.kind == "lorentz":
            rk = self.k**0.5
            den = x[..., :1] + rk
            return rk * (u[..., 1:] / den - x[..., 1:] * u[..., :1] / den**2)
        return u

    def _chart_inv(self, p):
        """Chart coordinates -> ambient point."""
        q = (p * p).sum(-1, keepdim=True)
        if self.kind == "sphere":
            return torch.cat([(1.0 - q) / (1.0 + q), 2.0 * p / (1.0 + q)], -1)
        if self.kind == "lorentz":
            k = self.k
            return torch.cat([k**0.5 * (k + q) / (k - q), 2.0 * k * p / (k - q)], -1)
        return p

    def _chart_pull(self, p, v):
        """Chart vector at p -> ambient tangent vector."""
        q = (p * p).sum(-1, keepdim=True)
        pv = (p * v).sum(-1, keepdim=True)
        if self.kind == "sphere":
            return torch.cat(
                [-4.0 * pv / (1.0 + q) ** 2, 2.0 * v / (1.0 + q) - 4.0 * p * pv / (1.0 + q) ** 2], -1
            )
        if self.kind == "lorentz":
            k = self.k
            return torch.cat(
                [4.0 * k**1.5 * pv / (k - q) ** 2, 2.0 * k * v / (k - q) + 4.0 * k * p * pv / (k - q) ** 2],
                -1,
            )
        return v

    def _chart_metric(self, p):
        """$h$ in the chart: $\\lambda(p)^2 I$ (conformal)."""
        q = (p * p).sum(-1)
        if self.kind == "sphere":
            lam = 2.0 / (1.0 + q)
        elif self.kind == "lorentz":
            lam = 2.0 * self.k / (self.k - q)
        else:
            lam = 2.0 / (1.0 + self.k * q)
        eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
        return (lam * lam)[..., None, None] * eye

    def _chart_wind(self, p):
        x = self._chart_inv(p)
        return self._chart_push(x, self.wind_at(x))

    # ------------------------------------------------------------------ geodesics
    def _pairs(self, x, y, names=("x", "y")):
        self._validate(x, y, names=names)
        shape = torch.broadcast_shapes(x.shape, y.shape)
        return (
            x.expand(shape).reshape(-1, self.ambient_dim),
            y.expand(shape).reshape(-1, self.ambient_dim),
            shape,
        )

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Exponential map (`u` is first projected onto $T_x M$).

        Killing wind: $\varphi_{F}(\exp^h_x(u - F\,W(x)))$, $F = F(x, u)$, exact. General wind:
        RK4 in the chart (`steps`).

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.

        Raises:
            ValueError: the geodesic ends outside the domain $|W|_h < 1$.
        """
        xf, uf, shape = self._pairs(x, u, ("x", "u"))
        uf = self.proju(xf, uf)
        w, _ = self._wind_checked(xf)
        if self.exact:
            f = self.norm(xf, uf)
            out = nmath.killing_expmap(self.kind, self.k, xf, uf, w, f, self.wind.flow)
        else:
            out = self._chart_inv(self.field.expmap(self._chart(xf), self._chart_push(xf, uf)))
        try:
            self._wind_checked(out, "the end point")
        except ValueError as exc:
            raise ValueError(f"{exc}; the geodesic leaves the domain (shorten the step)") from None
        return out.reshape(shape)

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Killing winds: the exact `expmap`; general winds: `projx(x + u)` (first order)."""
        if self.exact:
            return self.expmap(x, u)
        return self.projx(x + self.proju(x, u))

    # ------------------------------------------------------------------ parallel transport
    # Small hooks: the Chern transport along geodesics lives in finslerlib.curvature.transport
    # (imported when used, since curvature builds on the manifolds); it runs in a chart.
    def _transport(self, x, u, v, steps):
        from finslerlib.curvature import transport

        return transport.geodesic_transport(self, x, u, v, steps=steps).vector

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport (Chern) along the geodesic $x \\to y$: `transp_follow_expmap` of `logmap`."""
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport (Chern, reference vector $\\dot\\gamma$) of `v` along
        $t \\mapsto \\exp_x(t u)$: `finslerlib.curvature.geodesic_transport` (RK4, `steps`), projected
        onto the tangent space at `expmap(x, u)`."""
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
    def _reverse_transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return self.reverse().transp_follow_expmap(x, u, v)

    def _reverse_transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        return self.reverse().transp_follow_retr(x, u, v)

    def _no_options(self, options):
        if options and self.exact:
            raise ValueError(
                f"{self.name}: solver options {sorted(options)} apply to general winds only; a KillingWind "
                "has exact geodesics (its root find always runs to dtype precision)"
            )

    def _killing_dist(self, xf, yf):
        self._wind_checked(xf)
        _, wy = self._wind_checked(yf, "y")
        return nmath.killing_distance(
            self.kind,
            self.k,
            xf,
            yf,
            self.wind,
            self.wind.flow,
            speed_y=wy.squeeze(-1).clamp_min(0).sqrt(),
            spectral=self.wind.spectral(xf.dtype, xf.device),
        )

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False, **options) -> torch.Tensor:
        r"""Forward distance $d(x \to y)$.

        Killing wind: the root $T$ of $d_h(x, \varphi_{-T} y) = T$ (dtype precision), gradients by
        the implicit function theorem. General wind: the chart field's `dist` (`options`: `steps`,
        `atol`, `rtol`, `max_iter`, `on_failure`).

        Args:
            x: Tensor, shape `[..., N]`.
            y: Tensor, shape `[..., N]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self._no_options(options)
        xf, yf, shape = self._pairs(x, y)
        if self.exact:
            d = self._killing_dist(xf, yf)
        else:
            self._wind_checked(xf)
            self._wind_checked(yf, "y")
            d = self.field.dist(self._chart(xf), self._chart(yf), **options)
        d = d.reshape(shape[:-1])
        return d.unsqueeze(-1) if keepdim else d

    def logmap(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        r"""Log map, with `norm(x, logmap(x, y)) == dist(x, y)`.

        Killing wind: $\log^h_x(\varphi_{-T} y) + T\, W(x)$, $T = d(x \to y)$. General wind: the
        chart field's `logmap`, pulled back to ambient coordinates.

        Args:
            x: Tensor, shape `[..., N]`.
            y: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`.
        """
        self._no_options(options)
        xf, yf, shape = self._pairs(x, y)
        if self.exact:
            t = self._killing_dist(xf, yf)
            w, _ = self._wind_checked(xf)
            v = nmath.killing_logmap(self.kind, self.k, xf, yf, t, w, self.wind.flow)
        else:
            self._wind_checked(xf)
            self._wind_checked(yf, "y")
            p = self._chart(xf)
            v = self._chart_pull(p, self.field.logmap(p, self._chart(yf), **options))
        return v.reshape(shape)

    def solve(self, x: torch.Tensor, y: torch.Tensor, **options):
        """Per-pair convergence report (flattened batch, no gradients).

        Killing wind: `finslerlib.math.navigation.ArrivalTime` of the root find; general wind: the
        chart field's `BoundarySolution` (chart coordinates).
        """
        self._no_options(options)
        xf, yf, _ = self._pairs(x, y)
        self._wind_checked(xf)
        self._wind_checked(yf, "y")
        if self.exact:
            return nmath.killing_arrival_time(
                self.kind,
                self.k,
                xf,
                yf,
                self.wind,
                self.wind.flow,
                spectral=self.wind.spectral(xf.dtype, xf.device),
            )
        return self.field.solve(self._chart(xf), self._chart(yf), **options)

    def cdist(self, x: torch.Tensor, y: torch.Tensor, *, chunk: int = 1 << 16, **options) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$.

        Killing wind: the root find runs on at most `chunk` pairs at a time (rows of `x` in
        blocks); general wind: the chart field's batched solve.

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.
            chunk: maximum number of pairs per root-find batch.

        Returns:
            Tensor, shape `[..., N, M]`.
        """
        self._no_options(options)
        self._validate(x, y, names=("x", "y"), batch_dims=2)
        if x.dim() < 2 or y.dim() < 2:
            raise ValueError(
                f"cdist needs x [..., N, D] and y [..., M, D], got {tuple(x.shape)}, {tuple(y.shape)}"
            )
        if not self.exact:
            return self.dist(x.unsqueeze(-2), y.unsqueeze(-3), **options)
        batch = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
        n, m, d = x.shape[-2], y.shape[-2], self.ambient_dim
        xb = x.expand(*batch, n, d).reshape(-1, n, d)
        yb = y.expand(*batch, m, d).reshape(-1, m, d)
        rows = max(1, int(chunk) // max(1, m * xb.shape[0]))
        out = []
        for i in range(0, n, rows):
            xs = xb[:, i : i + rows]
            r = xs.shape[1]
            xf = xs.unsqueeze(-2).expand(-1, r, m, d).reshape(-1, d)
            yf = yb.unsqueeze(-3).expand(-1, r, m, d).reshape(-1, d)
            out.append(self._killing_dist(xf, yf).reshape(-1, r, m))
        return torch.cat(out, 1).reshape(*batch, n, m) if n else x.new_zeros(*batch, 0, m)

    # ------------------------------------------------------------------ sampling, origin, reverse
    def _origin_tensor(self, shape, dtype, device):
        o = torch.zeros(*shape, dtype=dtype, device=device)
        if self.kind == "sphere":
            o[..., 0] = 1.0
        elif self.kind == "lorentz":
            o[..., 0] = self.k**0.5
        return o

    def origin(self, *size, dtype=None, device=None, seed=42) -> geoopt.ManifoldTensor:
        """The base's origin ($e_0$ on the sphere, $\\sqrt{k}\\, e_0$ on the hyperboloid, else 0)."""
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        return geoopt.ManifoldTensor(self._origin_tensor(size, dtype, device), manifold=self)

    def _origin_like(self, u: torch.Tensor) -> torch.Tensor:
        return self._origin_tensor(u.shape, u.dtype, u.device)

    def random(self, *size, dtype=None, device=None, std: float = 1.0, max_wind: float = 0.9):
        """Random points with $|W|_h \\le$ `max_wind`: the base's exponential of Gaussian tangent
        vectors at the origin (std `std`; on the stereographic sphere within $|x| \\le 1/\\sqrt{k}$),
        pulled toward the origin where the wind is too strong.

        Raises:
            ValueError: no such point found near the origin.
        """
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        dtype = dtype or torch.get_default_dtype()
        o = self._origin_tensor(size, dtype, device)
        u = self.proju(o, torch.randn(*size, dtype=dtype, device=device) * std)
        if self.kind == "stereographic" and self.k > 0:
            # the near hemisphere |x| <= 1/sqrt(k): the chart loses precision toward infinity
            n = u.norm(dim=-1, keepdim=True)
            cap = 0.25 * torch.pi / self.k**0.5  # h-length pi / (2 sqrt(k)) from the origin
            u = torch.where(n > cap, u * (cap / n.clamp_min(cap)), u)
        for _ in range(60):
            x = self.projx(bmath.base_expmap(self.kind, self.k, o, u))
            with torch.no_grad():
                bad = ~(self.wind_size(x) <= max_wind)
            if not bool(bad.any()):
                return geoopt.ManifoldTensor(x, manifold=self)
            u = torch.where(bad.unsqueeze(-1), 0.5 * u, u)
        raise ValueError(f"{self.name}.random: no point with |W|_h <= {max_wind} found near the origin")

    random_normal = random

    def reverse(self) -> Navigation:
        r"""Navigation in the wind $-W$: $\tilde F(x, v) = F(x, -v)$, $\tilde d(x \to y) = d(y \to x)$."""
        if self.exact:
            shift = None if self.wind.shift is None else -self.wind.shift
            wind = KillingWind(-self.wind.A, shift)
        else:
            wind = self.wind.wind if isinstance(self.wind, _Negated) else _Negated(self.wind)
        return Navigation(self.base, wind, dim=self.dim, **self._options)

    def extra_repr(self) -> str:
        return f"base={self.base_name}, dim={self.dim}, ambient_dim={self.ambient_dim}, exact={self.exact}"
