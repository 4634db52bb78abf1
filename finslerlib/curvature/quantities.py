r"""Spray, Riemann, flag, Ricci and S-curvature of a Randers manifold.

Each function takes a manifold exposing `coefficients(x) -> (a, b)` and batched points / tangent
vectors (`[..., N]`, leading dimensions broadcast, results on the input's device and dtype).
Derivatives are exact (`torch.func` jvp/vjp compositions, no finite differences); the Riemann
curvature is applied to vectors by directional derivatives of the spray, so no `[D, D, D, D]`
(or `[D, D, D]`) tensor is formed. On embedded domains (`ambient_dim > dim`) the computation runs
in the chart $\mathrm{projx}(x + E z)$ and the results are intrinsic (see `docs/concepts/curvature.md`).
"""

from __future__ import annotations

import torch

from finslerlib.curvature._chart import (
    check_nonzero,
    distortion,
    make_chart,
    prepare,
    quad,
    riemann_apply,
    spray_in_chart,
)
from finslerlib.math import randers as rmath

__all__ = ["spray", "riemann_curvature", "flag_curvature", "ricci_curvature", "s_curvature"]


def _parallel_tol(dtype: torch.dtype) -> float:
    return 1e3 * torch.finfo(dtype).eps


def spray(manifold, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Geodesic spray coefficients $G^i(x, y)$: geodesics solve $\ddot\gamma + 2 G(\gamma, \dot\gamma) = 0$.

    $G^i = \tfrac14 g^{il}\big([F^2]_{x^k y^l}\, y^k - [F^2]_{x^l}\big)$ with
    $g_{ij} = \tfrac12 [F^2]_{y^i y^j}$. $G$ is positively 2-homogeneous in $y$; it vanishes for
    constant $(a, b)$ and equals $\tfrac12 F y$ on the Funk ball. On an embedded domain the result is
    $-\tfrac12 \ddot\gamma(0)$ of the geodesic in ambient coordinates (normal part included).

    Args:
        manifold: a finslerlib manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[..., N]`, points.
        y: Tensor, shape `[..., N]`, nonzero tangent vectors at `x`.

    Returns:
        Tensor, shape `[..., N]`.

    Raises:
        ValueError: bad shapes/dtypes/devices, non-finite input, invalid Randers data at `x`, or `y = 0`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.tensor([0.5, 0.0]), torch.tensor([0.0, 1.0])
        >>> g = spray(FunkBall(2), x, y)  # F(x, y) / 2 * y with F = 1/sqrt(0.75)
        >>> torch.allclose(g, torch.tensor([0.0, 0.5 / 0.75**0.5]), atol=1e-6)
        True
    """
    batch, (xf, yf) = prepare(manifold, ("x", "y"), x, y)
    chart = make_chart(manifold, xf)
    w = chart.to_chart(yf, name="y")
    check_nonzero(w)
    g = spray_in_chart(chart.coef, chart.z0, w)
    if chart.embed is not None:
        # -1/2 of the ambient acceleration of phi(z(t)): J G - 1/2 d^2 phi(w, w)
        second = torch.func.jvp(
            lambda s: torch.func.jvp(chart.embed, (chart.z0 + s * w,), (w,))[1],
            (torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device),),
            (torch.ones(w.shape[0], 1, dtype=w.dtype, device=w.device),),
        )[1]
        g = chart.to_ambient(g) - 0.5 * second
    return g.reshape(*batch, -1)


def riemann_curvature(manifold, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Riemann curvature $R_y$ as a linear operator, `R[..., i, k]` $= R^i{}_k(x, y)$.

    $R^i{}_k = 2\partial_{x^k} G^i - y^j \partial^2_{x^j y^k} G^i + 2 G^j \partial^2_{y^j y^k} G^i
    - \partial_{y^j} G^i\, \partial_{y^k} G^j$ (Shen's formula), computed column by column as
    $R_y(e_k)$ from directional derivatives of the spray. $R_y(y) = 0$, and
    $g_y(R_y u, v) = g_y(u, R_y v)$. On an embedded domain the operator acts on ambient vectors:
    $J R J^+$ (zero on the normal directions).

    Args:
        manifold: a finslerlib manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`, nonzero tangent vectors (the flagpole).

    Returns:
        Tensor, shape `[..., N, N]`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.zeros(2), torch.tensor([1.0, 0.0])
        >>> r = riemann_curvature(FunkBall(2), x, y)  # K = -1/4: R_y(v) = -F^2/4 v for v g-orthogonal to y
        >>> r @ torch.tensor([0.0, 1.0])
        tensor([ 0.0000, -0.2500])
    """
    batch, (xf, yf) = prepare(manifold, ("x", "y"), x, y)
    d = int(manifold.dim)
    chart = make_chart(manifold, xf)
    w = chart.to_chart(yf, name="y")
    check_nonzero(w)
    cols = _columns(manifold, xf, w, d)  # [B, d, d], R[:, i, k]
    if chart.jac is not None:
        jac = chart.jac
        pinv = torch.linalg.solve(jac.mT @ jac, jac.mT)
        cols = jac @ cols @ pinv
    n = cols.shape[-1]
    return cols.reshape(*batch, n, n)


def _columns(manifold, xf: torch.Tensor, w: torch.Tensor, d: int) -> torch.Tensor:
    """`R[:, i, k]` in chart components: the `d` columns $R_y(e_k)$ as one batch of `B * d`."""
    bsz = xf.shape[0]
    xr = xf.repeat_interleave(d, 0)
    chart = make_chart(manifold, xr)
    wr = w.repeat_interleave(d, 0)
    eye = torch.eye(d, dtype=w.dtype, device=w.device).repeat(bsz, 1)
    out = riemann_apply(chart.coef, chart.z0, wr, eye)  # row (b, k) = R e_k
    return out.reshape(bsz, d, d).mT


def flag_curvature(manifold, x: torch.Tensor, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    r"""Flag curvature $K(x, y, V) = \dfrac{g_y(R_y V, V)}{g_y(y, y)\, g_y(V, V) - g_y(y, V)^2}$.

    The sectional curvature of the flag $\mathrm{span}(y, V)$ with flagpole $y$; it depends on the
    plane and on $y$ in it, not on $V$'s component along $y$ nor on the scales. One application of
    $R_y$ per point (no `[D, D]` operator is formed).

    Args:
        manifold: a finslerlib manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`, the flagpole (nonzero).
        v: Tensor, shape `[..., N]`, the transverse edge (not parallel to `y`).

    Returns:
        Tensor, shape `[...]`.

    Raises:
        ValueError: `y = 0`, or `v` (numerically) parallel to `y`: the $g_y$-sine squared of the
            angle is below `1000 * eps` of the dtype (the message gives the value).

    Example:
        >>> from finslerlib import FunkBall
        >>> x = torch.tensor([0.3, -0.2, 0.1])
        >>> y, v = torch.tensor([1.0, 0.5, 0.0]), torch.tensor([0.0, 1.0, 2.0])
        >>> flag_curvature(FunkBall(3), x, y, v)
        tensor(-0.2500)
    """
    batch, (xf, yf, vf) = prepare(manifold, ("x", "y", "v"), x, y, v)
    chart = make_chart(manifold, xf)
    w, u = chart.to_chart(yf, name="y"), chart.to_chart(vf, name="v")
    check_nonzero(w)
    a, b = chart.coef(chart.z0)
    g = rmath.fundamental_tensor(w, a, b)
    gyy, guu, gyu = quad(g, w, w), quad(g, u, u), quad(g, w, u)
    area = gyy * guu - gyu * gyu
    sine2 = area / (gyy * guu)
    bad = ~(sine2 > _parallel_tol(w.dtype))
    if bool(bad.any()):
        raise ValueError(
            f"v must not be parallel to y (the flag is degenerate): g_y-sine squared "
            f"{sine2[bad].min().item():.3g} <= {_parallel_tol(w.dtype):.3g} at {int(bad.sum())} of "
            f"{bad.numel()} points"
        )
    ru = riemann_apply(chart.coef, chart.z0, w, u)
    return (quad(g, ru, u) / area).reshape(batch)


def ricci_curvature(manifold, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Ricci curvature $\mathrm{Ric}(x, y) = R^i{}_i(x, y)$, the trace of $R_y$.

    Equals $F(y)^2 \sum_{a} K(y, e_a)$ over a $g_y$-orthonormal basis $e_a$ of the
    $g_y$-orthogonal complement of $y$; positively 2-homogeneous in $y$.

    Args:
        manifold: a finslerlib manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`, nonzero.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.tensor([0.2, 0.1, 0.0]), torch.tensor([0.0, 0.0, 1.0])
        >>> ric = ricci_curvature(FunkBall(3), x, y)
        >>> torch.allclose(ric, -(3 - 1) / 4 * FunkBall(3).norm(x, y) ** 2)
        True
    """
    batch, (xf, yf) = prepare(manifold, ("x", "y"), x, y)
    chart = make_chart(manifold, xf)
    w = chart.to_chart(yf, name="y")
    check_nonzero(w)
    cols = _columns(manifold, xf, w, int(manifold.dim))
    return cols.diagonal(dim1=-2, dim2=-1).sum(-1).reshape(batch)


def s_curvature(manifold, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""S-curvature with respect to the **Busemann–Hausdorff** volume form.

    By the definition $S(x, y) = \frac{d}{dt}\mathcal{T}(\gamma(t), \dot\gamma(t))\big|_{t=0}$ along
    the geodesic with $\gamma(0) = x$, $\dot\gamma(0) = y$, with the distortion
    $\mathcal{T} = \log\big(\sqrt{\det g_y} / \mathrm{vol}_{BH}\big)$. For Randers data
    $\mathrm{vol}_{BH} = (1 - \|b\|^2_{a^{-1}})^{(n+1)/2} \sqrt{\det a}$ and
    $\det g_y = (F/\alpha)^{n+1}\det a$, so
    $\mathcal{T} = \frac{n+1}{2}\log\frac{F}{\alpha (1 - \|b\|^2_{a^{-1}})}$, and
    $S = \partial_x\mathcal{T}\cdot y - 2\,\partial_y\mathcal{T}\cdot G(x, y)$ (one `jvp`;
    $n$ = `manifold.dim`).
    Known values: $S = 0$ on Minkowski–Randers spaces and under Killing winds,
    $S = \frac{n+1}{2} F$ on the Funk ball. Positively 1-homogeneous in $y$.

    Args:
        manifold: a finslerlib manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`, nonzero.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0])
        >>> s_curvature(FunkBall(2), x, y)  # (n + 1) / 2 * F = 1.5 * 2
        tensor(3.)
    """
    batch, (xf, yf) = prepare(manifold, ("x", "y"), x, y)
    chart = make_chart(manifold, xf)
    w = chart.to_chart(yf, name="y")
    check_nonzero(w)
    n = int(manifold.dim)
    g = spray_in_chart(chart.coef, chart.z0, w)
    _, s = torch.func.jvp(lambda z, y_: distortion(chart.coef, z, y_, n), (chart.z0, w), (w, -2.0 * g))
    return s.reshape(batch)
