r"""Hypothesis strategies for Finsler manifolds: points, tangent vectors, covectors, Randers data.

Requires hypothesis, a *test* dependency (`pip install finslerlib[test]`); the rest of
finslerlib never imports this module.

Every strategy returns torch tensors of the requested `dtype` (float64 by default) built from
floats that hypothesis draws (so failures shrink and replay), and avoids flaky edge values
unless asked: no NaN/inf, no subnormals, no vectors that are zero or nearly so, lengths inside
`[min_norm, max_norm]`, conditioning of `a` bounded. `allow_extreme=True` widens the ranges
(huge and tiny coordinates and lengths) for robustness tests.

Lengths are *Finsler* lengths: `tangent_vectors(m, x, max_norm=0.1)` gives vectors with
$F(x, v) \le 0.1$ whatever the metric looks like at `x` (also next to the boundary of a ball),
and `covectors` are measured by the dual norm $F^*$.

Example:
    >>> from hypothesis import given, settings
    >>> from finslerlib import Randers
    >>> m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
    >>> @settings(max_examples=10, derandomize=True)
    ... @given(data=st.data())
    ... def test_homogeneity(data):
    ...     x = data.draw(points(m))
    ...     v = data.draw(tangent_vectors(m, x))
    ...     assert torch.allclose(m.norm(x, 3 * v), 3 * m.norm(x, v))
    >>> test_homogeneity()
"""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["points", "tangent_vectors", "covectors", "randers_params", "randers_manifolds"]


def _floats(bound: float, allow_extreme: bool):
    if allow_extreme:
        return st.floats(-1e6 * bound, 1e6 * bound, allow_nan=False, allow_infinity=False, width=64)
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def _array(shape, bound, allow_extreme):
    return hnp.arrays(np.float64, shape, elements=_floats(bound, allow_extreme))


def _batch_shape(manifold, batch) -> tuple[int, ...]:
    batch = (batch,) if isinstance(batch, int) else tuple(batch)
    return (*batch, getattr(manifold, "ambient_dim", manifold.dim))


def _directions(shape):
    """Arrays with entries in [-1, 1] whose rows are far from zero (no flaky near-zero vectors)."""

    def fix(arr):
        arr = arr.reshape(-1, shape[-1]).copy()
        small = np.linalg.norm(arr, axis=-1) < 1e-3
        arr[small, 0] = 1.0  # a fixed, harmless direction instead of a degenerate one
        return arr.reshape(shape)

    return _array(shape, 1.0, allow_extreme=False).map(fix)


def _accept(manifold, x: torch.Tensor) -> torch.Tensor:
    """Pull points the manifold rejects toward its origin (halving the offset) until accepted."""
    size = getattr(manifold, "ambient_dim", manifold.dim)
    flat = x.reshape(-1, size)
    origin = torch.as_tensor(manifold.origin(size, dtype=x.dtype, device=x.device))
    origin = origin.as_subclass(torch.Tensor)
    rows = []
    for p in flat:
        for _ in range(80):
            if bool(manifold.check_point_on_manifold(p)):
                break
            p = origin + 0.5 * (p - origin)
        rows.append(p)
    return torch.stack(rows).reshape(x.shape)


@st.composite
def points(
    draw,
    manifold,
    *,
    batch=(),
    scale: float = 1.0,
    dtype: torch.dtype = torch.float64,
    device=None,
    allow_extreme: bool = False,
) -> torch.Tensor:
    """Points of `manifold`: coordinates in `[-scale, scale]`, pulled inside the manifold.

    Points the manifold's `check_point_on_manifold` rejects (e.g. outside a ball) are moved toward
    `manifold.origin()` by halving until accepted, so bounded manifolds get points spread over
    their domain, boundary regions included.

    Args:
        manifold: a `FinslerManifold`.
        batch: leading batch shape (int or tuple), `()` for a single point.
        scale: coordinate range.
        dtype: tensor dtype.
        device: tensor device.
        allow_extreme: draw coordinates up to `1e6 * scale` (and tiny ones).

    Returns:
        A strategy of Tensors, shape `[*batch, D]`.

    Example:
        >>> from finslerlib import Randers
        >>> from hypothesis import find
        >>> x = find(points(Randers(torch.eye(3)), batch=4, dtype=torch.float32), lambda x: True)
        >>> x.shape, x.dtype
        (torch.Size([4, 3]), torch.float32)
    """
    shape = _batch_shape(manifold, batch)
    arr = draw(_array(shape, scale, allow_extreme))
    x = torch.as_tensor(arr, dtype=dtype, device=device)
    return _accept(manifold, x)


