"""Tests of finslerlib.testing: check_manifold passes on correct manifolds and catches broken ones.

Each deliberately broken manifold below breaks one law family; the tests assert that
`check_manifold` reports that property as failed, and that the raised message names it, states
the tolerance and shows a counterexample.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from finslerlib import FinslerManifold, Randers
from finslerlib.math import randers as rmath
from finslerlib.math.pairwise import safe_div
from finslerlib.testing import (
    PROPERTIES,
    ManifoldConformance,
    PropertyViolation,
    check_manifold,
    parametrize_manifolds,
)
from finslerlib.testing import strategies as fst

F64 = torch.float64


def _randers(seed, dim=3, drift=0.6, cond=10.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=F64))
    eig = cond ** torch.rand(dim, generator=g, dtype=F64)
    factor = q * eig.sqrt()
    w = torch.randn(dim, generator=g, dtype=F64)
    w = w / w.norm() * drift
    return Randers((factor @ factor.T).to(dtype), (factor @ w).to(dtype))


# ---------------------------------------------------------------------------------- a curved manifold
class ToyFunkBall(FinslerManifold):
    """The Funk metric on the unit ball from its Randers data (a user-style curved manifold).

    Only `coefficients`, the geodesic maps and the point check are written; every pointwise
    quantity comes from the base class. `reverse()` is not implemented (skip path).
    """

    name = "ToyFunkBall"

    def __init__(self, dim, *, clamp=True, random_radius=0.9):
        super().__init__(dim)
        self.clamp = clamp
        self.random_radius = random_radius

    def coefficients(self, x):
        s = (1 - (x * x).sum(-1, keepdim=True)).unsqueeze(-1)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        a = (s * eye + x.unsqueeze(-1) * x.unsqueeze(-2)) / (s * s)
        return a, x / s.squeeze(-1)

    def _check_point_on_manifold(self, x, *, atol=1e-5, rtol=1e-5):
        if not torch.isfinite(x).all():
            return False, "non-finite point"
        r = x.norm(dim=-1).max().item()
        if not r < 1:
            return False, f"point outside the unit ball: |x| = {r:.17g} >= 1"
        return True, None

    def projx(self, x):
        r = x.norm(dim=-1, keepdim=True)
        return torch.where(r < 1, x, x / r * (1 - 1e-6))

    def _inside(self, y):
        if not self.clamp:
            return y
        r = y.norm(dim=-1, keepdim=True)
        cap = 1 - 8 * torch.finfo(y.dtype).eps
        return torch.where(r < cap, y, y / r * cap)

    def expmap(self, x, u):
        f = self.norm(x, u, keepdim=True)
        factor = torch.where(f > 0, -torch.expm1(-f) / torch.where(f > 0, f, torch.ones_like(f)),
                             torch.ones_like(f))
        return self._inside(x + factor * u)

    def retr(self, x, u):
        # x + v / (1 + F): first-order exp, a convex combination of x and x + v / F (on the sphere)
        return self._inside(x + u / (1 + self.norm(x, u, keepdim=True)))

    def logmap(self, x, y):
        f = self.norm(x, y - x, keepdim=True)
        return safe_div(-torch.log1p(-f), f) * (y - x)

    def dist(self, x, y, *, keepdim=False):
        return -torch.log1p(-self.norm(x, y - x, keepdim=keepdim))

    def random(self, *size, dtype=None, device=None):
        size = size[0] if len(size) == 1 and isinstance(size[0], tuple) else size
        u = torch.randn(*size, dtype=dtype, device=device)
        r = torch.rand(*size[:-1], 1, dtype=dtype, device=device) ** (1 / self.dim)
        return u / u.norm(dim=-1, keepdim=True) * r * self.random_radius


# ---------------------------------------------------------------------------------- passing cases
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["float32", "float64"])
def test_passes_on_random_randers(seed, dtype):
    m = _randers(seed, dim=2 + seed, drift=[0.0, 0.6, 0.95][seed], cond=[1.0, 10.0, 100.0][seed], dtype=dtype)
    report = check_manifold(m, seed=seed)
    assert report.ok
    assert report.passed == list(PROPERTIES) and not report.skipped


def test_passes_on_reverse_and_learnable():
    m = _randers(7, dim=4, drift=0.8)
    check_manifold(m.reverse())
    for rank in (None, 2):
        learn = Randers.learnable(4, rank=rank, max_drift=0.9, dtype=F64)
        with torch.no_grad():  # move away from the Euclidean start
            for p in learn.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=F64))
        assert learn.drift_norm() > 0.1
        report = check_manifold(learn, n=8)
        assert report.ok and "reverse" in report.passed


def test_passes_on_curved_bounded_manifold_with_skip_reason():
    report = check_manifold(ToyFunkBall(3, random_radius=0.95), dtype=F64)
    assert report.ok
    assert set(report.skipped) == {"reverse"}
    assert "reverse" in report.skipped["reverse"]
    assert "passed" in str(report) and "skipped reverse" in str(report)


def test_fallback_sampling_shrinks_into_the_domain():
    class NoRandom(ToyFunkBall):
        def random(self, *size, dtype=None, device=None):
            raise NotImplementedError

    # Gaussian points of std 3 mostly lie outside the ball: they must be pulled in, not rejected
    report = check_manifold(NoRandom(2), dtype=F64, scale=3.0, properties=["sampling", "dist_metric"])
    assert report.passed == ["sampling", "dist_metric"]
    assert "manifold.random unavailable" in report.results["sampling"].detail


# ---------------------------------------------------------------------------------- broken manifolds
class NonHomogeneous(Randers):
    def norm(self, x, u, *, keepdim=False):
        return super().norm(x, u, keepdim=keepdim) + 0.01 * (u * u).sum(-1, keepdim=keepdim)


class NotPositive(Randers):
    """Drift beyond the unit dual ball: F < 0 in a cone of directions near -a^{-1} b."""

    def _coefficients(self):
        a, b = super()._coefficients()
        return a, b * (1.3 / rmath.drift_norm(a, b))


class NotConvex(Randers):
    """Homogeneous and positive but not convex: (sum_i sqrt|v_i|)^2."""

    def norm(self, x, u, *, keepdim=False):
        return (u.abs().clamp_min(1e-30).sqrt().sum(-1, keepdim=keepdim)) ** 2


class WrongFundamentalTensor(Randers):
    def fundamental_tensor(self, x, u):
        a, _ = self.coefficients(x)
        return a.expand(*u.shape, u.shape[-1])


class DualTooLarge(Randers):
    def dual_norm(self, x, xi, *, keepdim=False):
        return 1.01 * super().dual_norm(x, xi, keepdim=keepdim)


class DualIgnoresDrift(Randers):
    """A consistent-looking but wrong dual: the Riemannian co-norm of a."""

    def dual_norm(self, x, xi, *, keepdim=False):
        a, _ = self.coefficients(x)
        return rmath.quadratic_form(torch.linalg.inv(a), xi, keepdim=keepdim).sqrt()


class LegendreInverseOff(Randers):
    def inverse_legendre(self, x, xi):
        return 1.001 * super().inverse_legendre(x, xi)

    def finsler_gradient(self, x, df):
        return Randers.inverse_legendre(self, x, df)  # keep the gradient right: isolate the Legendre bug


class EuclideanGradient(Randers):
    def egrad2rgrad(self, x, u):
        return u


class ExpLogNotInverse(Randers):
    def expmap(self, x, u):
        return x + u + 0.01 * u * u.norm(dim=-1, keepdim=True)  # first-order right, not the inverse of log

    def retr(self, x, u):
        return x + u


class DistNotNormOfLog(Randers):
    def dist(self, x, y, *, keepdim=False):
        return 1.01 * super().dist(x, y, keepdim=keepdim)


class DistPowered(Randers):
    """d = F(y - x)^1.5: zero on the diagonal, positive, but no triangle inequality."""

    def dist(self, x, y, *, keepdim=False):
        return super().dist(x, y, keepdim=keepdim) ** 1.5


class CdistTransposed(Randers):
    def cdist(self, x, y):
        return super().cdist(y, x).mT


class CdistWrongShape(Randers):
    def cdist(self, x, y):
        return super().cdist(x, x)


class RetrNotFirstOrder(Randers):
    def retr(self, x, u):
        return x + 1.001 * u


class ReverseIsSelf(Randers):
    def reverse(self):
        return self


class NanGradientAtZeroDistance(Randers):
    def dist(self, x, y, *, keepdim=False):
        a, b = self.coefficients(x)
        v = y - x
        return rmath.quadratic_form(a, v, keepdim=keepdim).sqrt() + (b * v).sum(-1, keepdim=keepdim)


class NormReturnsFloat64(Randers):
    def norm(self, x, u, *, keepdim=False):
        return super().norm(x.double(), u.double(), keepdim=keepdim)


class RandomOutsideBall(ToyFunkBall):
    def __init__(self, dim):
        super().__init__(dim, random_radius=1.5)


BROKEN = [
    (NonHomogeneous, "norm_homogeneous"),
    (NotPositive, "norm_positive"),
    (NotConvex, "norm_triangle"),
    (WrongFundamentalTensor, "strong_convexity"),
    (DualTooLarge, "dual_norm"),
    (DualIgnoresDrift, "dual_norm"),
    (LegendreInverseOff, "legendre"),
    (EuclideanGradient, "finsler_gradient"),
    (ExpLogNotInverse, "exp_log_inverse"),
    (DistNotNormOfLog, "dist_is_norm_of_log"),
    (DistPowered, "dist_metric"),
    (CdistTransposed, "cdist"),
    (CdistWrongShape, "cdist"),
    (RetrNotFirstOrder, "retr_first_order"),
    (ReverseIsSelf, "reverse"),
    (NanGradientAtZeroDistance, "dist_gradient"),
]


def _broken(cls, dtype=F64):
    base = _randers(11, dim=3, drift=0.7, cond=5.0, dtype=dtype)
    return cls(base.a, base.b)


@pytest.mark.parametrize(("cls", "prop"), BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_catches_broken_manifold(cls, prop):
    m = _broken(cls)
    report = check_manifold(m, n=8, raise_on_failure=False)
    assert prop in report.failed, str(report)
    # the targeted property alone raises, naming itself, the tolerance and a counterexample
    with pytest.raises(AssertionError) as info:
        check_manifold(m, properties=[prop])
    message = str(info.value)
    assert isinstance(info.value, PropertyViolation) and info.value.property == prop
    assert f"property '{prop}' violated" in message
    assert "tolerance" in message and "counterexample" in message
    assert re.search(r"counterexample:\n    \S", message)


def test_catches_exp_leaving_the_ball():
    report = check_manifold(ToyFunkBall(3, clamp=False), dtype=F64, raise_on_failure=False)
    assert set(report.failed) == {"large_steps"}, str(report)
    assert "outside the unit ball" in report.failed["large_steps"]


def test_catches_random_points_off_the_manifold():
    report = check_manifold(RandomOutsideBall(2), dtype=F64, properties=["sampling"], raise_on_failure=False)
    assert "sampling" in report.failed
    assert "its own check rejects" in report.failed["sampling"]


def test_catches_dtype_change():
    m = _broken(NormReturnsFloat64, dtype=torch.float32)
    with pytest.raises(AssertionError, match="dtype_device"):
        check_manifold(m, properties=["dtype_device"])


def test_error_on_valid_input_is_a_failure():
    class Raises(Randers):
        def logmap(self, x, y):
            raise RuntimeError("solver diverged")

    report = check_manifold(_broken(Raises), properties=["exp_log_inverse"], raise_on_failure=False)
    assert "solver diverged" in report.failed["exp_log_inverse"]


def test_message_lists_every_violated_property():
    with pytest.raises(AssertionError) as info:
        check_manifold(_broken(DistNotNormOfLog))
    text = str(info.value)
    assert "properties violated" in text and "dist_is_norm_of_log" in text and "cdist" in text


# ---------------------------------------------------------------------------------- options
def test_options_and_validation():
    m = _randers(0)
    report = check_manifold(m, properties=["cdist", "norm_triangle"], skip=["cdist"])
    assert report.passed == ["norm_triangle"] and report.skipped == {"cdist": "skipped by the caller"}
    with pytest.raises(ValueError, match="unknown properties"):
        check_manifold(m, properties=["not_a_property"])
    with pytest.raises(ValueError, match="n must be"):
        check_manifold(m, n=1)
    # tolerances default to 2**8 eps times the measured condition (at least 1), and can be overridden
    settings = check_manifold(m, properties=["cdist"]).settings
    assert settings["condition"] >= 1
    assert settings["rtol"] == 2.0**8 * torch.finfo(F64).eps * settings["condition"]
    assert settings["atol"] == settings["rtol"] * settings["scale"]
    assert check_manifold(m, properties=["cdist"], rtol=1e-3).settings["rtol"] == 1e-3
    # a pool of user points replaces manifold.random
    pool = torch.randn(5, 3, dtype=F64)
    assert check_manifold(m, points=pool, properties=["dist_metric"]).ok


def test_tolerance_is_what_decides():
    # a 1e-4 relative error passes a loose check and fails the default one
    m = _broken(DistNotNormOfLog)
    m_small = type("SlightlyOff", (Randers,), {
        "dist": lambda self, x, y, *, keepdim=False: (1 + 1e-4) * Randers.dist(self, x, y, keepdim=keepdim)
    })(m.a, m.b)
    assert check_manifold(m_small, properties=["dist_is_norm_of_log"], rtol=1e-3).ok
    with pytest.raises(AssertionError, match=r"rtol=\d\.\d+e-1[1-4]"):
        check_manifold(m_small, properties=["dist_is_norm_of_log"])


def test_same_seed_same_samples():
    m = _broken(DistNotNormOfLog)
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            check_manifold(m, properties=["dist_is_norm_of_log"], seed=5)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_thorough_is_accepted():
    report = check_manifold(_randers(4), thorough=True, properties=["dual_norm", "norm_positive"])
    assert report.settings["n"] == 64 and report.ok


# ---------------------------------------------------------------------------------- pytest helpers
class TestConformanceOfRanders(ManifoldConformance):
    check_options = {"n": 8}

    @pytest.fixture(params=[0, 1], ids=["riemannian", "drifting"])
    def manifold(self, request):
        return _randers(request.param, drift=[0.0, 0.8][request.param])


class TestConformanceSkips(ManifoldConformance):
    check_options = {"n": 8, "skip": ["large_steps"]}

    @pytest.fixture
    def manifold(self):
        return ToyFunkBall(2)


def test_conformance_class_reports_failures():
    case = TestConformanceOfRanders()
    with pytest.raises(AssertionError, match="cdist"):
        case.test_cdist(_broken(CdistTransposed))


@parametrize_manifolds({"euclidean": lambda: Randers(torch.eye(2, dtype=F64)), "drift": _randers(3, dim=2)})
def test_parametrize_manifolds(manifold):
    assert check_manifold(manifold, n=8, properties=["norm_triangle", "cdist"]).ok


# ---------------------------------------------------------------------------------- strategies
@given(data=st.data(), dim=st.integers(1, 4))
def test_strategies_give_valid_data(data, dim):
    a, b = data.draw(fst.randers_params(dim, max_drift=0.8, min_eig=0.5, max_eig=2.0))
    assert a.dtype == F64 and a.shape == (dim, dim)
    eig = torch.linalg.eigvalsh(a)
    assert eig.min() >= 0.5 * (1 - 1e-9) and eig.max() <= 2.0 * (1 + 1e-9)
    assert rmath.drift_norm(a, b) <= 0.8 + 1e-9
    m = Randers(a, b)
    x = data.draw(fst.points(m, batch=3))
    v = data.draw(fst.tangent_vectors(m, x, min_norm=0.1, max_norm=2.0))
    f = m.norm(x, v)
    assert ((f >= 0.1 * (1 - 1e-9)) & (f <= 2.0 * (1 + 1e-9))).all()
    xi = data.draw(fst.covectors(m, x, min_norm=0.5, max_norm=0.5))
    torch.testing.assert_close(m.dual_norm(x, xi), torch.full((3,), 0.5, dtype=F64))


@given(data=st.data())
def test_points_strategy_respects_bounded_domain(data):
    ball = ToyFunkBall(3)
    x = data.draw(fst.points(ball, batch=4, scale=5.0, dtype=torch.float32))
    assert x.dtype == torch.float32 and ball.check_point_on_manifold(x)
    v = data.draw(fst.tangent_vectors(ball, x, max_norm=0.1))
    assert (ball.norm(x, v) <= 0.1 * (1 + 1e-5)).all()


@settings(max_examples=10)
@given(fst.randers_manifolds(st.integers(1, 3), max_drift=0.95, min_eig=0.01, max_eig=100.0))
def test_strategy_manifolds_pass_the_pointwise_laws(m):
    check_manifold(m, n=6, properties=["legendre", "norm_triangle", "strong_convexity"])


def test_device_and_dtype_follow_the_manifold(device, dtype):
    m = _randers(5, dtype=dtype).to(device)
    report = check_manifold(m, n=8)
    assert report.ok and report.settings["dtype"] == dtype and report.settings["device"].type == device.type


def test_strategy_argument_validation():
    with pytest.raises(ValueError, match="max_drift"):
        find(fst.randers_params(2, max_drift=1.0), lambda ab: True)
    with pytest.raises(ValueError, match="min_norm"):
        find(fst.tangent_vectors(Randers(torch.eye(2)), torch.zeros(2), min_norm=0.0), lambda v: True)


def test_check_needs_no_hypothesis_nor_pytest():
    code = (
        "import sys; sys.modules['hypothesis'] = None; sys.modules['pytest'] = None\n"
        "import torch\n"
        "from finslerlib import Randers\n"
        "from finslerlib.testing import check_manifold\n"
        "m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.3, 0.1], dtype=torch.float64))\n"
        "assert check_manifold(m, n=4, properties=['cdist', 'legendre']).ok\n"
        "print('ok')\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
