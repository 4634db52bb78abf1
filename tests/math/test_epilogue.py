"""The compiled cdist epilogue (`finslerlib.math.epilogue`): its logarithm against float64
`torch.log`, the fused Randers / Funk passes against the same formulas in float64 on the same
float32 matmul output, and the torch fallback when the module cannot be built."""

import math
import warnings

import pytest
import torch

from finslerlib import FunkBall
from finslerlib.math import epilogue

EPS = torch.finfo(torch.float32).eps


@pytest.fixture
def module():
    mod = epilogue.load_epilogue()
    if mod is None:
        pytest.skip("the compiled cdist epilogue cannot be built here")
    return mod


def test_log_within_one_ulp_of_float64_and_special_values(module):
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.exp(torch.empty(20_000, dtype=torch.float64).uniform_(-87.0, 88.0, generator=g)),
            1.0 + torch.empty(5_000, dtype=torch.float64).uniform_(-1e-3, 1e-3, generator=g),
        ]
    ).float()
    want = torch.log(x.double())
    err = (module.log_f32(x).double() - want).abs()
    # Cephes' logf: within one float32 ulp of the float64 logarithm (of the result, at least of 1)
    assert bool((err <= EPS * want.abs().clamp_min(math.ldexp(1.0, -24) / EPS)).all()), float(err.max())
    special = torch.tensor([0.0, -1.0, float("nan"), float("inf"), 1e-40, 1.0])
    got = module.log_f32(special)
    assert got[0] == -math.inf and got[1].isnan() and got[2].isnan() and got[3] == math.inf
    assert abs(float(got[4]) - math.log(1e-40)) <= 4 * EPS * abs(math.log(1e-40))  # a subnormal
    assert got[5] == 0.0


def test_randers_pass_matches_float64_formula_and_row_minima(module):
    g = torch.Generator().manual_seed(1)
    q = torch.rand(7, 37, generator=g) * 4.0
    q[2, 5] = -1e-7  # a Gram value below 0 by rounding: NaN with refine (flagged), 0 without
    bx, by = torch.randn(7, generator=g), torch.randn(37, generator=g)
    want = q.double().sqrt() + (by.double() - bx.double()[:, None])
    for refine in (True, False):
        out, amin, fmin = q.clone(), torch.empty(7), torch.empty(7)
        module.randers(out, bx, by, amin, fmin, refine)
        ok = torch.ones_like(out, dtype=torch.bool)
        ok[2, 5] = False
        assert torch.allclose(out.double()[ok], want[ok], rtol=4 * EPS, atol=4 * EPS * 4.0)
        assert torch.equal(amin, q.amin(1))
        if refine:
            assert out[2, 5].isnan() and fmin[2].isnan()
            assert torch.equal(fmin[ok.all(1)], out[ok.all(1)].amin(1))
        else:
            assert out[2, 5] == by[5] - bx[2]
            assert torch.equal(fmin, out.amin(1))


def test_funk_pass_matches_float64_formula_and_row_extremes(module):
    g = torch.Generator().manual_seed(2)
    qy = torch.rand(33, generator=g) * 0.9 + 0.05
    z = (qy.sqrt() * (1.0 + torch.rand(5, 33, generator=g) * 3.0)).float()
    lx, ly = torch.randn(5, generator=g), torch.randn(33, generator=g)
    root64 = (z.double() ** 2 - qy.double()).sqrt()
    want = torch.log(z.double() + root64) + (lx.double()[:, None] + ly.double())
    out, root = z.clone(), torch.empty_like(z)
    zmin, zmax, dmin = torch.empty(5), torch.empty(5), torch.empty(5)
    module.funk(out, root, -qy, lx, ly, zmin, zmax, dmin, True)
    scale = want.abs() + torch.log(z.double() + root64).abs() + 1.0
    assert bool(((out.double() - want).abs() <= 8 * EPS * scale).all())
    assert torch.allclose(root.double(), root64, rtol=8 * EPS, atol=8 * EPS * float(z.max()))
    assert torch.equal(zmin, z.amin(1)) and torch.equal(zmax, z.amax(1)) and torch.equal(dmin, out.amin(1))
    # without refine: z^2 - Q below 0 clamps to 0 and d at 0; the root may stay unwritten
    out2 = z.clone()
    out2[0, 0] = float(qy[0].sqrt()) * (1 - 1e-6)
    module.funk(out2, torch.empty(0), -qy, lx, ly, zmin, zmax, dmin, False)
    assert bool((out2 >= 0).all()) and not out2.isnan().any()


