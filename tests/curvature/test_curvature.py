"""`finslerlib.curvature`: spray, Riemann / flag / Ricci / S-curvature, parallel transport.

Oracles (independent of the jvp compositions in the package):

* known values: Minkowski–Randers K = 0; Funk K = -1/4, Ric = -(n-1)/4 F^2, S = (n+1)/2 F;
  Killing navigation on a space form of curvature c: K = c (Bao–Robles–Shen), S = 0; Euclidean
  navigation under the homothetic wind W = c x + (Killing part): K = -c^2/4 (Bao–Robles–Shen,
  "Zermelo navigation on Riemannian manifolds", JDG 66 (2004), Theorem 3: K = sec(h) - sigma^2/16
  for L_W h = -sigma h; here sigma = -2c; the Funk metric is c = -1);
* a second spray computed per point from autograd Hessians of F^2 (`torch.autograd.functional`),
  and the Riemann curvature from central finite differences of that spray;
* the geodesic acceleration and the S-curvature from the library's RK4 geodesic flow
  (finite differences in time), and the distortion from log det g_y (torch.logdet);
* transport: the Funk closed form against the RK4 integration; symmetry (rotation) equivariance.

One file over 500 lines: it is the issue's whole acceptance list (curvature, transport, optimizer
momenta) with the test-only embedded manifolds and the oracle they share.
"""

from __future__ import annotations

import dataclasses

import geoopt
import pytest
import torch
from torch.autograd.functional import hessian, jacobian

from finslerlib import FunkBall, Randers, RandersField
from finslerlib.curvature import (
    checks,
    flag_curvature,
    funk_transport,
    geodesic_transport,
    ricci_curvature,
    riemann_curvature,
    s_curvature,
    spray,
    transp_follow_retraction,
)
from finslerlib.geodesics import geodesic_flow
from finslerlib.math import randers as rmath
from tests.support import close

F64 = torch.float64


def rot2(x, omega):
    return omega * torch.stack([-x[..., 1], x[..., 0]], -1)


def rotation_field(omega=0.4):
    return RandersField.from_navigation(wind=lambda x: rot2(x, omega), dim=2)


def homothetic_field(c=0.3, omega=0.4):
    return RandersField.from_navigation(wind=lambda x: c * x + rot2(x, omega), dim=2)


def general_field(dim=3):
    """A position-dependent (a, b) with no symmetry."""
    gen = torch.Generator().manual_seed(5)
    m1 = torch.randn(dim, dim, generator=gen, dtype=F64) / dim
    m2 = torch.randn(dim, dim, generator=gen, dtype=F64) / dim

    def a(x):
        s = torch.sin(x @ m1.T.to(x.dtype))
        eye = torch.eye(dim, dtype=x.dtype)
        return (1 + 0.2 * (x * x).sum(-1))[..., None, None] * eye + 0.3 * s[..., :, None] * s[..., None, :]

    return RandersField(a=a, b=lambda x: 0.3 * torch.tanh(x @ m2.T.to(x.dtype)), dim=dim)


def sample(n, dim, seed, scale=0.4):
    """Points with |x| <= 2 * scale, and two standard normal vector batches."""
    gen = torch.Generator().manual_seed(seed)
    z, y, v = (torch.randn(n, dim, generator=gen, dtype=F64) for _ in range(3))
    return scale * z / (z.norm(dim=-1, keepdim=True) / 2).clamp_min(1.0), y, v


