"""The manifold layer: one Reversed wrapper, domains, validation, geoopt keywords, float32 accuracy.

Regression tests for reported defects (each failed before the fix): reversal under geoopt.Scaled,
validation on load_state_dict, float32 cancellation in Randers norms, non-finite input, shape
checks of the Randers maps, the Funk ball check under torch.compile, geoopt's dim=/project=.
"""

from __future__ import annotations

import math

import geoopt
import pytest
import torch

from finslerlib import FunkBall, Randers, RandersField, Reversed
from finslerlib.math.validation import check_randers, randers_validity

F64 = torch.float64


def _randers(dtype=F64):
    a = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=dtype)
    return Randers(a, torch.tensor([0.5, -0.2], dtype=dtype))


# ---------------------------------------------------------------------------- one reversal wrapper
def test_every_reverse_is_the_reversed_wrapper():
    field = RandersField(b=lambda x: 0.2 * torch.sin(x), dim=2)
    for m in (_randers(), Randers.learnable(2), FunkBall(2), field):
        r = m.reverse()
        assert type(r) is Reversed and r.reverse() is m
    x = torch.tensor([0.1, 0.2], dtype=F64)
    y = torch.tensor([-0.3, 0.4], dtype=F64)
    # the reverse of navigation data (h, W) is (h, -W); b flips, a does not
    m = Randers.from_navigation(torch.eye(2, dtype=F64), torch.tensor([0.5, 0.0], dtype=F64))
    h, wind = m.reverse().navigation()
    torch.testing.assert_close(wind, torch.tensor([-0.5, 0.0], dtype=F64))
    torch.testing.assert_close(Randers.from_navigation(h, wind).b, m.reverse().b)
    torch.testing.assert_close(m.reverse().a, m.a)
    # closed-form reverse geodesics: exp of the reverse metric lands where its log says
    for m in (_randers(), FunkBall(2)):
        r = m.reverse()
        torch.testing.assert_close(r.expmap(x, r.logmap(x, y)), y)
        torch.testing.assert_close(r.norm(x, r.logmap(x, y)), m.dist(y, x))


@pytest.mark.parametrize("make", [_randers, lambda: FunkBall(2, radius=2.0)], ids=["randers", "funk"])
def test_reverse_commutes_with_geoopt_scaling(make):
    m = make()
    x = torch.tensor([0.1, 0.2], dtype=F64)
    y = torch.tensor([-0.3, 0.4], dtype=F64)
    scaled = geoopt.Scaled(m, 2.0)
    rev = scaled.reverse()
    assert isinstance(rev, geoopt.Scaled) and isinstance(rev.base, Reversed)
    # a reverse built before the scaling and one built after agree: 2 d(y -> x)
    torch.testing.assert_close(rev.dist(x, y), 2 * m.dist(y, x))
    torch.testing.assert_close(rev.dist(x, y), geoopt.Scaled(m.reverse(), 2.0).dist(x, y))


def test_reverse_of_a_learnable_scale_keeps_its_gradient():
    m = _randers()
    scaled = geoopt.Scaled(m, 2.0, learnable=True)
    x, y = torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)
    scaled.reverse().dist(x, y).to(torch.float32).backward()
    assert scaled.log_scale.grad is not None and scaled.log_scale.grad.abs() > 0


# ---------------------------------------------------------------------------- load_state_dict validates
def test_load_state_dict_revalidates_randers_data():
    m = Randers(torch.eye(2), torch.zeros(2))
    bad = m.state_dict()
    bad["_b"] = torch.tensor([2.0, 0.0])
    with pytest.raises(ValueError, match=r"= 2 >= 1"):
        m.load_state_dict(bad)
    assert torch.equal(m.b, torch.zeros(2))  # unchanged: d(0 -> (-1, 0)) stays 1, not -1
    assert m.dist(torch.zeros(2), torch.tensor([-1.0, 0.0])) == 1
    not_spd = m.state_dict()
    not_spd["_a"] = torch.diag(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"not positive definite: smallest eigenvalue -1"):
        m.load_state_dict(not_spd)
    # also when the metric is a submodule
    parent = torch.nn.Module()
    parent.metric = Randers(torch.eye(2), torch.zeros(2))
    state = parent.state_dict()
    state["metric._b"] = torch.tensor([0.0, 1.5])
    with pytest.raises(ValueError, match=r"1.5 >= 1"):
        parent.load_state_dict(state)


def test_load_state_dict_rejects_non_finite_learnable_parameters():
    m = Randers.learnable(2)
    state = m.state_dict()
    state["drift_raw"] = torch.tensor([float("nan"), 0.0])
    with pytest.raises(ValueError, match="drift_raw.*non-finite"):
        m.load_state_dict(state)