def _rescale(x, u, lengths, norm_fn):
    try:
        f = norm_fn(x, u).abs()
    except NotImplementedError:
        f = u.norm(dim=-1)
    f = torch.where(torch.isfinite(f) & (f > 0), f, u.norm(dim=-1))
    return u * (lengths / f).unsqueeze(-1)


@st.composite
def tangent_vectors(
    draw,
    manifold,
    x: torch.Tensor,
    *,
    min_norm: float = 1e-2,
    max_norm: float = 1.0,
    allow_zero: bool = False,
    allow_extreme: bool = False,
) -> torch.Tensor:
    r"""Tangent vectors at `x` with Finsler length $F(x, v) \in$ `[min_norm, max_norm]`.

    The direction is drawn uniformly from a cube (never nearly zero), then rescaled so that
    $F(x, v)$ is a drawn length (log-uniform in the range), one per point of the batch.

    Args:
        manifold: a `FinslerManifold`.
        x: Tensor, shape `[..., D]`, points (e.g. from `points`).
        min_norm: smallest Finsler length.
        max_norm: largest Finsler length.
        allow_zero: also draw the zero vector.
        allow_extreme: lengths from `1e-8` to `1e8` (and zero vectors).

    Returns:
        A strategy of Tensors with `x`'s shape, dtype and device.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
        >>> x = torch.zeros(5, 2, dtype=torch.float64)
        >>> from hypothesis import find
        >>> v = find(tangent_vectors(m, x, min_norm=0.1, max_norm=0.2), lambda v: True)
        >>> bool(((m.norm(x, v) >= 0.1 - 1e-12) & (m.norm(x, v) <= 0.2 + 1e-12)).all())
        True
    """
    if not 0 < min_norm <= max_norm:
        raise ValueError(f"need 0 < min_norm <= max_norm, got {min_norm}, {max_norm}")
    if allow_extreme:
        min_norm, max_norm, allow_zero = min(min_norm, 1e-8), max(max_norm, 1e8), True
    shape = tuple(x.shape)
    u = torch.as_tensor(draw(_directions(shape)), dtype=x.dtype, device=x.device)
    n = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    log_lo, log_hi = math.log(min_norm), math.log(max_norm)
    logs = draw(hnp.arrays(np.float64, (n,), elements=st.floats(log_lo, log_hi, allow_nan=False)))
    lengths = torch.as_tensor(np.exp(logs), dtype=x.dtype, device=x.device).reshape(shape[:-1])
    v = _rescale(x, u, lengths, manifold.norm)
    if allow_zero:
        zero = torch.as_tensor(draw(hnp.arrays(np.bool_, shape[:-1] or (1,))), device=x.device)
        v = torch.where(zero.reshape(shape[:-1]).unsqueeze(-1), torch.zeros_like(v), v)
    return v


@st.composite
def covectors(
    draw,
    manifold,
    x: torch.Tensor,
    *,
    min_norm: float = 1e-2,
    max_norm: float = 1.0,
    allow_extreme: bool = False,
) -> torch.Tensor:
    r"""Covectors at `x` with dual norm $F^*(x, \xi) \in$ `[min_norm, max_norm]`.

    Falls back to Euclidean lengths when the manifold has no `dual_norm`.

    Args:
        manifold: a `FinslerManifold`.
        x: Tensor, shape `[..., D]`.
        min_norm: smallest dual length.
        max_norm: largest dual length.
        allow_extreme: lengths from `1e-8` to `1e8`.

    Returns:
        A strategy of Tensors with `x`'s shape, dtype and device.

    Example:
        >>> from finslerlib import Randers
        >>> m = Randers(torch.eye(2, dtype=torch.float64))
        >>> from hypothesis import find
        >>> xi = find(covectors(m, torch.zeros(2, dtype=torch.float64), min_norm=1.0, max_norm=1.0),
        ...           lambda xi: True)
        >>> torch.allclose(m.dual_norm(torch.zeros(2, dtype=torch.float64), xi), torch.tensor(1.0).double())
        True
    """
    if not 0 < min_norm <= max_norm:
        raise ValueError(f"need 0 < min_norm <= max_norm, got {min_norm}, {max_norm}")
    if allow_extreme:
        min_norm, max_norm = min(min_norm, 1e-8), max(max_norm, 1e8)
    shape = tuple(x.shape)
    u = torch.as_tensor(draw(_directions(shape)), dtype=x.dtype, device=x.device)
    n = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    logs = draw(hnp.arrays(np.float64, (n,),
                           elements=st.floats(math.log(min_norm), math.log(max_norm), allow_nan=False)))
    lengths = torch.as_tensor(np.exp(logs), dtype=x.dtype, device=x.device).reshape(shape[:-1])
    return _rescale(x, u, lengths, manifold.dual_norm)


