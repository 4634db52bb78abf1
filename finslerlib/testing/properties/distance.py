"""Distance properties: d = F(log), metric laws, cdist, reversal, gradients of dist."""

from __future__ import annotations

import math

import torch

from finslerlib.testing.context import fmt
from finslerlib.testing.registry import register_property


@register_property("dist_is_norm_of_log", "F(x, logmap(x, y)) = dist(x, y)", family="distance")
def dist_is_norm_of_log(ctx):
    m = ctx.m
    x, y = ctx.points(ctx.n), ctx.points(ctx.n)
    d = m.dist(x, y)
    ctx.close(ctx.statement, m.norm(x, m.logmap(x, y)), d, {"x": x, "y": y},
              names=("F(x, logmap(x, y))", "dist(x, y)"))
    dk = m.dist(x, y, keepdim=True)
    if dk.shape != (*d.shape, 1):
        ctx.fail_shape("dist(x, y, keepdim=True) has shape [..., 1]",
                       [f"x, y of shape {tuple(x.shape)} gave shape {tuple(dk.shape)}"])


@register_property("dist_metric", "d(x, x) = 0, d(x, y) > 0 for x != y, triangle inequality of dist",
                   family="distance")
def dist_metric(ctx):
    m = ctx.m
    x, y, z = ctx.points(ctx.n), ctx.points(ctx.n), ctx.points(ctx.n)
    dxx = m.dist(x, x)
    ctx.close("dist(x, x) = 0", dxx, torch.zeros_like(dxx), {"x": x}, names=("dist(x, x)", "0"),
              ref=torch.full_like(dxx, ctx.length))
    dxy = m.dist(x, y)
    sep = (x - y).norm(dim=-1) > 1e-3 * ctx.spread
    ctx.holds("dist(x, y) > 0 for x != y", ~sep | (dxy > ctx.atol), {"x": x, "y": y},
              lambda i: [f"dist(x, y) = {fmt(dxy[i])}"])
    triples = [(x, y, z)]
    try:  # nearly tight triples: y on (or next to) the geodesic from x to z
        mid = m.expmap(x, (ctx.rand(ctx.n, 1) * 0.6 + 0.2) * m.logmap(x, z))
        if bool(ctx.on_manifold(mid).all()):
            triples.append((x, mid, z))
    except NotImplementedError:
        pass
    for a, b, c in triples:
        ctx.leq("triangle inequality dist(x, z) <= dist(x, y) + dist(y, z)", m.dist(a, c),
                m.dist(a, b) + m.dist(b, c), {"x": a, "y": b, "z": c},
                names=("dist(x, z)", "dist(x, y) + dist(y, z)"))


