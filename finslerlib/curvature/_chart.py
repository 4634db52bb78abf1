r"""Charts, input checks and the differentiable core shared by the curvature functions.

Every quantity is computed in a chart $z \mapsto$ point with Randers data $(\tilde a(z), \tilde b(z))$:

* open subsets of $\mathbb{R}^D$ (`ambient_dim == dim`): the identity chart, $\tilde a = a$,
  $\tilde b = b$ (the manifold's own coordinates);
* embedded domains (`ambient_dim > dim`, sphere, hyperboloid): around each base point $x$ the
  chart $\varphi_x(z) = \mathrm{projx}(x + E z)$, $E$ an orthonormal basis (`[N, d]`) of the
  tangent space from `proju`, and the pulled-back data $\tilde a = J^\top a J$,
  $\tilde b = J^\top b$ with $J = \partial\varphi_x / \partial z$. Flag, Ricci and S-curvature
  are chart-free scalars; vectors and operators are mapped back with $J(0)$.

All derivatives are `torch.func.jvp` / `torch.func.vjp` compositions. Linear systems with the
fundamental tensor are solved by Cholesky (`torch.cholesky_solve`): on torch 2.13 the
second-order forward-mode derivative of `torch.linalg.solve` is wrong (the
`jvp`-of-`jvp` of `linalg.solve(A(s, t), r)` differs from finite differences by half its value;
`linalg.inv`, `cholesky_solve` and `lu_solve` are right), which is what made composed
`jacfwd`s of a spray built on `linalg.solve` disagree with finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.func import jvp

from finslerlib.geodesics.transport import geodesic_spray
from finslerlib.math import randers as rmath
from finslerlib.math.linalg import solve_spd
from finslerlib.math.pairwise import safe_sqrt

CoefficientFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def raw_coefficient_fn(manifold) -> CoefficientFn:
    """The manifold's Randers data `x -> (a, b)` to differentiate (validation done separately).

    `RandersField.raw_coefficients` skips the per-call checks (host synchronizations that cost
    time inside every derivative); other manifolds give `coefficients`.
    """
    raw = getattr(manifold, "raw_coefficients", None)
    return raw if callable(raw) else manifold.coefficients


def ambient_dim(manifold) -> int:
    """The tensor size `N` of points (the intrinsic `dim` for open subsets of R^D)."""
    return int(getattr(manifold, "ambient_dim", manifold.dim))


def spd_solve(g: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """`g^{-1} r` for SPD `g` `[B, d, d]`, `r` `[B, d]`, by Cholesky (correct nested jvps).

    `cholesky_ex`: no exception (NaN rows propagate to the callers' finiteness checks).
    """
    return solve_spd(g, r, chol=torch.linalg.cholesky_ex(g)[0])


def quad(g: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """`u^T g v`, batched."""
    return (u * rmath.matvec(g, v)).sum(-1)


# ----------------------------------------------------------------------------- the spray
spray_in_chart = geodesic_spray
"""The spray of the chart's Randers data (`finslerlib.geodesics.geodesic_spray`)."""


def riemann_apply(coef: CoefficientFn, z: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""$R_y(V)^i = R^i{}_k V^k$ with Shen's formula
    $R^i{}_k = 2\partial_{x^k} G^i - y^j \partial_{x^j}\partial_{y^k} G^i
    + 2 G^j \partial_{y^j}\partial_{y^k} G^i - \partial_{y^j} G^i \partial_{y^k} G^j$,
    by directional derivatives only:

    * $T_1 = \partial_s [N(z - s y,\ y + 2 s G)\, V]$ (one `jvp` of the `jvp` $N V = \partial_y G\, V$)
      gives $-y^j \partial_{x^j} N V + 2 G^j \partial_{y^j} N V$ and, as its primal, $N V$;
    * $T_2$ = the `jvp` of $G$ along $(2V, -NV)$ gives $2 \partial_x G\, V - N(N V)$.

    No `[d, d, d]` tensor is formed: the cost is a few sprays per vector.
    """
    g0 = spray_in_chart(coef, z, y)

    def n_times_v(z_, y_):
        return jvp(lambda w: spray_in_chart(coef, z_, w), (y_,), (v,))[1]

    nv, t1 = jvp(n_times_v, (z, y), (-y, 2.0 * g0))
    _, t2 = jvp(lambda z_, y_: spray_in_chart(coef, z_, y_), (z, y), (2.0 * v, -nv))
    return t1 + t2


def distortion(coef: CoefficientFn, z: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    r"""Busemann–Hausdorff distortion of a Randers metric, $\tau = \log(\sqrt{\det g_y}/\sigma_{BH})
    = \frac{n+1}{2}\log\frac{F}{\alpha\,(1 - \|b\|^2_{a^{-1}})}$.

    From $\det g_y = (F/\alpha)^{n+1}\det a$ and $\sigma_{BH} = (1 - \|b\|^2)^{(n+1)/2}\sqrt{\det a}$
    ($\det a$ cancels, so the value is the same in every chart).
    """
    a, b = coef(z)
    alpha = safe_sqrt(quad(a, y, y))
    f = alpha + (b * y).sum(-1)
    lam = 1.0 - rmath.drift_norm(a, b) ** 2
    return 0.5 * (n + 1) * (torch.log(f) - torch.log(alpha) - torch.log(lam))


# ----------------------------------------------------------------------------- charts
class Chart(NamedTuple):
    """Local coordinates around a batch of base points.

    Attributes:
        coef: `z -> (a~(z), b~(z))`, the Randers data in the chart.
        z0: Tensor `[B, d]`, the base points' coordinates.
        jac: Tensor `[B, N, d]` (or `None` for the identity chart), $J(0)$.
        embed: `z -> point` `[B, N]` (or `None` for the identity chart).
    """

    coef: CoefficientFn
    z0: torch.Tensor
    jac: torch.Tensor | None
    embed: Callable | None

    def to_chart(self, v: torch.Tensor, *, name: str = "v") -> torch.Tensor:
        """Chart components of tangent vectors `v` `[B, N]` (ValueError if not tangent)."""
        if self.jac is None:
            return v
        jtj = self.jac.mT @ self.jac
        w = torch.linalg.solve(jtj, (self.jac.mT @ v.unsqueeze(-1))).squeeze(-1)
        back = (self.jac @ w.unsqueeze(-1)).squeeze(-1)
        err = (back - v).norm(dim=-1)
        scale = v.norm(dim=-1).clamp_min(1.0)
        tol = 1e-6 if v.dtype == torch.float64 else 1e-3
        if bool((err > tol * scale).any()):
            worst = (err / scale).max().item()
            raise ValueError(
                f"{name} must be tangent at x (proju(x, {name}) == {name}): relative normal component "
                f"{worst:.3g} > {tol:g}"
            )
        return w

    def to_ambient(self, w: torch.Tensor) -> torch.Tensor:
        """Ambient tangent vectors `J(0) w` from chart components `w` `[B, d]`."""
        if self.jac is None:
            return w
        return (self.jac @ w.unsqueeze(-1)).squeeze(-1)


def make_chart(manifold, x: torch.Tensor) -> Chart:
    """The chart at the flat batch of points `x` `[B, N]` (see the module docstring)."""
    coef = raw_coefficient_fn(manifold)
    d = int(manifold.dim)
    n = x.shape[-1]
    if n == d:
        return Chart(coef, x, None, None)
    eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(x.shape[0], n, n)
    rows = manifold.proju(x.unsqueeze(-2).expand(-1, n, -1), eye)  # rows span T_x
    basis = torch.linalg.svd(rows, full_matrices=False)[2][..., :d, :].mT  # [B, N, d] orthonormal
    base = x.detach()

    def embed(z):
        return manifold.projx(base + (basis @ z.unsqueeze(-1)).squeeze(-1))

    units = torch.eye(d, dtype=x.dtype, device=x.device)

    def jacobian(z):
        cols = [jvp(embed, (z,), (units[j].expand_as(z),))[1] for j in range(d)]
        return torch.stack(cols, -1)

    def chart_coef(z):
        jac = jacobian(z)
        a, b = coef(embed(z))
        a = a.expand(*z.shape[:-1], n, n)
        b = b.expand(*z.shape[:-1], n)
        return jac.mT @ a @ jac, (jac.mT @ b.unsqueeze(-1)).squeeze(-1)

    z0 = torch.zeros(x.shape[0], d, dtype=x.dtype, device=x.device)
    return Chart(chart_coef, z0, jacobian(z0), embed)


# ----------------------------------------------------------------------------- inputs
def prepare(manifold, names: tuple[str, ...], *tensors: torch.Tensor):
    """Check and flatten the inputs: returns `(batch_shape, [t.reshape(B, N) ...])`.

    Raises `ValueError` for non-tensors, non-float or mixed dtypes, mixed devices, a wrong last
    size, batch shapes that do not broadcast, and non-finite entries; and validates the Randers
    data at the points (the manifold's `coefficients` raises for invalid points).
    """
    n = ambient_dim(manifold)
    for name, t in zip(names, tensors, strict=True):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got {t.dtype}")
        if t.dim() < 1 or t.shape[-1] != n:
            raise ValueError(f"{name} must have shape [..., {n}], got {tuple(t.shape)}")
        if t.dtype != tensors[0].dtype:
            raise ValueError(f"dtype mismatch: {names[0]} is {tensors[0].dtype} but {name} is {t.dtype}")
        if t.device != tensors[0].device:
            raise ValueError(
                f"device mismatch: {names[0]} is on {tensors[0].device} but {name} on {t.device}"
            )
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            raise ValueError(f"{name} has {int((~finite).sum())} non-finite entries")
    try:
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    except RuntimeError:
        shapes = ", ".join(f"{nm} {tuple(t.shape)}" for nm, t in zip(names, tensors, strict=True))
        raise ValueError(f"batch shapes do not broadcast: {shapes}") from None
    # contiguous: broadcast (stride-0) views cannot carry forward-mode tangents
    flat = [t.expand(shape).reshape(-1, n).contiguous() for t in tensors]
    manifold.coefficients(flat[0])  # raises ValueError naming a point where (a, b) is invalid
    return shape[:-1], flat


def check_nonzero(y: torch.Tensor, name: str = "y") -> None:
    """`ValueError` when a reference vector is zero (the spray and g_y are undefined there)."""
    zero = (y == 0).all(-1)
    if bool(zero.any()):
        raise ValueError(
            f"{name} must be a nonzero tangent vector (the reference direction): {int(zero.sum())} of "
            f"{zero.numel()} rows are 0"
        )
