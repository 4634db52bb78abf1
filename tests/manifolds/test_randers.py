"""`finslerlib.Randers`: closed-form geometry, validation, learnable parametrization, dtype/device."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from finslerlib import Randers
from tests.support import close, tol
from tests.support.randers_cases import Case, cases, make_case, np_norm

DTYPES = pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])


def manifold(case: Case, dtype=torch.float64) -> Randers:
    return Randers(case.t(case.a, dtype), case.t(case.b, dtype))


def brute_cdist(x: np.ndarray, y: np.ndarray, case: Case) -> np.ndarray:
    """d(x_i -> y_j) = F(y_j - x_i) by an explicit double loop (float64)."""
    out = np.empty((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            out[i, j] = np_norm(y[j] - x[i], case.a, case.b)[0]
    return out


# ---------------------------------------------------------------------------- distances
@DTYPES
@given(case=cases())
def test_dist_is_norm_of_difference_and_asymmetry_law(case, dtype):
    m = manifold(case, dtype)
    p, q = case.vectors(8, scale=3), case.vectors(8, scale=3)
    pt, qt = case.t(p, dtype), case.t(q, dtype)
    d_pq = m.dist(pt, qt)
    close(d_pq, np_norm(q - p, case.a, case.b), dtype, scale=30)
    # d(p -> q) - d(q -> p) = 2 b^T (q - p)
    close(d_pq - m.dist(qt, pt), 2 * (q - p) @ case.b, dtype, scale=30)
    assert m.dist(pt, qt, keepdim=True).shape == (8, 1)
    # reverse metric swaps the arguments
    close(m.reverse().dist(pt, qt), m.dist(qt, pt).double().numpy(), dtype, scale=30)


@DTYPES
@given(case=cases())
def test_dist_triangle_inequality(case, dtype):
    m = manifold(case, dtype)
    x, y, z = (case.t(case.vectors(32, scale=3), dtype) for _ in range(3))
    slack = 1e-4 if dtype == torch.float32 else 1e-10
    assert (m.dist(x, z) <= m.dist(x, y) + m.dist(y, z) + slack).all()
    assert (m.dist(x, y) >= 0).all()


@DTYPES
@given(case=cases(), n=st.integers(1, 6), k=st.integers(1, 6))
def test_cdist_matches_brute_force(case, n, k, dtype):
    m = manifold(case, dtype)
    x, y = case.vectors(n, scale=3), case.vectors(k, scale=3)
    out = m.cdist(case.t(x, dtype), case.t(y, dtype))
    assert out.shape == (n, k) and out.dtype == dtype
    close(out, brute_cdist(x, y, case), dtype, scale=100)
    # gradient path (safe sqrt) agrees with the in-place inference path
    xg = case.t(x, dtype).requires_grad_()
    close(m.cdist(xg, case.t(y, dtype)), out.double().numpy(), dtype, scale=100)


def test_cdist_batched_and_broadcast():
    case = make_case(1, 4, 0.7)
    m = manifold(case)
    x, y = case.vectors(3, 5), case.vectors(7)
    out = m.cdist(torch.as_tensor(x), torch.as_tensor(y))
    assert out.shape == (3, 5, 7)
    for i in range(3):
        np.testing.assert_allclose(out[i].numpy(), brute_cdist(x[i], y, case), rtol=1e-9, atol=1e-9)


@DTYPES
def test_cdist_large_offset_is_centred(dtype):
    """Points far from the origin: the Gram trick without centring would lose all digits."""
    case = make_case(2, 16, 0.8)
    m = manifold(case, dtype)
    offset = 1e4 * case.rng.normal(size=16)
    x, y = case.vectors(40) + offset, case.vectors(30) + offset
    expected = brute_cdist(x, y, case)
    out = m.cdist(case.t(x, dtype), case.t(y, dtype))
    # float32 cannot even represent the points better than ~1e-3 at |x| ~ 1e4
    tol = 2e-2 if dtype == torch.float32 else 1e-7
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=tol, atol=tol)


@DTYPES
def test_cdist_self_diagonal_near_zero_and_finite_gradients(dtype):
    case = make_case(3, 8, 0.6)
    m = manifold(case, dtype)
    x = case.t(case.vectors(50, scale=2) + 5.0, dtype).requires_grad_()
    out = m.cdist(x, x)
    diag_tol = 1e-2 if dtype == torch.float32 else 1e-6
    assert out.diagonal().abs().max() < diag_tol
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # dist(x, x) is exactly 0 with finite gradients
    p = case.t(case.vectors(4), dtype).requires_grad_()
    q = p.detach().clone().requires_grad_()
    d = m.dist(p, q)
    assert (d == 0).all()
    d.sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(q.grad).all()


def test_cdist_no_n_m_d_intermediate(monkeypatch):
    """Every tensor cdist allocates has at most max(N, M) * max(N, M, D) elements."""
    case = make_case(4, 32, 0.5)
    m = manifold(case)
    x, y = torch.as_tensor(case.vectors(64)), torch.as_tensor(case.vectors(48))
    biggest = []

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                biggest.append(out.numel())
            return out

    with Watch():
        m.cdist(x, y)
        m.cdist(x.requires_grad_(), y)
    assert max(biggest) <= 64 * 48 + 64  # never 64 * 48 * 32


@DTYPES
@given(case=cases())
def test_expmap_logmap_and_norm_of_log(case, dtype):
    m = manifold(case, dtype)
    x, y = case.t(case.vectors(8, scale=3), dtype), case.t(case.vectors(8, scale=3), dtype)
    u = m.logmap(x, y)
    torch.testing.assert_close(m.expmap(x, u), y)
    close(m.norm(x, u), m.dist(x, y).double().numpy(), dtype, scale=10)
    assert (m.logmap(x, x) == 0).all()
    torch.testing.assert_close(m.retr(x, u), y)
    assert m.transp(x, y, u) is u


# ---------------------------------------------------------------------------- Finsler gradient
@DTYPES
@given(case=cases())
def test_finsler_gradient_laws(case, dtype):
    m = manifold(case, dtype)
    x, df = case.t(case.vectors(16), dtype), case.t(case.vectors(16), dtype)
    grad = m.finsler_gradient(x, df)
    dual = m.dual_norm(x, df).double().numpy()
    close(m.norm(x, grad), dual, dtype, scale=10)
    close((df * grad).sum(-1), dual**2, dtype, scale=100)


def test_finsler_gradient_is_steepest_ascent_egrad2rgrad_steepest_descent_2d():
    """max over F-unit vectors of df(v), by dense angle sampling, is attained at grad / F(grad)."""
    case = make_case(5, 2, 0.85)
    m = manifold(case)
    theta = np.linspace(0, 2 * np.pi, 400001)
    dirs = np.stack([np.cos(theta), np.sin(theta)], -1)
    unit = dirs / np_norm(dirs, case.a, case.b)[:, None]
    x = torch.zeros(2, dtype=torch.float64)
    for df in case.vectors(6):
        grad = m.finsler_gradient(x, torch.as_tensor(df)).numpy()
        best = unit[np.argmax(unit @ df)]
        g_unit = grad / np_norm(grad, case.a, case.b)[0]
        np.testing.assert_allclose(g_unit, best, atol=1e-4)
        np.testing.assert_allclose(g_unit @ df, (unit @ df).max(), rtol=1e-9)
        # geoopt steps along -egrad2rgrad: the steepest descent of F, min over F-unit v of df(v)
        step = -m.egrad2rgrad(x, torch.as_tensor(df)).numpy()
        s_unit = step / np_norm(step, case.a, case.b)[0]
        np.testing.assert_allclose(s_unit, unit[np.argmin(unit @ df)], atol=1e-4)
        np.testing.assert_allclose(s_unit @ df, (unit @ df).min(), rtol=1e-9)


# ---------------------------------------------------------------------------- validation
def test_constructor_validation_messages():
    with pytest.raises(ValueError, match=r"symmetric: max \|a - a\^T\| = 0\.5"):
        Randers(torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"positive definite: smallest eigenvalue -1 <= 0"):
        Randers(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    with pytest.raises(ValueError, match=r"\|\|b\|\|_\{a\^-1\} = 1\.5 >= 1"):
        Randers(4 * torch.eye(2), torch.tensor([3.0, 0.0]))
    with pytest.raises(ValueError, match=r"\|\|b\|\|_\{a\^-1\} = 1 >= 1"):
        Randers(torch.eye(2), torch.tensor([0.6, 0.8]))
    with pytest.raises(ValueError, match=r"a must have shape \[D, D\], got \(2,\)"):
        Randers(torch.ones(2))
    with pytest.raises(ValueError, match=r"a must have shape \[\.\.\., D, D\], got \(2, 3\)"):
        Randers(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"D = 2 matching a, got \(3,\)"):
        Randers(torch.eye(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"share a floating dtype, got torch.float64 and torch.float32"):
        Randers(torch.eye(2, dtype=torch.float64), torch.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        Randers(torch.tensor([[1.0, 0.0], [0.0, float("nan")]]))


def test_from_navigation_validation():
    with pytest.raises(ValueError, match=r"wind too strong: \|W\|_h = 2 >= 1"):
        Randers.from_navigation(4 * torch.eye(2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"h must be \[D, D\] and wind \[D\], got \(2, 2\) and \(3,\)"):
        Randers.from_navigation(torch.eye(2), torch.zeros(3))
    with pytest.raises(ValueError, match="smallest eigenvalue -2"):
        Randers.from_navigation(torch.diag(torch.tensor([1.0, -2.0])), torch.zeros(2))


def test_learnable_validation():
    with pytest.raises(ValueError, match=r"max_drift must be in \[0, 1\), got 1.0"):
        Randers.learnable(3, max_drift=1.0)
    with pytest.raises(ValueError, match=r"rank must be in \[1, dim=3\] or None, got 4"):
        Randers.learnable(3, rank=4)
    with pytest.raises(ValueError, match=r"rank must be in \[1, dim=3\] or None, got 0"):
        Randers.learnable(3, rank=0)
    with pytest.raises(ValueError, match="max_condition must be > 1, got 1"):
        Randers.learnable(3, max_condition=1.0)


def test_method_input_validation():
    m = Randers(torch.eye(3), torch.tensor([0.5, 0.0, 0.0]))
    x32, x64 = torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"dtype mismatch: x is torch.float32 but y is torch.float64"):
        m.dist(x32, x64)
    with pytest.raises(ValueError, match=r"dtype mismatch: x is torch.float32 but y is torch.float64"):
        m.cdist(x32, x64)
    with pytest.raises(ValueError, match=r"dtype mismatch: x is torch.float64 but u is torch.float32"):
        m.norm(x64, x32)
    with pytest.raises(ValueError, match=r"u must have shape \[\.\.\., 3\] on Randers, got \(4, 2\)"):
        m.norm(x32, torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"must be a floating tensor, got torch.int64"):
        m.dist(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"batch shapes do not broadcast: x \(4, 3\), y \(5, 3\)"):
        m.dist(x32, torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"batch shapes do not broadcast: x \(2, 4, 3\), y \(3, 5, 3\)"):
        m.cdist(torch.zeros(2, 4, 3), torch.zeros(3, 5, 3))
    with pytest.raises(ValueError, match=r"cdist needs x \[\.\.\., N, D\]"):
        m.cdist(torch.zeros(3), torch.zeros(4, 3))
    ok, reason = m.check_point_on_manifold(torch.tensor([0.0, float("inf"), 0.0]), explain=True)
    assert not ok and "non-finite entries (1 of them)" in reason


# ---------------------------------------------------------------------------- navigation constructor
@DTYPES
@given(case=cases())
def test_from_navigation_unit_ball_and_round_trip(case, dtype):
    m0 = manifold(case, torch.float64)
    h, wind = m0.navigation()
    m = Randers.from_navigation(h.to(dtype), wind.to(dtype))
    torch.testing.assert_close(m.a.double(), m0.a, rtol=tol(dtype)[0] * 10, atol=tol(dtype)[1] * 100)
    z = case.vectors(32)
    z /= np.sqrt(np.einsum("ni,ij,nj->n", z, h.numpy(), z))[:, None]
    f = m.norm(torch.zeros(case.dim, dtype=dtype), case.t(z + wind.numpy(), dtype))
    close(f, np.ones(32), dtype, scale=10)
    np.testing.assert_allclose(m.drift_norm().item(), case.drift, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        m0.max_asymmetry().item(), (1 + case.drift) / (1 - case.drift), rtol=1e-8
    )


# ---------------------------------------------------------------------------- learnable metric
def _measured(m, dtype=torch.float64):
    """(min eigenvalue, condition number, ||b||_{a^-1}) of a learnable metric, measured in float64."""
    a, b = m.a.detach().to(dtype), m.b.detach().to(dtype)
    eig = torch.linalg.eigvalsh(a)
    drift = torch.sqrt(b @ torch.linalg.solve(a, b))
    return eig.min().item(), (eig.max() / eig.min()).item(), drift.item()


def _assert_valid(m, dtype, max_drift, *, downstream=True):
    """The metric as the code evaluates it is a Randers norm: checks that cannot pass on an invalid one.

    `downstream=False` skips the dual quantities: a full-rank factor with entries ~1e3 next to a
    diagonal at its floor is a legitimately near-degenerate metric (cond(a) = cond(L)^2 ~ 1e40)
    whose dual norm overflows float32; the metric itself is still valid and evaluated exactly."""
    slack = 1 + (1e-4 if dtype == torch.float32 else 1e-10)
    if m.rank is not None:
        # diag + low rank: the ridge keeps a well conditioned, so it is numerically SPD itself
        min_eig, cond, drift = _measured(m)
        assert min_eig > 0 and cond <= m.max_condition * 1.01, (min_eig, cond)
        assert drift <= max_drift * slack, drift
    # full rank is evaluated in factor coordinates y = L^T v (F = |y| + w.y); check that form,
    # independently rebuilt in float64 from the raw parameters
    chol, w = (t.detach().double() for t in m.factor())
    assert torch.equal(chol, torch.tril(chol)) and (chol.diagonal() > 0).all()
    assert w.norm() <= max_drift * slack
    v = torch.randn(64, m.dim, dtype=torch.float64)
    y = v @ chol
    assert (y.norm(dim=-1) + y @ w > 0).all()
    # the library's own evaluation is positive (F >= (1 - |w|) |y| holds in floating point)
    x = torch.randn(5, m.dim, dtype=dtype)
    f = m.norm(x[:1], v[:5].to(dtype))
    assert torch.isfinite(f).all() and (f > 0).all()
    if not downstream:
        return
    assert torch.isfinite(m.dual_norm(x, x)).all() and torch.isfinite(m.cdist(x, x)).all()
    assert torch.isfinite(m.egrad2rgrad(x, x)).all()


@pytest.mark.parametrize("rank", [None, 2])
@DTYPES
def test_learnable_stays_valid_after_any_step(rank, dtype):
    torch.manual_seed(0)
    m = Randers.learnable(6, rank=rank, max_drift=0.95, dtype=dtype)
    # 1) huge random parameter perturbations
    for scale in (1e-3, 1.0, 1e2, 1e3):
        for _ in range(4):
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(torch.randn_like(p) * scale)
            ill_conditioned = rank is None and dtype == torch.float32 and scale > 10
            _assert_valid(m, dtype, 0.95, downstream=not ill_conditioned)
    # 2) lr = 1e3 SGD steps on a loss pushing the drift and the metric around
    opt = torch.optim.SGD(m.parameters(), lr=1e3)
    for _ in range(10):
        x, y = torch.randn(16, 6, dtype=dtype), torch.randn(16, 6, dtype=dtype)
        opt.zero_grad()
        (m.dist(x, y).sum() - 3 * m.dist(y, x).sum()).backward()
        opt.step()
        _assert_valid(m, dtype, 0.95, downstream=rank is not None or dtype == torch.float64)


@pytest.mark.parametrize("rank", [None, 3])
def test_learnable_starts_euclidean_and_trains(rank):
    torch.manual_seed(1)
    m = Randers.learnable(5, rank=rank, dtype=torch.float64)
    x, y = torch.randn(10, 5, dtype=torch.float64), torch.randn(10, 5, dtype=torch.float64)
    tol = 1e-12 if rank is None else 0.05
    torch.testing.assert_close(m.dist(x, y), (y - x).norm(dim=-1), rtol=tol, atol=tol)
    # gradients reach every parameter through dist and through cdist (both cdist paths)
    for loss in (m.dist(x, y).sum(), m.cdist(x, y).sum()):
        m.zero_grad()
        loss.backward()
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # the cdist gradient equals the gradient of the broadcast dist
    m.zero_grad()
    m.cdist(x, y).sum().backward()
    g_cdist = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    m.dist(x.unsqueeze(-2), y.unsqueeze(-3)).sum().backward()
    for g, p in zip(g_cdist, m.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


@pytest.mark.parametrize("rank", [None, 2])
def test_learnable_state_dict_round_trip_and_to(rank):
    torch.manual_seed(2)
    m = Randers.learnable(4, rank=rank)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = Randers.learnable(4, rank=rank)
    fresh.load_state_dict(torch.load(buf))
    x, y = torch.randn(3, 4), torch.randn(5, 4)
    torch.testing.assert_close(fresh.cdist(x, y), m.cdist(x, y))
    torch.testing.assert_close(fresh.dist(x[:1], y), m.dist(x[:1], y))
    m64 = fresh.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    assert m64.a.dtype == torch.float64
    torch.testing.assert_close(m64.dist(x.double(), y[:3].double()).float(), m.dist(x, y[:3]))


def test_plain_randers_state_dict_round_trip():
    """Regression: a cached Cholesky factor went stale after load_state_dict (cdist != dist)."""
    case = make_case(6, 3, 0.7)
    src = manifold(case)
    fresh = Randers(torch.eye(3, dtype=torch.float64))
    fresh.load_state_dict(src.state_dict())
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    np.testing.assert_allclose(fresh.cdist(x, y).numpy(), brute_cdist(x.numpy(), y.numpy(), case), rtol=1e-9)


def test_reverse_shares_parameters():
    m = Randers.learnable(3)
    r = m.reverse()
    assert r.reverse() is m
    with torch.no_grad():
        m.drift_raw.copy_(torch.tensor([1.0, -2.0, 0.5]))
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(r.dist(x, y), m.dist(y, x))
    torch.testing.assert_close(r.cdist(x, y), m.cdist(y, x).mT)
    r.dist(x, y).sum().backward()
    assert m.drift_raw.grad is not None and m.drift_raw.grad.abs().sum() > 0
    assert {id(p) for p in r.parameters()} == {id(p) for p in m.parameters()}


# ---------------------------------------------------------------------------- dtype / device
@pytest.mark.parametrize(
    "m_dtype,x_dtype", [(torch.float64, torch.float32), (torch.float32, torch.float64)]
)
def test_results_follow_input_dtype(m_dtype, x_dtype):
    case = make_case(7, 3, 0.5)
    m = manifold(case, m_dtype)
    x, y = case.t(case.vectors(4), x_dtype), case.t(case.vectors(5), x_dtype)
    for out in (
        m.dist(x, y[:4]),
        m.cdist(x, y),
        m.norm(x, y[:4]),
        m.dual_norm(x, y[:4]),
        m.egrad2rgrad(x, y[:4]),
        m.legendre(x, y[:4]),
        m.fundamental_tensor(x, y[:4]),
        m.inner(x, y[:4], x),
    ):
        assert out.dtype == x_dtype
    # accuracy is that of the coarser of the two dtypes
    close(m.cdist(x, y), brute_cdist(x.double().numpy(), y.double().numpy(), case), torch.float32, scale=10)


def test_results_follow_input_device(device):
    case = make_case(8, 3, 0.5)
    m = manifold(case, torch.float32)
    x = torch.randn(4, 3, device=device)
    assert m.dist(x, x.flip(0)).device == device
    assert m.cdist(x, x).device == device
    assert m.egrad2rgrad(x, x).device == device
    m = m.to(device)
    assert m.random(2, 3).device == device and m.origin(2, 3).device == device
