r"""The Riemannian base as an object: `Domain`, its charts, and the point checks.

A finslerlib manifold is a domain plus Randers data $(a(x), b(x))$ at its points
(`FinslerManifold.coefficients`). The domain is where points live and what the tangent spaces
are, and, for the bases of `finslerlib.Navigation`, the Riemannian geometry $h$ of the base:

* shapes: `ambient_dim` (the size of the last tensor dimension: points and vectors are stored in
  ambient coordinates) and `dim` (the intrinsic dimension);
* projections: `projx(x)`, `proju(x, u)`; `normal(x)` (a unit Euclidean normal of an embedded
  domain of codimension one); `restrict_covector`, `restrict` (Randers data acting on $T_x M$ as
  given, block-diagonal for $T_x M \oplus N_x M$);
* the metric $h$: `inner`, `flat`, `sharp`, `metric` (an SPD ambient extension of $h$ on the
  hyperboloid), `tangent_covector` (the representative of a covector that vanishes on the
  $h$-normal line, so that `sharp` of it is the Riemannian gradient);
* geodesics in closed form: `expmap`, `logmap`, `dist`, `transp` (parallel transport);
* point checks with explanations (`check_point`, `check_vector`, tolerance from the dtype by
  `default_tolerance`), `origin`, `random`;
* charts: `atlas`, a tuple of conformal `Chart`s (one where a single chart covers the base; the
  sphere needs two), and `chart_index(x, y)`, the chart to use for a pair;
* the Killing condition on linear fields `x -> A x` (`killing_error`).

A new base is one new subclass in one new file (see `euclidean.py`, `sphere.py`,
`hyperboloid.py`, `stereographic.py`) and one line in `domain_of`.
"""

from __future__ import annotations

import torch

from finslerlib.math.elementary import dot
from finslerlib.math.pairwise import safe_sqrt

__all__ = ["Chart", "Domain", "default_tolerance"]


def format_values(t: torch.Tensor) -> str:
    """`[v0, v1, ...]` with 6 significant digits (for error messages).

    Example:
        >>> format_values(torch.tensor([1.0, 0.5]))
        '[1, 0.5]'
    """
    return "[" + ", ".join(f"{v:.6g}" for v in t.detach().cpu().reshape(-1).tolist()) + "]"


def default_tolerance(dtype: torch.dtype) -> float:
    r"""The default tolerance of the point checks.

    $\max(16\varepsilon, \min(10^{-5}, \max(\sqrt\varepsilon, 8\varepsilon_{32})))$:

    $10^{-5}$ in float32 (geoopt's default), $9.5 \cdot 10^{-7}$ in float64 (eight float32 ulps:
    points made in float32 and cast to float64, as features of a float32 network are, pass),
    $0.0156$ in float16: a point made by `projx` or a closed-form map passes, a point off by a
    relative $10^{-3}$ does not.

    Example:
        >>> default_tolerance(torch.float32), round(default_tolerance(torch.float64), 10)
        (1e-05, 9.537e-07)
    """
    eps = torch.finfo(dtype).eps
    return max(16.0 * eps, min(1e-5, max(eps**0.5, 8.0 * torch.finfo(torch.float32).eps)))


