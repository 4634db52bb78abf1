"""Curvature properties (for manifolds with Randers data): the flag curvature depends only on the
flag, and the Ricci scalar is the trace of the flag curvatures (`finslerlib.curvature.checks`).

They run on a few points (each costs nested derivatives of the geodesic spray), are skipped on
manifolds that expose no Randers data (`coefficients(x)` raising `NotImplementedError`), and leave
out points where `a(x)` is too ill-conditioned for those derivatives. They compute in float64.
"""

from __future__ import annotations

import torch

from finslerlib.testing import sampling
from finslerlib.testing.registry import register_property

CURVATURE_POINTS = 4

# The curvature's nested derivatives of the spray lose about cond(a)^2 * eps: points where a(x) is
# worse conditioned than this (e.g. within about 5e-3 of the Funk sphere) are left out of these
# laws, so that the kit never blames a correct metric for the curvature computation's rounding and
# the tolerance (`curvature_tolerance`, at most 2.3e-6 relative) keeps the laws meaningful.
MAX_CONDITION = 1e2


def _in_float64(m, x, *vectors):
    """`x` and tangent `vectors` re-projected in float64, the dtype the curvature laws compute in.

    Samples drawn in float32 are on the manifold and tangent to float32's rounding only: cast to
    float64 they would be off the manifold by ~1e-7, far more than float64 rounding, and the
    curvature's chart would see a normal component. `projx` / `proju` in float64 put them back.
    """
    x = x.detach().to(torch.float64)
    if sampling.is_flat(m):
        return (x, *(None if v is None else v.detach().to(torch.float64) for v in vectors))
    x = torch.as_tensor(m.projx(x)).as_subclass(torch.Tensor).detach()
    out = [None if v is None else torch.as_tensor(m.proju(x, v.detach().to(torch.float64)))
           .as_subclass(torch.Tensor).detach() for v in vectors]
    return (x, *out)


def curvature_tolerance(cond: float) -> dict[str, float]:
    """`rtol`, `atol` of the curvature laws in float64 at a worst condition number `cond` of `a(x)`.

    The flag curvature is a ratio of second derivatives of the geodesic spray (nested autograd,
    no finite differences): rounding enters through solves with $a$ and $g_y$ whose results are
    multiplied again by them, so float64's eps is amplified by `cond**2`. The measured errors of
    the built-in metrics (float32 samples included, points near the Funk sphere included) are at
    most about `2**16 * eps * cond**2`; the tolerance allows 16 times that.
    """
    eps = torch.finfo(torch.float64).eps
    scale = max(1.0, cond) ** 2
    return {"rtol": 2.0**20 * eps * scale, "atol": 2.0**14 * eps * scale}


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
    # in float64 whatever the kit's dtype (a flat metric's K = 0 is a ratio of rounding errors in
    # float32; the manifolds follow the input's dtype), re-projected in float64
    x, y, v = _in_float64(m, x, y, v)
    return checks, m, x, y, v, curvature_tolerance(worst)


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
