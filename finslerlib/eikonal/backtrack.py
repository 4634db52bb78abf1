r"""Minimal paths from a distance map: backtracking along the Legendre dual of $dT$.

On a forward map $T(x) = \min_s d(s \to x)$ the optimal velocity arriving at $y$ is
$\ell^{-1}(y, dT(y))$, parallel to $a^{-1}(dT - b)$ (the maximizer in
$F^*(\xi) = \sup_{F(v) = 1} \xi(v)$ for $|\xi - b|_{a^{-1}} = 1$). A minimal path is traced backwards
from the target, $\dot y = -a^{-1}(dT - b)$ (normalized), by midpoint (RK2) steps of half a cell,
halved where a step would not decrease $T$ (across a narrow cheap valley), until it is within
`source_radius` cells of a source, where the source closes it. $dT$ is interpolated multilinearly
from central differences of the map (one-sided next to `inf`). A reverse map is the forward map of
the reversed metric ($b \to -b$), and its path is already in the direction of travel, target to
source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from finslerlib.eikonal.solver import CoefficientFn, DistanceMap, metric_function

__all__ = ["interpolate", "map_gradient", "geodesic_from_map"]


def _corners(axes: Sequence[torch.Tensor], points: torch.Tensor):
    """Lower corner indices `[N, D]` and fractions `[N, D]` of the cells containing `points`."""
    lo = torch.stack([t[0] for t in axes]).to(points)
    h = torch.stack([(t[-1] - t[0]) / (t.numel() - 1) for t in axes]).to(points)
    n = torch.tensor([t.numel() for t in axes], device=points.device)
    u = (points - lo) / h
    i = u.floor().long().clamp(min=torch.zeros_like(n), max=n - 2)
    return i, (u - i.to(u.dtype)).clamp(0, 1)


def interpolate(values: torch.Tensor, axes: Sequence[torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    r"""Multilinear interpolation of grid values (trailing dims `*grid`) at `points` `[N, D]`.

    `values` may have leading channel dimensions: `[*C, *grid]` gives `[*C, N]`. Points outside the
    box use the nearest cell (extrapolate linearly); `inf` corners give `inf`.

    Example:
        >>> ax = torch.linspace(0, 1, 3)
        >>> interpolate(ax[:, None] + 2 * ax, (ax, ax), torch.tensor([[0.25, 0.25]]))
        tensor([0.7500])
    """
    d = points.shape[-1]
    i, f = _corners(axes, points)
    out = 0
    for corner in range(2**d):
        bits = [(corner >> k) & 1 for k in range(d)]
        idx = tuple(i[:, k] + bits[k] for k in range(d))
        w = torch.ones_like(f[:, 0])
        for k in range(d):
            w = w * (f[:, k] if bits[k] else 1 - f[:, k])
        v = values[(..., *idx)]
        out = out + torch.where(w > 0, w * torch.where(torch.isfinite(v), v, torch.zeros_like(v)), 0 * w)
        out = torch.where((w > 0) & ~torch.isfinite(v), torch.full_like(out, float("inf")), out)
    return out


def map_gradient(values: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Node gradients `[D, *grid]` of a map: central differences, one-sided next to `inf` or the edge.

    Example:
        >>> t = torch.arange(4.0)[:, None] * torch.ones(1, 3)
        >>> map_gradient(t, (1.0, 1.0))[0, :, 0]
        tensor([1., 1., 1., 1.])
    """
    grads = []
    for k in range(values.dim()):
        fwd = values.roll(-1, k)
        bwd = values.roll(1, k)
        n = values.shape[k]
        pos = torch.arange(n, device=values.device).view([-1 if j == k else 1 for j in range(values.dim())])
        has_f = torch.isfinite(fwd) & (pos < n - 1)
        has_b = torch.isfinite(bwd) & (pos > 0)
        zero = torch.zeros_like(values)
        fwd_d = torch.where(has_f, fwd - values, zero)
        bwd_d = torch.where(has_b, values - bwd, zero)
        g = torch.where(has_f & has_b, 0.5 * (fwd_d + bwd_d), torch.where(has_f, fwd_d, bwd_d))
        grads.append(torch.where(torch.isfinite(values), g, zero) / spacing[k])
    return torch.stack(grads)


