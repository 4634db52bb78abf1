r"""Riemannian geometry of geoopt's model spaces in ambient coordinates (pure functions).

The bases of `finslerlib.Navigation`, named by `kind` and a curvature parameter `k`, in the
coordinates geoopt uses:

* `"euclidean"`: $\mathbb{R}^n$, $h = I$ (`k` unused);
* `"sphere"`: the unit sphere $S^n \subset \mathbb{R}^{n+1}$, $h$ the induced metric (`k` unused);
* `"lorentz"`: the hyperboloid $\langle x, x\rangle_L = -k$, $x_0 > 0$, in $\mathbb{R}^{n,1}$
  ($\langle u, v\rangle_L = -u_0 v_0 + \sum_{i \ge 1} u_i v_i$), curvature $-1/k$;
* `"stereographic"`: geoopt's $\kappa$-stereographic model of curvature `k` (Poincaré ball for
  $k < 0$, stereographic sphere for $k > 0$), $h = \lambda_x^2 I$, $\lambda_x = 2 / (1 + k|x|^2)$.

`inner` is an SPD extension of $h$ to all ambient vectors: on the hyperboloid
$h(u, v) = \langle u, v\rangle_L - 2\langle x, u\rangle_L \langle x, v\rangle_L / \langle x, x\rangle_L$,
which equals the induced metric on tangent vectors and is positive on the normal line; so the
Randers data of `Navigation.coefficients` are SPD ambient matrices. Covectors (Euclidean
gradients) are first restricted to the tangent space (`restrict_covector`): their canonical
representative annihilates the normal direction, and `sharp` of it is the Riemannian gradient.
Distances, exponential and logarithm use forms that stay accurate for near and far pairs
(chords and half-angles instead of arccos / arccosh) and have finite gradients at coincident
points.
"""

from __future__ import annotations

import torch

from finslerlib.math.pairwise import safe_sqrt

__all__ = [
    "KINDS",
    "rowsum",
    "inner",
    "flat",
    "sharp",
    "restrict_covector",
    "proju",
    "base_metric",
    "base_dist",
    "base_expmap",
    "base_logmap",
    "mobius_add",
]

KINDS = ("euclidean", "sphere", "lorentz", "stereographic")
"""The kinds of Riemannian base these functions take (`kind=`): flat, round sphere, hyperboloid,
and the conformal stereographic models (Poincaré ball, `SphereProjection`)."""


def rowsum(t: torch.Tensor, *, keepdim: bool = False, weights=None) -> torch.Tensor:
    """Sum over the last dimension as a matmul with a ones (or `weights`) column.

    On CPU, `Tensor.sum(-1)` over a short last dimension (the 3 ambient coordinates of $S^2$) is
    tens of times slower than this matmul, and it is the inner loop of every root find here.

    Args:
        t: Tensor, shape `[..., N]`.
        keepdim: keep the last dimension.
        weights: optional list of N floats (e.g. the Minkowski signature).

    Returns:
        Tensor, shape `[...]` (or `[..., 1]`).

    Example:
        >>> rowsum(torch.tensor([[1.0, 2.0, 3.0]]), weights=[-1.0, 1.0, 1.0])
        tensor([4.])
    """
    n = t.shape[-1]
    col = (
        torch.ones(n, 1, dtype=t.dtype, device=t.device)
        if weights is None
        else torch.tensor(weights, dtype=t.dtype, device=t.device).reshape(n, 1)
    )
    out = t @ col
    return out if keepdim else out.squeeze(-1)