@register_property("cdist", "cdist(X, Y)[i, j] = dist(X[i], Y[j])", family="distance")
def cdist(ctx):
    m = ctx.m
    n, k = ctx.n, max(2, ctx.n // 2) + 1
    x, y = ctx.points(n), ctx.points(k)
    c = m.cdist(x, y)
    if c.shape != (n, k):
        ctx.fail_shape("cdist(X, Y) has shape [N, M]", [
            f"X of shape {tuple(x.shape)}, Y of shape {tuple(y.shape)} gave shape {tuple(c.shape)}, "
            f"expected {(n, k)}"])
    d = m.dist(x.unsqueeze(-2), y.unsqueeze(-3))
    rows, cols = torch.arange(n).repeat_interleave(k), torch.arange(k).repeat(n)
    # Gram-matrix cdists (|x - y|_a^2 = |x|_a^2 - 2 <x, y>_a + |y|_a^2) lose ~sqrt(eps) |x|_a on
    # nearly coincident pairs; |x|_a <= |x| max F(x, unit) grows next to a boundary
    size = (x.norm(dim=-1) * ctx.metric_size(x))[rows]
    gram = 4 * math.sqrt(ctx.eps) * torch.clamp(size, min=d.abs().median().item())
    extra = ", + 4 sqrt(eps) max(median(d), |x| max F(x, unit)) (Gram-matrix cancellation)"
    ctx.close("cdist(X, Y)[i, j] = dist(X[i], Y[j])", c.reshape(-1), d.reshape(-1),
              {"X[i]": x[rows], "Y[j]": y[cols], "(i, j)": torch.stack([rows, cols], -1)},
              names=("cdist[i, j]", "dist(X[i], Y[j])"), atol=ctx.atol + gram, tol_extra=extra)
    cb = m.cdist(x.unsqueeze(0).expand(2, -1, -1), y.unsqueeze(0).expand(2, -1, -1))
    if cb.shape != (2, *c.shape):
        ctx.fail_shape("batched cdist has shape [B, N, M]", [
            f"X of shape (2, {n}, {ctx.N}), Y of shape (2, {k}, {ctx.N}) gave shape {tuple(cb.shape)}, "
            f"expected {(2, *c.shape)}"])
    ctx.close("batched cdist agrees with unbatched", cb[1].reshape(-1), c.reshape(-1),
              {"X[i]": x[rows], "Y[j]": y[cols]}, names=("cdist(batch)[1][i, j]", "cdist[i, j]"),
              atol=ctx.atol + gram, tol_extra=extra)


@register_property("reverse", "reverse() is the metric F(x, -v), with reversed distances", family="distance")
def reverse(ctx):
    m = ctx.m
    rev = m.reverse()
    x, y = ctx.points(ctx.n), ctx.points(ctx.n)
    v = ctx.vectors(x)
    ctx.close("reverse().norm(x, v) = F(x, -v)", rev.norm(x, v), m.norm(x, -v), {"x": x, "v": v},
              names=("reverse().norm(x, v)", "norm(x, -v)"))
    try:
        d_rev, d = rev.dist(x, y), m.dist(y, x)
    except NotImplementedError:
        return "dist not implemented: only the norm was compared"
    ctx.close("reverse().dist(x, y) = dist(y, x)", d_rev, d, {"x": x, "y": y},
              names=("reverse().dist(x, y)", "dist(y, x)"))
    return ""


@register_property("dist_gradient", "gradients of dist are finite at x = y; their Taylor remainder is O(t^2)",
                   family="distance")
def dist_gradient(ctx):
    m = ctx.m
    x, y = ctx.points(ctx.n), ctx.points(ctx.n)
    xs, ys = x.detach().requires_grad_(True), x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        gx, gy = torch.autograd.grad(m.dist(xs, ys).sum(), (xs, ys), allow_unused=True)
    for g, what in ((gx, "d/dx dist(x, x)"), (gy, "d/dy dist(x, x)")):
        if g is not None:
            ctx.check_finite(what, g, {"x": x})
    xs, ys = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
    with torch.enable_grad():
        dxy = m.dist(xs, ys)
        gx, gy = torch.autograd.grad(dxy.sum(), (xs, ys))
    dxy = dxy.detach()
    # the Taylor remainder of dist along p + t delta (projected back on embedded domains) must
    # shrink like t^2: steps up to a Finsler length 0.1 min(length, d(x, y)) (short against the
    # distance to a boundary, and d is smooth away from x = y)
    apart = dxy > 1e-4 * ctx.length  # d is not differentiable at x = y (checked finite above)
    reach = 0.1 * torch.minimum(torch.full_like(dxy, ctx.length), dxy.clamp_min(1e-3 * ctx.length))
    for which, p, g in (("x", x, gx), ("y", y, gy)):
        delta = ctx.directions(p)
        t_max = reach / torch.maximum(m.norm(p, delta), m.norm(p, -delta)).detach()

        def along(q, which=which, p=p):
            inside = ctx.on_manifold(q)
            q = torch.where(inside.unsqueeze(-1), q, p)
            d = m.dist(q, y) if which == "x" else m.dist(x, q)
            return torch.where(inside, d, torch.full_like(d, math.nan))  # left the domain: not fitted

        # coordinates are rounded to eps (|p| + t |delta|): d moves by that times |grad d|
        ctx.taylor(f"autograd d/d{which} dist(x, y) is the derivative of dist (Taylor remainder along "
                   f"{which} + t delta is O(t^2))", along, p, delta, [(g * delta).sum(-1)],
                   {"x": x, "y": y, "delta": delta, "t_max": t_max}, curve=_curve(ctx), t_max=t_max,
                   atol=ctx.coordinate_accuracy * p.norm(dim=-1) * g.norm(dim=-1),
                   atol_t=ctx.coordinate_accuracy * g.norm(dim=-1), where=apart)


def _curve(ctx):
    """`p + v`, moved back on the manifold on embedded domains (`projx`: a retraction, so the
    curve's velocity at 0 is `v`)."""
    if ctx.flat:
        return None
    return lambda p, v: torch.as_tensor(ctx.m.projx(p + v)).as_subclass(torch.Tensor)