# ----------------------------------------------------------------------------- test-only embedded manifolds
class Sphere:
    """Unit sphere S^n in R^{n+1} with navigation data (h = induced metric, W = A x, A skew)."""

    def __init__(self, wind_matrix):
        self.ambient_dim = wind_matrix.shape[0]
        self.dim = self.ambient_dim - 1
        self.A = wind_matrix

    def projx(self, x):
        return x / x.norm(dim=-1, keepdim=True)

    def proju(self, x, u):
        return u - (x * u).sum(-1, keepdim=True) * x

    def coefficients(self, x):
        h = torch.eye(self.ambient_dim, dtype=x.dtype).expand(*x.shape[:-1], -1, -1)
        return rmath.navigation_to_randers(h, x @ self.A.T.to(x.dtype))

    def random(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        x = self.projx(torch.randn(n, self.ambient_dim, generator=gen, dtype=F64))
        vecs = (torch.randn(n, self.ambient_dim, generator=gen, dtype=F64) for _ in range(2))
        return x, *(self.proju(x, t) for t in vecs)


class Hyperboloid(Sphere):
    """H^2 = {-x0^2 + x1^2 + x2^2 = -1, x0 > 0} with the rotation wind about the x0 axis."""

    J = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=F64))

    def projx(self, x):
        s = x[..., 1:]
        return torch.cat([torch.sqrt(1 + (s * s).sum(-1, keepdim=True)), s], -1)

    def proju(self, x, u):
        lorentz = -x[..., :1] * u[..., :1] + (x[..., 1:] * u[..., 1:]).sum(-1, keepdim=True)
        return u + lorentz * x

    def coefficients(self, x):
        h = self.J.to(x.dtype).expand(*x.shape[:-1], -1, -1)
        return rmath.navigation_to_randers(h, x @ self.A.T.to(x.dtype))

    def random(self, n, seed):
        gen = torch.Generator().manual_seed(seed)
        x = self.projx(0.6 * torch.randn(n, 3, generator=gen, dtype=F64))
        return x, *(self.proju(x, torch.randn(n, 3, generator=gen, dtype=F64)) for _ in range(2))


# ----------------------------------------------------------------------------- independent oracle
def oracle_spray(coef, x, y):
    """G = 1/4 g^{-1} ([F^2]_{x y} y - [F^2]_x) per point, from autograd Hessians of L = F^2 / 2."""
    d = x.shape[-1]

    def lagrangian(xy):
        a, b = coef(xy[:d])
        yy = xy[d:]
        return 0.5 * (torch.sqrt(yy @ a @ yy) + b @ yy) ** 2

    out = []
    for xi, yi in zip(x, y, strict=True):
        xy = torch.cat([xi, yi])
        hess = hessian(lagrangian, xy)
        grad = jacobian(lagrangian, xy)
        rhs = hess[d:, :d] @ yi - grad[:d]
        out.append(0.5 * torch.linalg.solve(hess[d:, d:], rhs))
    return torch.stack(out)


def oracle_riemann_apply(coef, x, y, v, h=1e-4):
    """R_y(V) by central finite differences of `oracle_spray`."""
    def g(xx, yy):
        return oracle_spray(coef, xx, yy)

    def dy(xx, yy, w):
        return (g(xx, yy + h * w) - g(xx, yy - h * w)) / (2 * h)

    g0 = g(x, y)
    nv = dy(x, y, v)
    t1 = (g(x + h * v, y) - g(x - h * v, y)) / h  # 2 dG/dx V
    t2 = (dy(x + h * y, y, v) - dy(x - h * y, y, v)) / (2 * h)
    t3 = (dy(x, y + h * g0, v) - dy(x, y - h * g0, v)) / h  # 2 G^j d_yj (N V)
    return t1 - t2 + t3 - dy(x, y, nv)


def g_form(m, x, y, u, v):
    return (u * rmath.matvec(rmath.fundamental_tensor(y, *m.coefficients(x)), v)).sum(-1)


# ----------------------------------------------------------------------------- the spray
@pytest.mark.parametrize("name", ["general", "homothetic", "funk"])
def test_spray_matches_hessian_oracle(name):
    m = {"general": general_field(), "homothetic": homothetic_field(), "funk": FunkBall(2, radius=1.5)}[name]
    x, y, _ = sample(3, m.dim, 1)
    want = oracle_spray(m.coefficients, x, y)
    close(spray(m, x, y), want, rtol=1e-9, atol=1e-11)
    if name == "funk":  # projectively flat: G = F y / 2
        close(want, 0.5 * m.norm(x, y, keepdim=True) * y, rtol=1e-10, atol=1e-12)