def test_build_failure_warns_once_and_cdist_falls_back(monkeypatch):
    import torch.utils.cpp_extension as ext

    def broken(**_):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(epilogue, "_STATE", {})
    monkeypatch.setattr(ext, "load_inline", broken)
    monkeypatch.setattr(epilogue, "MIN_ENTRIES", 0)
    with pytest.warns(RuntimeWarning, match="no compiler"):
        assert epilogue.load_epilogue() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert epilogue.load_epilogue() is None  # remembered: no second warning
        x = FunkBall(3).random(6, 3)
        d = FunkBall(3).cdist(x, x)
    assert torch.equal(d.diagonal(), torch.zeros(6))


def test_funk_points_against_float64(module):
    """Q = R^2 - |x|^2 in float64 and the operand rows [x Q^-1/2, R^2 Q^-1/2] rounded once to
    float32 (within one float32 ulp of the float64 products), targets [-y, 1] exactly."""
    g = torch.Generator().manual_seed(1)
    radius = 1.5
    x = torch.randn(300, 37, generator=g, dtype=torch.float64)
    scale = radius * torch.rand(300, 1, generator=g, dtype=torch.float64)
    x = (x / x.norm(dim=1, keepdim=True) * scale).float()
    x[0] = 0.0
    x[1] = x[1] / x[1].norm() * radius * (1 - 1e-3)  # near the wall
    r2 = radius * radius
    xa, q = module.funk_points(x, r2, True)
    want_q = r2 - (x.double() ** 2).sum(1)
    assert q.dtype == torch.float64
    # float64 summation of 37 squares: about 37 eps64 |x|^2
    assert bool(((q - want_q).abs() <= 64 * torch.finfo(torch.float64).eps * r2).all())
    rx = want_q.rsqrt()
    want = torch.cat([x.double() * rx[:, None], (r2 * rx)[:, None]], 1)
    assert bool(((xa.double() - want).abs() <= EPS * want.abs()).all())
    ya, qy = module.funk_points(x, r2, False)
    assert torch.equal(ya[:, :-1], -x) and bool((ya[:, -1] == 1).all())
    assert torch.equal(qy, q)


