r"""The checks every manifold shares: strong convexity of Randers data, finiteness, cdist shapes.

One validator for Randers data (`check_randers`, built on the synchronization-free predicate
`randers_validity`), one guard against non-finite input (`check_finite`) and one shape check for
pairwise distances (`check_cdist_shapes`). Each raises `ValueError` naming the argument and the
measured value.

Tolerance: `a` must be symmetric up to `symmetry_tolerance(dtype)` times $\max(1, \max|a|)$,
that is $10^{-6}$ in float64 and $10^{-4}$ in float32 (10 machine epsilons in lower precision).
Positive definiteness and $\|b\|_{a^{-1}} < 1$ are checked exactly (no tolerance): the metric
must be strongly convex in the dtype it is evaluated in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch

from finslerlib.math.linalg import batch_shape, matvec_rows, small_inverse

__all__ = [
    "symmetry_tolerance",
    "randers_validity",
    "check_randers",
    "check_finite",
    "check_cdist_shapes",
    "format_values",
    "nan_unless",
    "value_checks",
    "value_checks_enabled",
]

_VALUE_CHECKS = [True]


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turn the data-dependent input checks on or off inside a `with` block (on by default).

    The value checks (`check_finite`, the Funk ball's inside-the-ball check) need one host
    synchronization each; under `torch.compile` they run as graph breaks (an error with
    `fullgraph=True`, and `torch.export` cannot trace them). Inside `with value_checks(False):`
    they are skipped, and invalid input then gives NaN instead of a `ValueError`. Shape and
    dtype checks always run.

    Example:
        >>> from finslerlib import FunkBall
        >>> with value_checks(False):
        ...     FunkBall(1).dist(torch.zeros(1), torch.tensor([2.0]))  # outside: unchecked NaN
        tensor(nan)
        >>> value_checks_enabled()
        True
    """
    old = _VALUE_CHECKS[0]
    _VALUE_CHECKS[0] = bool(enabled)
    try:
        yield
    finally:
        _VALUE_CHECKS[0] = old


def value_checks_enabled() -> bool:
    """Whether the data-dependent input checks run (see `value_checks`)."""
    return _VALUE_CHECKS[0]


def symmetry_tolerance(dtype: torch.dtype) -> float:
    r"""Relative tolerance on $\max|a - a^\top|$: 1e-6 (float64), 1e-4 (float32), 10 eps below.

    Example:
        >>> symmetry_tolerance(torch.float64), symmetry_tolerance(torch.float32)
        (1e-06, 0.0001)
    """
    base = 1e-6 if dtype == torch.float64 else 1e-4
    return max(base, 10.0 * torch.finfo(dtype).eps)


def format_values(t: torch.Tensor) -> str:
    """The entries of a (small) tensor for an error message, 6 significant digits.

    The one formatter of values in finslerlib's messages (a point, a vector, a residual).

    Example:
        >>> format_values(torch.tensor([1.0, 1 / 3]))
        '[1, 0.333333]'
    """
    return "[" + ", ".join(f"{v:.6g}" for v in t.detach().cpu().reshape(-1).tolist()) + "]"


_NONFINITE = "NaN or infinite input has no distance or norm"


def check_finite(*, reason: str = _NONFINITE, **tensors: torch.Tensor) -> None:
    """Raise `ValueError` naming the first argument with a NaN or infinite entry.

    One sum and one host synchronization per tensor (an exact entrywise check only when the sum
    is not finite). Under `torch.compile` the check is a graph break, not skipped;
    `with value_checks(False):` skips it.

    Args:
        reason: the end of the message.
        **tensors: the arguments by name.

    Example:
        >>> check_finite(x=torch.zeros(2), u=torch.tensor([1.0, float("nan")]))
        Traceback (most recent call last):
        ...
        ValueError: u has non-finite entries (1 of 2): NaN or infinite input has no distance or norm
    """
    if not _VALUE_CHECKS[0]:
        return
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        # a traced graph cannot raise from data without a graph break: the check becomes an
        # assertion op inside the graph (a RuntimeError with this message when it fails)
        for name, t in tensors.items():
            if t.is_floating_point():
                ok = torch.isfinite(t.detach()).all()
                torch._assert_async(ok, f"{name} has non-finite entries: {reason}")
        return
    checked = [(name, t) for name, t in tensors.items() if t.is_floating_point() or t.is_complex()]
    if not checked:
        return
    # fast path: one read pass per tensor, no boolean temporary, one host synchronization (a sum
    # of sums is finite when every entry is; only an overflowing or non-finite total takes the
    # exact check below); two small tensors of one shape are added first (one operation fewer)
    first = checked[0][1].detach()
    second = checked[1][1] if len(checked) == 2 else None
    pair = second is not None and second.shape == first.shape and second.device == first.device
    if pair and first.numel() <= 4096:
        total = torch.add(first, second.detach()).sum()
    else:
        total = first.sum()
        for _, t in checked[1:]:
            total = total + t.detach().sum().to(total.device)
    if bool(torch.isfinite(total)) if total.is_complex() else math.isfinite(total.item()):
        return
    for name, t in checked:
        finite = torch.isfinite(t.detach())
        if not bool(finite.all()):
            raise ValueError(
                f"{name} has non-finite entries ({int((~finite).sum())} of {t.numel()}): {reason}"
            )


