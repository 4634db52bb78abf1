"""Parallel transport (Chern, reference vector = the geodesic velocity) on `Navigation`.

Oracles: the closed-form Levi-Civita transport along great circles and geoopt's `Lorentz.transp`
/ `PoincareBall.transp_follow_expmap` (zero wind); the fundamental tensor as the autograd Hessian
of F^2/2 (`Navigation.norm`) contracted with tangent vectors; the end velocity of the exact Killing
geodesic by central finite differences of `expmap(x, t u)` at t = 1; the wind's flow e^{sA} by
`torch.linalg.matrix_exp` (an isometry of F: transport commutes with it).
"""

import geoopt
import pytest
import torch

from finslerlib import KillingWind, Navigation
from finslerlib.curvature import geodesic_transport
from tests.support import close

F64 = torch.float64


def g_form(m, x, y, a, b):
    """g_y(a, b) = a^T Hess_y(F^2 / 2) b, row by row (autograd Hessian of `m.norm`)."""
    out = []
    for xi, yi, ai, bi in zip(x, y, a, b, strict=True):
        hess = torch.autograd.functional.hessian(lambda w, xi=xi: 0.5 * m.norm(xi, w) ** 2, yi)
        out.append(ai @ hess @ bi)
    return torch.stack(out)


def case(base, gen, n=3):
    """A Killing navigation (generator A) and `n` points on `base` with tangent vectors."""
    if base == "sphere":
        skew = torch.randn(3, 3, generator=gen, dtype=F64)
        A = 0.4 * (skew - skew.T) / (skew - skew.T).norm()
        m = Navigation(geoopt.Sphere(), KillingWind(A))
        x = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen, dtype=F64), dim=-1)
    elif base == "lorentz":
        A = torch.zeros(3, 3, dtype=F64)
        A[0, 1] = A[1, 0] = 0.2  # a boost: A^T J + J A = 0
        A[1, 2], A[2, 1] = -0.1, 0.1
        m = Navigation(geoopt.Lorentz(), KillingWind(A))
        z = 0.4 * torch.randn(n, 2, generator=gen, dtype=F64)
        x = torch.cat([(1 + (z * z).sum(-1, keepdim=True)).sqrt(), z], -1)
    else:  # a rotation of the Poincaré ball: a flat chart, coefficients(x) in the manifold's own coordinates
        A = torch.tensor([[0.0, -0.15], [0.15, 0.0]], dtype=F64)
        m = Navigation(geoopt.PoincareBall(), KillingWind(A))
        x = (
            0.4
            * torch.rand(n, 1, generator=gen, dtype=F64)
            * torch.nn.functional.normalize(torch.randn(n, 2, generator=gen, dtype=F64), dim=-1)
        )
    scale = 0.15 if base == "poincare" else 0.3  # F-lengths below ~1.2: RK4 with 16 steps to ~1e-6
    tangent = [m.proju(x, scale * torch.randn(n, x.shape[-1], generator=gen, dtype=F64)) for _ in range(3)]
    return m, A, x, *tangent


@pytest.mark.parametrize("base", ["sphere", "lorentz"])
def test_zero_wind_is_the_levi_civita_transport(base):
    gen = torch.Generator().manual_seed(5)
    if base == "sphere":
        m = Navigation(geoopt.Sphere(), None, dim=2)
        # include a point near the pole -e_0 of the stereographic chart of general winds
        x = torch.nn.functional.normalize(torch.randn(3, 3, generator=gen, dtype=F64), dim=-1)
        x = torch.nn.functional.normalize(
            torch.cat([x, torch.tensor([[-1.0, 1e-3, 0.0]], dtype=F64)]), dim=-1
        )
    else:
        m = Navigation(geoopt.Lorentz(), None, dim=2)
        z = 0.5 * torch.randn(4, 2, generator=gen, dtype=F64)
        x = torch.cat([(1 + (z * z).sum(-1, keepdim=True)).sqrt(), z], -1)
    u = m.proju(x, 0.6 * torch.randn(4, 3, generator=gen, dtype=F64))
    v = m.proju(x, torch.randn(4, 3, generator=gen, dtype=F64))
    y, moved = m.expmap_transp(x, u, v)
    if base == "sphere":  # v's component along e = u/|u| turns with the great circle, the rest is fixed
        theta = u.norm(dim=-1, keepdim=True)
        e = u / theta
        ev = (e * v).sum(-1, keepdim=True)
        expected = v + ev * ((torch.cos(theta) - 1) * e - torch.sin(theta) * x)
        close(y, geoopt.Sphere().expmap(x, u), 1e-12)
    else:
        expected = geoopt.Lorentz().transp(x, y, v)
    close(moved, expected, 1e-6)


