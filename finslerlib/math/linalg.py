r"""Small linear algebra shared by the math, the geodesic solvers and the curvature.

One module for it: batched matrix-vector products (`matvec`), solves with symmetric positive
definite matrices through their Cholesky factor (`solve_spd`), and the closed-form inverse of
symmetric matrices of size `D <= 3` written per component (`small_inverse`, `matvec_rows`,
`rows_times`, `dot`), which beats a batched factorization on `[B]` tensors of entries.
Pure functions, no state; they follow the input's device and dtype.
"""

from __future__ import annotations

import torch

__all__ = ["matvec", "solve_spd", "small_inverse", "matvec_rows", "rows_times", "dot", "batch_shape"]


def batch_shape(*shapes: torch.Size) -> torch.Size:
    """`torch.broadcast_shapes(*shapes)`, without its Python cost when the shapes are equal or
    all but one are empty (the common cases on small batches).

    Example:
        >>> batch_shape(torch.Size([]), torch.Size([3]))
        torch.Size([3])
    """
    full = [s for s in shapes if len(s)]
    if not full:
        return torch.Size([])
    if all(s == full[0] for s in full[1:]):
        return torch.Size(full[0])
    return torch.broadcast_shapes(*shapes)


def matvec(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Batched matrix-vector product `a @ v` with broadcasting.

    Args:
        a: Tensor, shape `[..., D, D]` (or `[D, D]`).
        v: Tensor, shape `[..., D]`.

    Returns:
        Tensor, shape `[..., D]`.

    Example:
        >>> matvec(torch.eye(2), torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """
    if a is None:
        return v
    if a.dim() == 2:
        # One shared matrix: a plain matmul avoids broadcasting a copy of `a` per vector.
        return v @ a.mT
    return (a @ v.unsqueeze(-1)).squeeze(-1)


def solve_spd(a: torch.Tensor, v: torch.Tensor, *, chol: torch.Tensor | None = None) -> torch.Tensor:
    """Solve `a x = v` for symmetric positive definite `a` through its Cholesky factor.

    Args:
        a: Tensor, shape `[..., D, D]`, SPD.
        v: Tensor, shape `[..., D]`.
        chol: the lower Cholesky factor of `a` when the caller already has it (several solves
            with one `a` then cost one factorization).

    Returns:
        Tensor, shape `[..., D]`: `a^{-1} v`.

    Example:
        >>> solve_spd(2 * torch.eye(2), torch.tensor([2.0, 4.0]))
        tensor([1., 2.])
    """
    if a is None:
        return v
    if chol is None:
        chol = torch.linalg.cholesky(a)
    if a.dim() == 2:
        return torch.cholesky_solve(v.reshape(-1, v.shape[-1]).mT, chol).mT.reshape(v.shape)
    shape = batch_shape(a.shape[:-2], v.shape[:-1])
    chol = chol.expand(*shape, *a.shape[-2:])
    rhs = v.expand(*shape, v.shape[-1]).unsqueeze(-1)
    return torch.cholesky_solve(rhs, chol).squeeze(-1)


def small_inverse(a: torch.Tensor):
    r"""Adjugate, determinant and positive definiteness of symmetric `a` `[..., D, D]`, D <= 3.

    Reads the lower triangle only (as a Cholesky factorization does), so `adj[i][j]` are the
    cofactors of the symmetric matrix and $a^{-1} = \mathrm{adj} / \det$. Positive definiteness
    by Sylvester's criterion (leading principal minors; NaN counts as not positive). Returns
    `None` for D > 3 and for complex or integer input. Used where a few elementwise operations on
    `[B]` tensors beat a batched factorization (validation and the Hamiltonian vector field).
    """
    d = a.shape[-1]
    if d > 3 or not a.is_floating_point():
        return None
    e = a.flatten(-2).unbind(-1)
    if d == 1:
        (a00,) = e
        one = torch.ones_like(a00)
        return [[one]], a00, a00 > 0
    if d == 2:
        a00, _, a10, a11 = e
        det = a00 * a11 - a10 * a10
        return [[a11, -a10], [-a10, a00]], det, (a00 > 0) & (det > 0)
    a00, _, _, a10, a11, _, a20, a21, a22 = e
    c00 = a11 * a22 - a21 * a21
    c10 = a20 * a21 - a10 * a22
    c20 = a10 * a21 - a11 * a20
    c11 = a00 * a22 - a20 * a20
    c21 = a10 * a20 - a00 * a21
    c22 = a00 * a11 - a10 * a10
    det = a00 * c00 + a10 * c10 + a20 * c20
    adj = [[c00, c10, c20], [c10, c11, c21], [c20, c21, c22]]
    return adj, det, (a00 > 0) & (c22 > 0) & (det > 0)


def matvec_rows(rows, v: torch.Tensor) -> torch.Tensor:
    """`M v` for a small matrix given as nested lists of `[...]` tensors, `v` `[..., D]`."""
    return torch.stack(torch.broadcast_tensors(*rows_times(rows, v.unbind(-1))), -1)


def rows_times(rows, comps):
    """Components of `M v` for a small matrix `M` (nested lists) and the components of `v`."""
    return [dot(row, comps) for row in rows]


def dot(xs, ys):
    """Sum of products of two lists of tensors (a dot product written per component)."""
    acc = xs[0] * ys[0]
    for xi, yi in zip(xs[1:], ys[1:], strict=True):
        acc = acc + xi * yi
    return acc
