r"""Minkowski–Randers space: constant coefficients $(a, b)$ on $\mathbb{R}^D$.

$F(v) = \sqrt{v^\top a v} + b^\top v$ at every point. Geodesics are straight lines and
segments are globally minimizing, so everything is in closed form:
$d(p \to q) = F(q - p)$, $\exp_p v = p + v$, $\log_p q = q - p$, and
$d(p \to q) - d(q \to p) = 2\, b^\top (q - p)$.
"""

from __future__ import annotations

import math

import geoopt
import torch
import torch.nn.functional as nnf

from finslerlib.manifolds._cholesky import factor_rows, lower_factor
from finslerlib.manifolds.base import FinslerManifold
from finslerlib.math import randers as rmath
from finslerlib.math.validation import check_cdist_shapes, check_finite, check_randers

__all__ = ["Randers"]


def _as_float_tensor(t, name: str) -> torch.Tensor:
    """Randers data as given: a `torch.Tensor` (TypeError otherwise, numpy arrays included), in
    float32 or float64 (integer tensors take torch's default dtype; half precisions are a
    TypeError: the Cholesky factorization every method needs has no float16/bfloat16 kernel)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(t).__name__} (convert it with torch.as_tensor)"
        )
    if t.is_complex():
        raise ValueError(f"{name} must be real, got the complex dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"{name} must be float32 or float64, got {t.dtype} (half precision has no Cholesky "
            f"factorization; build the metric in float32 and use autocast around the rest of the model)"
        )
    return t


def _whiten_covector(chol: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """Covectors to factor coordinates: `eta = L^{-1} xi` (rows: `xi L^{-T}`)."""
    flat = xi.reshape(-1, xi.shape[-1])
    return torch.linalg.solve_triangular(chol.mT, flat, upper=True, left=False).reshape(xi.shape)


def _unwhiten_vector(chol: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Vectors from factor coordinates: `v = L^{-T} z` (rows: `z L^{-1}`)."""
    flat = z.reshape(-1, z.shape[-1])
    return torch.linalg.solve_triangular(chol, flat, upper=False, left=False).reshape(z.shape)


