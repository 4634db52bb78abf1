r"""`FinslerManifold`: the geoopt manifold API for Finsler (Randers) geometry.

A Finsler manifold carries a norm $F(x, \cdot)$ on each tangent space that need not be
symmetric. The API follows geoopt (`geoopt.Manifold`, `ndim = 1`, batch dimensions leading,
last dimension `D`) so `geoopt.ManifoldParameter` and geoopt's Riemannian optimizers work
unchanged, and adds the Finsler quantities: `dual_norm`, `legendre`, `inverse_legendre`,
`fundamental_tensor`, `cdist` and `reverse`.

Conventions:

* `dist(x, y)` is the **forward** distance $d(x \to y)$; in general $d(x \to y) \ne d(y \to x)$.
* `cdist(x, y)[..., i, j]` $= d(x_i \to y_j)$.
* `logmap(x, y)` is the initial velocity of the geodesic from `x` that reaches `y` at time 1,
  so `norm(x, logmap(x, y)) == dist(x, y)`.
* `finsler_gradient(x, df)` is the Finsler gradient $\ell^{-1}(df)$ (steepest ascent per unit
  $F$-length). `egrad2rgrad(x, df)` is what geoopt's optimizers step against; `descent` chooses it:
  `"forward"` (default) returns $-\ell^{-1}(-df)$, so the step $\ell^{-1}(-df)$ is the steepest
  descent of $F$ itself; `"reverse"` returns $\ell^{-1}(df)$, the step $-\ell^{-1}(df)$ being the
  steepest descent of the reverse metric. Measurements: `docs/concepts/duality.md`.

A manifold is a **domain** (`finslerlib.manifolds.domains`: an open subset of $\mathbb{R}^D$, or
an embedded submanifold such as the sphere, given by `projx` / `proju`) plus **Randers data**
$(a(x), b(x))$ at its points, returned by `coefficients(x)`. `dim` is the intrinsic dimension,
`ambient_dim` the size of the last tensor dimension (equal for open subsets of $\mathbb{R}^D$).
Pointwise quantities are defined on the tangent space: on an embedded domain covectors are
restricted to it (`Domain.restrict_covector`) and every returned vector is tangent. Constant
metrics may also give the factored form `factor() -> (L, w)` ($a = L L^\top$, $b = L w$):
`cdist` then runs the Gram-matrix kernel `finslerlib.math.randers.cdist`.

What a subclass implements: `coefficients` (or cheaper closed forms of the pointwise methods),
`expmap` and `logmap`; what comes for free: `norm`, `dual_norm`, `legendre`,
`inverse_legendre`, `fundamental_tensor`, `inner`, `finsler_gradient`, `egrad2rgrad`, `dist`,
`cdist`, the `*0`
maps, input validation, geoopt's `dim=-1` / `project=` keywords, and `reverse()`.

The public extension points a subclass may override: `validate_inputs` (what every method checks
first), `reverse_expmap` / `reverse_logmap` (the reverse metric's geodesics, needed by
`reverse()`), `reverse_retr`, `reverse_transp_follow_expmap`, `reverse_transp_follow_retr` and
`reverse_cdist` (defaults given). Their old private names (`_validate`, `_reverse_expmap`, ...,
see `DEPRECATED_HOOKS`) work for one more release with a `DeprecationWarning`.

`Reversed(m)` is the reverse metric $\tilde F(x, v) = F(x, -v)$ of any finslerlib manifold: the
one reversal wrapper (like `geoopt.Scaled`), returned by every manifold's `reverse()`. It shares
the wrapped manifold's parameters and domain, and derives everything it can from it:

* pointwise: $\tilde F(x, v) = F(x, -v)$, $\tilde F^*(x, \xi) = F^*(x, -\xi)$,
  $\tilde\ell(v) = -\ell(-v)$, $\tilde\ell^{-1}(\xi) = -\ell^{-1}(-\xi)$, $\tilde g_v = g_{-v}$;
  Randers data $(a, -b)$ and factor $(L, -w)$;
* distances: $\tilde d(x \to y) = d(y \to x)$ (`dist`, with the wrapped manifold's options),
  and `cdist` from the factored kernel or `reverse_cdist` (default: the transposed `cdist`);
* geodesics: the reverse geodesic from $x$ with velocity $v$ is not a geodesic of $F$ run
  forward, so `expmap` / `logmap` come from the wrapped manifold's `reverse_expmap` /
  `reverse_logmap` (closed forms: straight lines for `Randers`, `finslerlib.math.funk` for the
  Funk ball, the negated-drift flow for `RandersField`); without them they raise
  `NotImplementedError`. `retr` is the wrapped manifold's (a retraction depends only on the domain).

`geoopt.Scaled(m, s).reverse()` is `geoopt.Scaled(m.reverse(), s)`: reversal commutes with scaling.

See `docs/how-to/new-manifold.md`.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import geoopt
import torch
from geoopt.manifolds.base import ScalingInfo

from finslerlib.manifolds.domains import Domain, EuclideanDomain
from finslerlib.math import randers as rmath
from finslerlib.math.validation import check_cdist_shapes, check_finite

__all__ = ["FinslerManifold", "Reversed"]


_GEOOPT_KEYWORDS = ("dist", "dist0", "expmap0", "logmap0", "norm")


def _geoopt_keywords(method):
    """Accept geoopt's `dim=-1` (the only dimension a finslerlib manifold acts on) and `project=`."""

    @functools.wraps(method)
    def wrapper(self, *args, dim: int = -1, project: bool = False, **kwargs):
        if dim != -1:
            ndims = {t.dim() for t in args if isinstance(t, torch.Tensor)}
            if not (len(ndims) == 1 and dim == ndims.pop() - 1):
                raise ValueError(
                    f"{type(self).__name__}.{method.__name__}: dim must be -1 (the last dimension, which "
                    f"holds the coordinates), got dim={dim}"
                )
        out = method(self, *args, **kwargs)
        return self.projx(out) if project and method.__name__ == "expmap0" else out

    sig = inspect.signature(method)
    params = list(sig.parameters.values())
    extra = [
        inspect.Parameter("dim", inspect.Parameter.KEYWORD_ONLY, default=-1),
        inspect.Parameter("project", inspect.Parameter.KEYWORD_ONLY, default=False),
    ]
    names = {p.name for p in params}
    var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    params = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [p for p in extra if p.name not in names] + var_kw
    wrapper.__signature__ = sig.replace(parameters=params)
    wrapper._geoopt_keywords = True
    return wrapper


