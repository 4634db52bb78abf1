"""Curvature properties (for manifolds with Randers data): the flag curvature depends only on the
flag, and the Ricci scalar is the trace of the flag curvatures (`finslerlib.curvature.checks`).

They run on a few points (each costs nested derivatives of the geodesic spray), are skipped on
manifolds that expose no Randers data (`coefficients(x)` raising `NotImplementedError`), and leave
out points where `a(x)` is too ill-conditioned for those derivatives. They compute in float64.
"""

from __future__ import annotations

import torch

from finslerlib.testing.registry import register_property

CURVATURE_POINTS = 4

# The curvature's nested derivatives of the spray lose about cond(a)^2 * eps: points where a(x) is
# worse conditioned than this (e.g. within about 1e-2 of the Funk sphere) are left out of these
# laws, so that the kit never blames a correct metric for the curvature computation's rounding.
MAX_CONDITION = 1e3


def _sample(ctx, with_v: bool = True):
    from finslerlib.curvature import checks  # curvature builds on manifolds, like the kit

    m = ctx.m
    x = ctx.points(4 * CURVATURE_POINTS)
    a, _ = m.coefficients(x)  # NotImplementedError: no Randers data, the property is skipped
    a = a.expand(*x.shape[:-1], *a.shape[-2:]).detach().to(torch.float64)
    limit = MAX_CONDITION
    eig = torch.linalg.eigvalsh(0.5 * (a + a.mT))
    cond = eig[..., -1] / eig[..., 0].clamp_min(torch.finfo(torch.float64).tiny)
    keep = cond <= limit
    if not bool(keep.any()):
        raise NotImplementedError(
            f"every sampled a(x) has condition number > {limit:g}: too close to a degenerate metric "
            "for the curvature's nested derivatives"
        )
    worst = float(cond[keep][:CURVATURE_POINTS].max())
    x = x[keep][:CURVATURE_POINTS]
    y = ctx.vectors(x)
    v = ctx.vectors(x) if with_v else None
    # in float64 whatever the kit's dtype: a flat metric's K = 0 is a ratio of rounding errors in
    # float32 (the manifolds follow the input's dtype)
    y, v = y.double(), (None if v is None else v.double())
    # the tolerance grows with cond(a): float64 rounding amplified by the nested derivatives
    tol = {"rtol": 1e-6 * max(1.0, worst), "atol": 1e-8 * max(1.0, worst)}
    return checks, m, x.double(), y, v, tol


@register_property(
    "flag_curvature_flag",
    "K(x, y, V) depends only on the flag: K(x, 1.7 y, -0.6 V + 0.8 y) = K(x, y, V)",
    family="curvature",
)
def flag_curvature_flag(ctx):
    checks, m, x, y, v, tol = _sample(ctx)
    ok, message = checks.check_flag_curvature_invariance(m, x, y, v, **tol)
    if not ok:
        ctx.fail_shape(ctx.statement, [message])


@register_property(
    "ricci_trace",
    "Ric(x, y) = F(x, y)^2 * sum of K(x, y, e_a) over a g_y-orthonormal frame of y's complement",
    family="curvature",
)
def ricci_trace(ctx):
    checks, m, x, y, _, tol = _sample(ctx, with_v=False)
    ok, message = checks.check_ricci_trace(m, x, y, **tol)
    if not ok:
        ctx.fail_shape(ctx.statement, [message])