def test_spray_is_the_geodesic_acceleration_of_the_rk4_flow():
    """exp_x(s y) = x + s y - s^2 G + O(s^3); Richardson on s and 2s removes the O(s) term."""
    m = general_field()
    x, y, _ = sample(5, 3, 2)

    def estimate(s):
        p = rmath.legendre(s * y, *m.coefficients(x))
        end = geodesic_flow(m.raw_coefficients, x, p, steps=8)[0]
        return (x + s * y - end) / s**2

    s = 1e-3
    close(spray(m, x, y), 2 * estimate(s) - estimate(2 * s), rtol=1e-5, atol=1e-6)


def test_spray_homogeneity_and_minkowski_zero():
    m = general_field()
    x, y, _ = sample(4, 3, 3)
    close(spray(m, x, 2.5 * y), 2.5**2 * spray(m, x, y))
    flat = Randers(torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=F64), torch.tensor([0.4, -0.2], dtype=F64))
    x2, y2, _ = sample(4, 2, 4)
    close(spray(flat, x2, y2), 0.0, atol=1e-14)


# ----------------------------------------------------------------------------- Riemann curvature
@pytest.mark.parametrize("name", ["general", "homothetic", "rotation"])
def test_riemann_matches_finite_differences(name):
    """Regression: with torch.linalg.solve inside the spray, the nested jvps were off by O(1)."""
    m = {"general": general_field(), "homothetic": homothetic_field(), "rotation": rotation_field()}[name]
    x, y, v = sample(3, m.dim, 5)
    r = riemann_curvature(m, x, y)
    want = oracle_riemann_apply(m.coefficients, x, y, v)
    close(rmath.matvec(r, v), want, rtol=1e-5, atol=1e-6)


def test_riemann_operator_properties():
    m = general_field()
    x, y, u = sample(4, 3, 6)
    v = sample(4, 3, 7)[2]
    ok, msg = checks.check_riemann_symmetry(m, x, y, u, v)
    assert ok, msg
    # R is 2-homogeneous in y and the columns are R_y(e_k)
    r = riemann_curvature(m, x, y)
    close(riemann_curvature(m, x, 3.0 * y), 9.0 * r, rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------------- known values
@pytest.mark.parametrize("learnable", [False, True])
def test_minkowski_randers_is_flat(learnable):
    if learnable:
        torch.manual_seed(0)
        m = Randers.learnable(3, max_drift=0.8).double()
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
    else:
        m = Randers(torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=F64),
                    torch.tensor([0.4, -0.2, 0.3], dtype=F64))
    x, y, v = sample(5, 3, 8)
    with torch.no_grad():
        close(flag_curvature(m, x, y, v), 0.0, atol=1e-12)
        close(ricci_curvature(m, x, y), 0.0, atol=1e-12)
        close(s_curvature(m, x, y), 0.0, atol=1e-12)
        # transport is the identity: the generic integration and the manifold's hooks
        close(geodesic_transport(m, x, y, v).vector, v, atol=1e-12)
        close(m.transp_follow_expmap(x, y, v), v)
        close(m.retr_transp(x, y, v)[1], v)


@pytest.mark.parametrize("radius", [1.0, 1.5])
def test_funk_constant_curvature(radius):
    m = FunkBall(4, radius=radius)
    x, y, v = sample(6, 4, 9, scale=0.25 * radius)
    f = m.norm(x, y)
    close(flag_curvature(m, x, y, v), -0.25, rtol=1e-9, atol=1e-10)
    close(ricci_curvature(m, x, y), -(4 - 1) / 4 * f**2, rtol=1e-9, atol=1e-10)
    close(s_curvature(m, x, y), (4 + 1) / 2 * f, rtol=1e-9, atol=1e-10)
    # the reverse Funk metric (spray -F~ y / 2) has K = -1/4 too
    close(flag_curvature(m.reverse(), x, y, v), -0.25, rtol=1e-9, atol=1e-10)


def test_rotational_killing_wind_is_flat():
    m = rotation_field(0.4)
    x, y, v = sample(6, 2, 10, scale=0.8)
    a, b = m.coefficients(x)
    assert (a - a[:1]).abs().max() > 0.01 and (b - b[:1]).abs().max() > 0.01  # not constant
    close(flag_curvature(m, x, y, v), 0.0, atol=1e-10)
    close(ricci_curvature(m, x, y), 0.0, atol=1e-10)
    close(s_curvature(m, x, y), 0.0, atol=1e-10)


