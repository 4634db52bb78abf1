"""The compiled sweep kernel against the torch sweeps, the stopping test, and input errors.

Oracles: the two backends iterate the same scheme, so their fixed points agree to the iteration's
tolerance (the kernel's locking skips updates whose inputs changed by under a hundredth of it, and
both end with the same Jacobi check); constant Randers
metrics in 3-D (T = F(q - p), exact for the factored scheme); finite differences for gradients.
"""

import math
import warnings

import pytest
import torch

from finslerlib import Randers
from finslerlib.eikonal import distance_map, eikonal_map, grid_points
from finslerlib.eikonal import kernel as kernel_module
from finslerlib.math.randers import navigation_to_randers

F64 = torch.float64

needs_kernel = pytest.mark.skipif(
    not kernel_module.compiled_available(), reason="the compiled kernel cannot be built here"
)


def _drift(dtype=F64, strength=0.8):
    m = torch.tensor([[1.25, 0.5], [0.5, 2.0]], dtype=dtype)

    def coef(x):
        gx = strength * torch.cos(math.pi * x[..., 0]) * torch.sin(math.pi * x[..., 1])
        gy = strength * torch.sin(math.pi * x[..., 0]) * torch.cos(math.pi * x[..., 1])
        return m.expand(*x.shape[:-1], 2, 2), torch.stack([gx, gy], -1)

    return coef


def _field3(x):
    # a position-dependent 3-D Randers metric: a = diag(1 + r^2 / 2, 1, 1.2), |b|_{a^-1} <= 0.5
    r2 = (x * x).sum(-1)
    a = torch.diag_embed(torch.stack([1 + 0.5 * r2, torch.ones_like(r2), 1.2 * torch.ones_like(r2)], -1))
    b = 0.35 * torch.stack([torch.sin(2 * x[..., 1]), torch.cos(x[..., 2]), torch.sin(x[..., 0])], -1)
    return a, b


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("factor", [False, True])
def test_backends_agree_to_the_tolerance_in_2d(dtype, order, factor):
    ax = torch.linspace(-2, 2, 37, dtype=dtype)
    ay = torch.linspace(-1.5, 2.0, 29, dtype=dtype)
    src = torch.tensor([[0.31, -0.17], [-1.2, 1.4]], dtype=dtype)
    maps = [
        eikonal_map(_drift(dtype), (ax, ay), src, order=order, factor=factor, backend=b)
        for b in ("cpp", "torch")
    ]
    assert all(m.converged for m in maps), [(m.change, m.tolerance) for m in maps]
    # each map is within its tolerance of one Jacobi step: their difference is a few tolerances,
    # amplified by the scheme's conditioning along a characteristic (the nodes across the grid)
    bound = maps[1].tolerance * 2 * max(ax.numel(), ay.numel())
    diff = (maps[0].values - maps[1].values).abs().max().item()
    assert diff <= bound, (diff, bound)
    assert torch.equal(torch.isinf(maps[0].values), torch.isinf(maps[1].values))


@needs_kernel
@pytest.mark.parametrize("order", [1, 2])
def test_backends_agree_in_3d_on_a_variable_metric(order):
    ax = torch.linspace(-1, 1, 11, dtype=F64)
    src = torch.tensor([[0.13, -0.2, 0.05]], dtype=F64)
    maps = [eikonal_map(_field3, (ax, ax, ax), src, order=order, backend=b) for b in ("cpp", "torch")]
    assert all(m.converged for m in maps), [(m.change, m.tolerance) for m in maps]
    diff = (maps[0].values - maps[1].values).abs().max().item()
    assert diff <= maps[1].tolerance * 2 * ax.numel(), diff


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=needs_kernel), "torch"])
@pytest.mark.parametrize("order", [1, 2])
def test_three_dimensional_maps_converge_and_match_constant_randers(backend, order):
    # regression: the octant-facet solve cancelled O(T^2 / h^4) terms, its rounding eps T^2 / h
    # kept every 3-D map above the stopping tolerance (converged False); now solved for T - min
    a = torch.tensor([[1.2, 0.2, 0.0], [0.2, 1.0, -0.1], [0.0, -0.1, 0.9]], dtype=F64)
    b = torch.tensor([0.3, -0.2, 0.25], dtype=F64)
    metric = Randers(a=a, b=b)
    ax = torch.linspace(-1, 1, 15, dtype=F64)
    ay = torch.linspace(-0.5, 1.3, 13, dtype=F64)
    src = torch.tensor([[0.1, 0.0, -0.2]], dtype=F64)
    x = grid_points((ax, ay, ax))
    want = metric.dist(src.expand_as(x), x)
    # factored: T = T0 exactly, so the map is the closed form up to rounding of sums of a few terms
    m = distance_map(metric, (ax, ay, ax), src, order=order, backend=backend)
    assert m.converged, (m.change, m.tolerance)
    eps = torch.finfo(F64).eps
    torch.testing.assert_close(m.values, want, rtol=64 * eps, atol=64 * eps)
    # not factored (its accuracy: test_distance_map's 3-D test): it settles too
    plain = distance_map(metric, (ax, ay, ax), src, order=order, factor=False, backend=backend)
    assert plain.converged, (plain.change, plain.tolerance)


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=needs_kernel), "torch"])
def test_converged_is_false_when_the_iteration_has_not_settled(backend):
    ax = torch.linspace(-2, 2, 41, dtype=F64)
    m = eikonal_map(_drift(), (ax, ax), torch.zeros(1, 2, dtype=F64), order=2, max_iter=3, backend=backend)
    assert not m.converged and m.change > m.tolerance


