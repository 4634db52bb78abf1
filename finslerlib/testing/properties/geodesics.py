"""Geodesic properties: exp/log inverse, short geodesics, retraction order, long steps."""

from __future__ import annotations

import torch

from finslerlib.testing.registry import register_property
from finslerlib.testing.taylor import default_slack, remainder_slope, step_grid


@register_property("exp_log_inverse", "expmap and logmap are inverse", family="geodesics")
def exp_log_inverse(ctx):
    m = ctx.m
    x, y = ctx.points(ctx.n), ctx.points(ctx.n)
    pair_ref = x.norm(dim=-1) + y.norm(dim=-1) + ctx.spread
    ctx.close("expmap(x, logmap(x, y)) = y", m.expmap(x, m.logmap(x, y)), y, {"x": x, "y": y},
              names=("expmap(x, logmap(x, y))", "y"), ref=pair_ref)
    v = ctx.geodesic_vectors(x, 0.05, 1.0)
    ctx.close("logmap(x, expmap(x, v)) = v for v within reach (a fraction of logmap(x, y))",
              m.logmap(x, m.expmap(x, v)), v, {"x": x, "v": v}, names=("logmap(x, expmap(x, v))", "v"),
              ref=v.norm(dim=-1) + x.norm(dim=-1))
    zero = torch.zeros_like(x)
    ref = x.norm(dim=-1) + ctx.spread
    ctx.close("expmap(x, 0) = x", m.expmap(x, zero), x, {"x": x}, names=("expmap(x, 0)", "x"), ref=ref)
    ctx.close("logmap(x, x) = 0", m.logmap(x, x), zero, {"x": x}, names=("logmap(x, x)", "0"), ref=ref)


@register_property("short_geodesics", "dist(x, expmap(x, v)) = F(x, v) for short v", family="geodesics")
def short_geodesics(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    v = ctx.geodesic_vectors(x, 0.01, 0.5)
    y = m.expmap(x, v)
    # rounding of the coordinates of y, in Finsler length
    floor = 4 * ctx.eps * (x.norm(dim=-1) + y.norm(dim=-1)) * ctx.metric_size(x)
    ctx.close(ctx.statement, m.dist(x, y), m.norm(x, v), {"x": x, "v": v, "y": y},
              names=("dist(x, expmap(x, v))", "F(x, v)"), atol=ctx.atol + floor,
              tol_extra=" + coordinate rounding 4 eps (|x| + |y|) max F(x, unit)")


@register_property("retr_first_order", "retr agrees with expmap to first order", family="geodesics")
def retr_first_order(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    v = ctx.vectors(x, 1.0, 1.0)
    # |retr(x, t v) - expmap(x, t v)| = O(t^2): its log-log slope is 2 (a retraction with the wrong
    # velocity leaves slope 1); steps from a hundredth of the typical length down (within reach on
    # bounded domains), the floor is the rounding of the points' coordinates. Both the same map:
    # zero remainder, nothing to fit, passes.
    rel, window = step_grid(ctx.dtype)
    t = (1e-2 * rel).to(ctx.dtype).view(-1, 1, 1)
    xs, vs = x.expand(t.shape[0], -1, -1), t * v
    retr, exp = m.retr(xs, vs).detach(), m.expmap(xs, vs).detach()
    remainder = (retr - exp).double().norm(dim=-1)
    floor = ctx.accuracy * (retr.double().norm(dim=-1) + exp.double().norm(dim=-1))
    slack = default_slack(ctx.dtype)
    result = remainder_slope(rel, remainder, floor, order=2, window=window, slack=slack,
                             margin=10.0 if ctx.eps < 1e-10 else 4.0)
    ctx.holds("|retr(x, t v) - expmap(x, t v)| = O(t^2) (the same velocity at t = 0)", result.passed,
              {"x": x, "v": v}, result.describe,
              tol=f"log-log slope of the remainder >= 2 - {slack} "
                  f"(rounding floor {ctx.accuracy:.3g} relative)")


@register_property("large_steps", "expmap / retr of long vectors stay on the manifold", family="geodesics")
def large_steps(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    u = ctx.directions(x)
    ran = []
    for name in ("expmap", "retr"):
        for length in ctx.large_steps:
            v = ctx.f_normalize(x, u, length * ctx.length)
            try:
                y = getattr(m, name)(x, v)
            except NotImplementedError:
                continue
            ran.append(name)
            ok = ctx.on_manifold(y) & torch.isfinite(y).all(-1)
            ctx.holds(f"{name}(x, v) stays on the manifold for F(x, v) = {length:g} x length", ok,
                      {"x": x, "v": v, f"{name}(x, v)": y},
                      lambda i, y=y: [f"reason: {m.check_point_on_manifold(y[i], explain=True)[1]}"],
                      tol="the manifold's own check_point_on_manifold")
    if not ran:
        raise NotImplementedError("neither expmap nor retr is implemented")
