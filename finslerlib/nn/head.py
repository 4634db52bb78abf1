r"""`FAIMHead`: a drop-in replacement for the final `nn.Linear` of a classifier.

Each class $k$ has a prototype $\mu_k$ on a Finsler manifold; the logits are negative scaled
geodesic distances, $\text{logit}_k = -s\, d(x \to \mu_k)$ (or the reverse direction, or the
larger of the two). Features are put on the manifold with `manifold.expmap0`, which is the
identity on a flat `Randers` space (so features are used as they are) and maps $\mathbb{R}^D$
into the ball for `FunkBall`.
"""

from __future__ import annotations

import math

import geoopt
import torch
from torch import nn

from finslerlib.manifolds import Randers
from finslerlib.nn.functional import compute_dtype

__all__ = ["FAIMHead"]

_DIRECTIONS = ("to_prototype", "from_prototype", "max")


class FAIMHead(nn.Module):
    r"""Prototype classifier with Finsler (Randers) geodesic logits.

    $$\text{logits}_{ik} = -s\, \delta(x_i, \mu_k), \qquad
      \delta = \begin{cases} d(x \to \mu) & \texttt{"to\_prototype"} \\
      d(\mu \to x) & \texttt{"from\_prototype"} \\
      \max(d(x \to \mu),\, d(\mu \to x)) & \texttt{"max"} \end{cases}$$

    For a flat Randers metric with $a = \Sigma$, $b = \lambda \beta$, `"max"` is exactly the
    design notes' head $\sqrt{(x-\mu)^\top \Sigma (x-\mu)} + \lambda |\beta \cdot (x-\mu)|$,
    since $\max(\alpha + \beta, \alpha - \beta) = \alpha + |\beta|$ (a symmetric metric); the
    other two directions are the asymmetric ones.

    All `[B, C]` distances come from `manifold.cdist`: no `[B, C, D]` tensor is ever built
    (`"max"` needs both directions, i.e. two `cdist` calls, about twice the cost).
    The distance math runs outside `torch.autocast`, in float32 at least (float64 stays
    float64); the logits are float32 under autocast.

    Which metric:

    * `manifold=None, rank=None`: a learnable full-rank metric `Randers.learnable(in_features)`
      (Cholesky factor + bounded drift; starts Euclidean). Cost per forward is about
      $(B + C) D^2 + B C D$ multiply-adds, ~3.5x an `nn.Linear` at $D \approx C/2$.
    * `manifold=None, rank=r`: a strongly convex Randers metric on an `r`-dimensional learned
      projection: a bias-free linear map $P: \mathbb{R}^D \to \mathbb{R}^r$ followed by a
      full-rank `Randers.learnable(r)` $F_r$; prototypes live in $\mathbb{R}^r$ and
      $d(x \to \mu_k) = F_r(\mu_k - P x)$. Cost $B D r + (B + C) r^2 + B C r$: for $r \ll D$
      cheaper than the `nn.Linear` it replaces ($B D C$). As a metric on the features it is
      degenerate along $\ker P$ (a pseudo-metric), which is what a low-rank head wants.
    * `manifold` given: any finslerlib manifold (`Randers`, `FunkBall`, `RandersField`, ...).
      Its dimension must be `in_features`, or, with `rank=r`, it must be `r` and features are
      first projected by a learned $P: \mathbb{R}^D \to \mathbb{R}^r$ (then `expmap0`).

    Args:
        in_features: feature dimension `D`.
        num_classes: number of classes `C`.
        manifold: a finslerlib manifold, or `None` for a learnable Randers metric.
        scale: initial logit scale $s > 0$ (the notes' $\gamma$).
        learn_scale: learn $s$ (stored as `log_scale`, so it stays positive) or keep it fixed
            (a buffer, still saved in the `state_dict`).
        direction: `"to_prototype"`, `"from_prototype"` or `"max"` (see above).
        rank: `None`, or the dimension `r` of a learned projection (see above).
        dtype: parameter dtype (default: torch's default dtype).
        device: parameter device.

    Attributes:
        manifold: the manifold (a submodule when it has parameters).
        prototypes: `geoopt.ManifoldParameter`, shape `[C, D']` ($D'$ = `in_features` or `r`),
            on `manifold`, so geoopt's optimizers keep them on it.
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
        manifold=None,
        *,
        scale: float = 10.0,
        learn_scale: bool = True,
        direction: str = "to_prototype",
        rank: int | None = None,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        if int(in_features) < 1 or int(num_classes) < 1:
            raise ValueError(f"in_features and num_classes must be >= 1, got {in_features}, {num_classes}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        if not float(scale) > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if rank is not None and not 1 <= int(rank) <= int(in_features):
            raise ValueError(f"rank must be None or in [1, in_features={in_features}], got {rank}")
        factory = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        self.in_features = int(in_features)
        self.num_classes = int(num_classes)
        self.direction = direction
        self.rank = None if rank is None else int(rank)
        manifold_dim = self.in_features if rank is None else self.rank
        if manifold is None:
            manifold = Randers.learnable(manifold_dim, **factory)
        elif getattr(manifold, "ambient_dim", getattr(manifold, "dim", None)) != manifold_dim:
            size = getattr(manifold, "ambient_dim", getattr(manifold, "dim", None))
            what = "in_features" if rank is None else "rank"
            hint = "" if rank is not None else " (pass rank=manifold.dim to learn a projection onto it)"
            raise ValueError(f"manifold has dim {size} but {what} is {manifold_dim}{hint}")
        self.manifold = manifold
        if rank is None:
            self.projection = None
        else:
            self.projection = nn.Linear(self.in_features, self.rank, bias=False, **factory)
        self.prototypes = geoopt.ManifoldParameter(
            torch.empty(self.num_classes, manifold_dim, **factory), manifold=manifold
        )
        log_scale = torch.tensor(math.log(float(scale)), **factory)
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Prototypes $\exp_0(v)$ with $v \sim \mathcal{N}(0, I/D')$ (norm about 1); a
        projection with orthonormal rows scaled by $\sqrt{D/r}$, so $|Px| \approx |x|$."""
        dim = self.prototypes.shape[-1]
        with torch.no_grad():
            v = torch.randn_like(self.prototypes) / math.sqrt(dim)
            self.prototypes.copy_(self.manifold.projx(self.manifold.expmap0(v)))
            if self.projection is not None:
                nn.init.orthogonal_(self.projection.weight, gain=math.sqrt(self.in_features / self.rank))

    @property
    def scale(self) -> torch.Tensor:
        """The logit scale $s = \\exp(\\text{log\\_scale})$, a scalar tensor."""
        return self.log_scale.exp()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features on the manifold: `manifold.expmap0(x)`, after the projection when `rank` is set.

        Args:
            x: Tensor, shape `[..., in_features]`.

        Returns:
            Tensor, shape `[..., D']`, in the compute dtype (float32 at least).
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected features of shape [..., {self.in_features}], got {tuple(x.shape)}")
        dtype = compute_dtype(x, self.prototypes)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            if self.projection is not None:
                x = x @ self.projection.weight.to(dtype).mT
            return self.manifold.expmap0(x)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Distances between features and prototypes in the head's `direction`.

        Args:
            x: Tensor, shape `[..., in_features]`.

        Returns:
            Tensor, shape `[..., num_classes]`, float32 at least.
        """
        lead = x.shape[:-1]
        z = self.embed(x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            mu = self.prototypes.to(z.dtype)
            if self.direction == "to_prototype":
                d = self.manifold.cdist(z, mu)
            elif self.direction == "from_prototype":
                d = self.manifold.cdist(mu, z).mT
            else:
                d = torch.maximum(self.manifold.cdist(z, mu), self.manifold.cdist(mu, z).mT)
        return d.reshape(*lead, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits $-s\\, \\delta(x, \\mu_k)$.

        Args:
            x: Tensor, shape `[..., in_features]`.

        Returns:
            Tensor, shape `[..., num_classes]`, float32 at least.
        """
        d = self.distances(x)
        return d * -self.scale.to(d.dtype)

    def extra_repr(self) -> str:
        rank = "" if self.rank is None else f", rank={self.rank}"
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"direction={self.direction!r}{rank}, learn_scale={isinstance(self.log_scale, nn.Parameter)}"
        )