class Chart:
    r"""A conformal chart $p = \phi(x)$ of a base: $h = \lambda(p)^2 I$ in its coordinates.

    Subclasses implement `to_chart`, `from_chart`, `push`, `pull`, `conformal` and `reach`.
    `Navigation` solves the geodesics of general winds in charts (`finslerlib.RandersField`
    with data $(\lambda(p)^2 I, d\phi\, W)$) and maps the results back.
    """

    name = "chart"
    flat = False
    r"""`True` when $\lambda \equiv 1$ (then `metric` need not be evaluated)."""

    def to_chart(self, x: torch.Tensor) -> torch.Tensor:
        """Ambient points `[..., N]` -> chart coordinates `[..., d]`."""
        raise NotImplementedError

    def from_chart(self, p: torch.Tensor) -> torch.Tensor:
        """Chart coordinates `[..., d]` -> ambient points `[..., N]`."""
        raise NotImplementedError

    def push(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Ambient tangent vectors at `x` -> chart vectors (the differential of `to_chart`)."""
        raise NotImplementedError

    def pull(self, p: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Chart vectors at `p` -> ambient tangent vectors (the differential of `from_chart`)."""
        raise NotImplementedError

    def conformal(self, p: torch.Tensor) -> torch.Tensor:
        r"""The conformal factor $\lambda(p)$, shape `[...]`."""
        raise NotImplementedError

    def metric(self, p: torch.Tensor) -> torch.Tensor:
        r"""$h$ in the chart: $\lambda(p)^2 I$, shape `[..., d, d]`."""
        lam = self.conformal(p)
        eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
        return (lam * lam)[..., None, None] * eye

    def reach(self, x: torch.Tensor) -> torch.Tensor:
        """How well the chart resolves the points `x` `[..., N]` (larger is better; `[...]`).

        The atlas picks, per pair, the chart with the largest reach.
        """
        return torch.ones_like(x[..., 0])

    def __repr__(self) -> str:
        return self.name


class Domain:
    r"""Base class of the domains: an open subset of $\mathbb{R}^D$ unless a subclass says otherwise.

    Subclasses set `dim` and `ambient_dim` (through `__init__`) and override what differs from
    the flat defaults: the projections, the metric $h$, its geodesics, checks and charts. An
    embedded domain of codimension one implements `normal(x)` (a unit Euclidean normal of the
    tangent space); `restrict` and `restrict_covector` then follow.

    Args:
        dim: intrinsic dimension.
        ambient_dim: size of the last tensor dimension.

    Attributes:
        dim: intrinsic dimension.
        ambient_dim: size of the last tensor dimension.
        embedded: `True` when tangent spaces are proper subspaces of the ambient space.
        shift_allowed: whether a constant translation is a Killing field (Euclidean space only).
    """

    embedded = False
    shift_allowed = False

    def __init__(self, dim: int, ambient_dim: int):
        if int(dim) < 1 or int(ambient_dim) < int(dim):
            raise ValueError(f"need 1 <= dim <= ambient_dim, got dim={dim}, ambient_dim={ambient_dim}")
        self.dim = int(dim)
        self.ambient_dim = int(ambient_dim)

    @property
    def name(self) -> str:
        """A short name for messages (e.g. `Sphere()`, `Lorentz(k=1)`)."""
        return type(self).__name__

    # ------------------------------------------------------------------ projections
    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Project ambient points onto the domain."""
        return x

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Project ambient vectors onto the tangent space at `x` ($h$-orthogonally)."""
        return u

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Unit Euclidean normal of the tangent space at `x` (codimension-one embedded domains)."""
        raise NotImplementedError(f"{type(self).__name__} has no normal")

    def restrict_covector(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""An ambient covector restricted to $T_x M$, as the ambient covector that vanishes on the normal.

        $\xi - (n \cdot \xi)\, n$ for the unit Euclidean normal $n$: it acts on tangent vectors as $\xi$ does.
        """
        if not self.embedded:
            return xi
        n = self.normal(x)
        return xi - (n * xi).sum(-1, keepdim=True) * n

    def restrict(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
        r"""Randers data acting on $T_x M$ as `(a, b)` do, block-diagonal for tangent and normal space.

        $(P a P + n n^\top, P b)$ with $P = I - n n^\top$: the normal line gets the identity and
        the drift is made tangent. With these data the Randers formulas, applied to tangent
        vectors and to covectors restricted by `restrict_covector`, give the tangent-space
        answers (the dual norm of the restricted covector; tangent vectors from the inverse
        Legendre map).
        """
        if not self.embedded:
            return a, b
        n = self.normal(x).unsqueeze(-1)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        proj = eye - n * n.mT
        return proj @ a @ proj + n * n.mT, self.restrict_covector(x, b)

    # ------------------------------------------------------------------ the metric h
    def inner(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, keepdim: bool = False):
        r"""The base metric $h_x(u, v)$ (an SPD extension to all ambient vectors), shape `[...]`."""
        out = dot(u, v)
        return out if keepdim else out.squeeze(-1)

    def flat(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""The covector $h_x(u, \cdot)$ of a vector, in ambient coordinates."""
        return u

    def sharp(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""The vector $h_x^{-1} \xi$ of a covector (inverse of `flat`)."""
        return xi

    def metric(self, x: torch.Tensor) -> torch.Tensor:
        """The matrix of `inner` at `x`, shape `[..., N, N]` (SPD)."""
        n = x.shape[-1]
        return torch.eye(n, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], n, n)

    def tangent_covector(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""The representative of a covector on $T_x M$ that vanishes on the $h$-normal line.

        `sharp` of it is the Riemannian gradient (geoopt's `egrad2rgrad`); identity on open bases.
        """
        return xi

    # ------------------------------------------------------------------ geodesics of h
    def dist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Riemannian distance $d_h(x, y)$, shape `[...]` (zero gradient at $x = y$)."""
        diff = y - x
        return safe_sqrt(dot(diff, diff, keepdim=False))

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Riemannian exponential map $\exp^h_x(u)$ ($u$ tangent at $x$)."""
        return x + u

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Riemannian logarithm $\log^h_x(y)$ (derivative $I$ at $y = x$)."""
        return y - x

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        r"""Parallel transport of $h$ along the minimizing geodesic $x \to y$ (closed form)."""
        return v

    def dist_slope(self, x: torch.Tensor, z: torch.Tensor, d: torch.Tensor, wz: torch.Tensor) -> torch.Tensor:
        r"""$\langle \log_z x, W(z)\rangle_h / d$: how fast $d_h(x, z)$ falls as $z$ moves along $W(z)$.

        Args:
            x: Tensor, shape `[..., N]`.
            z: Tensor, shape `[..., N]`.
            d: Tensor, shape `[...]`, $d_h(x, z)$.
            wz: Tensor, shape `[..., N]`, the wind at `z`.

        Returns:
            Tensor, shape `[...]` (0 where `d = 0`).
        """
        num = self.inner(z, self.logmap(z, x), wz)
        return torch.where(d > 0, num / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))

    # ------------------------------------------------------------------ the bilinear-form root find
    has_form = False
    """Whether the base is a quadric $\\langle x, x\\rangle_G = c$ whose distance is a function of
    $\\langle x, y\\rangle_G$ (sphere, hyperboloid): then the Killing root find is scalar per pair."""

    form_curvature = 0.0
    """The quadric's sectional curvature: 1 for the unit sphere, $-1/k$ for the hyperboloid
    $\\langle x, x\\rangle_L = -k$ (0 for other bases); the compiled Killing root find
    (`finslerlib.math.arrival`) picks its distance formula by its sign."""

    def form_covector(self, x: torch.Tensor) -> torch.Tensor:
        """$G x$ for the quadric's form $G$ (quadric bases only)."""
        raise NotImplementedError(f"{self.name} is not a quadric")

    def form_chord(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The chord term $q_0$ of the pair, shape `[..., 1]` (quadric bases only)."""
        raise NotImplementedError(f"{self.name} is not a quadric")

    def form_distance(self, q0, s_delta, ds):
        """`(d, slope)` from $q_0$, the form's increment and its T-derivative (quadric bases only)."""
        raise NotImplementedError(f"{self.name} is not a quadric")

    # ------------------------------------------------------------------ checks
    def check_point(self, x: torch.Tensor, *, atol: float | None = None, rtol: float | None = None):
        """`(ok, reason)`: whether `x` lies on the domain (finite entries at least).

        `atol`, `rtol` default to `default_tolerance(x.dtype)`.
        """
        if not bool(torch.isfinite(x).all()):
            return False, f"point has non-finite entries ({(~torch.isfinite(x)).sum().item()} of them)"
        return True, None

    def check_vector(
        self, x: torch.Tensor, u: torch.Tensor, *, atol: float | None = None, rtol: float | None = None
    ):
        """`(ok, reason)`: whether `u` is a tangent vector at `x` (finite entries at least).

        On an embedded domain the Euclidean normal component $|n(x) \\cdot u|$ of each row must be
        at most `atol + rtol * |u|` (defaults: `default_tolerance(u.dtype)`).
        """
        if not bool(torch.isfinite(u).all()):
            return False, f"vector has non-finite entries ({(~torch.isfinite(u)).sum().item()} of them)"
        if self.embedded and u.numel():
            tol = default_tolerance(u.dtype)
            atol = tol if atol is None else atol
            rtol = tol if rtol is None else rtol
            err = (self.normal(x) * u).sum(-1).abs()
            bound = atol + rtol * u.norm(dim=-1)
            if not bool((err <= bound).all()):
                return False, (
                    f"vectors are not tangent to {self.name}: max |n(x) . u| = {err.max().item():.3g} "
                    f"(tolerance {atol:.3g} + {rtol:.3g} |u|)"
                )
        return True, None

    # ------------------------------------------------------------------ reference points
    def origin(self, *shape: int, dtype=None, device=None) -> torch.Tensor:
        """A reference point of the domain, broadcast to `shape` (last entry `ambient_dim`)."""
        return torch.zeros(*shape, dtype=dtype, device=device)

    def random(self, *shape: int, dtype=None, device=None, std: float = 1.0) -> torch.Tensor:
        """Random points: `expmap` at the origin of Gaussian tangent vectors (std `std`)."""
        o = self.origin(*shape, dtype=dtype, device=device)
        u = self.proju(o, torch.randn(*shape, dtype=o.dtype, device=device) * std)
        return self.projx(self.expmap(o, u))

    # ------------------------------------------------------------------ charts
    @property
    def atlas(self) -> tuple[Chart, ...]:
        """The conformal charts covering the domain (`Chart`s)."""
        raise NotImplementedError(f"{self.name} has no charts")

    def chart_index(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Index into `atlas` of the chart to use for each pair `(x, y)`, shape `[...]` (long).

        The chart with the largest `reach` at the worst of the two points and the midpoint of the
        $h$-geodesic between them (a geodesic of the metric may bend, but the chart then keeps
        its pole away from the region the pair spans).
        """
        charts = self.atlas
        if len(charts) == 1:
            return torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
        mid = self.expmap(x, 0.5 * self.logmap(x, y))
        reach = torch.stack(
            [torch.minimum(torch.minimum(c.reach(x), c.reach(y)), c.reach(mid)) for c in charts], -1
        )
        return reach.argmax(-1)

    def centring(self, x: torch.Tensor) -> torch.Tensor | None:
        """An isometry of the base (orthogonal `[B, N, N]`) sending each point `x` `[B, N]` to the centre
        of `atlas[0]`, or `None` where `atlas[0]` covers the base (no rotation needed)."""
        return None

    # ------------------------------------------------------------------ Killing fields
    def killing_error(self, A: torch.Tensor) -> tuple[float, str]:
        """`(err, condition)`: how far the linear field `x -> A x` is from a Killing field.

        Default (Euclidean space, the sphere, the stereographic models): `A` skew-symmetric.
        """
        return (A + A.mT).abs().max().item(), "A must be skew-symmetric (A + A^T = 0)"

    def admissible_set_is_convex(self, A: torch.Tensor) -> bool:
        r"""Whether $\{x : |A x|_h < 1\}$ is geodesically convex (or the whole base), so that a geodesic
        of $h$ between two of its points stays in it; default `False` (paths are then checked)."""
        return False

    def admissible_everywhere(self, A: torch.Tensor) -> bool:
        r"""Whether $|A x|_h < 1$ at every point of the base that passes `check_point` (then the
        wind check of each point can be skipped); default `False`."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, ambient_dim={self.ambient_dim})"