@needs_kernel
@pytest.mark.parametrize("order", [1, 2])
def test_gradients_are_the_same_on_both_backends(order):
    theta = torch.tensor(0.5, dtype=F64, requires_grad=True)
    m0 = torch.tensor([[1.25, 0.5], [0.5, 2.0]], dtype=F64)

    def coef(x):
        gx = torch.cos(math.pi * x[..., 0]) * torch.sin(math.pi * x[..., 1])
        gy = torch.sin(math.pi * x[..., 0]) * torch.cos(math.pi * x[..., 1])
        return m0.expand(*x.shape[:-1], 2, 2), theta * torch.stack([gx, gy], -1)

    ax = torch.linspace(-1, 1, 25, dtype=F64)
    src = torch.tensor([[0.05, -0.1]], dtype=F64, requires_grad=True)
    weights = torch.rand(25, 25, generator=torch.Generator().manual_seed(2), dtype=F64)
    grads = []
    for backend in ("cpp", "torch"):
        loss = (weights * eikonal_map(coef, (ax, ax), src, order=order, backend=backend).values).sum()
        grads.append(torch.autograd.grad(loss, (theta, src)))
    for g_cpp, g_torch in zip(*grads, strict=True):
        torch.testing.assert_close(g_cpp, g_torch, rtol=1e-9, atol=1e-9)
    # and the kernel's gradient is the derivative of the kernel's map (central differences)
    shift = 1e-6 * torch.tensor([[1.0, 0.0]], dtype=F64)
    with torch.no_grad():
        up = (weights * eikonal_map(coef, (ax, ax), src + shift, order=order, backend="cpp").values).sum()
        dn = (weights * eikonal_map(coef, (ax, ax), src - shift, order=order, backend="cpp").values).sum()
    e = 1e-6
    fd = ((up - dn) / (2 * e)).item()
    assert abs(grads[0][1][0, 0].item() - fd) <= 1e-6 * (1 + abs(fd)), (grads[0][1], fd)


def test_a_kernel_that_cannot_be_built_falls_back_to_torch_with_one_warning(monkeypatch):
    import torch.utils.cpp_extension as cpp_extension

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(cpp_extension, "load_inline", broken)
    monkeypatch.delitem(kernel_module._STATE, "module", raising=False)
    ax = torch.linspace(-1, 1, 11, dtype=F64)
    src = torch.zeros(1, 2, dtype=F64)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        first = eikonal_map(_drift(), (ax, ax), src)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = eikonal_map(_drift(), (ax, ax), src)  # warned once only
    want = eikonal_map(_drift(), (ax, ax), src, backend="torch")
    assert torch.equal(first.values, want.values) and torch.equal(again.values, want.values)
    with pytest.raises(RuntimeError, match="backend='cpp'"):
        eikonal_map(_drift(), (ax, ax), src, backend="cpp")


def test_bad_inputs_raise_errors_that_name_the_argument():
    coef = _drift()
    ax = torch.linspace(-1, 1, 11, dtype=F64)
    src = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(TypeError, match=r"axes\[0\].*floating"):
        eikonal_map(coef, (torch.arange(11), ax), src)
    with pytest.raises(ValueError, match=r"axes\[1\] must be increasing"):
        eikonal_map(coef, (ax, ax.flip(0)), src)
    with pytest.raises(ValueError, match=r"sources\[1\] = \[nan, 0.0\] is not finite"):
        eikonal_map(coef, (ax, ax), torch.tensor([[0.0, 0.0], [float("nan"), 0.0]], dtype=F64))
    with pytest.raises(ValueError, match="backend"):
        eikonal_map(coef, (ax, ax), src, backend="fortran")
    with pytest.raises(ValueError, match=r"axes\[1\] must be uniformly spaced"):
        eikonal_map(coef, (ax, ax**3), src)