@st.composite
def randers_params(
    draw,
    dim,
    *,
    max_drift: float = 0.9,
    min_drift: float = 0.0,
    min_eig: float = 0.1,
    max_eig: float = 10.0,
    dtype: torch.dtype = torch.float64,
    device=None,
):
    r"""Valid constant Randers data `(a, b)`: $a$ SPD, $\|b\|_{a^{-1}} \in$ `[min_drift, max_drift]`.

    $a = Q \operatorname{diag}(\lambda) Q^\top$ with eigenvalues $\lambda$ log-uniform in
    `[min_eig, max_eig]` (so its condition number is at most `max_eig / min_eig`) and a drawn
    rotation $Q$; $b = Q \operatorname{diag}(\sqrt\lambda)\, w$ with $|w|$ the drift size, so
    the asymmetry $\max F(v)/F(-v) = (1 + |w|)/(1 - |w|)$ is controlled by `max_drift`.

    Args:
        dim: dimension `D`, an int or a strategy of ints.
        max_drift: largest $\|b\|_{a^{-1}}$, in `[0, 1)`.
        min_drift: smallest $\|b\|_{a^{-1}}$.
        min_eig: smallest eigenvalue of `a` (> 0).
        max_eig: largest eigenvalue of `a`.
        dtype: tensor dtype.
        device: tensor device.

    Returns:
        A strategy of `(a, b)`: Tensors of shapes `[D, D]` and `[D]`.

    Example:
        >>> from finslerlib.math.randers import drift_norm
        >>> from hypothesis import find
        >>> a, b = find(randers_params(3, max_drift=0.5), lambda ab: bool(ab[1].norm() > 0))
        >>> a.shape, b.shape, bool(drift_norm(a, b) <= 0.5 + 1e-9)
        (torch.Size([3, 3]), torch.Size([3]), True)
    """
    if not 0 <= min_drift <= max_drift < 1:
        raise ValueError(f"need 0 <= min_drift <= max_drift < 1, got {min_drift}, {max_drift}")
    if not 0 < min_eig <= max_eig:
        raise ValueError(f"need 0 < min_eig <= max_eig, got {min_eig}, {max_eig}")
    d = draw(dim) if isinstance(dim, st.SearchStrategy) else int(dim)
    log_eigs = draw(hnp.arrays(np.float64, (d,), elements=st.floats(
        math.log(min_eig), math.log(max_eig), allow_nan=False)))
    raw = torch.as_tensor(draw(_array((d, d), 1.0, False))) + 2.0 * torch.eye(d, dtype=torch.float64)
    q, _ = torch.linalg.qr(raw)  # orthogonal for any raw matrix (Householder)
    eigs = torch.as_tensor(np.exp(log_eigs))
    factor = q * eigs.sqrt()
    a = factor @ factor.T
    a = 0.5 * (a + a.T)
    direction = torch.as_tensor(draw(_directions((d,))))
    size = draw(st.floats(min_drift, max_drift, allow_nan=False))
    w = direction / direction.norm() * size
    b = factor @ w
    return a.to(dtype=dtype, device=device), b.to(dtype=dtype, device=device)


def randers_manifolds(dim, **kwargs):
    """`Randers` manifolds built from `randers_params(dim, **kwargs)`.

    Example:
        >>> from hypothesis import find
        >>> find(randers_manifolds(2, max_drift=0.3), lambda m: True).dim
        2
    """
    from finslerlib import Randers

    return randers_params(dim, **kwargs).map(lambda ab: Randers(*ab))
