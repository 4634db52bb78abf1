"""Duality properties: the dual norm is the supremum, Legendre maps, the Finsler gradient."""

from __future__ import annotations

import math

import torch

from finslerlib.testing.numerics import dual_norm_sup, half_sq_grad
from finslerlib.testing.properties.norm import coords, in_basis
from finslerlib.testing.registry import register_property


@register_property("dual_norm",
                   "F*(xi) is the sup of xi(v) over F(v) = 1; Fenchel-Young xi(v) <= F*(xi) F(v)",
                   family="duality")
def dual_norm(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    xi = ctx.covectors(ctx.n)
    dual = m.dual_norm(x, xi)
    e = ctx.basis(x)
    xi_c = coords(e, xi)
    candidates = [xi_c]
    try:  # the manifold's own maximizer is only a starting point: the value comes from `norm`
        candidates.append(coords(e, m.inverse_legendre(x, xi).detach()))
    except NotImplementedError:
        pass
    starts = torch.cat([torch.stack(candidates), ctx.randn(32 if ctx.thorough else 12, ctx.n, ctx.dim)])
    sup_rtol = max(ctx.rtol, 1e3 * ctx.eps)
    sup = dual_norm_sup(lambda c: m.norm(x, in_basis(e, c)), xi_c, starts, iters=80 if ctx.thorough else 40,
                        gap_rtol=0.1 * sup_rtol)
    arg = in_basis(e, sup.argmax)
    # sup.value is a lower bound of F*: above dual_norm is a violation; below it, only where the
    # Newton solve converged (its estimated gap below a tenth of the tolerance)
    ctx.close("F*(x, xi) = sup_{F(x, v) = 1} xi(v) (numerical sup by Newton's method)", dual, sup.value,
              {"x": x, "xi": xi, "argmax v": arg}, names=("dual_norm", "numerical sup"), rtol=sup_rtol,
              where=sup.converged | (sup.value > dual), tol_extra=" (sup: Newton's method on norm alone)")
    v = ctx.vectors(x)
    for vv, what in ((v, "random v"), (arg, "near-maximizing v")):
        ctx.leq(f"Fenchel-Young xi(v) <= F*(xi) F(v) ({what})", (xi * vv).sum(-1), dual * m.norm(x, vv),
                {"x": x, "xi": xi, "v": vv}, names=("xi(v)", "F*(xi) F(v)"))
    for c in (0.25, 4.0):
        ctx.close(f"F*(x, c xi) = c F*(x, xi) with c = {c:g}", m.dual_norm(x, c * xi), c * dual,
                  {"x": x, "xi": xi}, names=("F*(c xi)", "c F*(xi)"))
    lost = int((~sup.converged).sum())
    if lost:
        return (f"{lost} of {ctx.n} suprema not certified (estimated gap up to "
                f"{sup.gap[~sup.converged].max().item():.3g}): compared as lower bounds only")
    return ""


@register_property("legendre", "legendre = grad of F^2/2; Legendre round trips; F*(legendre(v)) = F(v)",
                   family="duality")
def legendre(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    v = ctx.vectors(x)
    e = ctx.basis(x)
    ell = m.legendre(x, v)
    auto = half_sq_grad(lambda c: m.norm(x, in_basis(e, c)), coords(e, v))
    f = m.norm(x, v)
    ctx_ = {"x": x, "v": v}
    ctx.close("legendre(x, v) = autograd gradient of F(x, v)^2 / 2", coords(e, ell), auto, ctx_,
              names=("legendre", "autograd"))
    # independent of autograd (a custom backward can be wrong too): legendre(x, v) is the derivative
    # of F^2 / 2 at v, so the Taylor remainder along v + t u is O(t^2); steps up to half F(v)
    u = ctx.directions(x)
    t_max = 0.5 * f / torch.maximum(m.norm(x, u), m.norm(x, -u)).detach()
    ctx.taylor("legendre(x, v) is the derivative of F(x, .)^2 / 2 at v (Taylor remainder O(t^2))",
               lambda w: 0.5 * m.norm(x, w) ** 2, v, u, [(ell * u).sum(-1)], {**ctx_, "u": u},
               t_max=t_max)
    ctx.close("legendre(x, v)(v) = F(x, v)^2 (Euler)", (ell * v).sum(-1), f * f, ctx_,
              names=("legendre(v)(v)", "F(v)^2"))
    # round trips lose about cond(g_v) eps (a linear solve with the fundamental tensor)
    try:
        g_t = e.mT @ m.fundamental_tensor(x, v).detach() @ e
        eig = torch.linalg.eigvalsh(0.5 * (g_t + g_t.mT))
        cond = (eig[:, -1] / eig[:, 0]).clamp(1.0, 1.0 / ctx.eps)
    except NotImplementedError:
        cond = torch.ones_like(x[:, 0])
    rt_rtol = torch.clamp(16 * cond * ctx.eps, min=ctx.rtol)
    rt_extra = " (round trip: max(rtol, 16 cond(g_v) eps))"
    ctx.close("inverse_legendre(legendre(v)) = v", m.inverse_legendre(x, ell), v, ctx_,
              names=("round trip", "v"), rtol=rt_rtol, tol_extra=rt_extra)
    ctx.close("F*(x, legendre(x, v)) = F(x, v)", m.dual_norm(x, ell), f, ctx_,
              names=("F*(legendre(v))", "F(v)"))
    xi = ctx.covectors(ctx.n)
    there = m.inverse_legendre(x, xi)
    ctx.close("legendre(inverse_legendre(xi)) = xi (on tangent vectors)", coords(e, m.legendre(x, there)),
              coords(e, xi), {"x": x, "xi": xi}, names=("round trip", "xi"), rtol=rt_rtol, tol_extra=rt_extra)
    zero = torch.zeros_like(v)
    ctx.close("legendre(x, 0) = 0", m.legendre(x, zero), zero, {"x": x}, names=("legendre(0)", "0"),
              ref=torch.zeros_like(f))


def _test_function(ctx):
    """A smooth random f on the ambient space (sum of sines of wavelength ~ the points' spread)."""
    k = 4
    # evaluated in float64 whatever the sample dtype: the descent test compares tiny differences
    w = ctx.randn(k, ctx.N).double() / ctx.spread
    phase = ctx.rand(k).double() * 2 * math.pi
    c = ctx.randn(k).double()

    def f(z):
        return (c * torch.sin(z.double() @ w.mT + phase)).sum(-1)

    return f


@register_property("finsler_gradient", "finsler_gradient(x, df) = l^-1(df); "
                   "geoopt's step along -egrad2rgrad is the steepest descent of F (default "
                   "descent='forward') or of its reverse and decreases f", family="duality")
def finsler_gradient(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    f = _test_function(ctx)
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (df,) = torch.autograd.grad(f(xr).sum(), xr)
    df = df.to(ctx.dtype)
    ctx_ = {"x": x, "df": df}
    if hasattr(m, "finsler_gradient"):  # the mathematical gradient, steepest ascent per unit F
        up = m.finsler_gradient(x, df)
        dual_up = m.dual_norm(x, df)
        ctx.close("F(x, grad f) = F*(x, df)", m.norm(x, up), dual_up, {**ctx_, "grad": up},
                  names=("F(grad)", "F*(df)"))
        ctx.close("df(grad f) = F*(x, df)^2", (df * up).sum(-1), dual_up * dual_up, {**ctx_, "grad": up},
                  names=("df(grad)", "F*(df)^2"))
    # what geoopt's optimizers step along: step = -egrad2rgrad(x, df), the steepest descent of F
    # (default descent = "forward": l^-1(-df)) or of the reverse metric ("reverse": -l^-1(df));
    # a manifold without the attribute (not a FinslerManifold) is held to the forward contract
    forward = getattr(m, "descent", "forward") == "forward"
    sign = 1.0 if forward else -1.0  # the step's length is F(x, sign * step)
    step = -m.egrad2rgrad(x, df)
    dual = m.dual_norm(x, -sign * df)
    ctx_ = {**ctx_, "step": step}
    label = "F(x, step)" if forward else "F(x, -step)"
    ctx.close(f"{label} = F*(x, {'-df' if forward else 'df'}) for step = -egrad2rgrad(df)",
              m.norm(x, sign * step), dual, ctx_, names=(label, "F*"))
    ctx.close("df(step) = -F*^2 for step = -egrad2rgrad(df)", (df * step).sum(-1), -dual * dual, ctx_,
              names=("df(step)", "-F*^2"))
    # descent: f(retr(x, t step)) = f(x) + t df(step) + O(t^2) (Taylor, along the retraction): the
    # remainder's log-log slope must be 2 (a retraction that is not first order, or a step that
    # is not where df was taken, leaves slope 1); steps up to a Finsler length 0.05 length and a
    # Euclidean length 0.05 spread (f's wavelength is about the spread: its Taylor regime)
    fwd = m.norm(x, sign * step).detach()  # step lengths in the metric whose descent is taken
    usable = (dual > 1e-2 * dual.median()) & (fwd > 0)  # away from critical points of f
    t_max = torch.minimum(0.05 * ctx.length / torch.where(usable, fwd, torch.ones_like(fwd)),
                          0.05 * ctx.spread / step.norm(dim=-1).clamp_min(torch.finfo(ctx.dtype).tiny))
    # f is evaluated in float64 at points computed in the dtype: f moves by
    # rounding (|x| + t |step|) |df| under their rounding, and by a few float64 ulps of its terms
    ctx.taylor("f(retr(x, t step)) = f(x) + t df(step) + O(t^2) for step = -egrad2rgrad(df): a small "
               "step decreases f at the predicted rate", f, x, step, [(df.double() * step.double()).sum(-1)],
               ctx_, curve=m.retr, t_max=t_max,
               atol=ctx.coordinate_accuracy * x.norm(dim=-1) * df.norm(dim=-1),
               atol_t=ctx.coordinate_accuracy * step.norm(dim=-1) * df.norm(dim=-1),
               rtol=8 * torch.finfo(torch.float64).eps * 4, where=usable)
