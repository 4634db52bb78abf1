r"""Sampling on a manifold as it is: shared by `check_manifold` and the hypothesis strategies.

Plain torch functions (no hypothesis, no pytest). A manifold's tensors have `ambient_dim`
entries in their last dimension (`manifold.dim` on manifolds that do not define `ambient_dim`)
and its tangent spaces have the intrinsic dimension `manifold.dim`. On a *flat domain* (an open
subset of $\mathbb{R}^D$, where both sizes agree) every vector is tangent; on an *embedded*
domain (a sphere in $\mathbb{R}^{n+1}$, ...) tangent vectors are `proju(x, u)` of ambient ones
and points come from `random`, `projx` or `expmap`, never from linear interpolation.
"""

from __future__ import annotations

import geoopt
import torch

__all__ = [
    "SamplingError",
    "ambient_dim",
    "intrinsic_dim",
    "is_flat",
    "manifold_dtype_device",
    "on_manifold",
    "pull_inside",
    "tangent",
    "tangent_basis",
    "rescale",
]


class SamplingError(ValueError):
    """No points the manifold accepts could be built from the candidates."""


def ambient_dim(manifold) -> int:
    """Size of the last tensor dimension of points and vectors."""
    return int(getattr(manifold, "ambient_dim", manifold.dim))


def intrinsic_dim(manifold) -> int:
    """Dimension of the tangent spaces (`manifold.dim`)."""
    return int(manifold.dim)


def is_flat(manifold) -> bool:
    """`True` for an open subset of $\\mathbb{R}^D$ (tangent spaces are all of $\\mathbb{R}^D$)."""
    return intrinsic_dim(manifold) == ambient_dim(manifold)


def manifold_dtype_device(manifold) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the manifold's first floating parameter or buffer (of the wrapped
    manifold for `geoopt.Scaled`, whose scale buffer is float32 whatever the metric's dtype)."""
    while isinstance(manifold, geoopt.Scaled):
        manifold = manifold.base
    tensors = list(manifold.parameters()) + list(manifold.buffers())
    floats = [t for t in tensors if t.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    device = floats[0].device if floats else torch.device("cpu")
    return dtype, device


def on_manifold(manifold, x: torch.Tensor) -> torch.Tensor:
    """Per-point acceptance by the manifold's own `check_point_on_manifold`, bool of shape `x.shape[:-1]`."""
    if bool(manifold.check_point_on_manifold(x)):
        return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
    flat = x.reshape(-1, x.shape[-1])
    ok = [bool(manifold.check_point_on_manifold(p)) for p in flat]
    return torch.tensor(ok, dtype=torch.bool, device=x.device).reshape(x.shape[:-1])


def _plain(t) -> torch.Tensor:
    return torch.as_tensor(t).as_subclass(torch.Tensor).detach()


def pull_inside(manifold, x: torch.Tensor, *, max_halvings: int = 80) -> torch.Tensor:
    """Move candidate points onto the manifold.

    Embedded domains: `projx(x)` (`origin()` where the projection is degenerate). Flat domains:
    points the manifold rejects (e.g. outside a ball) are pulled toward `manifold.origin()` by
    halving their offset until accepted, so bounded domains get points spread over them, boundary
    regions included.

    Raises:
        SamplingError: some point is still rejected (its last candidate and the manifold's reason).
    """
    origin = _plain(manifold.origin(ambient_dim(manifold), dtype=x.dtype, device=x.device))
    if not is_flat(manifold):
        x = _plain(manifold.projx(x))
        # a candidate where the projection is degenerate (the centre of a sphere) becomes origin()
        x = torch.where(on_manifold(manifold, x).unsqueeze(-1), x, origin)
    else:
        for _ in range(max_halvings):
            ok = on_manifold(manifold, x)
            if ok.all():
                break
            x = torch.where(ok.unsqueeze(-1), x, origin + 0.5 * (x - origin))
    ok = on_manifold(manifold, x)
    if not ok.all():
        bad = x[~ok][0]
        reason = manifold.check_point_on_manifold(bad, explain=True)[1]
        how = "projx" if not is_flat(manifold) else "shrinking toward origin()"
        raise SamplingError(f"could not sample points the manifold accepts ({how}); last candidate "
                         f"{bad.tolist()} (reason: {reason})")
    return x


def tangent(manifold, x: torch.Tensor, u: torch.Tensor, *, nonzero: bool = False) -> torch.Tensor:
    """Ambient vectors `u` made tangent at `x` (`proju`; the identity on flat domains).

    With `nonzero=True`, a vector that `proju` (nearly) annihilates (normal to the manifold) is
    replaced by the projection of `u` with its coordinates rotated, so nonzero `u` stay nonzero.
    """
    if is_flat(manifold):
        return u
    t = _plain(manifold.proju(x, u))
    if nonzero:
        for shift in range(1, u.shape[-1]):
            small = t.norm(dim=-1, keepdim=True) <= 1e-3 * u.norm(dim=-1, keepdim=True)
            if not small.any():
                break
            t = torch.where(small, _plain(manifold.proju(x, u.roll(shift, -1))), t)
    return t


def tangent_basis(manifold, x: torch.Tensor) -> torch.Tensor:
    """Orthonormal (Euclidean) bases of the tangent spaces at `x`, shape `[..., N, n]`.

    The identity on flat domains; otherwise `proju` of the ambient basis, orthonormalized (SVD,
    the `n = manifold.dim` leading left singular vectors).
    """
    big, small = ambient_dim(manifold), intrinsic_dim(manifold)
    eye = torch.eye(big, dtype=x.dtype, device=x.device)
    if small == big:
        return eye.expand(*x.shape[:-1], big, big)
    rows = _plain(manifold.proju(x.unsqueeze(-2).expand(*x.shape[:-1], big, big), eye))  # [..., N, N]
    u, _, _ = torch.linalg.svd(rows.mT, full_matrices=False)
    return u[..., :small]


def rescale(x: torch.Tensor, u: torch.Tensor, lengths, norm_fn) -> torch.Tensor:
    """Rescale `u` to the given lengths measured by `norm_fn(x, u)` (Euclidean if it is unavailable
    or not positive)."""
    try:
        f = _plain(norm_fn(x, u)).abs()
    except NotImplementedError:
        f = u.norm(dim=-1)
    f = torch.where(torch.isfinite(f) & (f > 0), f, u.norm(dim=-1))
    return u * (lengths / f).unsqueeze(-1)
