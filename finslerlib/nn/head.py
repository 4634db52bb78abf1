r"""`FAIMHead`: a drop-in replacement for the final `nn.Linear` of a classifier.

Each class $k$ has a prototype $\mu_k$ on a Finsler manifold; the logits are negative scaled
geodesic distances, $\text{logit}_k = -s\, d(x \to \mu_k)$ (or the reverse direction, or the
larger of the two). Features are put on the manifold with `manifold.expmap0`, which is the
identity on a flat `Randers` space (so features are used as they are) and maps $\mathbb{R}^D$
into the ball for `FunkBall`.

When the head builds its own learnable metric (`manifold=None`), it stores the prototypes in the
metric's factor coordinates (see `FAIMHead`), so a training step costs about an `nn.Linear`.

This file is over 500 lines because the head's API (constructor, `from_linear`,
`init_prototypes_`, the margin forward) and its two prototype storages live together.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import geoopt
import torch
import torch.nn.functional as nnf
from torch import nn

from finslerlib.manifolds import FinslerManifold, Randers
from finslerlib.math import randers as rmath
from finslerlib.nn import classifier as _swap
from finslerlib.nn._init import ScaledOrthogonalLinear, reset_children
from finslerlib.nn._kernels import DIRECTION_SIGNS, factor_head_logits, unit_randers_logits
from finslerlib.nn.functional import check_features, check_labels, compute_dtype

__all__ = ["FAIMHead"]

_DIRECTIONS = ("to_prototype", "from_prototype", "max")


def _metric_factor(manifold) -> tuple[torch.Tensor, torch.Tensor] | None:
    r"""`(L, w)` of a constant Randers metric ($a = L L^\top$, $b = L w$), or `None`.

    The one place the nn layers read a manifold's factor: its public `factor()`.
    """
    factor = getattr(manifold, "factor", None) if isinstance(manifold, Randers) else None
    return None if factor is None else factor()


def _factor_rows(manifold, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(z @ L, w)` of a constant Randers metric, rows `z` `[B, D]` in their dtype (its public
    `factor_rows`, which a learnable metric computes without building `L`)."""
    s, w = manifold.factor_rows(z)
    return s, w.to(z.dtype)


