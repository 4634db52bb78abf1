"""Norm properties: positivity, homogeneity, triangle inequality, strong convexity of F(x, .)."""

from __future__ import annotations

import torch

from finslerlib.testing.context import fmt
from finslerlib.testing.numerics import batched_jacobian, half_sq_grad, minimize_on_unit_sphere
from finslerlib.testing.registry import register_property


def in_basis(e: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Tangent vectors `E c` from coordinates `c` (`[K, n]`) in the bases `e` (`[K, N, n]`)."""
    return (e @ c.unsqueeze(-1)).squeeze(-1)


def coords(e: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Coordinates `E^T v` of ambient vectors (or the tangent part of covectors), `[K, n]`."""
    return (e.mT @ v.unsqueeze(-1)).squeeze(-1)


@register_property("norm_positive", "F(x, 0) = 0 and F(x, v) > 0 for v != 0", family="norm")
def norm_positive(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    f0 = m.norm(x, torch.zeros_like(x))
    ctx.close("F(x, 0) = 0", f0, torch.zeros_like(f0), {"x": x}, names=("F(x, 0)", "0"))
    u = ctx.directions(x)
    f = m.norm(x, u)
    ctx.holds("F(x, v) > 0 for v != 0 (random Euclidean-unit tangent v)", f > 0, {"x": x, "v": u},
              lambda i: [f"F(x, v) = {fmt(f[i])}"])
    # the tangent direction where F is smallest per unit Euclidean length, found numerically
    e = ctx.basis(x)
    starts = ctx.randn(16 if ctx.thorough else 8, ctx.n, ctx.dim)
    fmin, cmin = minimize_on_unit_sphere(lambda c: m.norm(x, in_basis(e, c)), starts,
                                         iters=60 if ctx.thorough else 20)
    ctx.holds("F(x, v) > 0 for v != 0 (numerical minimum over Euclidean-unit tangent v)", fmin > 0,
              {"x": x, "v": in_basis(e, cmin)}, lambda i: [f"F(x, v) = {fmt(fmin[i])}"])


@register_property("norm_homogeneous", "F(x, c v) = c F(x, v) for c > 0", family="norm")
def norm_homogeneous(ctx):
    x = ctx.points(ctx.n)
    v = ctx.vectors(x)
    f = ctx.m.norm(x, v)
    for c in (1e-3, 0.5, 3.0, 1e3):
        ctx.close(f"F(x, c v) = c F(x, v) with c = {c:g}", ctx.m.norm(x, c * v), c * f,
                  {"x": x, "v": v, "c": c}, names=("F(x, c v)", "c F(x, v)"))


@register_property("norm_triangle", "F(x, u + v) <= F(x, u) + F(x, v)", family="norm")
def norm_triangle(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    u, v = ctx.vectors(x), ctx.vectors(x)
    # nearly parallel pairs make the inequality nearly tight (where broken norms show it)
    w = ctx.f_normalize(x, u + 0.05 * ctx.directions(x) * u.norm(dim=-1, keepdim=True), ctx.length)
    for a, b in ((u, v), (u, w)):
        ctx.leq(ctx.statement, m.norm(x, a + b), m.norm(x, a) + m.norm(x, b), {"x": x, "u": a, "v": b},
                names=("F(x, u + v)", "F(x, u) + F(x, v)"))


@register_property("strong_convexity",
                   "fundamental tensor g_u is SPD, g_u(u, u) = F(u)^2, equals the Hessian of F^2/2",
                   family="norm")
def strong_convexity(ctx):
    m = ctx.m
    x = ctx.points(ctx.n)
    u = ctx.vectors(x)
    g = m.fundamental_tensor(x, u)
    ctx_ = {"x": x, "u": u}
    if g.shape != (ctx.n, ctx.N, ctx.N):
        ctx.fail_shape("fundamental_tensor(x, u) has shape [..., N, N]",
                       [f"x, u of shape {tuple(x.shape)} gave shape {tuple(g.shape)}"])
    ctx.close("g_u is symmetric", g, g.mT, {**ctx_, "g_u": g}, names=("g_u", "g_u^T"),
              ref=g.flatten(-2).norm(dim=-1))
    e = ctx.basis(x)
    g_t = e.mT @ g @ e  # on the tangent space
    eig = torch.linalg.eigvalsh(0.5 * (g_t + g_t.mT))
    ctx.holds("g_u is positive definite on the tangent space", eig[:, 0] > 0, {**ctx_, "g_u": g},
              lambda i: [f"eigenvalues = {fmt(eig[i])}"])
    f = m.norm(x, u)
    guu = (u.unsqueeze(-2) @ g @ u.unsqueeze(-1)).reshape(-1)
    ctx.close("g_u(u, u) = F(x, u)^2", guu, f * f, ctx_, names=("u^T g_u u", "F(x, u)^2"))
    ctx.close("inner(x, u) = F(x, u)^2", m.inner(x, u), f * f, ctx_, names=("inner(x, u)", "F(x, u)^2"))
    v = ctx.vectors(x)
    guv = (u.unsqueeze(-2) @ g @ v.unsqueeze(-1)).reshape(-1)
    ctx.close("inner(x, u, v) = u^T g_u v", m.inner(x, u, v), guv, {**ctx_, "v": v},
              names=("inner(x, u, v)", "u^T g_u v"), ref=f * m.norm(x, v))
    # independent computation: the Hessian of F^2 / 2 by automatic differentiation
    hess = batched_jacobian(
        lambda c: half_sq_grad(lambda z: m.norm(x, in_basis(e, z)), c, create_graph=True), coords(e, u))
    ctx.close("fundamental_tensor = autograd Hessian of F(x, .)^2 / 2 (on the tangent space)", g_t, hess,
              ctx_, names=("fundamental_tensor", "Hessian"), ref=hess.flatten(-2).norm(dim=-1))
