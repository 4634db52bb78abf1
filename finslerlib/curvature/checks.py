r"""Curvature and transport properties of a user metric, as plain check functions.

Each function takes a manifold and sample points/vectors, and returns `(ok, message)`: `ok` is a
bool, `message` describes the worst violation (or `None`). They hold for every Randers metric, so
a failure means the metric's data (or a custom override) is inconsistent; they are meant to be
registered in `finslerlib.testing`'s property families.

* `check_flag_curvature_invariance`: $K(x, y, V)$ does not change when $V \mapsto \mu V + c\,y$
  ($\mu \ne 0$) or $y \mapsto \lambda y$ ($\lambda > 0$).
* `check_ricci_trace`: $\mathrm{Ric}(x, y) = F(y)^2 \sum_a K(x, y, e_a)$ over a $g_y$-orthonormal
  basis $e_a$ of the $g_y$-orthogonal complement of $y$ (Gram–Schmidt, independent of the trace).
* `check_riemann_symmetry`: $R_y(y) = 0$ and $g_y(R_y U, V) = g_y(U, R_y V)$.
* `check_transport_isometry`: the parallel transport along $\exp_x(t u)$ preserves
  $g_{\dot\gamma}(U, V)$ and maps $u$ to $\dot\gamma(1)$ (open subsets of $\mathbb{R}^D$).
"""

from __future__ import annotations

import torch

from finslerlib.curvature._chart import ambient_dim
from finslerlib.curvature.quantities import flag_curvature, ricci_curvature, riemann_curvature
from finslerlib.curvature.transport import geodesic_transport
from finslerlib.math import randers as rmath

__all__ = [
    "check_flag_curvature_invariance",
    "check_ricci_trace",
    "check_riemann_symmetry",
    "check_transport_isometry",
]


def _tolerances(dtype, rtol, atol):
    if rtol is None:
        rtol = 1e-6 if dtype == torch.float64 else 1e-2
    if atol is None:
        atol = 1e-8 if dtype == torch.float64 else 1e-3
    return rtol, atol


def _worst(name: str, got: torch.Tensor, want: torch.Tensor, rtol: float, atol: float):
    err = (got - want).abs()
    bound = atol + rtol * want.abs()
    bad = ~(err <= bound)
    if bool(bad.any()):
        i = int((err - bound).reshape(-1).argmax())
        return False, (
            f"{name}: {int(bad.sum())} of {bad.numel()} samples off; "
            f"worst {got.reshape(-1)[i].item():.6g} vs "
            f"{want.reshape(-1)[i].item():.6g} (|diff| {err.reshape(-1)[i].item():.3g}, "
            f"tolerance {bound.reshape(-1)[i].item():.3g})"
        )
    return True, None


def _g(manifold, x, y):
    return rmath.fundamental_tensor(y, *manifold.coefficients(x))


def _ip(g, u, v):
    return (u * rmath.matvec(g, v)).sum(-1)


def check_flag_curvature_invariance(manifold, x, y, v, *, rtol=None, atol=None):
    """$K(y, V) = K(\\lambda y, \\mu V + c y)$ for $\\lambda = 1.7$, $\\mu = -0.6$, $c = 0.8$.

    Args:
        manifold: a manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[B, N]`, points.
        y: Tensor, shape `[B, N]`, nonzero tangent vectors.
        v: Tensor, shape `[B, N]`, tangent vectors not parallel to `y`.
        rtol: relative tolerance (default 1e-6 in float64, 1e-2 in float32).
        atol: absolute tolerance (default 1e-8 / 1e-3).

    Returns:
        `(ok, message)`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y, v = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.3, 1.0]])
        >>> check_flag_curvature_invariance(FunkBall(2), x, y, v)
        (True, None)
    """
    rtol, atol = _tolerances(x.dtype, rtol, atol)
    k = flag_curvature(manifold, x, y, v)
    k2 = flag_curvature(manifold, x, 1.7 * y, -0.6 * v + 0.8 * y)
    return _worst("K(x, y, V) vs K(x, 1.7 y, -0.6 V + 0.8 y)", k2, k, rtol, atol)


def _frame(manifold, x, y):
    """A g_y-orthonormal basis `[B, n - 1, N]` of the g_y-complement of y (tangent vectors)."""
    n_amb = ambient_dim(manifold)
    g = _g(manifold, x, y)
    eye = torch.eye(n_amb, dtype=x.dtype, device=x.device)
    batch = x.shape[:-1]
    cands = manifold.proju(x.unsqueeze(-2).expand(*batch, n_amb, n_amb), eye.expand(*batch, -1, -1))
    basis = [y / _ip(g, y, y).sqrt().unsqueeze(-1)]
    out = []
    for j in range(n_amb):
        w = cands[..., j, :]
        for e in basis + out:
            w = w - _ip(g, e, w).unsqueeze(-1) * e
        size = _ip(g, w, w).clamp_min(0).sqrt()
        keep = size > 1e-6 * _ip(g, cands[..., j, :], cands[..., j, :]).clamp_min(0).sqrt().clamp_min(1e-30)
        if bool(keep.all()) and len(out) < int(manifold.dim) - 1:
            out.append(w / size.unsqueeze(-1))
    if len(out) != int(manifold.dim) - 1:
        raise ValueError("could not build a g_y-orthonormal frame from proju of the ambient basis")
    return torch.stack(out, -2)