@pytest.mark.parametrize("c,omega", [(0.3, 0.4), (-0.5, 0.0), (0.2, -0.7)])
def test_homothetic_wind_brs_value(c, omega):
    """Euclidean h, W = c x + omega J x: L_W h = 2c h, constant K = -c^2/4 (BRS)."""
    m = homothetic_field(c, omega)
    x, y, v = sample(5, 2, 11, scale=0.3)
    close(flag_curvature(m, x, y, v), -c * c / 4, rtol=1e-9, atol=1e-10)
    close(ricci_curvature(m, x, y), -c * c / 4 * m.norm(x, y) ** 2, rtol=1e-9, atol=1e-10)
    # S = -(n + 1) c / 2 F (the Funk metric is c = -1; s_curvature itself is checked against
    # finite differences along RK4 geodesics below)
    close(s_curvature(m, x, y), -(2 + 1) * c / 2 * m.norm(x, y), rtol=1e-9, atol=1e-10)


def test_homothetic_wind_matches_the_finite_difference_oracle():
    m = homothetic_field(0.3, 0.4)
    x, y, v = sample(3, 2, 12, scale=0.3)
    rv = oracle_riemann_apply(m.coefficients, x, y, v)
    num = g_form(m, x, y, rv, v)
    den = g_form(m, x, y, y, y) * g_form(m, x, y, v, v) - g_form(m, x, y, y, v) ** 2
    close(num / den, -0.3**2 / 4, rtol=1e-5, atol=1e-6)


def test_embedded_sphere_with_killing_wind_has_k_plus_one():
    for a, seed in (
        (0.5 * torch.tensor([[0.0, -1.0, 0.3], [1.0, 0.0, -0.2], [-0.3, 0.2, 0.0]], dtype=F64), 13),
        (0.3 * torch.tensor([[0, -1, 0, 0.5], [1, 0, 0.2, 0], [0, -0.2, 0, 1], [-0.5, 0, -1, 0]]), 14),
    ):
        m = Sphere(a.double())
        x, y, v = m.random(5, seed)
        f = rmath.norm(y, *m.coefficients(x))
        close(flag_curvature(m, x, y, v), 1.0, rtol=1e-9, atol=1e-10)
        close(ricci_curvature(m, x, y), (m.dim - 1) * f**2, rtol=1e-9, atol=1e-10)
        close(s_curvature(m, x, y), 0.0, atol=1e-10)
        # the ambient acceleration of a curve on the unit sphere has normal part -|y|^2 x
        close((spray(m, x, y) * x).sum(-1), 0.5 * (y * y).sum(-1), rtol=1e-9, atol=1e-10)
        r = riemann_curvature(m, x, y)  # ambient operator: kills the normal and the flagpole
        close(rmath.matvec(r, x), 0.0, atol=1e-10)
        close(rmath.matvec(r, y), 0.0, atol=1e-10)
        ok, msg = checks.check_ricci_trace(m, x, y)
        assert ok, msg