def _dot(u: torch.Tensor, v: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    return rowsum(u * v, keepdim=keepdim)


def _minkowski(u: torch.Tensor, v: torch.Tensor, keepdim: bool = True) -> torch.Tensor:
    uv = u * v
    return rowsum(uv, keepdim=keepdim, weights=[-1.0] + [1.0] * (uv.shape[-1] - 1))


def _j(u: torch.Tensor) -> torch.Tensor:
    """$J u$ with $J = \\mathrm{diag}(-1, 1, \\dots, 1)$."""
    return torch.cat([-u[..., :1], u[..., 1:]], -1)


def _lambda(k: float, x: torch.Tensor) -> torch.Tensor:
    return 2.0 / (1.0 + k * _dot(x, x))


# ------------------------------------------------------------------ small-argument-stable ratios
def _series(z: torch.Tensor, fn, c2: float, c4: float) -> torch.Tensor:
    """`fn(z)` where `|z| >= 1e-2`, else the series `1 + c2 z^2 + c4 z^4` (finite gradients)."""
    small = z.abs() < 1e-2
    zs = torch.where(small, torch.ones_like(z), z)
    z2 = z * z
    return torch.where(small, 1.0 + c2 * z2 + c4 * z2 * z2, fn(zs))


def _sin_div(z):  # sin(z) / z
    return _series(z, lambda s: torch.sin(s) / s, -1.0 / 6, 1.0 / 120)


def _sinh_div(z):  # sinh(z) / z
    return _series(z, lambda s: torch.sinh(s) / s, 1.0 / 6, 1.0 / 120)


def _div_sin(z):  # z / sin(z)
    return _series(z, lambda s: s / torch.sin(s), 1.0 / 6, 7.0 / 360)


def _div_sinh(z):  # z / sinh(z)
    return _series(z, lambda s: s / torch.sinh(s), -1.0 / 6, 7.0 / 360)


def _tan_k_div(k: float, r: torch.Tensor) -> torch.Tensor:
    """$\\tan_k(r) / r$ (tan for k > 0, tanh for k < 0, 1 for k = 0)."""
    if k == 0:
        return torch.ones_like(r)
    z = abs(k) ** 0.5 * r
    if k > 0:
        return _series(z, lambda s: torch.tan(s) / s, 1.0 / 3, 2.0 / 15)
    return _series(z, lambda s: torch.tanh(s) / s, -1.0 / 3, 2.0 / 15)


def _artan_k_div(k: float, r: torch.Tensor) -> torch.Tensor:
    """$\\operatorname{artan}_k(r) / r$ (atan for k > 0, atanh for k < 0, 1 for k = 0)."""
    if k == 0:
        return torch.ones_like(r)
    z = abs(k) ** 0.5 * r
    if k > 0:
        return _series(z, lambda s: torch.atan(s) / s, -1.0 / 3, 1.0 / 5)
    return _series(z, lambda s: torch.atanh(s) / s, 1.0 / 3, 1.0 / 5)


# ------------------------------------------------------------------ the base metric h
def inner(kind: str, k: float, x: torch.Tensor, u: torch.Tensor, v: torch.Tensor, *, keepdim=False):
    r"""The base metric $h_x(u, v)$ (its SPD ambient extension on the hyperboloid).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter of the base.
        x: Tensor, shape `[..., N]`, points.
        u: Tensor, shape `[..., N]`.
        v: Tensor, shape `[..., N]`.
        keepdim: keep the last dimension.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> x = torch.tensor([0.0, 0.5])
        >>> inner("stereographic", -1.0, x, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]))
        tensor(7.1111)
    """
    if kind in ("euclidean", "sphere"):
        out = _dot(u, v)
    elif kind == "lorentz":
        out = _minkowski(u, v) - 2.0 * _minkowski(x, u) * _minkowski(x, v) / _minkowski(x, x)
    else:
        out = _lambda(k, x) ** 2 * _dot(u, v)
    return out if keepdim else out.squeeze(-1)


def flat(kind: str, k: float, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""The covector $h_x(u, \cdot)$ of a vector, in ambient coordinates.

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        u: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> flat("stereographic", -1.0, torch.zeros(2), torch.tensor([1.0, 0.0]))
        tensor([4., 0.])
    """
    if kind in ("euclidean", "sphere"):
        return u
    if kind == "lorentz":
        return _j(u) - 2.0 * _minkowski(x, u) / _minkowski(x, x) * _j(x)
    return _lambda(k, x) ** 2 * u


def sharp(kind: str, k: float, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    r"""The vector $h_x^{-1} \xi$ of a covector (inverse of `flat`).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        xi: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> sharp("stereographic", 1.0, torch.zeros(2), torch.tensor([4.0, 0.0]))
        tensor([1., 0.])
    """
    if kind in ("euclidean", "sphere"):
        return xi
    if kind == "lorentz":
        return _j(xi) - 2.0 * _dot(x, xi) / _minkowski(x, x) * x
    return xi / _lambda(k, x) ** 2


def restrict_covector(kind: str, k: float, x: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    r"""Restrict an ambient covector to $T_x M$: its representative that vanishes on the normal.

    Sphere: $\xi - (\xi \cdot x)\, x / |x|^2$; hyperboloid: $\xi - (\xi \cdot x)\, J x /
    \langle x, x\rangle_L$ (vanishes on $x$, acts as $\xi$ on tangent vectors). Open bases: identity.
    `sharp` of the result is the Riemannian gradient (geoopt's `egrad2rgrad`).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        xi: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> restrict_covector("sphere", 1.0, torch.tensor([1.0, 0.0]), torch.tensor([3.0, 4.0]))
        tensor([0., 4.])
    """
    if kind == "sphere":
        return xi - _dot(xi, x) / _dot(x, x) * x
    if kind == "lorentz":
        return xi - _dot(xi, x) / _minkowski(x, x) * _j(x)
    return xi


def proju(kind: str, k: float, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""$h$-orthogonal projection of an ambient vector onto $T_x M$ (identity on open bases).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        u: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> proju("sphere", 1.0, torch.tensor([1.0, 0.0]), torch.tensor([3.0, 4.0]))
        tensor([0., 4.])
    """
    if kind == "sphere":
        return u - _dot(u, x) / _dot(x, x) * x
    if kind == "lorentz":
        return u - _minkowski(x, u) / _minkowski(x, x) * x
    return u


def base_metric(kind: str, k: float, x: torch.Tensor) -> torch.Tensor:
    r"""The matrix of `inner` at `x`, shape `[..., N, N]` (SPD).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N, N]`.

    Example:
        >>> base_metric("lorentz", 1.0, torch.tensor([1.0, 0.0]))
        tensor([[1., 0.],
                [0., 1.]])
    """
    n = x.shape[-1]
    eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(*x.shape[:-1], n, n)
    if kind in ("euclidean", "sphere"):
        return eye
    if kind == "lorentz":
        jx = _j(x)
        jdiag = torch.diag_embed(_j(torch.ones_like(x)))
        return jdiag - 2.0 * (jx.unsqueeze(-1) * jx.unsqueeze(-2)) / _minkowski(x, x).unsqueeze(-1)
    return (_lambda(k, x) ** 2).unsqueeze(-1) * eye


def mobius_add(k: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Möbius addition $x \oplus_k y$ of the $\kappa$-stereographic model (geoopt's convention).

    Args:
        k: the curvature.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> mobius_add(-1.0, torch.zeros(2), torch.tensor([0.5, 0.0]))
        tensor([0.5000, 0.0000])
    """
    xy, x2, y2 = _dot(x, y), _dot(x, x), _dot(y, y)
    num = (1.0 - 2.0 * k * xy - k * y2) * x + (1.0 + k * x2) * y
    return num / (1.0 - 2.0 * k * xy + k * k * x2 * y2)


def base_dist(kind: str, k: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Riemannian distance $d_h(x, y)$, accurate for near and far pairs, zero gradient at $x = y$.

    Sphere: $2 \operatorname{atan2}(|x - y|, |x + y|)$; hyperboloid:
    $2\sqrt{k} \operatorname{asinh}(|x - y|_L / 2\sqrt{k})$; stereographic:
    $2 \operatorname{artan}_k |{-x} \oplus_k y|$.

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[...]`.

    Example:
        >>> base_dist("sphere", 1.0, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
        tensor(1.5708)
    """
    if kind == "euclidean":
        return safe_sqrt(_dot(y - x, y - x, False))
    if kind == "sphere":
        return 2.0 * torch.atan2(safe_sqrt(_dot(x - y, x - y, False)), safe_sqrt(_dot(x + y, x + y, False)))
    if kind == "lorentz":
        c = safe_sqrt(_minkowski(y - x, y - x, False))
        rk = k**0.5
        return 2.0 * rk * torch.asinh(c / (2.0 * rk))
    w = mobius_add(k, -x, y)
    r = safe_sqrt(_dot(w, w, False))
    return 2.0 * r * _artan_k_div(k, r)


def base_expmap(kind: str, k: float, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""Riemannian exponential map $\exp^h_x(u)$ ($u$ tangent at $x$).

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        u: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`.

    Example:
        >>> base_expmap("sphere", 1.0, torch.tensor([1.0, 0.0]), torch.tensor([0.0, torch.pi]))
        tensor([-1.0000e+00, -8.7423e-08])
    """
    if kind == "euclidean":
        return x + u
    if kind == "sphere":
        n = safe_sqrt(_dot(u, u))
        return torch.cos(n) * x + _sin_div(n) * u
    if kind == "lorentz":
        n = safe_sqrt(_minkowski(u, u)) / k**0.5
        return torch.cosh(n) * x + _sinh_div(n) * u
    lam = _lambda(k, x)
    r = safe_sqrt(_dot(u, u))
    return mobius_add(k, x, 0.5 * lam * _tan_k_div(k, 0.5 * lam * r) * u)


def base_logmap(kind: str, k: float, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Riemannian logarithm $\log^h_x(y)$, with derivative $I$ at $y = x$.

    Args:
        kind: one of `KINDS`.
        k: the curvature parameter.
        x: Tensor, shape `[..., N]`.
        y: Tensor, shape `[..., N]`.

    Returns:
        Tensor, shape `[..., N]`: tangent at `x`, $h$-length $d_h(x, y)$.

    Example:
        >>> base_logmap("sphere", 1.0, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
        tensor([0.0000, 1.5708])
    """
    if kind == "euclidean":
        return y - x
    d = base_dist(kind, k, x, y).unsqueeze(-1)
    if kind == "sphere":
        # y - <x, y> x with <x, y> = 1 - |x - y|^2 / 2 (no cancellation for close points)
        u = (y - x) + 0.5 * _dot(x - y, x - y) * x
        return _div_sin(d) * u
    if kind == "lorentz":
        # y + <x, y>_L x / k with <x, y>_L = -k - |y - x|_L^2 / 2
        u = (y - x) - 0.5 * _minkowski(y - x, y - x) / k * x
        return _div_sinh(d / k**0.5) * u
    w = mobius_add(k, -x, y)
    r = safe_sqrt(_dot(w, w))
    return (2.0 / _lambda(k, x)) * _artan_k_div(k, r) * w