# ---------------------------------------------------------------------------- float32 accuracy
def _exact_norm(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """F(v) of the float32 data, evaluated in float64 as (alpha^2 - beta^2) / (alpha - beta)."""
    v, a, b = v.double(), a.double(), b.double()
    alpha = torch.sqrt((v @ a * v).sum(-1))
    beta = v @ b
    quad = (v @ a * v).sum(-1) - beta * beta  # float64: 3 of its 16 digits lost at |b|^2 = 0.999
    return torch.where(beta < 0, quad / (alpha - beta), alpha + beta)


def test_float32_norm_and_dist_have_no_cancellation():
    """|w|^2 = 0.999: alpha + beta loses ~3.6 digits against the drift; F must stay within ulps."""
    g = torch.Generator().manual_seed(0)
    b = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0) * math.sqrt(0.999)
    m = Randers(torch.eye(8), b)
    # directions against the drift (the worst case), others, and random ones
    v = torch.randn(256, 8, generator=g)
    v[:128] = -b / b.norm() + 0.03 * torch.randn(128, 8, generator=g)
    want = _exact_norm(v, torch.eye(8), b)
    rel = ((m.norm(torch.zeros(8), v).double() - want) / want).abs().max().item()
    assert rel <= 4 * torch.finfo(torch.float32).eps, rel
    rel = ((m.dist(torch.zeros(8), v).double() - want) / want).abs().max().item()
    assert rel <= 4 * torch.finfo(torch.float32).eps, rel
    rel = ((m.reverse().norm(torch.zeros(8), -v).double() - want) / want).abs().max().item()
    assert rel <= 4 * torch.finfo(torch.float32).eps, rel


def test_float32_cdist_drift_costs_at_most_a_small_factor_over_the_gram_accuracy():
    """cdist uses the Gram trick (relative error ~ eps |x|^2 / d^2, as torch.cdist); the drift at
    |w|^2 = 0.999 multiplied it by up to 1 / (1 - |w|) ~ 2000 where alpha + beta cancels."""
    g = torch.Generator().manual_seed(0)
    b = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0) * math.sqrt(0.999)
    m = Randers(torch.eye(8), b)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    # half the pairs i = j go (nearly) against the drift
    against = b / b.norm() * torch.rand(32, 1, generator=g) * 3
    y[:32] = x[:32] - against + 0.05 * torch.randn(32, 8, generator=g)
    exact = _exact_norm((y[None] - x[:, None]).double().reshape(-1, 8), torch.eye(8), b).reshape(64, 64)
    rel = ((m.cdist(x, y).double() - exact) / exact).abs().max().item()
    euclid = (y[None] - x[:, None]).double().norm(dim=-1)
    gram = ((Randers(torch.eye(8)).cdist(x, y).double() - euclid) / euclid).abs().max().item()
    assert rel <= 4 * gram + 8 * torch.finfo(torch.float32).eps, (rel, gram)
    # the reverse metric and batched inputs take the same path
    rel = ((m.reverse().cdist(y, x).mT.double() - exact) / exact).abs().max().item()
    assert rel <= 4 * gram + 8 * torch.finfo(torch.float32).eps, (rel, gram)
    rel = ((m.cdist(x[None], y[None])[0].double() - exact) / exact).abs().max().item()
    assert rel <= 4 * gram + 8 * torch.finfo(torch.float32).eps, (rel, gram)


def test_cdist_recomputed_entries_keep_exact_gradients():
    b = torch.tensor([0.99, 0.0], dtype=F64)
    m = Randers(torch.eye(2, dtype=F64), b)
    x = torch.tensor([[0.0, 0.0], [1.0, 0.5]], dtype=F64, requires_grad=True)
    y = torch.tensor([[-1.0, 0.01], [2.0, 0.0]], dtype=F64, requires_grad=True)
    (m.cdist(x, y) * torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)).sum().backward()
    gx, gy = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    (m.dist(x[:, None], y[None]) * torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=F64)).sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gy, y.grad)


# ---------------------------------------------------------------------------- non-finite input
def test_non_finite_input_is_one_clear_error():
    m, ball = _randers(torch.float32), FunkBall(2)
    x, nan = torch.zeros(2), torch.tensor([float("nan"), 0.0])
    with pytest.raises(ValueError, match="^u has non-finite entries"):
        m.norm(x, nan)
    with pytest.raises(ValueError, match="^y has non-finite entries"):
        m.dist(x, nan)
    with pytest.raises(ValueError, match="^x has non-finite entries"):
        ball.dist(nan, x)
    with pytest.raises(ValueError, match="^xi has non-finite entries"):
        ball.egrad2rgrad(x, nan)
    with pytest.raises(ValueError, match="b must be finite"):
        Randers(torch.eye(2), nan)