class _ScaledManifold:
    """`ScalingInfo` result marker: `geoopt.Scaled` rescales a result `r` as `r * scale ** power`.

    With this marker as the power, `scale ** marker` is a `_WrapScaled` and `r * _WrapScaled`
    is `geoopt.Scaled(r, scale)`: so `geoopt.Scaled(m, s).reverse()` is `Scaled(m.reverse(), s)`.
    """

    def __rpow__(self, scale):
        return _WrapScaled(scale)


class _WrapScaled:
    def __init__(self, scale: torch.Tensor):
        self.scale = scale

    def __rmul__(self, manifold):
        scale = torch.as_tensor(self.scale)
        scaled = geoopt.Scaled(manifold, scale.detach())
        scaled._buffers["_scale"] = scale  # the same tensor: a learnable scale keeps its gradient
        return scaled


DEPRECATED_HOOKS = {
    "_validate": "validate_inputs",
    "_reverse_expmap": "reverse_expmap",
    "_reverse_logmap": "reverse_logmap",
    "_reverse_retr": "reverse_retr",
    "_reverse_transp_follow_expmap": "reverse_transp_follow_expmap",
    "_reverse_transp_follow_retr": "reverse_transp_follow_retr",
    "_reverse_cdist": "reverse_cdist",
}
"""Old (private) names of the extension points of `FinslerManifold` -> their public names.

Kept for one release: a subclass that overrides an old name still works (its method becomes the
public extension point) and gets a `DeprecationWarning` when the class is defined; calling an old
name warns and calls the public one.
"""


def _adopt_deprecated_hooks(cls) -> None:
    """Make a subclass's override of an old hook name the public extension point (with a warning)."""
    for old, new in DEPRECATED_HOOKS.items():
        method = cls.__dict__.get(old)
        if method is None or cls.__dict__.get(new) is method:  # absent, or an explicit alias
            continue
        warnings.warn(
            f"{cls.__qualname__}.{old} overrides a deprecated extension point of FinslerManifold: "
            f"rename it to {new} (the old name is honoured until the next release)",
            DeprecationWarning,
            stacklevel=4,  # the class statement (through __init_subclass__ and ABCMeta.__new__)
        )
        if new not in cls.__dict__:
            setattr(cls, new, method)