@pytest.mark.parametrize("base", ["sphere", "lorentz", "poincare"])
def test_killing_transport_is_chern_parallel(base):
    """g_{γ'}(U, V) kept, γ'(0) -> γ'(1), tangent at the end point, commutes with the wind's flow;
    on the sphere also: integrating back returns (x, v), `reverse()`'s transport, `transp`."""
    gen = torch.Generator().manual_seed({"sphere": 1, "lorentz": 2, "poincare": 3}[base])
    m, A, x, u, v, w = case(base, gen)
    flow = torch.linalg.matrix_exp(0.7 * A)  # φ_s = e^{sA}: linear, so dφ_s = e^{sA}
    xs, us, vs = (t @ flow.T for t in (x, u, v))
    n = x.shape[0]
    out = geodesic_transport(
        m, torch.cat([x, x, x, xs]), torch.cat([u, u, u, us]), torch.cat([v, w, u, vs]), steps=16
    )
    pv, pw, pu, pvs = out.vector.split(n)
    y = m.expmap(x, u)
    close(out.point[:n], y, 1e-6)
    h = 1e-4
    vel = (m.expmap(x, (1 + h) * u) - m.expmap(x, (1 - h) * u)) / (2 * h)
    close(out.velocity[:n], vel, 1e-6)
    close(pu, vel, 1e-6)  # the velocity is parallel
    close(m.proju(out.point[:n], pv), pv, 1e-12)  # tangent at the end point
    close(g_form(m, y, vel, pv, pw), g_form(m, x, u, v, w), 1e-6)
    close(g_form(m, y, vel, pv, pv), g_form(m, x, u, v, v), 1e-6)
    close(pvs, pv @ flow.T, 1e-6)  # P_{φ∘γ}(dφ v) = dφ P_γ(v)
    assert (pv - m.proju(y, v)).abs().max() > 1e-2  # not the projection transport
    if base != "sphere":
        return
    # integrating back returns (x, v); in the same batch, the reverse metric's transport (navigation
    # in -W: its geodesic from x with velocity u is the F-geodesic through x with velocity -u run
    # backward, and its Chern transport is the inverse F-transport along it)
    back = geodesic_transport(
        m,
        torch.cat([out.point[:n], x]),
        torch.cat([out.velocity[:n], -u]),
        torch.cat([pv, v]),
        time=-1.0,
        steps=16,
    )
    close(back.point[:n], x, 1e-6)
    close(back.vector[:n], v, 1e-6)
    r = m.reverse()
    y_rev, moved_rev = r.expmap_transp(x, u, v)
    close(y_rev, back.point[n:], 1e-6)
    close(moved_rev, back.vector[n:], 1e-6)
    close(r.reverse().wind.A, m.wind.A, 0)
    moved = m.transp(x, y, v)  # the manifold's hook: along logmap(x, y), tangent at the exact y
    close(moved, pv, 1e-6)
    close(m.proju(y, moved), moved, 1e-12)


def test_transport_rejects_points_outside_the_domain():
    A = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)
    m = Navigation(geoopt.Euclidean(ndim=1), KillingWind(A))
    x = torch.tensor([[2.0, 0.0]], dtype=F64)  # |W| = 2
    with pytest.raises(ValueError, match="outside the domain"):
        m.transp_follow_expmap(x, x, x)


def test_general_wind_on_the_sphere_transports_in_the_chart():
    """A non-Killing wind (numerical geodesics in the stereographic chart): the velocity is parallel
    and g_{γ'}(V, V), g_{γ'}(V, γ') are kept (Hessian oracle);
    `retr_transp` returns a tangent vector at `retr(x, u)`."""
    m = Navigation(geoopt.Sphere(), lambda x: 0.3 * torch.sin(x[..., [2, 0, 1]]), dim=2)
    gen = torch.Generator().manual_seed(11)
    x = torch.nn.functional.normalize(torch.randn(2, 3, generator=gen, dtype=F64), dim=-1)
    u = m.proju(x, 0.3 * torch.randn(2, 3, generator=gen, dtype=F64))
    v = m.proju(x, torch.randn(2, 3, generator=gen, dtype=F64))
    out = geodesic_transport(m, torch.cat([x, x]), torch.cat([u, u]), torch.cat([v, u]))
    pv, pu = out.vector.split(2)
    y, vel = out.point[:2], out.velocity[:2]  # the Hamiltonian flow of F*^2 / 2 (cotangent side)
    close(pu, vel, 1e-6)  # U' = -N(γ, γ') U, integrated separately, carries γ'(0) to γ'(1)
    close(g_form(m, y, vel, pv, pv), g_form(m, x, u, v, v), 1e-6)
    close(g_form(m, y, vel, pv, pu), g_form(m, x, u, v, u), 1e-6)
    point, moved = m.retr_transp(x, u, v)
    close(m.proju(point, moved), moved, 1e-12)
