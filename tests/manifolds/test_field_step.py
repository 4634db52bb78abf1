"""One `RiemannianAdam` step on a `RandersField`: the coefficients `egrad2rgrad` evaluated at the
point serve the step's other evaluations there (two evaluations of the user's callables per step,
not four), only inside one optimizer step and at the same unchanged tensor (never after direct
calls, whatever changed in between), the identity metric takes the `a=None` formulas, and
validation still raises.

Oracles: a fresh field with the memo never armed (plain `norm` / `component_inner` calls), closed
forms, the formulas with an explicit identity matrix, call counts, and `check_randers`' messages.
"""

from __future__ import annotations

import geoopt
import pytest
import torch
from torch import nn

from finslerlib.manifolds import RandersField, renormalized_transport

F64 = torch.float64


class Drift(nn.Module):
    """b(x) = s * tanh(x), counting its calls."""

    def __init__(self, s: float):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(s, dtype=F64))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.s * torch.tanh(x)


def adam_steps(field, x0, steps: int, f=lambda x: ((x - 0.3) ** 2).sum()):
    x = geoopt.ManifoldParameter(x0.clone(), manifold=field)
    opt = geoopt.optim.RiemannianAdam([x], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        f(x).backward()
        opt.step()
    return x.detach()


@pytest.mark.parametrize("validate", [True, False])
def test_adam_step_evaluates_the_callable_twice_and_matches_the_unmemoized_step(validate):
    drift = Drift(0.6)
    field = RandersField(b=drift, dim=2, validate=validate)
    field.vector_transport = renormalized_transport
    x0 = torch.tensor([[0.2, -0.4], [1.0, 0.5]], dtype=F64)
    adam_steps(field, x0, 1)
    drift.calls = 0
    fast = adam_steps(field, x0, 5)
    assert drift.calls == 2 * 5  # the loss never calls it; 2 per step (at x and at the new point)

    # the same steps with every evaluation fresh: a field whose egrad2rgrad never arms the memo
    class Plain(RandersField):
        def egrad2rgrad(self, x, u):
            return super(RandersField, self).egrad2rgrad(x, u)

    plain = Plain(b=Drift(0.6), dim=2, validate=validate)
    plain.vector_transport = renormalized_transport
    torch.testing.assert_close(fast, adam_steps(plain, x0, 5), rtol=0, atol=0)


def test_remembered_coefficients_are_dropped_when_a_parameter_or_the_point_changes():
    drift = Drift(0.5)
    field = RandersField(b=drift, dim=2)
    x = torch.tensor([[0.7, -0.2]], dtype=F64)
    u = torch.tensor([[0.3, 0.1]], dtype=F64)
    with torch.no_grad():
        field.egrad2rgrad(x, u)
        drift.s.mul_(-1.0)  # in place: the parameter's version moves
        got = field.component_inner(x, u)
        x.add_(0.1)
        got_moved = field.component_inner(x, u)
    fresh = RandersField(b=lambda p: -0.5 * torch.tanh(p), dim=2)
    with torch.no_grad():
        torch.testing.assert_close(got, fresh.component_inner(x - 0.1, u))
        torch.testing.assert_close(got_moved, fresh.component_inner(x, u))


def test_remembered_coefficients_are_not_used_with_gradients():
    drift = Drift(0.5)
    field = RandersField(b=drift, dim=2)
    x = torch.tensor([[0.7, -0.2]], dtype=F64, requires_grad=True)
    u = torch.tensor([[0.3, 0.1]], dtype=F64)
    field.egrad2rgrad(x, u)
    calls = drift.calls
    field.norm(x, u).backward()
    assert drift.calls == calls + 1  # evaluated again, inside the graph
    # d/dx F(x, u) = (1 - tanh(x)^2) * 0.5 * u
    torch.testing.assert_close(x.grad, 0.5 * (1 - torch.tanh(x.detach()) ** 2) * u)


def test_identity_metric_fast_check_raises_like_the_full_check():
    field = RandersField(b=lambda x: 2.0 * x, dim=2)
    x = torch.tensor([[0.6, 0.0]], dtype=F64)  # |b| = 1.2
    with pytest.raises(ValueError, match=r"\|\|b\(x\)\|\|_\{a\(x\)\^-1\} = 1.2 >= 1") as err:
        field.norm(x, torch.ones(1, 2, dtype=F64))
    assert "x = [0.6, 0]" in str(err.value)
    nan = RandersField(b=lambda x: x * float("nan"), dim=2)
    with pytest.raises(ValueError, match="finite"):
        nan.norm(x, torch.ones(1, 2, dtype=F64))
    # a step that leaves the admissible set is refused at the new point
    field = RandersField(b=lambda x: 0.9 * torch.tanh(4.0 * x), dim=2)
    field.vector_transport = renormalized_transport
    far = RandersField(b=lambda x: x, dim=2)  # |b| = |x| >= 1 beyond the unit circle
    far.vector_transport = renormalized_transport
    with pytest.raises(ValueError, match="drift too large"):
        adam_steps(far, torch.tensor([[0.95, 0.0]], dtype=F64), 3, f=lambda x: -(x**2).sum())
    adam_steps(field, torch.tensor([[0.95, 0.0]], dtype=F64), 3)


def test_nothing_is_remembered_outside_an_optimizer_step():
    # regression: a direct egrad2rgrad under no_grad armed the memo, and a later norm at the same
    # tensor returned the coefficients of before a change the versions do not show
    net = nn.Linear(2, 2, dtype=F64)  # closed over, not registered on the field
    field = RandersField(b=lambda p: 0.3 * torch.tanh(net(p)), dim=2)
    x = torch.tensor([[0.7, -0.2]], dtype=F64)
    u = torch.tensor([[0.3, 0.1]], dtype=F64)
    with torch.no_grad():
        field.egrad2rgrad(x, u)
        net.weight.add_(1.0)  # another optimizer's update: the field cannot see this version
        got = field.norm(x, u)
        want = (u * u).sum(-1).sqrt() + (0.3 * torch.tanh(net(x)) * u).sum(-1)
    torch.testing.assert_close(got, want)

    # a registered parameter replaced by assignment: a new tensor with the old version number
    drift = Drift(0.5)
    field = RandersField(b=drift, dim=2)
    with torch.no_grad():
        field.egrad2rgrad(x, u)
        drift.s = nn.Parameter(torch.tensor(-0.5, dtype=F64))
        got = field.component_inner(x, u)
        want = ((u * u).sum(-1, keepdim=True).sqrt() + (0.5 * torch.tanh(x) * u).sum(-1, keepdim=True)) ** 2
    torch.testing.assert_close(got, want)  # F(x, -u)^2 with b = -0.5 tanh(x)


def test_two_parameters_on_one_field_and_the_metric_trained_by_a_second_optimizer():
    # per step: each point's own coefficients; the metric's update between steps is seen
    drift = Drift(0.4)
    field = RandersField(b=drift, dim=2)
    field.vector_transport = renormalized_transport
    plain_drift = Drift(0.4)

    class Plain(RandersField):
        def egrad2rgrad(self, x, u):
            return super(RandersField, self).egrad2rgrad(x, u)

    plain = Plain(b=plain_drift, dim=2)
    plain.vector_transport = renormalized_transport

    def run(field, drift):
        p = geoopt.ManifoldParameter(torch.tensor([[0.2, -0.4]], dtype=F64), manifold=field)
        q = geoopt.ManifoldParameter(torch.tensor([[-0.5, 0.3]], dtype=F64), manifold=field)
        opt = geoopt.optim.RiemannianAdam([p, q], lr=0.05)
        metric_opt = torch.optim.SGD(drift.parameters(), lr=0.1)
        for _ in range(4):
            opt.zero_grad()
            metric_opt.zero_grad()
            (((p - 0.3) ** 2).sum() + ((q + 0.1) ** 2).sum() + field.norm(p, q - p).sum()).backward()
            opt.step()
            metric_opt.step()
        return p.detach(), q.detach(), drift.s.detach()

    for got, want in zip(run(field, drift), run(plain, plain_drift), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_identity_metric_pointwise_quantities_match_the_explicit_identity(dtype):
    # a = I by construction takes the a=None formulas; the oracle passes the matrix I explicitly
    from finslerlib.math import randers as rmath

    gen = torch.Generator().manual_seed(3)
    field = RandersField(b=lambda p: 0.7 * torch.tanh(p), dim=3)
    x = torch.randn(5, 3, generator=gen, dtype=F64).to(dtype)
    v = torch.randn(5, 3, generator=gen, dtype=F64).to(dtype)
    eye, b = torch.eye(3, dtype=dtype), 0.7 * torch.tanh(x)
    tol = dict(rtol=50 * torch.finfo(dtype).eps, atol=50 * torch.finfo(dtype).eps)
    torch.testing.assert_close(field.norm(x, v), rmath.norm(v, eye, b), **tol)
    torch.testing.assert_close(field.dual_norm(x, v), rmath.dual_norm(v, eye, b), **tol)
    torch.testing.assert_close(field.legendre(x, v), rmath.legendre(v, eye, b), **tol)
    torch.testing.assert_close(field.inverse_legendre(x, v), rmath.inverse_legendre(v, eye, b), **tol)
    torch.testing.assert_close(field.fundamental_tensor(x, v), rmath.fundamental_tensor(v, eye, b), **tol)
    a, bb = field.coefficients(x)
    torch.testing.assert_close(a.expand(5, 3, 3), eye.expand(5, 3, 3), rtol=0, atol=0)
    # F(x, 0) has a zero (finite) gradient
    zero = torch.zeros(2, 3, dtype=dtype, requires_grad=True)
    field.norm(x[:2], zero).sum().backward()
    torch.testing.assert_close(zero.grad, 0.7 * torch.tanh(x[:2]), **tol)


def test_an_overridden_check_is_kept_for_the_identity_metric():
    class Bounded(RandersField):
        def check_coefficients(self, x, a, b):
            if bool((x.abs() > 1).any()):
                raise ValueError(f"x outside the box: {x.abs().max().item():.3g}")
            super().check_coefficients(x, a, b)

    field = Bounded(b=lambda p: 0.1 * p, dim=2)
    with pytest.raises(ValueError, match="outside the box: 2"):
        field.norm(torch.tensor([[2.0, 0.0]], dtype=F64), torch.ones(1, 2, dtype=F64))