@torch.no_grad()
def geodesic_from_map(
    dmap: DistanceMap,
    metric,
    targets: torch.Tensor,
    *,
    step: float = 0.5,
    source_radius: float = 1.5,
    max_steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Minimal paths between the map's sources and `targets`, by backtracking, as polylines.

    Args:
        dmap: the `DistanceMap` (forward or reverse) of `metric`.
        metric: the metric of the map (callable `x -> (a, b)` or an object with Randers data).
        targets: Tensor `[B, D]`, points in the grid's box.
        step: Euclidean step length in cells (the smallest grid step).
        source_radius: the path closes at the source once within this many cells of it.
        max_steps: the most steps per path (default: 4 times the grid's perimeter in cells / step).

    Returns:
        `(paths, reached)`: Tensor `[B, P, D]` in the direction of travel (forward map: source to
        target; reverse map: target to source; a shorter path repeats its last node), and a bool
        Tensor `[B]`, `False` where the trace did not reach a source (an unreachable target, or
        `max_steps` too small).

    Example:
        >>> from finslerlib.eikonal import eikonal_map
        >>> euclid = lambda x: (torch.eye(2, dtype=x.dtype).expand(*x.shape[:-1], 2, 2), torch.zeros_like(x))
        >>> ax = torch.linspace(-1, 1, 21, dtype=torch.float64)
        >>> m = eikonal_map(euclid, (ax, ax), torch.zeros(1, 2, dtype=torch.float64))
        >>> paths, reached = geodesic_from_map(m, euclid, torch.tensor([[0.8, 0.6]], dtype=torch.float64))
        >>> bool(reached[0]), paths[0, 0].tolist(), paths[0, -1].tolist()  # a straight segment 0 -> target
        (True, [0.0, 0.0], [0.8, 0.6])
    """
    fn: CoefficientFn = metric_function(metric)
    if dmap.reverse:
        base_fn = fn
        fn = lambda x: (lambda ab: (ab[0], -ab[1]))(base_fn(x))  # noqa: E731
    axes = dmap.axes
    dtype, device = dmap.values.dtype, dmap.values.device
    targets = targets.to(dtype=dtype, device=device)
    spacing = [float((t[-1] - t[0]) / (t.numel() - 1)) for t in axes]
    h = min(spacing)
    ds = step * h
    values = dmap.values.detach()
    grad = map_gradient(values, spacing)
    sources = dmap.sources
    if max_steps is None:
        max_steps = int(4 * sum(t.numel() for t in axes) / step) + 8
    y = targets.clone()
    nodes = [y.clone()]
    done = torch.zeros(y.shape[0], dtype=torch.bool, device=device)
    reached = torch.zeros_like(done)
    closing = torch.zeros_like(y)
    lo = torch.stack([t[0] for t in axes]).to(y)
    hi = torch.stack([t[-1] for t in axes]).to(y)

    def velocity(z):
        a, b = fn(z)
        p = interpolate(grad, axes, z).T  # [B, D]
        v = torch.linalg.solve(a, (p - b).unsqueeze(-1)).squeeze(-1)
        return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)

    current = interpolate(values, axes, y)
    done |= ~torch.isfinite(current)
    size = torch.full_like(current, ds)  # per-path step, halved where a step does not descend T
    for _ in range(max_steps):
        gap = (y[:, None, :] - sources[None]).div(torch.tensor(spacing, dtype=dtype, device=device))
        near = gap.abs().amax(-1)  # [B, S] in cells
        close, which = near.min(-1)
        arrive = ~done & (close <= source_radius)
        closing = torch.where(arrive[:, None], sources[which], closing)
        reached |= arrive
        done |= arrive | (size < ds / 1024)  # stuck: no descending step of 1/1024 cell
        if bool(done.all()):
            break
        v1 = velocity(y)
        mid = (y - 0.5 * size[:, None] * v1).clamp(lo, hi)
        v2 = velocity(mid)
        new = (y - size[:, None] * v2).clamp(lo, hi)
        value = interpolate(values, axes, new)
        better = ~done & (value < current)
        y = torch.where(better[:, None], new, y)
        current = torch.where(better, value, current)
        size = torch.where(better, (2 * size).clamp(max=ds), 0.5 * size)
        if bool(better.any()) or bool(arrive.any()):
            nodes.append(torch.where(reached[:, None], closing, y))
    nodes.append(torch.where(reached[:, None], closing, y))
    path = torch.stack(nodes, 1)  # [B, P, D] target -> source, then repeats of the last node
    if not dmap.reverse:
        # reverse the traced part of each path; the repeats (now of the target) stay at the end
        count = path.shape[1]
        moved = (path[:, 1:] != path[:, :-1]).any(-1)  # [B, P - 1]
        pos = torch.arange(1, count, device=device).expand_as(moved)
        length = torch.where(moved, pos, torch.zeros_like(pos)).amax(-1) + 1  # nodes up to the last move
        j = torch.arange(count, device=device)[None]
        idx = torch.where(j < length[:, None], length[:, None] - 1 - j, length[:, None] - 1)
        idx = torch.where(j < length[:, None], idx, torch.zeros_like(idx))
        path = path.gather(1, idx[..., None].expand(-1, -1, path.shape[-1]))
    return path, reached