def test_exp_within_one_ulp_of_float64_and_special_values(module):
    g = torch.Generator().manual_seed(3)
    x = torch.cat(
        [
            torch.empty(50_000, dtype=torch.float64).uniform_(-87.0, 88.7, generator=g),
            torch.empty(5_000, dtype=torch.float64).uniform_(-1e-3, 1e-3, generator=g),
        ]
    ).float()
    want = torch.exp(x.double())
    # Cephes' expf: within one float32 ulp of the float64 exponential
    assert bool(((module.exp_f32(x).double() - want).abs() <= EPS * want).all())
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 89.0, -104.0, 0.0])
    got = module.exp_f32(special)
    assert got[0].isnan() and got[1] == math.inf and got[2] == 0.0 and got[3] == math.inf
    assert got[4] == 0.0 and got[5] == 1.0


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("upstream", ["dense", "expanded", "rows"])
def test_funk_grad_pass_matches_float64_weights_and_sums(module, reverse, upstream):
    """A = rx grad / sh with rx = (R^2 - |x|^2)^-1/2 (0 at the flagged entries), rows = sum_j A t,
    cols += sum_i A / t with t = e^-d (e^d reverse), gx = rows x, against the same formulas in
    float64 on the same float32 inputs: A within three roundings, the sums within a few float32
    ulps of the sum of their terms' sizes."""
    g = torch.Generator().manual_seed(4)
    n, m, dim, r2 = 37, 53, 6, 2.25
    sh = torch.rand(n, m, generator=g) + 0.05
    d = torch.rand(n, m, generator=g) * 6.0
    x = torch.randn(n, dim, generator=g)
    x = x / x.norm(dim=1, keepdim=True) * torch.rand(n, 1, generator=g) * 1.5 * (1 - 1e-3)
    rx = (r2 - (x.double() ** 2).sum(1)).rsqrt()
    grad = {
        "dense": torch.randn(n, m, generator=g),
        "expanded": torch.full((), 0.7).expand(n, m),  # the upstream gradient of .sum()
        "rows": torch.randn(n, 1, generator=g).expand(n, m),
    }[upstream]
    flag_rows, flag_cols = torch.tensor([0, 4, 4, 36]), torch.tensor([52, 0, 9, 3])
    sh[flag_rows, flag_cols] = 0.0  # flagged entries may divide by 0: they are set to 0 anyway
    cols0 = torch.randn(m, generator=g, dtype=torch.float64)  # the sums are added to cols
    a, rows, cols, gx = torch.empty(n, m), torch.empty(n), cols0.clone(), torch.empty(n, dim)
    module.funk_grad(a, grad, sh, d, x, r2, rows, gx, cols, flag_rows, flag_cols, reverse, False)
    want_a = grad.double() / sh.double() * rx[:, None]
    want_a[flag_rows, flag_cols] = 0.0
    assert bool(((a.double() - want_a).abs() <= 3 * EPS * want_a.abs()).all())
    t = torch.exp(d.double() if reverse else -d.double())
    terms_r, terms_c = want_a * t, want_a / t
    assert bool(((rows.double() - terms_r.sum(1)).abs() <= 5 * EPS * terms_r.abs().sum(1)).all())
    assert bool(((cols - cols0 - terms_c.sum(0)).abs() <= 5 * EPS * terms_c.abs().sum(0)).all())
    assert torch.equal(gx, x * rows[:, None])
    # without the error model (`sanitize`): grad / 0 at an unflagged entry gives 0, not inf; an
    # empty gx is left alone
    sh[1, 1] = 0.0
    module.funk_grad(a, grad, sh, d, x, r2, rows, torch.empty(0), cols, flag_rows, flag_cols, reverse, True)
    assert a[1, 1] == 0.0 and bool(torch.isfinite(a).all() & torch.isfinite(rows).all())


def test_funk_grad_pass_with_several_threads_matches_one(module):
    """The float64 column sums are added per chunk of 64 rows in chunk order: one thread and two
    give the same bits (the chunks go to whichever thread is free)."""
    g = torch.Generator().manual_seed(5)
    n, m = 203, 67
    grad, d = torch.randn(n, m, generator=g), torch.rand(n, m, generator=g)
    sh = torch.rand(n, m, generator=g) + 0.1
    x = torch.rand(n, 3, generator=g) * 0.5
    none = torch.zeros(0, dtype=torch.long)
    out = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            a, rows, cols = torch.empty(n, m), torch.empty(n), torch.zeros(m, dtype=torch.float64)
            module.funk_grad(a, grad, sh, d, x, 1.0, rows, torch.empty(0), cols, none, none, False, False)
            out.append((a, rows, cols))
    finally:
        torch.set_num_threads(threads)
    (a1, r1, c1), (a2, r2, c2) = out
    assert torch.equal(a1, a2) and torch.equal(r1, r2)
    assert torch.equal(c1, c2)


def test_funk_grad_rejects_bad_flags(module):
    n, m = 4, 5
    ones = torch.ones(n, m)
    args = [torch.empty(n, m), ones, ones, ones, torch.zeros(n, 2), 1.0, torch.empty(n), torch.empty(0)]
    cols = torch.zeros(m, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="flags"):
        module.funk_grad(*args, cols, torch.tensor([2, 1]), torch.tensor([0, 0]), False, False)  # unsorted
    with pytest.raises(RuntimeError, match="flags"):
        module.funk_grad(*args, cols, torch.tensor([0]), torch.tensor([m]), False, False)  # out of range
