r"""`FunkBall`: the Funk metric of a Euclidean ball, a curved Randers manifold in closed form.

$F(x, v) = (\sqrt{(R^2 - |x|^2)|v|^2 + \langle x, v\rangle^2} + \langle x, v\rangle)/(R^2 - |x|^2)$
is the Minkowski functional of the ball seen from $x$. It is asymmetric, projectively flat
(geodesics are straight segments), has constant flag curvature $-1/4$, is forward complete and
backward incomplete, and its symmetrization is the Hilbert metric of the ball: the Klein model of
hyperbolic space. Formulas and numerics: `finslerlib.math.funk`.
"""

from __future__ import annotations

import geoopt
import torch
from geoopt.manifolds.base import ScalingInfo

from finslerlib.manifolds.base import FinslerManifold
from finslerlib.math import funk as fmath
from finslerlib.math.validation import check_cdist_shapes

__all__ = ["FunkBall"]


class FunkBall(FinslerManifold):
    r"""The Funk metric on the open ball $|x| < R$ of $\mathbb{R}^D$.

    The metric of radius $R$ is the unit one pulled back by $x \mapsto x / R$:
    $F_R(x, v) = F_1(x/R, v/R)$ and $d_R(x \to y) = d_1(x/R \to y/R)$ (distances are
    dimensionless); the Randers data are $a = I/Q + x x^\top/Q^2$, $b = x/Q$ with
    $Q = R^2 - |x|^2$.

    Everything is closed form and $O(D)$ per point: `norm`, `dual_norm`, `legendre`,
    `inverse_legendre` (hence `egrad2rgrad`), `dist`, `expmap`, `logmap`; `cdist` costs one
    matmul; `fundamental_tensor` returns `[..., D, D]`.

    Checks: methods taking points raise `ValueError` for points not strictly inside the ball
    (one reduction and host sync per call; the unchecked functions are in `finslerlib.math.funk`).
    Results of `expmap`, `retr` and `projx` stay in the working ball
    $|x| \le R(1 - \varepsilon)$, $\varepsilon = \sqrt{\text{eps}}$ of the dtype, for any finite
    step (see `finslerlib.math.funk.boundary_margin`).

    Choices: `retr` is `expmap` (already $O(D)$, exact, and inside the ball for any step);
    `transp` is the Chern parallel transport along the straight geodesics, in closed form
    (`finslerlib.curvature.funk_transport`).

    Args:
        dim: dimension `D`.
        radius: ball radius $R > 0$.

    Example:
        >>> m = FunkBall(2)
        >>> x, y = torch.zeros(2), torch.tensor([0.5, 0.0])
        >>> m.dist(x, y), m.dist(y, x)  # log 2 out, log 1.5 back: asymmetric
        (tensor(0.6931), tensor(0.4055))
        >>> m.hilbert_dist(x, y)  # the symmetrization is hyperbolic (Klein model)
        tensor(0.5493)
    """

    name = "FunkBall"
    __scaling__ = FinslerManifold.__scaling__.copy()
    _nonfinite_reason = "a NaN or infinite point is not strictly inside the Funk ball (nor a finite vector)"

    def __init__(self, dim: int, *, radius: float = 1.0):
        super().__init__(dim)
        radius = float(radius)
        if not (radius > 0 and radius < float("inf")):
            raise ValueError(f"radius must be a positive finite number, got {radius}")
        self.radius = radius

    # ------------------------------------------------------------------ checks
    def _inside(self, *tensors: torch.Tensor, names: tuple[str, ...], batch_dims: int = 1) -> None:
        # shapes, dtypes and finiteness first (a NaN point is reported as non-finite, not "outside")
        self.validate_inputs(*tensors, names=names, batch_dims=batch_dims)
        for name, t in zip(names, tensors, strict=True):
            fmath.check_inside(t, radius=self.radius, name=name)

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        ok, reason = super()._check_point_on_manifold(x, atol=atol, rtol=rtol)
        if not ok:
            return ok, reason
        sq = (x * x).sum(-1)
        bad = ~(sq < self.radius**2)
        if bad.any():
            worst = sq[bad].max().sqrt().item()
            return False, (
                f"{int(bad.sum())} point(s) have norm >= radius {self.radius:g} (largest {worst:.6g}); "
                f"the Funk metric lives in the open ball |x| < {self.radius:g}, where F(x, v) and "
                f"d(x -> y) are finite. Use projx() to pull points inside."
            )
        return True, None

    # ------------------------------------------------------------------ pointwise structure
    def coefficients(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Randers data $a(x) = I/Q + x x^\top/Q^2$, $b(x) = x/Q$, $Q = R^2 - |x|^2$.

        Args:
            x: Tensor, shape `[..., D]`.

        Returns:
            `(a, b)` of shapes `[..., D, D]` and `[..., D]`.

        Example:
            >>> a, b = FunkBall(2).coefficients(torch.tensor([0.5, 0.0]))
            >>> b
            tensor([0.6667, 0.0000])
        """
        self._inside(x, names=("x",))
        return fmath.coefficients(x, radius=self.radius)

    def norm(self, x: torch.Tensor, u: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Funk norm $F(x, u)$, $O(D)$.

        Args:
            x: Tensor, shape `[..., D]`.
            u: Tensor, shape `[..., D]`.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.

        Example:
            >>> FunkBall(1).norm(torch.tensor([0.5]), torch.tensor([1.0]))  # 1 / distance to the wall
            tensor(2.)
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, names=("x", "u"))
        if x.dtype == torch.float32:
            # Q = R^2 - |x|^2 loses digits near the wall in float32 (9e-5 relative at |x| = 0.9995):
            # evaluated in float64 on the same float32 inputs, rounded once at the end
            return fmath.norm(x.double(), u.double(), radius=self.radius, keepdim=keepdim).float()
        return fmath.norm(x, u, radius=self.radius, keepdim=keepdim)

    def dual_norm(self, x: torch.Tensor, xi: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Dual norm $F^*(x, \xi) = R|\xi| - \langle \xi, x\rangle$.

        Example:
            >>> FunkBall(1).dual_norm(torch.tensor([0.5]), torch.tensor([1.0]))
            tensor(0.5000)
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, xi, names=("x", "xi"))
        return fmath.dual_norm(x, xi, radius=self.radius, keepdim=keepdim)

    def legendre(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Legendre map $\ell_x(u) = F\,(u + F x)/s$ (see `finslerlib.math.funk.legendre`).

        Example:
            >>> FunkBall(1).legendre(torch.tensor([0.5]), torch.tensor([1.0]))  # F(u) = 2u: (F^2/2)' = 4u
            tensor([4.])
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, names=("x", "u"))
        return fmath.legendre(x, u, radius=self.radius)

    def inverse_legendre(self, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        r"""Inverse Legendre map $\ell_x^{-1}(\xi) = F^*(\xi)(R\hat\xi - x)$.

        Example:
            >>> FunkBall(1).inverse_legendre(torch.tensor([0.5]), torch.tensor([4.0]))
            tensor([1.])
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, xi, names=("x", "xi"))
        return fmath.inverse_legendre(x, xi, radius=self.radius)

    def fundamental_tensor(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""Fundamental tensor $g_{ij}(x, u)$, shape `[..., D, D]`.

        Example:
            >>> FunkBall(1).fundamental_tensor(torch.tensor([0.5]), torch.tensor([1.0]))  # F^2 / u^2
            tensor([[4.]])
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, names=("x", "u"))
        return fmath.fundamental_tensor(x, u, radius=self.radius)

    def projx(self, x: torch.Tensor) -> torch.Tensor:
        r"""Pull points into the working ball $|x| \le R(1 - \varepsilon)$ (radially); idempotent.

        Example:
            >>> FunkBall(2).projx(torch.tensor([3.0, 4.0])).norm() < 1
            tensor(True)
        """
        return fmath.project(x, radius=self.radius)

    # ------------------------------------------------------------------ geodesic structure
    def dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Forward distance $d(x \to y) = -\log(1 - F(x, y - x))$, computed without cancellation.

        Args:
            x: Tensor, shape `[..., D]`, sources.
            y: Tensor, shape `[..., D]`, targets.
            keepdim: keep the last dimension.

        Returns:
            Tensor, shape `[...]`.

        Raises:
            ValueError: a point is not strictly inside the ball.

        Example:
            >>> FunkBall(1, radius=2.0).dist(torch.zeros(1), torch.tensor([1.0]))  # log 2
            tensor(0.6931)
        """
        self._inside(x, y, names=("x", "y"))
        if x.dtype == torch.float32:  # as in `norm`: the wall's cancellation in float64
            return fmath.dist(x.double(), y.double(), radius=self.radius, keepdim=keepdim).float()
        return fmath.dist(x, y, radius=self.radius, keepdim=keepdim)

    def cdist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""All forward distances `[..., i, j]` $= d(x_i \to y_j)$, from one matmul.

        See `finslerlib.math.funk.cdist` (Gram form, accuracy near the diagonal).

        Args:
            x: Tensor, shape `[..., N, D]`.
            y: Tensor, shape `[..., M, D]`.

        Returns:
            Tensor, shape `[..., N, M]`.

        Example:
            >>> FunkBall(1).cdist(torch.tensor([[0.0], [0.5]]), torch.tensor([[0.5]]))
            tensor([[0.6931],
                    [0.0000]])
        """
        check_cdist_shapes(x, y)
        self._inside(x, y, names=("x", "y"), batch_dims=2)
        return fmath.cdist(x, y, radius=self.radius)

    @__scaling__(ScalingInfo(1))
    def hilbert_dist(self, x: torch.Tensor, y: torch.Tensor, *, keepdim: bool = False) -> torch.Tensor:
        r"""Hilbert distance $\tfrac12(d(x \to y) + d(y \to x))$: hyperbolic (Klein model, curvature $-1$).

        Equals `geoopt.PoincareBall(c=1).dist(self.to_poincare(x), self.to_poincare(y))`.

        Example:
            >>> m = FunkBall(2)
            >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.4])
            >>> bool(torch.isclose(m.hilbert_dist(x, y), 0.5 * (m.dist(x, y) + m.dist(y, x))))
            True
        """
        self._inside(x, y, names=("x", "y"))
        return fmath.hilbert_dist(x, y, radius=self.radius, keepdim=keepdim)

    def to_poincare(self, x: torch.Tensor) -> torch.Tensor:
        r"""To geoopt's `PoincareBall(c=1)` coordinates (an isometry for `hilbert_dist`).

        Example:
            >>> FunkBall(1, radius=2.0).to_poincare(torch.tensor([1.6]))
            tensor([0.5000])
        """
        self._inside(x, names=("x",))
        return fmath.to_poincare(x, radius=self.radius)

    def from_poincare(self, p: torch.Tensor) -> torch.Tensor:
        r"""Inverse of `to_poincare`: unit Poincaré ball points to this Funk ball.

        Example:
            >>> FunkBall(1, radius=2.0).from_poincare(torch.tensor([0.5]))
            tensor([1.6000])
        """
        self.validate_inputs(p, names=("p",))
        fmath.check_inside(p, radius=1.0, name="p (Poincaré ball, c=1)")
        return fmath.from_poincare(p, radius=self.radius)

    def expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        r"""$\exp_x u = x + \frac{1 - e^{-F(x, u)}}{F(x, u)}\,u$; strictly inside for any finite `u`.

        Example:
            >>> m = FunkBall(1)
            >>> bool(m.expmap(torch.zeros(1), torch.tensor([1e4])).abs() < 1)
            True
        """
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, names=("x", "u"))
        return fmath.expmap(x, u, radius=self.radius)

    def retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The exponential map: exact, $O(D)$, and inside the ball for any step."""
        return self.expmap(x, u)

    def logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""$\log_x y = \frac{d(x \to y)}{F(x, y - x)}(y - x)$, so that `norm(x, logmap(x, y)) == dist(x, y)`.

        Example:
            >>> m = FunkBall(2)
            >>> x, y = torch.tensor([0.1, 0.2]), torch.tensor([-0.3, 0.4])
            >>> torch.allclose(m.expmap(x, m.logmap(x, y)), y)
            True
        """
        self._inside(x, y, names=("x", "y"))
        return fmath.logmap(x, y, radius=self.radius)

    def transp(self, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Parallel transport along the straight geodesic $x \\to y$, closed form
        (`finslerlib.curvature.funk_transport`)."""
        return self.transp_follow_expmap(x, self.logmap(x, y), v)

    def retr_transp(self, x, u, v):
        return self.retr(x, u), self.transp_follow_expmap(x, u, v)

    def expmap_transp(self, x, u, v):
        return self.expmap(x, u), self.transp_follow_expmap(x, u, v)

    def transp_follow_retr(self, x, u, v):
        """`retr` is `expmap`: the parallel transport along $t \\mapsto \\exp_x(t u)$."""
        return self.transp_follow_expmap(x, u, v)

    def transp_follow_expmap(self, x, u, v):
        """Parallel transport along $t \\mapsto \\exp_x(t u)$ (Chern): closed form."""
        return self._transport(x, u, v, reverse=False)

    def _transport(self, x, u, v, *, reverse: bool):
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, v, names=("x", "u", "v"))
        return fmath.transport(x, u, v, radius=self.radius, reverse=reverse)

    def random(self, *size, dtype=None, device=None, max_norm: float = 0.9) -> geoopt.ManifoldTensor:
        r"""Points uniform in the ball of radius `max_norm * R` (volume measure).

        Args:
            size: shape, last entry `D`.
            dtype: default torch's default dtype.
            device: default CPU.
            max_norm: fraction of the radius, in `(0, 1)`.

        Example:
            >>> bool((FunkBall(3).random(10, 3).norm(dim=-1) < 0.9).all())
            True
        """
        if not 0 < max_norm < 1:
            raise ValueError(f"max_norm must be in (0, 1), got {max_norm}")
        size = geoopt.utils.size2shape(*size)
        self._assert_check_shape(size, "x")
        dtype = dtype or torch.get_default_dtype()
        direction = torch.randn(*size, dtype=dtype, device=device)
        direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        rad = torch.rand(*size[:-1], 1, dtype=dtype, device=device) ** (1.0 / self.dim)
        return geoopt.ManifoldTensor(direction * rad * (max_norm * self.radius), manifold=self)

    random_uniform = random

    def reverse(self) -> FunkBall:
        r"""The reverse Funk metric $\tilde F(x, v) = F(x, -v)$, $\tilde d(x \to y) = d(y \to x)$.

        Closed forms throughout; it is forward incomplete, so its `expmap` stops at the working
        ball for steps longer than the distance to the sphere (see
        `finslerlib.math.funk.reverse_expmap`).

        Example:
            >>> m = FunkBall(1)
            >>> x, y = torch.zeros(1), torch.tensor([0.5])
            >>> bool(m.reverse().dist(x, y) == m.dist(y, x))
            True
        """
        return super().reverse()

    # closed forms of the reverse metric, used by `reverse()` (finslerlib.manifolds.reversed)
    def reverse_expmap(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        self._inside(x, names=("x",))
        self.validate_inputs(x, u, names=("x", "u"))
        return fmath.reverse_expmap(x, u, radius=self.radius)

    def reverse_logmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self._inside(x, y, names=("x", "y"))
        return fmath.reverse_logmap(x, y, radius=self.radius)

    # retr is expmap here, for the reverse metric too (its geodesics are the same straight rays)
    def reverse_retr(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.reverse_expmap(x, u)

    def reverse_transp_follow_expmap(self, x, u, v):
        return self._transport(x, u, v, reverse=True)

    def reverse_transp_follow_retr(self, x, u, v):
        return self._transport(x, u, v, reverse=True)

    def reverse_cdist(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_cdist_shapes(x, y)
        self._inside(x, y, names=("x", "y"), batch_dims=2)
        return fmath.cdist(x, y, radius=self.radius, reverse=True)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, radius={self.radius:g}"