def check_ricci_trace(manifold, x, y, *, rtol=None, atol=None):
    """$\\mathrm{Ric}(x, y) = F^2 \\sum_a K(x, y, e_a)$ over a $g_y$-orthonormal frame of $y^\\perp$.

    Args:
        manifold: a manifold with `coefficients(x) -> (a, b)` (and `proju` if embedded).
        x: Tensor, shape `[B, N]`.
        y: Tensor, shape `[B, N]`, nonzero tangent vectors.
        rtol: relative tolerance.
        atol: absolute tolerance (scaled by $F^2$).

    Returns:
        `(ok, message)`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.tensor([[0.1, 0.2, 0.0]]), torch.tensor([[1.0, 0.0, 0.5]])
        >>> check_ricci_trace(FunkBall(3), x, y)
        (True, None)
    """
    rtol, atol = _tolerances(x.dtype, rtol, atol)
    frame = _frame(manifold, x, y)
    f2 = rmath.norm(y, *manifold.coefficients(x)) ** 2
    total = sum(flag_curvature(manifold, x, y, frame[..., a, :]) for a in range(frame.shape[-2]))
    ric = ricci_curvature(manifold, x, y)
    return _worst("Ric(x, y) vs F^2 * sum of K over a g_y-orthonormal frame", ric / f2, total, rtol, atol)


def check_riemann_symmetry(manifold, x, y, u, v, *, rtol=None, atol=None):
    """$R_y(y) = 0$ and $g_y(R_y U, V) = g_y(U, R_y V)$.

    Args:
        manifold: a manifold with `coefficients(x) -> (a, b)`.
        x: Tensor, shape `[B, N]`.
        y: Tensor, shape `[B, N]`, nonzero.
        u: Tensor, shape `[B, N]`.
        v: Tensor, shape `[B, N]`.
        rtol: relative tolerance.
        atol: absolute tolerance (scaled by $F(y)^2 |U| |V|$).

    Returns:
        `(ok, message)`.

    Example:
        >>> from finslerlib import FunkBall
        >>> x, y = torch.tensor([[0.1, 0.2]]), torch.tensor([[1.0, 0.0]])
        >>> check_riemann_symmetry(FunkBall(2), x, y, torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        (True, None)
    """
    rtol, atol = _tolerances(x.dtype, rtol, atol)
    r = riemann_curvature(manifold, x, y)
    g = _g(manifold, x, y)
    f2 = rmath.norm(y, *manifold.coefficients(x)) ** 2
    scale = f2 * u.norm(dim=-1) * v.norm(dim=-1)
    ok, msg = _worst(
        "g_y(R_y U, V) vs g_y(U, R_y V)",
        _ip(g, rmath.matvec(r, u), v) / scale, _ip(g, u, rmath.matvec(r, v)) / scale, rtol, atol,
    )
    if not ok:
        return ok, msg
    ry = rmath.matvec(r, y).norm(dim=-1) / (f2 * y.norm(dim=-1))
    return _worst("|R_y(y)| / (F^2 |y|)", ry, torch.zeros_like(ry), rtol, atol)


def check_transport_isometry(manifold, x, u, v, w, *, steps=None, rtol=None, atol=None):
    """Transport along $\\exp_x(t u)$ preserves $g_{\\dot\\gamma}(V, W)$ and maps $u$ to $\\dot\\gamma(1)$.

    Args:
        manifold: a manifold on an open subset of $\\mathbb{R}^D$ with `coefficients`.
        x: Tensor, shape `[B, D]`.
        u: Tensor, shape `[B, D]`, nonzero.
        v: Tensor, shape `[B, D]`.
        w: Tensor, shape `[B, D]`.
        steps: RK4 steps (default: the manifold's).
        rtol: relative tolerance (default 1e-6 / 1e-2: the RK4 error, not round-off).
        atol: absolute tolerance (scaled by $F(u)^2 |V| |W|$).

    Returns:
        `(ok, message)`.

    Example:
        >>> from finslerlib import RandersField
        >>> field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
        >>> x, u = torch.zeros(1, 2), torch.tensor([[1.0, 0.5]])
        >>> check_transport_isometry(field, x, u, torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]]))
        (True, None)
    """
    rtol, atol = _tolerances(x.dtype, rtol, atol)
    rtol, atol = max(rtol, 1e-6), max(atol, 1e-6)
    # one batch: the three vectors along the same geodesics
    out = geodesic_transport(manifold, x.repeat(3, 1), u.repeat(3, 1), torch.cat([v, w, u]), steps=steps)
    point, velocity = out.point.chunk(3)[0], out.velocity.chunk(3)[0]
    pv, pw, pu = out.vector.chunk(3)
    g0 = _g(manifold, x, u)
    g1 = _g(manifold, point, velocity)
    f2 = rmath.norm(u, *manifold.coefficients(x)) ** 2
    scale = f2 * v.norm(dim=-1) * w.norm(dim=-1)
    ok, msg = _worst(
        "g_{gamma'(1)}(P V, P W) vs g_u(V, W)", _ip(g1, pv, pw) / scale, _ip(g0, v, w) / scale, rtol, atol
    )
    if not ok:
        return ok, msg
    err = (pu - velocity).norm(dim=-1) / velocity.norm(dim=-1)
    return _worst("|P u - gamma'(1)| / |gamma'(1)|", err, torch.zeros_like(err), rtol, atol)