def _deprecated_call(manifold, old: str) -> None:
    warnings.warn(
        f"{type(manifold).__name__}.{old} is deprecated: call {DEPRECATED_HOOKS[old]} "
        "(the old name works until the next release)",
        DeprecationWarning,
        stacklevel=3,
    )


def _dispatch(manifold, old: str):
    """The public method behind a deprecated name: the subclass's, unless the subclass's public
    method *is* its override of the old name (which may call `super().<old>`: then the default)."""
    new = DEPRECATED_HOOKS[old]
    if getattr(type(manifold), new) is getattr(type(manifold), old):
        return getattr(FinslerManifold, new).__get__(manifold)
    return getattr(manifold, new)


class FinslerManifold(geoopt.Manifold):
    r"""Base class of finslerlib manifolds: a domain and Randers data, as a `geoopt.Manifold`.

    Args:
        dim: the dimension `D` of an open subset of $\mathbb{R}^D$ (then the domain is
            `EuclideanDomain(D)`); omit it when `domain` is given.
        domain: a `finslerlib.manifolds.domains.Domain` (e.g. `SphereDomain(n)`).

    Attributes:
        domain: the domain.
        dim: the intrinsic dimension.
        ambient_dim: the size of the last tensor dimension.
        descent: `"forward"` (default) or `"reverse"`: which steepest descent geoopt's optimizers
            take through `egrad2rgrad` (set it on the instance: `m.descent = "reverse"`).

    `dist`, `dist0`, `expmap0`, `logmap0` and `norm` also accept geoopt's keywords `dim=-1`
    (any other value raises `ValueError`) and `project=` (`expmap0(u, project=True)` applies
    `projx`; elsewhere results are on the manifold already).
    """

    name = "Finsler"
    ndim = 1
    reversible = False
    descent = "forward"
    __scaling__ = geoopt.Manifold.__scaling__.copy()
    _nonfinite_reason = "NaN or infinite input has no distance or norm"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _adopt_deprecated_hooks(cls)
        for name in _GEOOPT_KEYWORDS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_geoopt_keywords", False):
                setattr(cls, name, _geoopt_keywords(method))

    def __init__(self, dim: int | None = None, *, domain: Domain | None = None):
        super().__init__()
        if domain is None:
            if dim is None or int(dim) < 1:
                raise ValueError(f"dim must be a positive integer, got {dim}")
            domain = EuclideanDomain(int(dim))
        elif dim is not None and int(dim) != domain.dim:
            raise ValueError(f"dim={dim} does not match the domain's dimension {domain.dim}")
        self.domain = domain

    @property
    def dim(self) -> int:
        """The intrinsic dimension of the manifold."""
        return self.domain.dim

    @property
    def ambient_dim(self) -> int:
        """The size of the last tensor dimension (points and vectors in ambient coordinates)."""
        return self.domain.ambient_dim

    # ------------------------------------------------------------------ validation
    def validate_inputs(
        self, *tensors: torch.Tensor, names: tuple[str, ...] | None = None, batch_dims: int = 1
    ) -> None:
        """Check what users pass to a method (an extension point: call it first in `expmap`, ...).

        Raises `TypeError` for an argument that is not a `torch.Tensor` (numpy arrays included:
        convert them with `torch.as_tensor`), `ValueError` on a wrong last dimension, a non-float
        or mixed dtype, non-finite entries, or batch shapes that do not broadcast (all but the last
        `batch_dims` dimensions; `cdist` passes 2). Messages name the argument and the value.

        Args:
            *tensors: the arguments, in order.
            names: their names, for the messages (default `argument 0`, ...).
            batch_dims: trailing dimensions that are not batch dimensions.

        Example:
            >>> from finslerlib import Randers
            >>> m = Randers(torch.eye(2))
            >>> m.validate_inputs(torch.zeros(3), names=("x",))
            Traceback (most recent call last):
            ...
            ValueError: x must have shape [..., 2] on Randers, got (3,)
        """
        names = names or tuple(f"argument {i}" for i in range(len(tensors)))
        dtype = None
        n = self.ambient_dim
        for name, t in zip(names, tensors, strict=True):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() < 1 or t.shape[-1] != n:
                raise ValueError(f"{name} must have shape [..., {n}] on {self.name}, got {tuple(t.shape)}")
            if not t.is_floating_point():
                raise ValueError(f"{name} must be a floating tensor, got {t.dtype}")
            if dtype is not None and t.dtype != dtype:
                raise ValueError(f"dtype mismatch: {names[0]} is {dtype} but {name} is {t.dtype}")
            dtype = t.dtype
        try:
            # one tensor always broadcasts with itself, equal shapes too (torch.broadcast_shapes
            # is Python: a tenth of an optimizer step on a small batch)
            batch = [t.shape[: max(t.dim() - batch_dims, 0)] for t in tensors]
            if any(b != batch[0] for b in batch[1:]):
                torch.broadcast_shapes(*batch)
        except RuntimeError:
            shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in zip(names, tensors, strict=True))
            raise ValueError(f"batch shapes do not broadcast: {shapes}") from None
        check_finite(
            reason=self._nonfinite_reason,
            **{name: t for name, t in zip(names, tensors, strict=True) if not self._known_finite(t)},
        )

    def _known_finite(self, t: torch.Tensor) -> bool:
        """Whether `t` is a tensor this manifold has already checked and that has not changed since
        (`validate_inputs` then skips its finiteness check); by default none is."""
        return False

    def _check_shape(self, shape, name):
        n = self.ambient_dim
        if len(shape) < 1 or shape[-1] != n:
            return False, f"'{name}' on {self.name} needs shape [..., {n}], got {tuple(shape)}"
        return True, None

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        return self.domain.check_point(x, atol=atol, rtol=rtol)

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return self.domain.check_vector(x, u, atol=atol, rtol=rtol)

    # ------------------------------------------------------------------ pointwise structure
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Randers data `(a(x), b(x))` at the points `x`, on `x`'s device and dtype.

        On an embedded domain `a` and `b` are given in ambient coordinates; only their action on
        the tangent space matters (see `tangent_coefficients`).

        Args:
            x: Tensor, shape `[..., N]` (`N = ambient_dim`).

        Returns:
            `(a, b)` with shapes broadcastable to `[..., N, N]` and `[..., N]`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose Randers coefficients")

    def factor(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""The factored Randers data `(L, w)` of a constant metric, or `None`.

        $a = L L^\top$ and $b = L w$ ($L$ of shape `[N, R]`, `w` of shape `[R]`): then
        $\alpha(v) = |L^\top v|$ and $F(v) = |y| + w \cdot y$ with $y = L^\top v$. Constant
        metrics that have it get the fused `cdist` kernel; the default is `None`.
        """
        return None

    def tangent_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`coefficients(x)` made block-diagonal for tangent and normal space (`Domain.restrict`).

        The identity on open subsets of $\\mathbb{R}^D$; what every pointwise method evaluates.
        """
        a, b = self.coefficients(x)
        if self.domain.embedded:
            return self.domain.restrict(x, a, b)
        return a, b

    def _pointwise_coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """What the pointwise methods evaluate: `tangent_coefficients(x)`; a subclass may give
        `None` for an `a` that is the identity by construction (`finslerlib.math.randers`
        reads `a=None` as the identity: no matrix products, no factorization)."""
        return self.tangent_coefficients(x)

    def _covector(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """Restrict an ambient covector to the tangent space (identity on open sets of R^D)."""
        return self.domain.restrict_covector(x, xi) if self.domain.embedded else xi

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Finsler norm $F(x, u)$.

        Args:
            x: Tensor, shape `[..., N]`, points.
            u: Tensor, shape `[..., N]`, tangent vectors at `x`.
            keepdim: keep the last dimension (size 1).

        Returns:
            Tensor, shape `[...]`.
        """
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.norm(u, *self._pointwise_coefficients(x), keepdim=keepdim)

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Dual norm $F^*(x, \xi) = \sup_{F(x, v) = 1} \xi(v)$ of a covector (on the tangent space).

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]`, covectors at `x` (restricted to the tangent space).
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        self.validate_inputs(x, xi, names=("x", "xi"))
        return rmath.dual_norm(self._covector(x, xi), *self._pointwise_coefficients(x), keepdim=keepdim)

    def legendre(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Legendre map $\ell_x(u) = g_u(u, \cdot) = \tfrac12 \partial_u F^2(x, u)$.

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`.

        Returns:
            Tensor, shape `[..., N]`: a covector (tangent on embedded domains).
        """
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.legendre(u, *self._pointwise_coefficients(x))

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""Inverse Legendre map $\ell_x^{-1}(\xi) = \tfrac12 \partial_\xi F^{*2}(x, \xi)$.

        Args:
            x: Tensor, shape `[..., N]`.
            xi: Tensor, shape `[..., N]` (restricted to the tangent space first).

        Returns:
            Tensor, shape `[..., N]`: a tangent vector.
        """
        self.validate_inputs(x, xi, names=("x", "xi"))
        return rmath.inverse_legendre(self._covector(x, xi), *self._pointwise_coefficients(x))

    def fundamental_tensor(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Fundamental tensor $g_{ij}(x, u) = \tfrac12 \partial^2 F^2 / \partial u^i \partial u^j$.

        On an embedded domain the matrix is ambient; its tangent block is the fundamental tensor
        and it maps tangent vectors to tangent covectors.

        Args:
            x: Tensor, shape `[..., N]`.
            u: Tensor, shape `[..., N]`, nonzero reference directions.

        Returns:
            Tensor, shape `[..., N, N]`, positive definite.
        """
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.fundamental_tensor(u, *self._pointwise_coefficients(x))

    def inner(
        self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor | None = None, *, keepdim=False
    ) -> torch.Tensor:
        r"""Finsler inner product $g_u(u, v)$ with reference direction `u`.

        `inner(x, u)` is $g_u(u, u) = F(x, u)^2$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, reference direction.
            v: Tensor, shape `[..., D]`, or `None` for `u`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        if v is None:
            return self.norm(x, u, keepdim=keepdim) ** 2
        return (self.legendre(x, u) * v).sum(-1, keepdim=keepdim)

    def component_inner(self, x, u, v=None):
        """`inner(x, u, v, keepdim=True)`; for `v=None` RiemannianAdam's second moment: the squared
        length of its step $-u$ in the metric whose steepest descent `egrad2rgrad` takes
        ($F(x, -u)^2$ for `descent = "forward"`, $F(x, u)^2$ for `"reverse"`)."""
        if v is None and self.descent == "forward":
            return self.norm(x, -u, keepdim=True) ** 2
        return self.inner(x, u, v, keepdim=True)

    def finsler_gradient(self, x: torch.Tensor, df: torch.Tensor) -> torch.Tensor:
        r"""Finsler gradient $\nabla f = \ell_x^{-1}(df)$ from the Euclidean differential `df`.

        It satisfies $F(\nabla f) = F^*(df)$ and $df(\nabla f) = F^*(df)^2$: the direction of
        steepest ascent per unit $F$-length. The steepest *descent* direction is
        `finsler_gradient(x, -df)`, not its negative (see `egrad2rgrad`).

        Args:
            x: Tensor, shape `[..., D]`.
            df: Tensor, shape `[..., D]`, the Euclidean gradient (differential) at `x`.

        Returns:
            Tensor, shape `[..., D]`.

        Example:
            >>> from finslerlib import Randers
            >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))  # F(v) = |v| + v_1 / 2
            >>> m.finsler_gradient(torch.zeros(2), torch.tensor([1.0, 0.0]))
            tensor([0.4444, 0.0000])
        """
        return self.inverse_legendre(x, self._covector(x, df))

    def egrad2rgrad(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""What geoopt's optimizers step against, from the Euclidean differential `u` = $df$.

        geoopt moves along $-\texttt{egrad2rgrad}(x, df)$. With `descent = "forward"` (default)
        it is $-\ell_x^{-1}(-df)$: the step $\ell_x^{-1}(-df)$ is the steepest descent of $F$,
        $F(\text{step}) = F^*(-df)$, $df(\text{step}) = -F^*(-df)^2$. With `descent = "reverse"`
        it is `finsler_gradient(x, df)` $= \ell_x^{-1}(df)$, the steepest descent of the reverse
        metric. Both are descent directions and agree for a symmetric metric; they differ for a
        Randers metric, most near the Funk sphere (see `docs/concepts/duality.md`).

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`, the Euclidean gradient (differential) at `x`.

        Returns:
            Tensor, shape `[..., D]`.

        Example:
            >>> from finslerlib import Randers
            >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))  # moving along -e_1 is cheap
            >>> x, df = torch.zeros(2), torch.tensor([1.0, 0.0])
            >>> m.egrad2rgrad(x, df)[0]  # geoopt steps along -this: -4 e_1, F(-4 e_1) = 2 = F*(-df)
            tensor(4.)
            >>> m.descent = "reverse"
            >>> m.egrad2rgrad(x, df)[0]  # -0.4444 e_1 in the reverse metric's descent
            tensor(0.4444)
        """
        if self.descent == "forward":
            return -self.finsler_gradient(x, -u)
        if self.descent == "reverse":
            return self.finsler_gradient(x, u)
        raise ValueError(f"descent must be 'reverse' or 'forward', got {self.descent!r}")

    def proju(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Projection onto the tangent space at `x` (the domain's; identity on open sets of R^D)."""
        return self.domain.proju(x, u)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        """Projection onto the domain (identity on R^D; subclasses with a boundary pull points inside)."""
        return self.domain.projx(x)

    # ------------------------------------------------------------------ geodesic structure
    @__scaling__(ScalingInfo(1))
    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance $d(x \to y) = F(x, \log_x y)$.

        Args:
            x: Tensor, shape `[..., D]`, sources.
            y: Tensor, shape `[..., D]`, targets.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        return self.norm(x, self.logmap(x, y), keepdim=keepdim)

    @__scaling__(ScalingInfo(1))
    def cdist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""All forward distances, `cdist(x, y)[..., i, j]` $= d(x_i \to y_j)$.

        A constant metric with `factor()` gets the Gram-matrix kernel
        `finslerlib.math.randers.cdist` (no `[..., N, M, D]` tensor); otherwise this
        generic fallback broadcasts `dist`, and closed-form manifolds override it.

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.

        Returns:
            Tensor, shape `[..., N, M]`.
        """
        check_cdist_shapes(x, y)
        self.validate_inputs(x, y, names=("x", "y"), batch_dims=2)
        factored = self.factor()
        if factored is None:
            return self.dist(x.unsqueeze(-2), y.unsqueeze(-3))
        return rmath.cdist(x, y, factored[0].to(x), factored[1].to(x))

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Retraction; the exponential map unless a subclass has a cheaper first-order one."""
        return self.expmap(x, u)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Vector transport from `x` to `y`: identity in the global chart of $\\mathbb{R}^D$."""
        return v

    def transp_follow_expmap(self, x, u, v):
        return self.transp(x, self.expmap(x, u), v)

    def origin(self, *size, dtype=None, device=None, seed=42) -> geoopt.ManifoldTensor:
        """The domain's origin (`0` of the chart of $\\mathbb{R}^D$), shape `size`, as a `ManifoldTensor`.

        `dtype` and `device` default to those of the manifold's parameters or buffers (torch's
        default dtype when it has none).
        """
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        tensors = [t for t in (*self.parameters(), *self.buffers()) if t.is_floating_point()]
        if dtype is None:
            dtype = tensors[0].dtype if tensors else torch.get_default_dtype()
        if device is None and tensors:
            device = tensors[0].device
        return geoopt.ManifoldTensor(self.domain.origin(*size, dtype=dtype, device=device), manifold=self)

    def _origin_like(self, u: torch.Tensor) -> torch.Tensor:
        if self.domain.embedded:
            return self.domain.origin(*u.shape, dtype=u.dtype, device=u.device)
        return torch.zeros_like(u)

    @__scaling__(ScalingInfo(u=-1))
    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        """`expmap(origin, u)`.

        Args:
            u: Tensor, shape `[..., D]`, tangent vectors at the origin.

        Returns:
            Tensor, shape `[..., D]`.
        """
        return self.expmap(self._origin_like(u), u)

    @__scaling__(ScalingInfo(1))
    def logmap0(self, y: torch.Tensor) -> torch.Tensor:
        """`logmap(origin, y)`.

        Args:
            y: Tensor, shape `[..., D]`.

        Returns:
            Tensor, shape `[..., D]`.
        """
        return self.logmap(self._origin_like(y), y)

    @__scaling__(ScalingInfo(1))
    def dist0(self, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance from the origin, $d(0 \to y)$.

        Args:
            y: Tensor, shape `[..., D]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.
        """
        return self.dist(self._origin_like(y), y, keepdim=keepdim)

    @__scaling__(ScalingInfo(_ScaledManifold()))
    def reverse(self) -> FinslerManifold:
        r"""The reverse metric $\tilde F(x, v) = F(x, -v)$, with $\tilde d(x \to y) = d(y \to x)$.

        `Reversed(self)`: pointwise quantities, `dist` and `cdist` come from this manifold, the
        geodesics from the extension points `reverse_expmap` / `reverse_logmap` that a manifold
        defines to have a reverse (a reverse without geodesics would be half a manifold: without
        them this raises `NotImplementedError`).
        """
        hooks = ("reverse_expmap", "reverse_logmap")
        if any(getattr(type(self), h) is getattr(FinslerManifold, h) for h in hooks):
            raise NotImplementedError(
                f"{type(self).__name__} does not implement reverse(): define reverse_expmap and "
                f"reverse_logmap (the reverse metric's geodesics), or override reverse()"
            )
        return Reversed(self)

    # ------------------------------------------------------------------ extension points of reverse()
    # `Reversed(m)` calls these on `m`. The geodesic ones have no default; the transport defaults
    # match this class's own defaults (the identity of the global chart, exact for constant
    # metrics); manifolds whose transport is not the identity override them (FunkBall, RandersField).
    def reverse_expmap(self, x: torch.Tensor, u: torch.Tensor, **options) -> torch.Tensor:
        """Exponential map of the reverse metric (an extension point for `reverse()`; none by default)."""
        raise NotImplementedError(f"{type(self).__name__} has no exponential map of its reverse metric")

    def reverse_logmap(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        """Log map of the reverse metric (an extension point for `reverse()`; none by default)."""
        raise NotImplementedError(f"{type(self).__name__} has no log map of its reverse metric")

    def reverse_retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Retraction of the reverse metric: `retr`, which is first order for both metrics."""
        return self.retr(x, u)

    def reverse_transp_follow_expmap(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        r"""Parallel transport of the reverse metric along its geodesic $t \mapsto \tilde\exp_x(t u)$."""
        return v

    def reverse_transp_follow_retr(self, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
        r"""Transport of the reverse metric along its retraction curve $t \mapsto \tilde R_x(t u)$."""
        return v

    def reverse_cdist(self, x: torch.Tensor, y: torch.Tensor, **options) -> torch.Tensor:
        """All reverse distances `[..., i, j]` = d(y_j -> x_i) (default: the transposed `cdist`)."""
        return self.cdist(y, x, **options).mT

    # ------------------------------------------------------------------ deprecated names
    # The extension points were private names before 0.4; the old names work for one release
    # (calling or overriding one gives a DeprecationWarning), see `DEPRECATED_HOOKS`.
    def _validate(self, *tensors, names=None, batch_dims: int = 1) -> None:
        _deprecated_call(self, "_validate")
        return _dispatch(self, "_validate")(*tensors, names=names, batch_dims=batch_dims)

    def _reverse_expmap(self, x, u, **options):
        _deprecated_call(self, "_reverse_expmap")
        return _dispatch(self, "_reverse_expmap")(x, u, **options)

    def _reverse_logmap(self, x, y, **options):
        _deprecated_call(self, "_reverse_logmap")
        return _dispatch(self, "_reverse_logmap")(x, y, **options)

    def _reverse_retr(self, x, u):
        _deprecated_call(self, "_reverse_retr")
        return _dispatch(self, "_reverse_retr")(x, u)

    def _reverse_transp_follow_expmap(self, x, u, v):
        _deprecated_call(self, "_reverse_transp_follow_expmap")
        return _dispatch(self, "_reverse_transp_follow_expmap")(x, u, v)

    def _reverse_transp_follow_retr(self, x, u, v):
        _deprecated_call(self, "_reverse_transp_follow_retr")
        return _dispatch(self, "_reverse_transp_follow_retr")(x, u, v)

    def _reverse_cdist(self, x, y, **options):
        _deprecated_call(self, "_reverse_cdist")
        return _dispatch(self, "_reverse_cdist")(x, y, **options)

    def extra_repr(self) -> str:
        if self.domain.embedded:
            return f"dim={self.dim}, ambient_dim={self.ambient_dim}"
        return f"dim={self.dim}"


class Reversed(FinslerManifold):
    r"""The reverse metric $\tilde F(x, v) = F(x, -v)$ of `base`, sharing its parameters.

    Args:
        base: a `FinslerManifold`.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))
        >>> r = Reversed(m)
        >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> bool(r.dist(x, y) == m.dist(y, x)), r.reverse() is m
        (True, True)
    """

    name = "Reversed"
    __scaling__ = FinslerManifold.__scaling__.copy()

    def __init__(self, base: FinslerManifold):
        if not isinstance(base, FinslerManifold):
            raise TypeError(f"Reversed needs a FinslerManifold, got {type(base).__name__}")
        super().__init__(domain=base.domain)
        self.base = base

    # attributes of the wrapped manifold that the reverse metric shares (a, radius, options...)
    # or negates (b); anything else is not forwarded, so no forward-metric quantity leaks through
    _SHARED = frozenset(
        {"a", "radius", "drift_norm", "max_asymmetry", "rank", "max_drift", "max_condition", "eps",
         "solver", "validate"}
    )

    def __getattr__(self, item):
        try:
            return super().__getattr__(item)
        except AttributeError:
            base = self._modules.get("base")
            if base is not None and item in self._SHARED:
                return getattr(base, item)
            if base is not None and item == "b" and isinstance(getattr(type(base), "b", None), property):
                return -base.b
            raise

    # ------------------------------------------------------------------ Randers data
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.base.coefficients(x)
        return a, -b

    def factor(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        factored = self.base.factor()
        return None if factored is None else (factored[0], -factored[1])

    # ------------------------------------------------------------------ pointwise
    def norm(self, x, u, *, keepdim=False):
        return self.base.norm(x, -u, keepdim=keepdim)

    def dual_norm(self, x, xi, *, keepdim=False):
        return self.base.dual_norm(x, -xi, keepdim=keepdim)

    def legendre(self, x, u):
        return -self.base.legendre(x, -u)

    def inverse_legendre(self, x, xi):
        return -self.base.inverse_legendre(x, -xi)

    def fundamental_tensor(self, x, u):
        return self.base.fundamental_tensor(x, -u)

    def projx(self, x):
        return self.base.projx(x)

    def proju(self, x, u):
        return self.base.proju(x, u)

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        return self.base._check_point_on_manifold(x, atol=atol, rtol=rtol)

    def _check_vector_on_tangent(self, x, u, *, atol=1e-5, rtol=1e-5):
        return self.base._check_vector_on_tangent(x, u, atol=atol, rtol=rtol)

    # ------------------------------------------------------------------ distances and geodesics
    def dist(self, x, y, *, keepdim=False, **options):
        r"""$\tilde d(x \to y) = d(y \to x)$ (options go to the wrapped manifold's `dist`)."""
        return self.base.dist(y, x, keepdim=keepdim, **options)

    def cdist(self, x, y, **options):
        r"""`[..., i, j]` $= \tilde d(x_i \to y_j) = d(y_j \to x_i)$."""
        if self.factor() is not None:
            # the wrapped metric's kernel on swapped arguments (its float64 data included)
            return self.base.cdist(y, x).mT
        return self.base.reverse_cdist(x, y, **options)

    def expmap(self, x, u, **options):
        return self.base.reverse_expmap(x, u, **options)

    def logmap(self, x, y, **options):
        return self.base.reverse_logmap(x, y, **options)

    def retr(self, x, u):
        return self.base.reverse_retr(x, u)

    # parallel transport of the reverse metric: the wrapped manifold's hooks (the reverse metric's
    # Chern connection at reference y is the wrapped one's at -y, so it is not the wrapped transport)
    def transp_follow_expmap(self, x, u, v):
        return self.base.reverse_transp_follow_expmap(x, u, v)

    def transp_follow_retr(self, x, u, v):
        return self.base.reverse_transp_follow_retr(x, u, v)

    def transp(self, x, y, v):
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def retr_transp(self, x, u, v):
        return self.retr(x, u), self.transp_follow_retr(x, u, v)

    def random(self, *size, **kwargs):
        points = self.base.random(*size, **kwargs).as_subclass(torch.Tensor)
        return geoopt.ManifoldTensor(points, manifold=self)

    def reverse(self) -> FinslerManifold:
        return self.base

    def navigation(self, *args):
        """Zermelo data `(h, -W)` of the reverse metric, where the wrapped manifold has `(h, W)`."""
        h, wind = self.base.navigation(*args)
        return h, -wind

    # extension points, so that Reversed(Reversed(m)) behaves as m
    def reverse_expmap(self, x, u, **options):
        return self.base.expmap(x, u, **options)

    def reverse_logmap(self, x, y, **options):
        return self.base.logmap(x, y, **options)

    def reverse_cdist(self, x, y, **options):
        return self.base.cdist(x, y, **options)

    def reverse_retr(self, x, u):
        return self.base.retr(x, u)

    def reverse_transp_follow_expmap(self, x, u, v):
        return self.base.transp_follow_expmap(x, u, v)

    def reverse_transp_follow_retr(self, x, u, v):
        return self.base.transp_follow_retr(x, u, v)

    def extra_repr(self) -> str:
        return f"reverse of {self.base.name}({self.base.extra_repr()})"


for _name in _GEOOPT_KEYWORDS:
    setattr(FinslerManifold, _name, _geoopt_keywords(FinslerManifold.__dict__[_name]))
del _name