class _FactorCoordinates(Randers):
    r"""The unit Randers space $F(y) = |y| + w \cdot y$ of a constant metric, sharing its drift.

    For a Randers metric with $a = L L^\top$, $b = L w$, the linear map $y = L^\top v$ is an
    isometry from it onto this space (`Randers(I, w)`), so geodesics, distances and Finsler
    gradients correspond exactly: a geoopt step on points $m = L^\top \mu$ here is the same
    Finsler step on $\mu$ there, at the current metric. `w` is read from the source metric on
    every call (a learnable drift stays learnable). Used by `FAIMHead` for its stored
    prototypes; not registered as a submodule (the source is the head's `manifold`).

    Args:
        source: a constant Randers metric with a factor (`Randers`, `Randers.learnable`).
    """

    name = "FactorCoordinates"

    def __init__(self, source):
        FinslerManifold.__init__(self, source.dim)
        if _metric_factor(source) is None:
            raise ValueError(f"{type(source).__name__} has no factor (a = L L^T, b = L w)")
        self.source = source

    @property
    def descent(self) -> str:
        """The source metric's `descent`: the head's optimizer steps as it would on the source."""
        return getattr(self.source, "descent", "forward")

    def _drift(self) -> torch.Tensor:
        return _metric_factor(self.source)[1]

    def factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`(I, w)`: the unit space's factor, with the source metric's drift `w`."""
        w = self._drift()
        return torch.eye(w.shape[-1], dtype=w.dtype, device=w.device), w

    def _coefficients(self):
        return self.factor()

    def norm(self, x, u, *, keepdim=False):
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.norm(u, None, self._drift().to(u), keepdim=keepdim)

    def legendre(self, x, u):
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.legendre(u, None, self._drift().to(u))

    def dual_norm(self, x, xi, *, keepdim=False):
        self.validate_inputs(x, xi, names=("x", "xi"))
        return rmath.dual_norm(xi, None, self._drift().to(xi), keepdim=keepdim)

    def inverse_legendre(self, x, xi):
        self.validate_inputs(x, xi, names=("x", "xi"))
        return rmath.inverse_legendre(xi, None, self._drift().to(xi))

    def fundamental_tensor(self, x, u):
        self.validate_inputs(x, u, names=("x", "u"))
        return rmath.fundamental_tensor(u, None, self._drift().to(u))

    def cdist(self, x, y):
        if x.dim() == 2 and y.dim() == 2 and x.shape[-1] == y.shape[-1] == self.dim:
            return unit_randers_logits(x, y, self._drift().to(x))
        return super().cdist(x, y)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unit factor coordinates of {type(self.source).__name__}"


class PrototypeView(geoopt.ManifoldParameter):
    """The points of a head whose prototypes are stored in factor coordinates: read-only.

    Computed from `prototype_coords` on every read, so an in-place write to it (`copy_`,
    `mul_`, `[...] =`, `.data =`) would change nothing: it raises instead, naming the setter
    (`head.prototypes = points`). Results of operations on it are plain tensors.
    """

    _MESSAGE = (
        "head.prototypes is computed from head.prototype_coords (factor coordinates) on every read, "
        "so writing into it would change nothing; assign the points instead: head.prototypes = points"
    )

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        in_place = name.endswith("_") and not name.startswith("_") and name != "requires_grad_"
        sets_data = name == "__set__" and getattr(func, "__self__", None) is torch.Tensor.data
        writes = in_place or sets_data or name == "__setitem__" or name.startswith("__i")
        if writes and args and isinstance(args[0], PrototypeView):  # the view is the target
            raise RuntimeError(cls._MESSAGE)
        return super().__torch_function__(func, types, args, kwargs or {})


# classes per block of the prototypes' initial draw (see `_class_normals`)
_INIT_BLOCK = 1024


def _class_normals(first: int, total: int, like: torch.Tensor) -> torch.Tensor:
    """Standard normal rows for the classes `[first, first + len(like))` of `total`, shaped `like`.

    The draw is a function of the global class index alone: one seed is taken from torch's global
    generator, and each block of `_INIT_BLOCK` classes is drawn from its own CPU generator seeded
    from it. So a rank holding a block of classes gets exactly the rows that a head of all
    `total` classes gets for them under the same `torch.manual_seed` (and the same values on
    every device), while drawing only its own blocks.
    """
    rows, dim = like.shape
    base = int(torch.randint(0, 2**62, ()))
    parts = []
    for block in range(first // _INIT_BLOCK, -(-(first + rows) // _INIT_BLOCK)):
        start = block * _INIT_BLOCK
        size = min(_INIT_BLOCK, total - start)
        gen = torch.Generator().manual_seed((base + 0x9E3779B97F4A7C15 * (block + 1)) % 2**63)
        draw = torch.randn(size, dim, generator=gen, dtype=like.dtype)
        lo, hi = max(first, start) - start, min(first + rows, start + size) - start
        parts.append(draw[lo:hi])
    return torch.cat(parts).to(like.device) if parts else like.new_zeros(0, dim)


class FAIMHead(nn.Module):
    r"""Prototype classifier with Finsler (Randers) geodesic logits.

    $$\text{logits}_{ik} = -s\, \delta(x_i, \mu_k), \qquad
      \delta = \begin{cases} d(x \to \mu) & \texttt{"to\_prototype"} \\
      d(\mu \to x) & \texttt{"from\_prototype"} \\
      \max(d(x \to \mu),\, d(\mu \to x)) & \texttt{"max"} \end{cases}$$

    For a flat Randers metric with $a = \Sigma$, $b = \lambda \beta$, `"max"` is exactly the
    `einsum` head of `docs/concepts/classification.md`,
    $\sqrt{(x-\mu)^\top \Sigma (x-\mu)} + \lambda |\beta \cdot (x-\mu)|$,
    since $\max(\alpha + \beta, \alpha - \beta) = \alpha + |\beta|$ (a symmetric metric); the
    other two directions are the asymmetric ones. Where the drift is exactly zero, `"max"` gives it
    a zero gradient ($|\\beta \\cdot (x - \\mu)|$ at $\\beta = 0$), so a learnable metric's drift,
    which starts at zero, stays there: start it off zero to learn it under `"max"` (for
    `Randers.learnable`, `manifold.drift_raw.data.normal_(std=1e-2)`).

    All `[B, C]` distances come from `manifold.cdist`: no `[B, C, D]` tensor is ever built
    (`"max"` needs both directions, i.e. two `cdist` calls, about twice the cost).
    The distance math runs outside `torch.autocast`, in float32 at least (float64 stays
    float64); the logits are float32 under autocast.

    Which metric:

    * `manifold=None, rank=None`: a learnable full-rank metric `Randers.learnable(in_features)`
      (Cholesky factor + bounded drift; starts Euclidean). Cost per forward is about
      $B D^2 + B C D$ multiply-adds (prototypes in factor coordinates, below): at
      $C \gg D$ about an `nn.Linear`.
    * `manifold=None, rank=r`: a strongly convex Randers metric on an `r`-dimensional learned
      projection: a bias-free linear map $P: \mathbb{R}^D \to \mathbb{R}^r$ followed by a
      full-rank `Randers.learnable(r)` $F_r$; prototypes live in $\mathbb{R}^r$ and
      $d(x \to \mu_k) = F_r(\mu_k - P x)$. Cost $B D r + B r^2 + B C r$: for $r \ll D$
      cheaper than the `nn.Linear` it replaces ($B D C$). As a metric on the features it is
      degenerate along $\ker P$ (a pseudo-metric), which is what a low-rank head wants.
    * `manifold` given: any finslerlib manifold (`Randers`, `FunkBall`, `RandersField`, ...).
      Its dimension must be `in_features`, or, with `rank=r`, it must be `r` and features are
      first projected by a learned $P: \mathbb{R}^D \to \mathbb{R}^r$ (then `expmap0`). On an
      embedded manifold (a sphere or hyperboloid base, `ambient_dim = dim + 1`) that is its
      intrinsic `dim`: the features are the tangent vector $(0, x)$ at the origin $e_0$.
      The prototypes are stored as points of `manifold` (the parameter `prototypes`).

    Factor coordinates (`manifold=None`). With the learnable metric's factor $a = L L^\top$,
    $b = L w$, the head stores $m_k = L^\top \mu_k$ (the parameter `prototype_coords`) and
    computes $d(x \to \mu_k) = |m_k - s| + w \cdot (m_k - s)$ with $s = L^\top x$: only the
    batch is multiplied by $L$ ($B D^2$), never the $C$ prototypes. This is a
    reparametrization, not a new model: $(L, w, m) \mapsto (L, w, \mu = L^{-\top} m)$ is a
    bijection ($L$ is invertible), so the head computes exactly the functions it computes with
    $\mu$ stored. What changes is the training dynamics: a step on $L$ moves
    $\mu_k = L^{-\top} m_k$ with it (the prototypes follow the metric), and gradient steps are
    taken in the coordinates $m$. `prototype_coords` is a `geoopt.ManifoldParameter` on the
    unit Randers space $F(y) = |y| + w \cdot y$ (`Randers(I, w)`, sharing the drift), onto
    which $y = L^\top v$ maps the metric isometrically; so a `RiemannianSGD` step on $m$ is
    exactly the Finsler gradient step on $\mu$ at the current metric. With momentum this holds
    only when the momentum buffer starts at zero: geoopt seeds it with the raw (Euclidean)
    gradient, which the change of coordinates maps differently from the Finsler gradient, so
    the two trajectories differ from the first step on (seed it with
    `optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)` to get the Finsler steps).
    `head.prototypes` reads the points $\mu_k$ (a read-only `PrototypeView` on `manifold`, computed by one
    triangular solve; its `.grad`, when `prototype_coords` has one, is the loss gradient with
    respect to the points at the current metric). Write points with `head.prototypes = points`
    (in-place writes into the view raise: they would change nothing).
    Checkpoints holding `prototypes` (points) load too: they are converted with the metric
    of the same checkpoint.

    Args:
        in_features: feature dimension `D`.
        num_classes: number of classes `C`.
        manifold: a finslerlib manifold, or `None` for a learnable Randers metric.
        scale: initial logit scale $s > 0$.
        learn_scale: learn $s$ (stored as `log_scale`, so it stays positive) or keep it fixed
            (a buffer, still saved in the `state_dict`).
        direction: `"to_prototype"`, `"from_prototype"` or `"max"` (see above).
        rank: `None`, or the dimension `r` of a learned projection (see above).
        margin: default additive geodesic margin $m \ge 0$ applied by `forward(x, labels)`.
        dtype: parameter dtype (default: torch's default dtype).
        device: parameter device (`"meta"` for deferred initialization: materialize with
            `to_empty(device=...)`, then call `reset_parameters()`).

    Attributes:
        manifold: the manifold (a submodule when it has parameters).
        prototypes: points on `manifold`, shape `[C, D']` ($D'$ = `in_features` or `r`): the
            `geoopt.ManifoldParameter` itself for a given manifold, a read-only view computed
            from `prototype_coords` for `manifold=None`.
        prototype_coords: `manifold=None` only: `geoopt.ManifoldParameter`, shape `[C, D']`,
            the prototypes in factor coordinates (see above).
        factor_coordinates: whether the prototypes are stored in factor coordinates
            (`manifold=None`).
        projection: the `nn.Linear(D, r, bias=False)` map $P$, or `None`.

    Raises:
        ValueError: bad sizes, `scale <= 0`, an unknown `direction`, or a manifold whose
            dimension does not fit `in_features` / `rank`.

    Example:
        >>> head = FAIMHead(16, 5)
        >>> x = torch.randn(8, 16)
        >>> head(x).shape
        torch.Size([8, 5])
        >>> bool((head(x) == -head.scale * head.distances(x)).all())
        True
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        manifold: geoopt.Manifold | None = None,
        *,
        scale: float = 10.0,
        learn_scale: bool = True,
        direction: str = "to_prototype",
        rank: int | None = None,
        margin: float = 0.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if int(in_features) < 1 or int(num_classes) < 1:
            raise ValueError(f"in_features and num_classes must be >= 1, got {in_features}, {num_classes}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        if not float(scale) > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if not float(margin) >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if rank is not None and not 1 <= int(rank) <= int(in_features):
            raise ValueError(f"rank must be None or in [1, in_features={in_features}], got {rank}")
        factory = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.direction = direction
        self.rank = None if rank is None else int(rank)
        self.margin = float(margin)
        manifold_dim = self.in_features if rank is None else self.rank
        self.factor_coordinates = manifold is None
        if manifold is None:
            manifold = Randers.learnable(manifold_dim, **factory)
        elif getattr(manifold, "dim", None) != manifold_dim:
            size = getattr(manifold, "dim", None)
            what = "in_features" if rank is None else "rank"
            hint = "" if rank is not None else " (pass rank=manifold.dim to learn a projection onto it)"
            if getattr(manifold, "ambient_dim", size) != size:
                hint += (
                    f"; on an embedded manifold (ambient_dim {manifold.ambient_dim}) the features are its "
                    f"{size} intrinsic coordinates, the tangent space at the origin"
                )
            raise ValueError(f"manifold has dim {size} but {what} is {manifold_dim}{hint}")
        # embedded manifolds (sphere, hyperboloid: ambient_dim = dim + 1, origin e_0): the D'
        # features are the tangent vector (0, x) at the origin, so every feature matters
        self._tangent_pad = getattr(manifold, "ambient_dim", manifold_dim) - manifold_dim
        if self._tangent_pad not in (0, 1):
            raise ValueError(
                f"manifold has ambient_dim {manifold.ambient_dim} for dim {manifold_dim}: FAIMHead supports "
                "open subsets of R^D and codimension-one embedded manifolds (sphere, hyperboloid)"
            )
        self.manifold = manifold
        if rank is None:
            self.projection = None
        else:
            self.projection = ScaledOrthogonalLinear(self.in_features, self.rank, bias=False, **factory)
        storage = torch.empty(self.num_classes, manifold_dim + self._tangent_pad, **factory)
        if self.factor_coordinates:
            self.prototype_coords = geoopt.ManifoldParameter(storage, manifold=_FactorCoordinates(manifold))
            self._register_load_state_dict_pre_hook(_points_to_coordinates, with_module=True)
        else:
            self.prototypes = geoopt.ManifoldParameter(storage, manifold=manifold)
        self._init_log_scale = math.log(float(scale))
        log_scale = torch.tensor(self._init_log_scale, **factory)
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self._reset_own_parameters()

    def reset_parameters(self) -> None:
        r"""Every parameter and buffer of the head back to its constructor's initialization.

        Prototypes $\exp_0(v)$ with $v \sim \mathcal{N}(0, I/D')$ (norm about 1); the scale
        back to its initial value; the submodules' own `reset_parameters` (a learnable metric
        back to the Euclidean one, a projection with orthonormal rows scaled by $\sqrt{D/r}$, so
        $|Px| \approx |x|$). On the meta device only shapes exist, so only the scale is set.
        Fixed-coefficient manifolds (`Randers(a, b)`) hold data, not an initialization: after
        `to_empty` load them from a `state_dict`.
        """
        reset_children(self)
        self._reset_own_parameters()

    def _reset_own_parameters(self) -> None:
        """The scale and the prototypes (the submodules initialize themselves when built)."""
        with torch.no_grad():
            self.log_scale.fill_(self._init_log_scale)
        stored = self._stored_prototypes()
        if stored.is_meta:
            return
        with torch.no_grad():
            dim = stored.shape[-1] - self._tangent_pad
            v = _class_normals(*self._global_rows(), stored[:, :dim]) / math.sqrt(dim)
            for attempt in range(12):
                try:
                    points = self.manifold.projx(self.manifold.expmap0(self._tangent0(v)))
                    break
                except ValueError:
                    # a geodesic left a bounded domain (a navigation metric's |W|_h < 1, say):
                    # start the prototypes closer to the origin
                    if attempt == 11:
                        raise
                    v = v / 2
            self._set_prototypes(points)

    def _tangent0(self, v: torch.Tensor) -> torch.Tensor:
        """`v` `[..., D']` as a tangent vector at the manifold's origin: `(0, v)` on an embedded one."""
        return nnf.pad(v, (1, 0)) if self._tangent_pad else v

    def _global_rows(self) -> tuple[int, int]:
        """`(first, total)`: the global index of the first stored class, and the number of classes
        (`(0, num_classes)`; a sharded head stores a block of them)."""
        return 0, self.num_classes

    @property
    def out_features(self) -> int:
        """`num_classes` (the name `nn.Linear` uses, so code reading `head.out_features` works)."""
        return self.num_classes

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        manifold: geoopt.Manifold | None = None,
        **kwargs: Any,
    ) -> FAIMHead:
        r"""A head replacing `linear`, with prototypes that reproduce its class ranking.

        Same `in_features`, `num_classes` (= `linear.out_features`), dtype and device as
        `linear`; `kwargs` go to the constructor (`scale`, `direction`, `rank`, ...). With
        $a, b$ the metric's coefficients at the origin, the prototypes are
        $\mu_k = \exp_0\big(\tfrac{\lambda}{2} a^{-1} w_k + e\big)$, with $e$ solving the bias
        equations of `finslerlib.nn.classifier` ($\lambda$ sets their mean $a$-norm to 1).

        What holds: when the metric is constant and Riemannian ($b = 0$: the default learnable
        metric at initialization, `Randers(a)`), features are used as they are (`Randers`, whose
        `expmap0` is the identity) and the $C \times (D' + 1)$ matrix $[W, -1]$ has full row
        rank (for generic weights: `num_classes <= D' + 1`), the head orders the classes exactly
        as `linear` does, for every input (same argmax, same ranking; the softmax probabilities
        differ: distances are not affine in $x$). With `rank=r` the projection spans the top-`r`
        right singular vectors of $W$ and $W$ is replaced by $W' = W V_r$ (rescaled): exact when
        also $\operatorname{rank} W \le r$. Otherwise (more classes, a drift, a curved manifold
        such as `FunkBall`) the bias equations are solved in the least-squares sense and the
        ranking is approximate.

        A full-rank head for few classes ($C \ll D$) has many times the Linear's parameters
        ($D^2$ for the metric): over four times, a `HeadSizeWarning` suggests `rank=`.

        Args:
            linear: the `nn.Linear(in_features, num_classes)` to replace.
            manifold: as in the constructor (`None`: a learnable Randers metric).
            **kwargs: further constructor arguments.

        Returns:
            A new `FAIMHead`.

        Example:
            >>> linear = torch.nn.Linear(8, 5)
            >>> head = FAIMHead.from_linear(linear)
            >>> x = torch.randn(100, 8)
            >>> bool((head(x).argsort(-1) == linear(x).argsort(-1)).all())
            True
        """
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        kwargs.setdefault("dtype", linear.weight.dtype)
        kwargs.setdefault("device", linear.weight.device)
        head = cls(linear.in_features, linear.out_features, manifold, **kwargs)
        weight = linear.weight.detach()
        bias = None if linear.bias is None else linear.bias.detach()
        _swap.warn_if_much_larger(linear, head)
        if head.projection is not None:
            proj, weight = _swap.projection_from_weight(weight, head.rank)
            with torch.no_grad():
                head.projection.weight.copy_(proj)
        dim = weight.shape[-1]
        try:
            if head._tangent_pad:  # an embedded manifold: the Euclidean metric of the tangent space
                raise NotImplementedError
            a, _ = head.manifold.coefficients(torch.zeros(dim, dtype=torch.float64, device=weight.device))
            a = a.detach().reshape(dim, dim)
        except NotImplementedError:  # a manifold without Randers data: the Euclidean chart
            a = torch.eye(dim, dtype=torch.float64, device=weight.device)
        coords, _ = _swap.linear_prototypes(weight, bias, a)
        dtype = head.prototypes.dtype
        with torch.no_grad():
            tangent = head._tangent0(coords.to(dtype))
            head._set_prototypes(head.manifold.projx(head.manifold.expmap0(tangent)))
        return head

    def init_prototypes_(self, features: torch.Tensor, labels: torch.Tensor) -> FAIMHead:
        r"""Set each prototype to its class mean, taken on the manifold: $\mu_k = \exp_0(\bar v_k)$.

        $\bar v_k$ is the mean of $\log_0$ of the embedded features (`embed`, i.e. after the
        projection and `expmap0`) of class `k`; on a flat `Randers` space it is the plain class
        mean. Classes without samples keep their prototype.

        Args:
            features: Tensor, shape `[N, in_features]`.
            labels: Tensor, shape `[N]`, integer classes in `[0, num_classes)`.

        Returns:
            The head itself.

        Example:
            >>> head = FAIMHead(2, 2)
            >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
            >>> head.init_prototypes_(x, torch.tensor([0, 0, 1])).prototypes.data
            tensor([[1., 0.],
                    [0., 4.]])
        """
        if features.dim() != 2 or labels.shape != features.shape[:1]:
            raise ValueError(
                f"features must be [N, {self.in_features}] and labels [N], "
                f"got {tuple(features.shape)} and {tuple(labels.shape)}"
            )
        check_labels(labels, self.num_classes)
        with torch.no_grad():
            tangent = self.manifold.logmap0(self.embed(features.detach()))
            means, counts = _swap.class_means(tangent, labels, self.num_classes)
            points = self.manifold.projx(self.manifold.expmap0(means)).to(self.prototypes.dtype)
            keep = (counts == 0).unsqueeze(-1)
            self._set_prototypes(torch.where(keep, self.prototypes.detach(), points))
        return self

    # ----------------------------------------------------------------- prototype storage
    def _stored_prototypes(self) -> geoopt.ManifoldParameter:
        """The prototype parameter as stored: points, or factor coordinates."""
        return self._parameters["prototype_coords" if self.factor_coordinates else "prototypes"]

    @property
    def prototypes(self) -> torch.Tensor:
        """The class prototypes as points on `manifold`, shape `[C, D']` (see the class docs).

        Reading: the parameter itself for a given manifold; for `manifold=None` a read-only
        `PrototypeView` computed from `prototype_coords` (in-place writes to it raise).
        Writing: `head.prototypes = points` on every head (copied into the stored parameter,
        converted to factor coordinates when the head uses them).
        """
        params = self.__dict__.get("_parameters", {})
        if "prototypes" in params:
            return params["prototypes"]
        coords = params.get("prototype_coords")
        if coords is None:
            raise AttributeError("prototypes")
        with torch.no_grad():
            chol = _metric_factor(self.manifold)[0].to(coords)
            # rows: m = mu L, so mu = m L^{-1}
            points = torch.linalg.solve_triangular(chol, coords.detach(), upper=False, left=False)
            out = PrototypeView(points, manifold=self.manifold, requires_grad=False)
            if coords.grad is not None:
                # dl/dmu = dl/dm L^T at the current metric
                out.grad = coords.grad @ chol.mT
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        # `head.prototypes = points` writes the points on every head (the parameter keeps its
        # identity, so an optimizer holding it keeps working)
        params = self.__dict__.get("_parameters", {})
        if name == "prototypes" and ("prototype_coords" in params or "prototypes" in params):
            if "prototypes" in params and isinstance(value, nn.Parameter):
                super().__setattr__(name, value)  # replacing the parameter itself
            else:
                self._set_prototypes(value)
            return
        super().__setattr__(name, value)

    @prototypes.setter
    def prototypes(self, points: torch.Tensor) -> None:
        # reached through `__setattr__` (nn.Module's own would refuse a tensor for a parameter)
        self._set_prototypes(points)

    def _set_prototypes(self, points: torch.Tensor) -> None:
        """Write the prototypes from points on `manifold`, shape `[C, D']` (no gradient)."""
        if not isinstance(points, torch.Tensor):
            raise TypeError(f"prototypes must be a tensor of points, got {type(points).__name__}")
        stored = self._stored_prototypes()
        if points.shape != stored.shape:
            raise ValueError(f"points must have shape {tuple(stored.shape)}, got {tuple(points.shape)}")
        with torch.no_grad():
            points = points.to(stored)
            if self.factor_coordinates:
                points = points @ _metric_factor(self.manifold)[0].to(stored)
            stored.copy_(points)

    @property
    def scale(self) -> torch.Tensor:
        """The logit scale $s = \\exp(\\text{log\\_scale})$, a scalar tensor."""
        return self.log_scale.exp()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features on the manifold: `manifold.expmap0(x)`, after the projection when `rank` is set.

        On an embedded manifold (sphere, hyperboloid: `ambient_dim = dim + 1`, origin $e_0$) the
        features are the tangent vector $(0, x)$ at the origin: all `D'` of them matter.

        Args:
            x: Tensor, shape `[..., in_features]`.

        Returns:
            Tensor, shape `[..., D']` (`[..., D' + 1]` on an embedded manifold), in the compute
            dtype (float32 at least).
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape [..., {self.in_features}] (features), got {tuple(x.shape)}")
        check_features(x, self._stored_prototypes())
        dtype = compute_dtype(x, self._stored_prototypes())
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            if self.projection is not None:
                x = x @ self.projection.weight.to(dtype).mT
            if self.factor_coordinates:
                return x  # expmap0 of the flat learnable metric is the identity (x is checked)
            return self.manifold.expmap0(self._tangent0(x))

    def _scaled_distances(
        self,
        x: torch.Tensor,
        scale_sign: float | None,
        labels: torch.Tensor | None = None,
        margin: float = 0.0,
    ) -> torch.Tensor:
        """`scale_sign * scale * distances(x)` (no scaling for `None`), shape `[..., num_classes]`;
        with `labels` (checked here, after the features), each row's target distance grows by
        `margin` first."""
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
        fused = self._fused_metric()
        if fused is None:
            z = self.embed(flat)
        else:  # the checks of `embed`; the projection is done inside the fused head
            if x.shape[-1] != self.in_features:
                raise ValueError(
                    f"x must have shape [..., {self.in_features}] (features), got {tuple(x.shape)}"
                )
            check_features(x, self.prototype_coords)
            z = flat
        if labels is not None:
            if labels.shape != lead:
                raise ValueError(f"labels must have shape {tuple(lead)}, got {tuple(labels.shape)}")
            check_labels(labels, self.num_classes)
            labels = labels.reshape(-1)
            if not margin:
                labels = None
        sign = DIRECTION_SIGNS[self.direction]
        with torch.autocast(device_type=x.device.type, enabled=False):
            if fused is not None:
                # one autograd node for projection, factor, drift, scale and logits
                dtype = compute_dtype(x, self.prototype_coords)
                proj = None if self.projection is None else self.projection.weight.to(dtype)
                log_scale = None if scale_sign is None else self.log_scale.to(dtype)
                d = factor_head_logits(
                    z.to(dtype), proj, fused.chol_raw.to(dtype), fused.drift_raw.to(dtype),
                    self.prototype_coords.to(dtype), log_scale, eps=fused.eps, max_drift=fused.max_drift,
                    scale_sign=1.0 if scale_sign is None else scale_sign, sign=sign, labels=labels,
                    margin=margin,
                )
            elif self.factor_coordinates:
                s, w = _factor_rows(self.manifold, z)
                coords = self.prototype_coords.to(z.dtype)
                scale = None if scale_sign is None else (scale_sign * self.scale).to(z.dtype)
                d = unit_randers_logits(s, coords, w, scale, sign=sign, labels=labels, margin=margin)
            else:
                mu = self.prototypes.to(z.dtype)
                if self.direction == "to_prototype":
                    d = self.manifold.cdist(z, mu)
                elif self.direction == "from_prototype":
                    d = self.manifold.cdist(mu, z).mT
                else:
                    d = torch.maximum(self.manifold.cdist(z, mu), self.manifold.cdist(mu, z).mT)
                if labels is not None:
                    # the target class's distance grows by the margin
                    d = d.scatter_add(-1, labels.unsqueeze(-1), d.new_full((d.shape[0], 1), margin))
                if scale_sign is not None:
                    d = d * (scale_sign * self.scale).to(d.dtype)
        return d.reshape(*lead, d.shape[-1])

    def _fused_metric(self) -> Randers | None:
        """The head's own learnable full-rank metric when the fused head applies, else `None`.

        That is a factor-coordinates head whose metric has the parameters of a full-rank
        `Randers.learnable(D')` (`chol_raw`, `drift_raw`, `eps`, `max_drift`).
        """
        if not self.factor_coordinates:
            return None
        metric = self.manifold
        if getattr(metric, "rank", 0) is not None or not hasattr(metric, "chol_raw"):
            return None
        return metric

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Distances between features and prototypes in the head's `direction`.

        Args:
            x: Tensor, shape `[..., in_features]`.

        Returns:
            Tensor, shape `[..., num_classes]`, float32 at least.
        """
        return self._scaled_distances(x, None)

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, *, margin: float | None = None
    ) -> torch.Tensor:
        r"""Logits $-s\, \delta(x, \mu_k)$; with `labels`, the geodesic-margin logits.

        With `labels`, the true class is pushed `margin` further away,
        $-s\,(\delta(x, \mu_k) + m\,\mathbb{1}[k = y])$, so `cross_entropy(head(x, y), y)` is
        the additive geodesic-margin loss (`functional.margin_loss`, the CosFace idea on
        distances). Computing it here, inside the module's forward, is what keeps it correct
        under `DistributedDataParallel` (call the wrapped model with the labels).

        Args:
            x: Tensor, shape `[..., in_features]`.
            labels: optional Tensor, shape `[...]`, integer classes in `[0, num_classes)`.
            margin: $m \ge 0$ for this call (default: the head's `margin`); used only with labels.

        Returns:
            Tensor, shape `[..., num_classes]`, float32 at least.

        Example:
            >>> head = FAIMHead(8, 3, margin=0.5)
            >>> x, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
            >>> bool((head(x, y) < head(x)).gather(1, y[:, None]).all())  # only the true class moves
            True
        """
        if labels is None:
            return self._scaled_distances(x, -1.0)
        m = self.margin if margin is None else float(margin)
        if not m >= 0:
            raise ValueError(f"margin must be >= 0, got {m}")
        # the true class's distance grows by m (its logit drops by s * m): added inside the
        # fused kernel for the head's own metric, before the scale elsewhere
        return self._scaled_distances(x, -1.0, labels, m)

    def extra_repr(self) -> str:
        rank = "" if self.rank is None else f", rank={self.rank}"
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"direction={self.direction!r}{rank}, margin={self.margin}, "
            f"learn_scale={isinstance(self.log_scale, nn.Parameter)}"
        )


def _points_to_coordinates(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
    """Load-time conversion of a checkpoint storing points (`prototypes`) into factor coordinates.

    The points are mapped with the factor of the metric in the same checkpoint (the current
    metric for entries the checkpoint lacks), so the loaded head computes what the saved one did.
    """
    key = prefix + "prototypes"
    if key not in state_dict or prefix + "prototype_coords" in state_dict:
        return
    points = state_dict.pop(key)
    metric = copy.deepcopy(module.manifold)
    sub = prefix + "manifold."
    entries = {k[len(sub) :]: v for k, v in state_dict.items() if k.startswith(sub)}
    metric.load_state_dict(entries, strict=False)
    with torch.no_grad():
        chol = _metric_factor(metric)[0]
        if points.dim() != 2 or points.shape[-1] != chol.shape[0]:
            raise ValueError(
                f"checkpoint prototypes must have shape [C, {chol.shape[0]}], got {tuple(points.shape)}"
            )
        state_dict[prefix + "prototype_coords"] = points.to(chol) @ chol