def check_cdist_shapes(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise `ValueError` unless `x` is `[..., N, D]` and `y` is `[..., M, D]` (at least 2-D).

    `TypeError` for an argument that is not a `torch.Tensor`.

    Example:
        >>> check_cdist_shapes(torch.zeros(3), torch.zeros(4, 3))
        Traceback (most recent call last):
        ...
        ValueError: cdist needs x [..., N, D] and y [..., M, D], got (3,), (4, 3)
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() < 2 or y.dim() < 2:
        raise ValueError(
            f"cdist needs x [..., N, D] and y [..., M, D], got {tuple(x.shape)}, {tuple(y.shape)}"
        )


def nan_unless(ok: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """`t` where `ok`, NaN elsewhere: the one way invalid data poison a computation.

    Solvers use it instead of raising, so that a trial step leaving the domain of a metric is
    rejected (a NaN residual) rather than an exception for the whole batch.

    Args:
        ok: bool Tensor, shape `[...]`.
        t: Tensor, shape `[..., D]` (broadcastable with `ok[..., None]`).

    Returns:
        Tensor, shape `[..., D]` (the broadcast shape).

    Example:
        >>> nan_unless(torch.tensor([True, False]), torch.ones(2, 1))
        tensor([[1.],
                [nan]])
    """
    return torch.where(ok.unsqueeze(-1), t, torch.full((), float("nan"), dtype=t.dtype, device=t.device))


def randers_validity(a: torch.Tensor, b: torch.Tensor):
    r"""Batched strong-convexity predicate of Randers data: `a` SPD, $\|b\|_{a^{-1}} < 1$, finite.

    One `torch.linalg.cholesky_ex` (an `info` code per matrix, no exception) and one triangular
    solve, $\|b\|_{a^{-1}} = |L^{-1} b|$ for $a = L L^\top$. No host synchronization, so it can
    run inside `torch.func` transforms and solvers. Non-finite `a` or `b` is invalid.

    Args:
        a: Tensor, shape `[..., D, D]`, symmetric (only its lower triangle is read).
        b: Tensor, shape `[..., D]`.

    Returns:
        `(ok, drift, spd)`: bool Tensor `[...]` (valid), the drift size $\|b\|_{a^{-1}}$ `[...]`
        (NaN where `a` is not SPD or the data are not finite), bool Tensor `[...]` (`a` finite
        and positive definite).

    Example:
        >>> ok, drift, spd = randers_validity(torch.eye(2), torch.tensor([[0.5, 0.0], [2.0, 0.0]]))
        >>> ok, drift
        (tensor([ True, False]), tensor([0.5000, 2.0000]))
    """
    shape = batch_shape(a.shape[:-2], b.shape[:-1])
    d = b.shape[-1]
    a = a.expand(*shape, d, d)
    b = b.expand(*shape, d)
    small = small_inverse(a)
    if small is not None:
        # D <= 3: Sylvester's criterion and b^T adj(a) b / det(a), elementwise (no factorization)
        adj, det, spd = small  # a NaN entry makes a minor NaN, which compares False
        spd = spd & torch.isfinite(a).all(-1).all(-1)
        quad = (b * matvec_rows(adj, b)).sum(-1) / det
        drift = torch.where(spd, quad, torch.zeros_like(quad)).clamp_min(0.0).sqrt()
    else:
        chol, info = torch.linalg.cholesky_ex(a)
        spd = (info == 0) & torch.isfinite(a).all(-1).all(-1)
        eye = torch.eye(d, dtype=a.dtype, device=a.device)
        chol = torch.where(spd.unsqueeze(-1).unsqueeze(-1), chol, eye)
        drift = torch.linalg.solve_triangular(chol, b.unsqueeze(-1), upper=False).squeeze(-1).norm(dim=-1)
    # NaN where a is not SPD; a non-finite b gives a NaN or infinite drift: both fail `< 1`
    drift = torch.where(spd, drift, torch.full_like(drift, float("nan")))
    ok = spd & (drift < 1)
    return ok, drift, spd


def check_randers(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    points: torch.Tensor | None = None,
    label: str = "",
    a_name: str = "a",
    b_name: str = "b",
) -> None:
    r"""Raise `ValueError` unless $(a, b)$ define a strongly convex Randers norm (at every point).

    The one validator of Randers data: shapes, a shared real floating dtype, finiteness,
    symmetry of `a` (see `symmetry_tolerance`), positive definiteness of `a` and
    $\|b\|_{a^{-1}} < 1$. The message gives the measured value and, when `points` are given, the
    first offending point. Empty batches pass.

    Args:
        a: Tensor, shape `[..., D, D]`.
        b: Tensor, shape `[..., D]`.
        points: Tensor, shape `[..., D]`, the points the data belong to (for the message).
        label: prefix of the message (e.g. the manifold's name).
        a_name: how the message calls `a` (e.g. `"a(x)"`).
        b_name: how the message calls `b`.

    Example:
        >>> check_randers(torch.eye(2), torch.tensor([2.0, 0.0]))
        Traceback (most recent call last):
        ...
        ValueError: drift too large: ||b||_{a^-1} = 2 >= 1, so F is not positive (need < 1)
    """
    prefix = f"{label}: " if label else ""
    if a.dim() < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{prefix}{a_name} must have shape [..., D, D], got {tuple(a.shape)}")
    if b.shape[-1:] != a.shape[-1:]:
        raise ValueError(
            f"{prefix}{b_name} must have shape [..., D] with D = {a.shape[-1]} matching {a_name}, got "
            f"{tuple(b.shape)}"
        )
    if not (a.is_floating_point() and b.is_floating_point()) or a.dtype != b.dtype:
        raise ValueError(
            f"{prefix}{a_name} and {b_name} must share a floating dtype, got {a.dtype} and {b.dtype} "
            f"(real floating point; complex is not supported)"
        )
    with torch.no_grad():
        a, b = a.detach(), b.detach()
        shape = batch_shape(a.shape[:-2], b.shape[:-1])
        d = a.shape[-1]
        if d == 0:
            raise ValueError(f"{prefix}{a_name} must be at least 1 x 1, got {tuple(a.shape)}")
        if shape.numel() == 0:
            return

        def where(bad_flat: torch.Tensor) -> str:
            if points is None:
                return ""
            pts = points.detach().expand(*torch.broadcast_shapes(shape, points.shape[:-1]), d)
            return f" at x = {format_values(pts.reshape(-1, d)[bad_flat.reshape(-1).nonzero()[0, 0]])}"

        # Fast path, one host synchronization: `randers_validity` is False wherever a value is not
        # finite or `a` is not SPD, and a NaN asymmetry compares False. The diagnosis below runs
        # only when this fails.
        scale = a.abs().amax().clamp_min(1.0)
        symmetric = (a - a.mT).abs().amax() <= symmetry_tolerance(a.dtype) * scale
        if bool(symmetric & randers_validity(a, b)[0].all()):
            return
        for name, t, batch in ((a_name, a, a.shape[:-2]), (b_name, b, b.shape[:-1])):
            finite = torch.isfinite(t).reshape(*batch, -1).all(-1)
            if not bool(finite.all()):
                raise ValueError(
                    f"{prefix}{name} must be finite: {int((~finite).sum())} non-finite value(s)"
                    f"{where(~finite.expand(shape))}"
                )
        asym = (a - a.mT).abs().amax()
        tol = symmetry_tolerance(a.dtype) * max(a.abs().amax().item(), 1.0)
        if not asym.item() <= tol:
            raise ValueError(
                f"{prefix}{a_name} must be symmetric: max |a - a^T| = {asym.item():.3g} (tolerance {tol:.3g})"
            )
        ok, drift, spd = randers_validity(a, b)
        if bool(ok.all()):
            return
        spd = spd.expand(shape)
        if not bool(spd.all()):
            first = (~spd).reshape(-1).nonzero()[0, 0]
            value = torch.linalg.eigvalsh(a.expand(*shape, d, d).reshape(-1, d, d)[first]).min().item()
            raise ValueError(
                f"{prefix}{a_name} is not positive definite{where(~spd)}: smallest eigenvalue "
                f"{value:.4g} <= 0"
            )
        bad = ~ok.expand(shape)
        value = drift.expand(shape).reshape(-1)[bad.reshape(-1).nonzero()[0, 0]].item()
        raise ValueError(
            f"{prefix}drift too large{where(bad)}: ||{b_name}||_{{{a_name}^-1}} = {value:.4g} >= 1, so F is "
            f"not positive (need < 1)"
        )