def test_embedded_hyperboloid_with_killing_wind_has_k_minus_one():
    m = Hyperboloid(0.4 * torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=F64))
    x, y, v = m.random(5, 15)
    close(flag_curvature(m, x, y, v), -1.0, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_conformal_charts_of_space_forms(sign):
    """Stereographic sphere (sign +1) and Poincaré disk (-1), rotation wind: K = sign."""
    def h(u):
        return (4 / (1 + sign * (u * u).sum(-1)) ** 2)[..., None, None] * torch.eye(2, dtype=u.dtype)

    m = RandersField.from_navigation(h=h, wind=lambda u: rot2(u, 0.6), dim=2)
    x, y, v = sample(5, 2, 16, scale=0.25)
    close(flag_curvature(m, x, y, v), sign, rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------------- S-curvature
def test_s_curvature_matches_finite_differences_along_rk4_geodesics():
    """S = d/dt tau(sigma, sigma') with tau = log(sqrt(det g_y) / sigma_BH) from torch.logdet."""
    m = general_field()
    x, y, _ = sample(4, 3, 17)
    n = m.dim

    def tau(xx, yy):
        a, b = m.coefficients(xx)
        g = rmath.fundamental_tensor(yy, a, b)
        lam = 1 - (b * torch.linalg.solve(a, b.unsqueeze(-1)).squeeze(-1)).sum(-1)
        sigma_bh = lam ** ((n + 1) / 2) * torch.sqrt(torch.linalg.det(a))
        return 0.5 * torch.logdet(g) - torch.log(sigma_bh)

    def along(t):
        p = rmath.legendre(t * y, *m.coefficients(x))
        end, p1 = geodesic_flow(m.raw_coefficients, x, p, steps=8)
        return tau(end, rmath.inverse_legendre(p1, *m.coefficients(end)))

    h = 1e-3
    want = (-3 * tau(x, y) + 4 * along(h) - along(2 * h)) / (2 * h)
    close(s_curvature(m, x, y), want, rtol=1e-5, atol=1e-6)
    close(s_curvature(m, x, 2.0 * y), 2.0 * s_curvature(m, x, y))


# ----------------------------------------------------------------------------- properties (checks module)
@pytest.mark.parametrize("name", ["general", "funk", "homothetic"])
def test_flag_curvature_invariance_and_ricci_trace(name):
    m = {"general": general_field(), "funk": FunkBall(3), "homothetic": homothetic_field()}[name]
    x, y, v = sample(4, m.dim, 18, scale=0.3)
    ok, msg = checks.check_flag_curvature_invariance(m, x, y, v)
    assert ok, msg
    ok, msg = checks.check_ricci_trace(m, x, y)
    assert ok, msg


def test_checks_report_a_broken_operator(monkeypatch):
    """The trace check compares two computations: it fails when one of them is wrong."""
    import finslerlib.curvature.checks as mod

    m = FunkBall(3)
    x, y, _ = sample(3, 3, 19, scale=0.3)
    monkeypatch.setattr(mod, "ricci_curvature", lambda *args: 1.1 * ricci_curvature(*args))
    ok, msg = mod.check_ricci_trace(m, x, y)
    assert not ok and "Ric" in msg


# ----------------------------------------------------------------------------- transport
def test_transport_preserves_g_and_maps_the_velocity():
    m = general_field()
    x, u, v = sample(3, 3, 20)
    w = sample(3, 3, 21)[2]
    ok, msg = checks.check_transport_isometry(m, x, u, v, w, steps=16, rtol=1e-6, atol=1e-6)
    assert ok, msg
    both = geodesic_transport(m, x.repeat(2, 1), u.repeat(2, 1), torch.cat([v, w]), time=0.5, steps=16)
    point, velocity = both.point[:3], both.velocity[:3]
    pv, pw = both.vector.chunk(2)
    close(g_form(m, point, velocity, pv, pw), g_form(m, x, u, v, w), rtol=1e-7, atol=1e-8)
    close(point, m.expmap(x, 0.5 * u, steps=16), rtol=1e-12, atol=1e-12)


def test_transport_composed_with_its_reverse_is_the_identity():
    m = general_field()
    x, u, v = sample(3, 3, 22)
    there = geodesic_transport(m, x, u, v, steps=8)
    back = geodesic_transport(m, there.point, there.velocity, there.vector, time=-1.0, steps=8)
    close(back.point, x, rtol=1e-5, atol=1e-5)  # the RK4 error at 8 steps
    close(back.vector, v, rtol=1e-5, atol=1e-5)
    coarse = geodesic_transport(m, there.point, there.velocity, there.vector, time=-1.0, steps=2)
    assert (coarse.vector - v).abs().max() > 10 * (back.vector - v).abs().max()  # RK4 error, shrinking


@pytest.mark.parametrize("reverse", [False, True])
def test_funk_closed_form_transport_matches_integration(reverse):
    base = FunkBall(3, radius=1.5)
    m = base.reverse() if reverse else base
    x, u, v = sample(5, 3, 23, scale=0.3)
    u = 0.4 * u  # the reverse metric is forward incomplete: short steps
    num = geodesic_transport(m, x, u, v, steps=32)
    close(num.point, m.expmap(x, u), rtol=1e-6, atol=1e-7)
    closed = funk_transport(x, u, v, radius=1.5, reverse=reverse)
    close(closed, num.vector, rtol=1e-6, atol=1e-7)  # the RK4 error at 32 steps
    close(m.transp_follow_expmap(x, u, v), closed)
    close(m.transp(x, m.expmap(x, u), v), closed, rtol=1e-8, atol=1e-9)
    close(funk_transport(x, torch.zeros_like(u), v), v)  # u = 0: identity


def test_killing_wind_transport_commutes_with_the_rotation():
    """The wind's flow is an isometry of F, so it maps transports to transports."""
    m = rotation_field(0.4)
    x, u, v = sample(3, 2, 24, scale=0.5)
    u = 0.5 * u
    s = torch.tensor(0.7, dtype=F64)
    rot = torch.stack([torch.stack([s.cos(), -s.sin()]), torch.stack([s.sin(), s.cos()])])
    moved = geodesic_transport(m, x @ rot.T, u @ rot.T, v @ rot.T, steps=8)
    plain = geodesic_transport(m, x, u, v, steps=8)
    close(moved.vector, plain.vector @ rot.T, rtol=1e-10, atol=1e-11)


def test_manifold_hooks_delegate_to_the_transport():
    m = general_field(2)
    m.solver = dataclasses.replace(m.solver, steps=4)
    x, u, v = sample(2, 2, 25)
    u = 0.5 * u
    want = geodesic_transport(m, x, u, v)
    close(m.transp_follow_expmap(x, u, v), want.vector)
    close(transp_follow_retraction(m, x, u, v, steps=4), want.vector)
    point, vec = m.expmap_transp(x, u, v)
    close(point, m.expmap(x, u))
    close(vec, want.vector)
    y = m.expmap(x, u)
    close(m.transp(x, y, v), want.vector, rtol=1e-6, atol=1e-7)  # log map solved to tolerance
    nxt, mom = m.retr_transp(x, u, v)
    close(nxt, x + u)
    close(mom, m.transp_follow_retr(x, u, v))
    close(mom, transp_follow_retraction(m, x, u, v, steps=1))
    close(m.transp_follow_expmap(x, torch.zeros_like(u), v), v)  # u = 0: identity


def test_riemannian_adam_momentum_is_transported_with_its_g_norm():
    m = general_field(2)
    gen = torch.Generator().manual_seed(26)
    target = 0.5 * torch.randn(2, 2, generator=gen, dtype=F64)
    p = geoopt.ManifoldParameter(torch.zeros(2, 2, dtype=F64), manifold=m)
    opt = geoopt.optim.RiemannianAdam([p], lr=0.1)
    start = ((p.detach() - target) ** 2).sum()
    for step in range(30):
        opt.zero_grad()
        ((p - target) ** 2).sum().backward()
        if step == 5:  # one step by hand: the new momentum is the transported old one
            x0 = p.detach().clone()
            m_old = opt.state[p]["exp_avg"].clone()
        opt.step()
        if step == 5:
            grad = m.egrad2rgrad(x0, 2 * (x0 - target))
            m_step = 0.9 * m_old + 0.1 * grad
            move = p.detach() - x0  # = -lr * direction; the momentum followed exp_x(t move)
            new = opt.state[p]["exp_avg"]
            close(new, geodesic_transport(m, x0, move, m_step, steps=1).vector, rtol=1e-10, atol=1e-12)
            fine = geodesic_transport(m, x0, move, m_step, steps=16)  # the exact transport, to 1e-10
            close(new, fine.vector, rtol=1e-6, atol=1e-8)
            # its g-norm (reference: the geodesic's velocity) is the one it had before the step
            close(g_form(m, fine.point, fine.velocity, new, new), g_form(m, x0, move, m_step, m_step),
                  rtol=1e-6, atol=1e-10)
    assert ((p.detach() - target) ** 2).sum() < 5e-2 * start


def test_riemannian_adam_on_the_funk_ball_converges():
    m = FunkBall(2)
    target = torch.tensor([[0.5, -0.3], [-0.2, 0.7]], dtype=F64)
    p = geoopt.ManifoldParameter(torch.zeros(2, 2, dtype=F64), manifold=m)
    opt = geoopt.optim.RiemannianAdam([p], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        ((p - target) ** 2).sum().backward()
        opt.step()
    close(p.detach(), target, rtol=1e-3, atol=1e-3)  # Adam's noise floor at this lr: ~3e-4


# ----------------------------------------------------------------------------- input handling
def test_errors_name_the_problem():
    m = FunkBall(3)
    x, y, v = sample(2, 3, 27, scale=0.3)
    with pytest.raises(ValueError, match="nonzero"):
        flag_curvature(m, x, torch.zeros_like(y), v)
    with pytest.raises(ValueError, match="parallel"):
        flag_curvature(m, x, y, -2.0 * y)
    with pytest.raises(ValueError, match="shape"):
        ricci_curvature(m, x, y[:, :2])
    with pytest.raises(ValueError, match="non-finite"):
        s_curvature(m, x, torch.full_like(y, float("nan")))
    with pytest.raises(ValueError, match="dtype"):
        spray(m, x, y.float())
    with pytest.raises(ValueError, match="inside"):
        flag_curvature(m, 3.0 * torch.ones_like(x), y, v)
    sphere = Sphere(torch.zeros(3, 3, dtype=F64))
    xs, ys, vs = sphere.random(2, 28)
    with pytest.raises(ValueError, match="tangent"):
        flag_curvature(sphere, xs, ys + xs, vs)
    with pytest.raises(NotImplementedError):
        geodesic_transport(sphere, xs, ys, vs)
    swirl = rotation_field(0.4)  # valid for |x| < 2.5: a long step leaves the domain
    with pytest.raises(ValueError, match="leaves the region"):
        geodesic_transport(swirl, torch.zeros(1, 2, dtype=F64), torch.tensor([[5.0, 0.0]], dtype=F64),
                           torch.ones(1, 2, dtype=F64), steps=8)


def test_curvature_is_differentiable_in_the_fields_parameters():
    """dK/dtheta by autograd through the jvp compositions, against a central difference in theta."""
    theta = torch.tensor(0.3, dtype=F64, requires_grad=True)
    m = RandersField(b=lambda x: theta * torch.tanh(x.flip(-1)), dim=2)
    x, y, v = sample(3, 2, 30, scale=0.5)
    k = flag_curvature(m, x, y, v).sum()
    (grad,) = torch.autograd.grad(k, theta)
    h = 1e-5

    def k_at(t):
        return flag_curvature(RandersField(b=lambda x: t * torch.tanh(x.flip(-1)), dim=2), x, y, v).sum()

    with torch.no_grad():
        close(grad, (k_at(0.3 + h) - k_at(0.3 - h)) / (2 * h), rtol=1e-6, atol=1e-8)


def test_float32_and_batch_shapes():
    m = FunkBall(3)
    x, y, v = (t.float() for t in sample(6, 3, 29, scale=0.3))
    k = flag_curvature(m, x.reshape(2, 3, 3), y.reshape(2, 3, 3), v.reshape(2, 3, 3))
    assert k.shape == (2, 3) and k.dtype == torch.float32
    torch.testing.assert_close(k, torch.full_like(k, -0.25), rtol=1e-3, atol=1e-3)
    e1 = torch.tensor([1.0, 0.0, 0.0]).expand_as(y)  # a broadcast (stride-0) flagpole
    torch.testing.assert_close(flag_curvature(m, x, e1, v), torch.full((6,), -0.25), rtol=1e-3, atol=1e-3)
    r = riemann_curvature(m, x[0], y)  # one point against a batch of directions
    assert r.shape == (6, 3, 3) and r.dtype == torch.float32
    assert s_curvature(m, x, y).dtype == torch.float32
    field = general_field(2)
    x2, u2, v2 = (t.float() for t in sample(2, 2, 31, scale=0.3))
    out = geodesic_transport(field, x2, 0.5 * u2, v2, steps=4)
    assert all(t.dtype == torch.float32 for t in out)
    ok, msg = checks.check_transport_isometry(field, x2, 0.5 * u2, v2, u2, steps=4)
    assert ok, msg


def test_reversed_field_transport_is_the_reverse_metrics_own():
    """`m.reverse()`'s transport integrates the reverse metric's (a, -b), not the wrapped one's."""
    m = general_field()
    r = m.reverse()
    x, u, v = sample(3, 3, 25, scale=0.5)
    u = 0.5 * u
    steps = m.solver.steps
    own = geodesic_transport(r, x, u, v, steps=steps)  # integrates r.coefficients = (a, -b)
    close(own.point, r.expmap(x, u, steps=steps), rtol=1e-8, atol=1e-9)
    close(r.transp_follow_expmap(x, u, v), own.vector, rtol=1e-8, atol=1e-9)
    forward = geodesic_transport(m, x, u, v, steps=steps).vector
    assert (forward - own.vector).abs().max() > 1e-4  # the two transports differ
    point, moved = r.retr_transp(x, u, v)
    close(point, x + u)
    close(moved, transp_follow_retraction(r, x, u, v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("base", ["sphere", "lorentz"])
def test_navigation_with_a_killing_wind_has_the_base_curvature(base):
    """`Navigation` over geoopt's sphere / hyperboloid with a Killing wind: K = +1 / -1 (Bao–Robles–Shen),
    Ric = (n - 1) K F^2 and S = 0, at random points and flags, computed intrinsically."""
    from finslerlib import KillingWind, Navigation

    gen = torch.Generator().manual_seed(31)
    if base == "sphere":
        skew = torch.randn(4, 4, generator=gen, dtype=F64)
        m = Navigation(geoopt.Sphere(), KillingWind(0.3 * (skew - skew.T) / skew.norm()))
        x = torch.nn.functional.normalize(torch.randn(6, 4, generator=gen, dtype=F64), dim=-1)
        k = 1.0
    else:
        gen_a = torch.zeros(4, 4, dtype=F64)
        gen_a[1, 2], gen_a[2, 1] = 0.3, -0.3  # a rotation of the hyperboloid: A^T J + J A = 0
        m = Navigation(geoopt.Lorentz(), KillingWind(gen_a))
        z = 0.3 * torch.randn(6, 3, generator=gen, dtype=F64)
        x = torch.cat([(1 + (z * z).sum(-1, keepdim=True)).sqrt(), z], -1)
        k = -1.0
    y = m.proju(x, torch.randn(6, 4, generator=gen, dtype=F64))
    v = m.proju(x, torch.randn(6, 4, generator=gen, dtype=F64))
    close(flag_curvature(m, x, y, v), torch.full((6,), k, dtype=F64), rtol=1e-7, atol=1e-8)
    close(ricci_curvature(m, x, y), 2 * k * m.norm(x, y) ** 2, rtol=1e-7, atol=1e-8)
    close(s_curvature(m, x, y), torch.zeros(6, dtype=F64), rtol=0, atol=1e-8)


def test_kit_runs_the_curvature_laws_and_catches_an_inconsistent_metric():
    """`check_manifold` has the curvature family: it passes the Funk ball and a field, and fails a
    metric whose Randers data changes between calls (so K depends on more than the flag)."""
    from finslerlib.testing import check_manifold

    laws = ["flag_curvature_flag", "ricci_trace"]
    for m in (FunkBall(3), general_field()):
        report = check_manifold(m, dtype=F64, properties=laws)
        assert report.passed == laws

    class Drifting(RandersField):
        calls = 0

        def raw_coefficients(self, x):
            a, b = super().raw_coefficients(x)
            type(self).calls += 1
            return a * (1 + 0.3 * x.sum(-1, keepdim=True).unsqueeze(-1) * (type(self).calls % 2)), b

    broken = Drifting(a=lambda x: torch.eye(3, dtype=x.dtype) * (1 + 0.1 * (x * x).sum(-1))[..., None, None],
                      dim=3)
    report = check_manifold(broken, dtype=F64, properties=laws, raise_on_failure=False)
    assert set(report.failed) & set(laws), str(report)