class Randers(FinslerManifold):
    r"""Constant-coefficient (Minkowski) Randers space $F(v) = \sqrt{v^\top a v} + b^\top v$.

    Args:
        a: Tensor, shape `[D, D]`, symmetric positive definite.
        b: Tensor, shape `[D]`, with $\|b\|_{a^{-1}} < 1$; zeros (a Riemannian
            Mahalanobis metric) when omitted.
        dim: only for subclasses whose data come from parameters (they pass `a=None`, `dim=D`
            and override `_coefficients` and `factor`).

    Raises:
        ValueError: `a` is not square, real, finite, symmetric or positive definite, `b` has the
            wrong shape or dtype, or $\|b\|_{a^{-1}} \ge 1$ (the message gives the measured
            value); also when `load_state_dict` brings such data.

    Everything is evaluated in the factor coordinates $y = L^\top v$ of `factor()`
    ($a = L L^\top$, $b = L w$), where $F = |y| + w \cdot y$ (`finslerlib.math.randers.factor_norm`,
    free of cancellation for any drift).

    Example:
        >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))
        >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> m.dist(x, y), m.dist(y, x)  # moving along b costs more
        (tensor(1.5000), tensor(0.5000))
    """

    name = "Randers"

    def __init__(self, a=None, b=None, *, dim: int | None = None):
        if a is None:
            if dim is None or type(self) is Randers:
                raise ValueError("Randers needs the matrix a (shape [D, D])")
            super().__init__(dim)
            return
        a = _as_float_tensor(a, "a")
        if a.dim() != 2:
            raise ValueError(f"a must have shape [D, D], got {tuple(a.shape)}")
        b = torch.zeros(a.shape[-1], dtype=a.dtype, device=a.device) if b is None else b
        b = _as_float_tensor(b, "b")
        if b.dim() != 1:
            raise ValueError(f"b must have shape [D], got {tuple(b.shape)}")
        check_randers(a, b)
        super().__init__(a.shape[-1])
        a = 0.5 * (a + a.mT)
        self.register_buffer("_a", a.clone())
        self.register_buffer("_b", b.clone())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # validate what is loaded before it replaces the current data
        a, b = state_dict.get(prefix + "_a"), state_dict.get(prefix + "_b")
        if a is not None and b is not None:
            check_randers(a, b, label=f"{self.name} state_dict ({prefix}_a, {prefix}_b)")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- Randers data
    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """`(a, b)` in the module's own dtype; parametrized subclasses compute them."""
        return self._a, self._b

    def factor(self) -> tuple[torch.Tensor, torch.Tensor]:
        r"""`(L, w)`: lower-triangular $L$ with $a = L L^\top$ and $w$ with $b = L w$.

        In the coordinates $y = L^\top v$ the norm is $|y| + w \cdot y$ and
        $\|b\|_{a^{-1}} = |w|$; every pointwise method and `cdist` work there, so no method
        factors or inverts `a` again (and a learnable factor is used as is).

        Example:
            >>> L, w = Randers(4 * torch.eye(1), torch.tensor([1.0])).factor()
            >>> L, w
            (tensor([[2.]]), tensor([0.5000]))
        """
        # Factored on every call (O(D^3), small next to any batched use) rather than cached: a
        # cached factor goes stale when `_a` changes (load_state_dict, in-place edits).
        a, b = self._coefficients()
        chol = torch.linalg.cholesky(a)
        w = torch.linalg.solve_triangular(chol, b.unsqueeze(-1), upper=False).squeeze(-1)
        return chol, w

    def factor_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""`(x @ L, w)`: rows `x` in factor coordinates ($s_i = L^\top x_i$) and the drift `w`.

        The same as `x @ factor()[0]`; a learnable full-rank metric multiplies without building
        $L$ (in triangular blocks, with a direct gradient), which is what a layer applying the
        metric to every batch wants.

        Args:
            x: Tensor, shape `[B, D]`.

        Returns:
            `(s, w)`: Tensor `[B, D]` in `x`'s dtype, and Tensor `[D]`.

        Example:
            >>> s, w = Randers(4 * torch.eye(1), torch.tensor([1.0])).factor_rows(torch.tensor([[3.0]]))
            >>> s, w
            (tensor([[6.]]), tensor([0.5000]))
        """
        chol, w = self.factor()
        return x @ chol.to(x.dtype), w

    def _precise_factor(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""`(L, w)` in float64 for inputs of a lower precision `dtype`; `None` when not needed.

        Near $|w| \to 1$ the quantities that cancel, $1 - |w|^2$ and $a - b b^\top$ (whose
        factor is $L (I - w w^\top) L^\top$), lose $\log_{10} \frac{1}{1 - |w|^2}$ digits when
        $L, w$ are rounded to float32. Factored once in float64 from the stored data and cached
        on the buffers' identity and version (a `load_state_dict` or an in-place edit refactors).
        Parametrized subclasses (`Randers.learnable`) define $L, w$ directly: `None` there.
        """
        a, b = self._buffers.get("_a"), self._buffers.get("_b")
        if a is None or b is None or dtype == torch.float64 or a.device.type == "mps":
            return None
        key = (a.data_ptr(), a._version, b.data_ptr(), b._version, a.device)
        cached = self.__dict__.get("_precise_cache")
        if cached is None or cached[0] != key:
            chol = torch.linalg.cholesky(a.double())
            w = torch.linalg.solve_triangular(chol, b.double().unsqueeze(-1), upper=False).squeeze(-1)
            cached = (key, chol, w)
            self.__dict__["_precise_cache"] = cached
        return cached[1], cached[2]

    @property
    def a(self) -> torch.Tensor:
        """The SPD matrix `a`, shape `[D, D]`."""
        return self._coefficients()[0]

    @property
    def b(self) -> torch.Tensor:
        """The drift one-form `b`, shape `[D]`."""
        return self._coefficients()[1]

    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(a, b)` (constant) on `x`'s device and dtype, shapes `[D, D]` and `[D]`."""
        a, b = self._coefficients()
        return a.to(x), b.to(x)

    def drift_norm(self) -> torch.Tensor:
        r"""$\|b\|_{a^{-1}}$: 0 for a Riemannian metric, $< 1$ always."""
        return self.factor()[1].norm()

    def max_asymmetry(self) -> torch.Tensor:
        r"""$\max_v F(v) / F(-v) = (1 + \|b\|_{a^{-1}}) / (1 - \|b\|_{a^{-1}})$."""
        s = self.drift_norm()
        return (1 + s) / (1 - s)

    # ----------------------------------------------------------------- pointwise, in factor coordinates
    # With a = L L^T and b = L w, y = L^T v turns F into the "unit" Randers norm |y| + w.y:
    # vectors map by y = L^T v (rows: v @ L), covectors by eta = L^{-1} xi (rows: xi L^{-T}).
    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        self.validate_inputs(x, u, names=("x", "u"))
        return self._factor_norm(u, keepdim=keepdim)

    def _factor_norm(self, u: torch.Tensor, *, keepdim: bool = False, dtype=None) -> torch.Tensor:
        """`F(u)` in factor coordinates, in `dtype` (default `u`'s); float32 / float16 results
        are computed with the float64 factor."""
        dtype = u.dtype if dtype is None else dtype
        precise = self._precise_factor(dtype)
        if precise is not None:
            chol, w = (t.to(u.device) for t in precise)
            return rmath.factor_norm(u.to(chol.dtype) @ chol, w, keepdim=keepdim).to(dtype)
        chol, w = (t.to(u) for t in self.factor())
        return rmath.factor_norm(u @ chol, w, keepdim=keepdim)

    def legendre(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self.validate_inputs(x, u, names=("x", "u"))
        chol, w = (t.to(u) for t in self.factor())
        return rmath.legendre(u @ chol, None, w) @ chol.mT

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        self.validate_inputs(x, xi, names=("x", "xi"))
        chol, w = (t.to(xi) for t in self.factor())
        return rmath.dual_norm(_whiten_covector(chol, xi), None, w, keepdim=keepdim)

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        self.validate_inputs(x, xi, names=("x", "xi"))
        chol, w = (t.to(xi) for t in self.factor())
        return _unwhiten_vector(chol, rmath.inverse_legendre(_whiten_covector(chol, xi), None, w))

    def fundamental_tensor(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self.validate_inputs(x, u, names=("x", "u"))
        chol, w = (t.to(u) for t in self.factor())
        return chol @ rmath.fundamental_tensor(u @ chol, None, w) @ chol.mT

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_navigation(cls, h, wind) -> Randers:
        r"""Build from Zermelo navigation data: $F(v) = 1 \iff |v - W|_h = 1$.

        Args:
            h: Tensor, shape `[D, D]`, SPD.
            wind: Tensor, shape `[D]`, with $|W|_h < 1$.

        Example:
            >>> m = Randers.from_navigation(torch.eye(2), torch.tensor([0.5, 0.0]))
            >>> m.norm(torch.zeros(2), torch.tensor([1.5, 0.0]))  # with the wind: cost 1
            tensor(1.)
        """
        h = _as_float_tensor(h, "h")
        wind = _as_float_tensor(wind, "wind")
        if h.dim() != 2 or h.shape[0] != h.shape[1] or wind.shape != h.shape[:1]:
            raise ValueError(
                f"h must be [D, D] and wind [D], got {tuple(h.shape)} and {tuple(wind.shape)}"
            )
        check_randers(h, torch.zeros_like(wind), a_name="h")
        check_finite(wind=wind)
        size = rmath.drift_norm(h, rmath.matvec(h, wind)).item()  # |W|_h
        if not size < 1:
            raise ValueError(f"wind too strong: |W|_h = {size:.4g} >= 1 (need < 1)")
        return cls(*rmath.navigation_to_randers(h, wind))

    def navigation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zermelo navigation data `(h, wind)` of this metric."""
        return rmath.randers_to_navigation(*self._coefficients())

    @staticmethod
    def learnable(
        dim: int,
        *,
        rank: int | None = None,
        max_drift: float = 0.9,
        max_condition: float = 1e4,
        eps: float = 1e-4,
        dtype: torch.dtype | None = None,
        device=None,
    ) -> Randers:
        r"""A Randers metric whose $(a, b)$ are trainable parameters, always strongly convex.

        The parametrization cannot leave the valid set, whatever an optimizer does:

        * full rank (`rank=None`): $a = L L^\top$ with $L$ lower triangular, diagonal
          $\operatorname{softplus}(\cdot) + \varepsilon$, and $b = L w$ with
          $w = \text{max\_drift} \cdot \tanh(|u|)\, u / |u|$, so $\|b\|_{a^{-1}} = |w| <$
          `max_drift` exactly. Every method works in the coordinates $y = L^\top v$, where
          $F = |y| + w \cdot y \ge (1 - |w|)\,|y| > 0$: nothing ever factors or inverts $a$
          (only triangular solves with $L$), so the metric stays valid in floating point too,
          however large an optimizer step, and the head's cost stays at its matmuls.
        * `rank=r`: diagonal plus low rank, $a = \operatorname{diag}(d + \rho) + U U^\top$ with
          $d = \operatorname{softplus}(\cdot) + \varepsilon$, $U \in \mathbb{R}^{D \times r}$ and
          the relative ridge
          $\rho = \operatorname{tr}(\operatorname{diag}(d) + U U^\top) / (\text{max\_condition} - 1)$
          ($D(r + 2)$ parameters instead of $D(D + 1)$); $b$ is $u$ rescaled to
          $\|b\|_{a^{-1}} = \text{max\_drift} \cdot \tanh(\|u\|_{a^{-1}})$. It is a genuine
          (positive definite) metric on $\mathbb{R}^D$, not a metric on a projection. The ridge
          bounds the condition number of $a$ by `max_condition` whatever the parameters, so its
          Cholesky factorization succeeds (in float32 too) even after huge optimizer steps.

        Initialized as the Euclidean metric ($a = I$ for full rank, $a \approx I$ for `rank=r`;
        $b = 0$). Works as an `nn.Module` submodule (`state_dict`, `.to(dtype/device)`).

        Args:
            dim: dimension `D`.
            rank: `None` for full rank, or the rank `r` of the low-rank part.
            max_drift: upper bound on $\|b\|_{a^{-1}}$, in `[0, 1)`; it bounds the asymmetry
                $F(v)/F(-v) \le (1 + m)/(1 - m)$ (19 for the default 0.9).
            max_condition: bound (> 1) on the condition number of $a$ for `rank=r`.
            eps: floor on the diagonal (of $L$, or of $d$).
            dtype: parameter dtype (default: torch's default dtype).
            device: parameter device.

        Example:
            >>> m = Randers.learnable(3)
            >>> sorted(name for name, _ in m.named_parameters())
            ['chol_raw', 'drift_raw']
            >>> m.dist(torch.zeros(3), torch.ones(3)).detach()  # starts Euclidean
            tensor(1.7321)
        """
        return _LearnableRanders(
            dim,
            rank=rank,
            max_drift=max_drift,
            max_condition=max_condition,
            eps=eps,
            dtype=dtype,
            device=device,
        )

    # ----------------------------------------------------------------- geometry
    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""$\exp_x u = x + u$ (straight geodesics)."""
        self.validate_inputs(x, u, names=("x", "u"))
        return x + u

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""$x + u$: the exponential map is already a cheap retraction."""
        self.validate_inputs(x, u, names=("x", "u"))
        return x + u

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""$\log_x y = y - x$."""
        self.validate_inputs(x, y, names=("x", "y"))
        return y - x

    def expmap0(self, u: torch.Tensor) -> torch.Tensor:
        r"""$\exp_0 u = u$: the chart is linear (returns `u` itself, no copy)."""
        self.validate_inputs(u, names=("u",))
        return u

    def logmap0(self, y: torch.Tensor) -> torch.Tensor:
        r"""$\log_0 y = y$ (returns `y` itself, no copy)."""
        self.validate_inputs(y, names=("y",))
        return y

    # geodesics of the reverse metric are the same straight lines (used by `reverse()`)
    def reverse_expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.expmap(x, u)

    def reverse_logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.logmap(x, y)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport is the identity (Minkowski space is flat, its connection vanishes)."""
        return v

    def retr_transp(self, x, u, v):
        return self.retr(x, u), v

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), v

    def transp_follow_retr(self, x, u, v):
        return v

    def transp_follow_expmap(self, x, u, v):
        return v

    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance $d(x \to y) = F(y - x)$; finite gradients at $x = y$.

        Computed in factor coordinates without cancellation (`finslerlib.math.randers.factor_norm`).

        Args:
            x: Tensor, shape `[..., D]`.
            y: Tensor, shape `[..., D]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.

        Example:
            >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))
            >>> m.dist(torch.tensor([1.0, 0.0]), torch.zeros(2))
            tensor(0.5000)
        """
        self.validate_inputs(x, y, names=("x", "y"))
        dtype = torch.promote_types(x.dtype, y.dtype)
        if self._precise_factor(dtype) is not None:
            # float32 points differenced in float64: exact, so nothing is rounded before F
            return self._factor_norm(y.double() - x.double(), keepdim=keepdim, dtype=dtype)
        return self._factor_norm(y - x, keepdim=keepdim)

    def cdist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j) = F(y_j - x_i)$.

        Computed without an `[N, M, D]` tensor by `finslerlib.math.randers.cdist`
        on `factor()`: with $a = L L^\top$, centred points mapped by $L$,
        $|L^\top(y_j - x_i)|^2$ comes from one matmul (Gram trick) and the drift term
        $w \cdot L^\top y_j - w \cdot L^\top x_i$ is separable. Cost $(N + M) D^2 + N M D$.

        Args:
            x: Tensor, shape `[..., N, D]`, sources.
            y: Tensor, shape `[..., M, D]`, targets.

        Returns:
            Tensor, shape `[..., N, M]`.

        Example:
            >>> m = Randers(torch.eye(1), torch.tensor([0.5]))
            >>> m.cdist(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0]]))
            tensor([[0.0000, 1.5000],
                    [0.5000, 0.0000]])
        """
        check_cdist_shapes(x, y)
        self.validate_inputs(x, y, names=("x", "y"), batch_dims=2)
        chol, w = self.factor()
        precise = self._precise_factor(x.dtype)
        if precise is not None:
            precise = (precise[0].to(x.device), precise[1].to(x.device))
        return rmath.cdist(x, y, chol.to(x), w.to(x), precise=precise)

    def random(self, *size, dtype=None, device=None, std: float = 1.0) -> geoopt.ManifoldTensor:
        """Gaussian points `N(0, std^2 I)` of shape `size` (last entry `D`)."""
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        if dtype is None:
            dtype = self.dtype
        if device is None:
            device = self.device
        x = torch.randn(*size, dtype=dtype, device=device) * std
        return geoopt.ManifoldTensor(x, manifold=self)

    random_normal = random

    def reverse(self) -> Randers:
        r"""The reverse metric $F(-v)$: a Randers metric with the same $a$ and drift $-b$.

        It shares this metric's parameters (a learnable metric stays learnable).

        Example:
            >>> m = Randers(torch.eye(2), torch.tensor([0.5, 0.0]))
            >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
            >>> bool(m.reverse().dist(x, y) == m.dist(y, x))
            True
        """
        return super().reverse()

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def _squash(u: torch.Tensor, size: torch.Tensor, max_drift: float) -> torch.Tensor:
    """Rescale `u` of (some) norm `size` to norm `max_drift * tanh(size)` smoothly, also at 0."""
    small = size < 1e-4
    safe = torch.where(small, torch.ones_like(size), size)
    # tanh(s)/s -> 1 - s^2/3 as s -> 0 keeps the map smooth (and its gradient) at u = 0
    factor = torch.where(small, 1 - size * size / 3, torch.tanh(safe) / safe)
    return max_drift * factor * u


