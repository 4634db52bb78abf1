"""API properties: sampling through the manifold's own domain, dtype and device of results."""

from __future__ import annotations

import torch

from finslerlib.testing.registry import register_property


@register_property("sampling",
                   "sampled points and vectors pass the manifold's own checks; projx keeps points",
                   family="api")
def sampling(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    if ctx.random_rejected:
        ctx.fail_shape("manifold.random() returns points on the manifold", [ctx.random_rejected])
    origin = torch.as_tensor(m.origin(3, ctx.N, dtype=ctx.dtype, device=ctx.device))
    ok, reason = m.check_point_on_manifold(origin, explain=True)
    if not ok:
        ctx.fail("origin() is on the manifold", "exact", {"origin": origin}, 0, [f"reason: {reason}"])
    v = ctx.vectors(x)
    good = torch.tensor([bool(m.check_vector_on_tangent(x[i], v[i])) for i in range(ctx.n)])
    ctx.holds("sampled vectors pass check_vector_on_tangent", good, {"x": x, "v": v},
              lambda i: [f"reason: {m.check_vector_on_tangent(x[i], v[i], explain=True)[1]}"])
    ctx.close("projx(x) = x for points on the manifold", m.projx(x), x, {"x": x},
              names=("projx(x)", "x"), ref=x.norm(dim=-1))
    df = ctx.covectors(ctx.n)
    grad = m.egrad2rgrad(x, df)
    good = torch.tensor([bool(m.check_vector_on_tangent(x[i], grad[i])) for i in range(ctx.n)])
    ctx.holds("egrad2rgrad(x, df) passes check_vector_on_tangent", good, {"x": x, "df": df, "grad": grad},
              lambda i: [f"reason: {m.check_vector_on_tangent(x[i], grad[i], explain=True)[1]}"])
    if not ctx.flat:  # on an embedded domain, the gradient must be tangent: proju leaves it unchanged
        ctx.close("egrad2rgrad(x, df) is tangent: proju(x, grad) = grad", m.proju(x, grad), grad,
                  {"x": x, "df": df}, names=("proju(x, grad)", "grad"))
    return "random points" if ctx.random_used else "Gaussian points (manifold.random unavailable)"


@register_property("dtype_device", "results keep the input's dtype and device", family="api")
def dtype_device(ctx):
    m = ctx.m
    x, y = ctx.points(4), ctx.points(4)
    v = ctx.vectors(x)
    calls = {
        "norm": lambda: m.norm(x, v),
        "dual_norm": lambda: m.dual_norm(x, v),
        "egrad2rgrad": lambda: m.egrad2rgrad(x, v),
        "expmap": lambda: m.expmap(x, v),
        "retr": lambda: m.retr(x, v),
        "logmap": lambda: m.logmap(x, y),
        "dist": lambda: m.dist(x, y),
        "cdist": lambda: m.cdist(x, y),
    }
    results, missing = {}, []
    for name, call in calls.items():
        try:
            results[name] = call()
        except NotImplementedError:
            missing.append(name)
    for name, out in results.items():
        if out.dtype != ctx.dtype or out.device != x.device:
            ctx.fail_shape(ctx.statement, [
                f"x of shape {tuple(x.shape)}: {name} on {ctx.dtype} inputs on {x.device} returned "
                f"{out.dtype} on {out.device}"])
    if not results:
        raise NotImplementedError("no method of the manifold could be called")
    return f"not implemented: {', '.join(missing)}" if missing else ""