def _near_edge_wind(margin):
    # a Zermelo wind whose largest valid value on a 21^3 grid of [-1, 1]^3, at the nodes with
    # |x| = |y| = 0.5, z = 0, is 1 - margin: the metric there is nearly degenerate (|b| ~ 1 / margin)
    amp = (1 - margin) / math.sqrt(2)

    def coef(x):
        w = amp * torch.stack([torch.sin(math.pi * x[..., k]) for k in (1, 2, 0)], -1)
        eye = torch.eye(3, dtype=x.dtype).expand(*x.shape[:-1], 3, 3)
        return navigation_to_randers(eye, w)

    return coef


@needs_kernel
def test_second_order_3d_map_converges_next_to_a_nearly_degenerate_metric():
    # regression: the stopping tolerance was 8 D eps max T, but next to the domain's edge the update
    # is a difference of terms |b . e| + |e|_a ~ 70 times T, whose rounding kept the second-order
    # sweeps cycling above it (converged False after 313 sweeps); the tolerance now scales with the
    # largest such term, and the sweeps settle within it
    ax = torch.linspace(-1, 1, 21, dtype=F64)
    m = eikonal_map(_near_edge_wind(1e-3), (ax, ax, ax), torch.zeros(1, 3, dtype=F64), order=2, backend="cpp")
    assert m.converged and m.change <= m.tolerance, (m.change, m.tolerance)
    assert m.tolerance <= 8 * 3 * torch.finfo(F64).eps * 1e3  # a few hundred eps, not a loose stop
    assert bool(torch.isinf(m.values[~m.valid]).all()) and bool(torch.isfinite(m.values[m.valid]).all())


@needs_kernel
@pytest.mark.parametrize("dim", [3])
def test_threaded_sweeps_reach_the_same_fixed_point(dim):
    # the kernel's 3-D sweeps on two threads visit the nodes in another (deterministic) order:
    # the same scheme, so the same fixed point within the iteration's tolerance (2-D maps always
    # sweep on one thread)
    ax = torch.linspace(-1, 1, 41 if dim == 2 else 17, dtype=F64)
    coef = _drift() if dim == 2 else _field3
    src = torch.full((1, dim), 0.1, dtype=F64)
    threads = torch.get_num_threads()
    maps = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            maps += [eikonal_map(coef, (ax,) * dim, src, order=2, backend="cpp")]
    finally:
        torch.set_num_threads(threads)
    assert all(m.converged for m in maps), [(m.change, m.tolerance) for m in maps]
    assert torch.equal(torch.isinf(maps[0].values), torch.isinf(maps[1].values))
    diff = (maps[0].values - maps[1].values).abs().max().item()
    assert diff <= maps[1].tolerance * 2 * ax.numel(), diff


@needs_kernel
@pytest.mark.parametrize("order", [1, 2])
def test_3d_map_of_a_wind_next_to_the_domains_edge_converges_to_the_closed_form(order):
    # regression: a constant Zermelo wind with |W| = 0.999 (a, b ~ 1 / (1 - |W|^2) = 500 times the
    # plain metric): the 3-D local solve in double (the metric's inverse, its determinant cancelling
    # like cond(a)^2, and the triangle's quadratic) rounded at 1e-10, so the sweeps cycled above the
    # tolerance (converged False, change 5.6e-11 against 8.6e-12) and missed T = F(x - s) by 1.4e-10;
    # the kernel now solves such nodes in a wider type. Oracle: the constant metric's closed form,
    # which the factored scheme reproduces up to rounding
    w = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    w = 0.999 * w / w.norm()

    def coef(x):
        eye = torch.eye(3, dtype=x.dtype).expand(*x.shape[:-1], 3, 3)
        return navigation_to_randers(eye, w.expand(x.shape))

    ax = torch.linspace(-1, 1, 21, dtype=F64)
    m = eikonal_map(coef, (ax, ax, ax), torch.zeros(1, 3, dtype=F64), order=order, backend="cpp")
    assert m.converged and m.change <= m.tolerance, (m.change, m.tolerance)
    x = grid_points((ax, ax, ax))
    a, b = coef(x)
    exact = torch.sqrt(torch.einsum("...i,...ij,...j->...", x, a, x)) + (b * x).sum(-1)
    # the tolerance is 8 D eps times the largest stencil term (~|b| h); the map agrees with the closed
    # form within it (the old solve's error was 16 times it)
    err = (m.values - exact).abs().max().item()
    assert err <= m.tolerance, (err, m.tolerance)