class _LearnableRanders(Randers):
    """Randers metric with trainable, always-valid coefficients (see `Randers.learnable`)."""

    def __init__(
        self, dim, *, rank=None, max_drift=0.9, max_condition=1e4, eps=1e-4, dtype=None, device=None
    ):
        super().__init__(dim=dim)
        if not 0.0 <= float(max_drift) < 1.0:
            raise ValueError(f"max_drift must be in [0, 1), got {max_drift}")
        if rank is not None and not 1 <= int(rank) <= dim:
            raise ValueError(f"rank must be in [1, dim={dim}] or None, got {rank}")
        if not float(max_condition) > 1.0:
            raise ValueError(f"max_condition must be > 1, got {max_condition}")
        self.rank = None if rank is None else int(rank)
        self.max_drift = float(max_drift)
        self.max_condition = float(max_condition)
        self.eps = float(eps)
        factory = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        # Start at a = I. Full rank: softplus(diag0) + eps = 1. Rank r: the ridge adds
        # tr(a0) / (max_condition - 1) ~ D d0 / (max_condition - 1) to a0 ~ d0 I, so
        # d0 = 1 / (1 + D / (max_condition - 1)) (U starts tiny).
        scale0 = 1.0
        if self.rank is not None:
            scale0 = 1.0 / (1.0 + dim / (self.max_condition - 1.0))
        diag0 = math.log(math.expm1(scale0 - eps))
        if self.rank is None:
            raw = torch.zeros(dim, dim, **factory)
            raw.diagonal().fill_(diag0)
            self.chol_raw = torch.nn.Parameter(raw)
        else:
            self.diag_raw = torch.nn.Parameter(torch.full((dim,), diag0, **factory))
            # nonzero start: U U^T has zero gradient at U = 0
            self.low_rank = torch.nn.Parameter(
                torch.randn(dim, self.rank, **factory) * (0.1 / math.sqrt(dim))
            )
        self.drift_raw = torch.nn.Parameter(torch.zeros(dim, **factory))

    def reset_parameters(self) -> None:
        """Back to the constructor's start: the Euclidean metric (used after meta-device init)."""
        dim = self.drift_raw.shape[-1]
        scale0 = 1.0 if self.rank is None else 1.0 / (1.0 + dim / (self.max_condition - 1.0))
        diag0 = math.log(math.expm1(scale0 - self.eps))
        with torch.no_grad():
            if self.rank is None:
                self.chol_raw.zero_().diagonal().fill_(diag0)
            else:
                self.diag_raw.fill_(diag0)
                self.low_rank.normal_().mul_(0.1 / math.sqrt(dim))
            self.drift_raw.zero_()

    def _ridge(self, trace: torch.Tensor) -> torch.Tensor:
        # lambda_min(a) >= ridge and lambda_max(a) <= trace + ridge, so cond(a) <= max_condition
        return trace / (self.max_condition - 1.0)

    def _chol_factor(self) -> torch.Tensor:
        """Full rank: the lower-triangular factor `L` (diagonal `softplus + eps`), `a = L L^T`."""
        # built in one pass, its gradient too (`finslerlib.manifolds._cholesky.lower_factor`)
        return lower_factor(self.chol_raw, self.eps)

    def _diag(self) -> torch.Tensor:
        """Diagonal `d + ridge` of the diagonal-plus-low-rank `a`."""
        d = nnf.softplus(self.diag_raw) + self.eps
        return d + self._ridge(d.sum() + (self.low_rank * self.low_rank).sum())

    def _drift_full(self) -> torch.Tensor:
        u = self.drift_raw
        return _squash(u, u.norm(), self.max_drift)

    def _dense_low_rank(self) -> torch.Tensor:
        return torch.diag_embed(self._diag()) + self.low_rank @ self.low_rank.mT

    def _coefficients(self):
        if self.rank is None:
            chol = self._chol_factor()
            return chol @ chol.mT, chol @ self._drift_full()
        a = self._dense_low_rank()
        u = self.drift_raw
        return a, _squash(u, rmath.drift_norm(a, u), self.max_drift)

    def factor_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rank is None:  # fused with building L (`finslerlib.manifolds._cholesky.factor_rows`)
            return factor_rows(x, self.chol_raw.to(x.dtype), self.eps), self._drift_full()
        return super().factor_rows(x)

    def factor(self):
        if self.rank is None:
            return self._chol_factor(), self._drift_full()
        # one Cholesky factorization: b = squash(u) = c u, so w = L^{-1} b = c L^{-1} u, with
        # |L^{-1} u| = ||u||_{a^-1} the size that `_squash` rescales
        chol = torch.linalg.cholesky(self._dense_low_rank())
        z = torch.linalg.solve_triangular(chol, self.drift_raw.unsqueeze(-1), upper=False).squeeze(-1)
        return chol, _squash(z, z.norm(), self.max_drift)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # any finite parameters give a valid metric; non-finite ones would give NaN everywhere
        for name, _ in self.named_parameters(recurse=False):
            value = state_dict.get(prefix + name)
            if value is not None:
                check_finite(**{f"{prefix}{name} (state_dict)": value})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, rank={self.rank}, max_drift={self.max_drift}, "
            f"max_condition={self.max_condition:g}"
        )