@pytest.mark.parametrize("dim", [2, 5])
def test_nan_drift_fails_validation(dim):
    """D <= 3 used an elementwise path where sqrt(NaN) became 0: a NaN drift passed."""
    ok, _, _ = randers_validity(torch.eye(dim), torch.full((dim,), float("nan")))
    assert not ok
    field = RandersField(b=lambda x: torch.full_like(x, float("nan")), dim=dim)
    with pytest.raises(ValueError, match=r"b\(x\) must be finite"):
        field.norm(torch.zeros(dim), torch.ones(dim))


# ---------------------------------------------------------------------------- shapes, dtypes
def test_randers_maps_validate_shapes():
    m = Randers(torch.eye(3))
    x, bad = torch.zeros(4, 3), torch.zeros(4, 2)
    for call in (lambda: m.expmap(x, bad), lambda: m.logmap(x, bad), lambda: m.retr(x, bad),
                 lambda: m.expmap0(bad), lambda: m.logmap0(bad)):
        with pytest.raises(ValueError, match=r"shape \[\.\.\., 3\]"):
            call()
    with pytest.raises(ValueError, match="at least 1 x 1"):
        Randers(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="complex"):
        Randers(torch.eye(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="^u has non-finite"):
        FunkBall(2).expmap(torch.zeros(2), torch.tensor([float("inf"), 0.0]))
    assert Randers(torch.eye(2, dtype=F64)).origin(2).dtype == F64


def test_one_validator_message_names_point_and_value():
    a = torch.eye(2).expand(3, 2, 2)
    b = torch.tensor([[0.1, 0.0], [0.0, 1.2], [0.0, 0.0]])
    points = torch.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match=r"drift too large at x = \[2, 3\]: .* = 1.2 >= 1"):
        check_randers(a, b, points=points)
    check_randers(torch.eye(2).expand(0, 2, 2), torch.zeros(0, 2))  # an empty batch passes


# ---------------------------------------------------------------------------- torch.compile
def test_funk_inside_check_runs_under_torch_compile():
    """The check was skipped while compiling: points outside the ball gave NaN silently. Compiled,
    the check is an assertion op in the graph: a RuntimeError with the same message."""
    torch._dynamo.reset()
    ball = FunkBall(2)
    dist = torch.compile(lambda x, y: ball.dist(x, y), backend="eager")
    inside = torch.zeros(3, 2)
    torch.testing.assert_close(dist(inside, inside), torch.zeros(3))
    with pytest.raises((ValueError, RuntimeError), match="not strictly inside"):
        dist(inside, torch.full((3, 2), 2.0))


def test_value_checks_switch_allows_fullgraph_compile():
    from finslerlib.math.validation import value_checks

    torch._dynamo.reset()
    m = _randers(torch.float32)
    x, y = torch.randn(4, 2), torch.randn(5, 2)
    with value_checks(False):
        compiled = torch.compile(lambda x, y: m.cdist(x, y), fullgraph=True, backend="eager")
        torch.testing.assert_close(compiled(x, y), m.cdist(x, y))
        # the switch is explicit: inside it a point outside the Funk ball gives NaN, outside it raises
        assert torch.isnan(FunkBall(1).dist(torch.zeros(1), torch.tensor([2.0])))
    with pytest.raises(ValueError, match="not strictly inside"):
        FunkBall(1).dist(torch.zeros(1), torch.tensor([2.0]))


# ---------------------------------------------------------------------------- geoopt keywords
@pytest.mark.parametrize("make", [_randers, lambda: FunkBall(2)], ids=["randers", "funk"])
def test_geoopt_dim_and_project_keywords(make):
    m = make()
    x = torch.tensor([[0.1, 0.2]], dtype=F64)
    y = torch.tensor([[-0.3, 0.4]], dtype=F64)
    torch.testing.assert_close(m.dist(x, y, dim=-1), m.dist(x, y))
    torch.testing.assert_close(m.dist(x, y, dim=1), m.dist(x, y))  # the last dimension, by index
    torch.testing.assert_close(m.dist0(y, dim=-1, keepdim=True), m.dist0(y).unsqueeze(-1))
    torch.testing.assert_close(m.norm(x, y, dim=-1), m.norm(x, y))
    torch.testing.assert_close(m.expmap0(y, dim=-1, project=True), m.projx(m.expmap0(y)))
    torch.testing.assert_close(m.logmap0(y, dim=-1, project=False), m.logmap0(y))
    for call in (lambda: m.dist(x, y, dim=0), lambda: m.norm(x, y, dim=-2), lambda: m.expmap0(y, dim=0)):
        with pytest.raises(ValueError, match="dim must be -1"):
            call()
    # and through geoopt.Scaled, which binds the signatures
    torch.testing.assert_close(geoopt.Scaled(m, 3.0).dist(x, y, dim=-1), 3 * m.dist(x, y))
