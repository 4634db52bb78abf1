"""FAIMHead with prototypes in the metric's factor coordinates (m = L^T mu): the fused kernel
against brute force, the head against the same head storing points on `Randers(a, b)`, and
geoopt steps on the stored coordinates against Finsler steps on the points."""

import copy

import geoopt
import pytest
import torch

from finslerlib import Randers
from finslerlib.math.pairwise import pairwise_sqdist, safe_sqrt
from finslerlib.nn import FAIMHead
from finslerlib.nn._kernels import unit_randers_logits
from tests.support.nn_toys import randers_brute_force

DIRECTIONS = ["to_prototype", "from_prototype", "max"]
SIGNS = {"to_prototype": 1, "from_prototype": -1, "max": 0}


def _perturbed_head(seed, classes=5, dim=4, **kwargs):
    torch.manual_seed(seed)
    head = FAIMHead(dim, classes, scale=2.5, dtype=torch.float64, **kwargs)
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name != "log_scale":
                p.add_(0.3 * torch.randn_like(p))
    return head


def _twin_on_points(head):
    """The same model with the points stored on a fixed `Randers(a, b)` (the manifold path), acting
    on the head's embedded (projected) features."""
    metric = Randers(head.manifold.a.detach(), head.manifold.b.detach())
    twin = FAIMHead(metric.dim, head.num_classes, metric, scale=head.scale.item(),
                    direction=head.direction, dtype=torch.float64)
    with torch.no_grad():
        twin.prototypes.copy_(head.prototypes)
    return twin


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_kernel_matches_unit_randers_brute_force(direction):
    torch.manual_seed(0)
    s, m = torch.randn(6, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    w = torch.tensor([0.4, -0.3, 0.2], dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    forward, backward = randers_brute_force(eye, w, s, m), randers_brute_force(eye, w, m, s).T
    expected = {"to_prototype": forward, "from_prototype": backward, "max": torch.maximum(forward, backward)}
    scale = torch.tensor(-1.7, dtype=torch.float64)
    torch.testing.assert_close(unit_randers_logits(s, m, w, sign=SIGNS[direction]), expected[direction])
    torch.testing.assert_close(unit_randers_logits(s, m, w, scale, sign=SIGNS[direction]),
                               scale * expected[direction])


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_kernel_first_and_second_derivatives(direction):
    torch.manual_seed(1)
    inputs = (torch.randn(3, 2, dtype=torch.float64, requires_grad=True),
              torch.randn(4, 2, dtype=torch.float64, requires_grad=True),
              torch.tensor([0.3, -0.5], dtype=torch.float64, requires_grad=True),
              torch.tensor(-2.0, dtype=torch.float64, requires_grad=True))

    def f(*args):
        return unit_randers_logits(*args, sign=SIGNS[direction])

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_kernel_gradient_at_coincident_points_matches_the_safe_composite():
    torch.manual_seed(2)
    s = torch.randn(4, 3, dtype=torch.float64)
    m = torch.cat([s[:2], torch.randn(3, 3, dtype=torch.float64)])  # two zero distances
    w = torch.tensor([0.2, 0.1, -0.4], dtype=torch.float64)
    weights = torch.randn(4, 5, dtype=torch.float64)

    def composite(s, m, w):
        return safe_sqrt(pairwise_sqdist(s, m)) + (m @ w).unsqueeze(0) - (s @ w).unsqueeze(1)

    fused_in = [t.clone().requires_grad_() for t in (s, m, w)]
    ref_in = [t.clone().requires_grad_() for t in (s, m, w)]
    fused = torch.autograd.grad((unit_randers_logits(*fused_in) * weights).sum(), fused_in)
    reference = torch.autograd.grad((composite(*ref_in) * weights).sum(), ref_in)
    for got, want in zip(fused, reference, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("rank", [None, 2])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_head_equals_the_same_head_storing_points(direction, rank):
    # the reparametrization does not change the function: logits and the gradients with respect
    # to the features and to the points agree with the head that stores the points
    head = _perturbed_head(3, direction=direction, rank=rank)
    assert head.factor_coordinates and "prototypes" not in dict(head.named_parameters())
    twin = _twin_on_points(head)
    x = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    z = head.embed(x).detach().requires_grad_()  # the twin acts on the (projected) features
    out, twin_out = head(x), twin(z)
    torch.testing.assert_close(out, twin_out, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (twin_out * weights).sum().backward()
    torch.testing.assert_close(head.prototypes.grad, twin.prototypes.grad, rtol=1e-10, atol=1e-10)
    if rank is None:
        torch.testing.assert_close(x.grad, z.grad, rtol=1e-10, atol=1e-10)


def test_stored_parameter_lives_on_the_unit_randers_space_of_the_metric():
    head = _perturbed_head(4)
    coords = head.prototype_coords
    assert isinstance(coords, geoopt.ManifoldParameter)
    a, b = coords.manifold.coefficients(coords)
    chol, w = head.manifold.factor()
    torch.testing.assert_close(a, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(b, w)
    # y = L^T v is an isometry: distances between stored coordinates are distances of the points
    mu = head.prototypes
    torch.testing.assert_close(coords.manifold.cdist(coords, coords), head.manifold.cdist(mu, mu))
    torch.testing.assert_close(coords.detach(), mu @ chol)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_riemannian_sgd_step_on_coordinates_is_the_finsler_step_on_points(direction):
    head = _perturbed_head(5, direction=direction)
    twin = _twin_on_points(head)
    for p in [*head.manifold.parameters(), head.log_scale]:
        p.requires_grad_(False)  # a step at a fixed metric
    x, y = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 5, (9,))
    for h in (head, twin):
        opt = geoopt.optim.RiemannianSGD([h._stored_prototypes()], lr=0.3)
        torch.nn.functional.cross_entropy(h(x), y).backward()
        opt.step()
    torch.testing.assert_close(head.prototypes, twin.prototypes, rtol=1e-10, atol=1e-10)


def test_momentum_steps_agree_only_when_the_buffer_starts_at_zero():
    # the documented limit: geoopt seeds RiemannianSGD's momentum buffer with the raw (Euclidean)
    # gradient, a covector that the coordinate change L^T maps differently from the Finsler
    # gradient; seeded with zero, momentum steps on coordinates are the steps on points
    head = _perturbed_head(8)
    for seeded, close in ((True, True), (False, False)):
        h, twin = copy.deepcopy(head), _twin_on_points(head)
        for p in [*h.manifold.parameters(), h.log_scale, *twin.manifold.parameters(), twin.log_scale]:
            p.requires_grad_(False)
        x, y = torch.randn(9, 4, dtype=torch.float64), torch.randint(0, 5, (9,))
        opts = [geoopt.optim.RiemannianSGD([m._stored_prototypes()], lr=0.3, momentum=0.9) for m in (h, twin)]
        for _ in range(3):
            for m, opt in zip((h, twin), opts, strict=True):
                stored = m._stored_prototypes()
                if seeded and not opt.state[stored]:
                    opt.state[stored]["momentum_buffer"] = torch.zeros_like(stored)
                stored.grad = None
                torch.nn.functional.cross_entropy(m(x), y).backward()
                opt.step()
        assert torch.allclose(h.prototypes, twin.prototypes, rtol=1e-10, atol=1e-10) == close


def test_prototypes_follow_the_metric_and_set_prototypes_round_trips():
    head = _perturbed_head(6)
    points = torch.randn(5, 4, dtype=torch.float64)
    head._set_prototypes(points)
    torch.testing.assert_close(head.prototypes, points, rtol=1e-12, atol=1e-12)
    view = head.prototypes
    assert isinstance(view, geoopt.ManifoldParameter) and view.manifold is head.manifold
    assert not view.requires_grad
    coords = head.prototype_coords.detach().clone()
    with torch.no_grad():
        head.manifold.chol_raw.add_(0.2)
    # the stored coordinates stay; the points they stand for move with the factor
    chol = head.manifold.factor()[0]
    torch.testing.assert_close(head.prototypes @ chol, coords)
    with pytest.raises(ValueError, match="shape"):
        head._set_prototypes(torch.zeros(4, 4))


def test_checkpoint_with_points_loads_and_a_bad_one_raises():
    head = _perturbed_head(7)
    x = torch.randn(3, 4, dtype=torch.float64)
    old = {k: v for k, v in head.state_dict().items() if k != "prototype_coords"}
    old["prototypes"] = head.prototypes.detach()
    fresh = FAIMHead(4, 5, dtype=torch.float64)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh(x), head(x), rtol=1e-10, atol=1e-10)
    old["prototypes"] = torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"checkpoint prototypes must have shape \[C, 4\]"):
        FAIMHead(4, 5, dtype=torch.float64).load_state_dict(old)


def test_copies_keep_the_coordinates_tied_to_the_copied_metric():
    head = _perturbed_head(8)
    clone = copy.deepcopy(head)
    assert clone.prototype_coords.manifold.source is clone.manifold
    moved = head.to(torch.float32)
    assert moved.prototype_coords.dtype == torch.float32
    assert moved.prototype_coords.manifold.source is moved.manifold


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_kernel_column_and_row_blocks_give_the_same_values_and_gradients(direction, monkeypatch):
    import finslerlib.nn._kernels as kernels

    torch.manual_seed(9)
    inputs = (torch.randn(5, 3, dtype=torch.float64), torch.randn(11, 3, dtype=torch.float64),
              torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64), torch.tensor(-2.0, dtype=torch.float64))
    weights = torch.randn(5, 11, dtype=torch.float64)
    results = []
    for chunk in (None, 4, 1):
        if chunk is not None:
            monkeypatch.setattr(kernels, "_column_chunk", lambda s, classes, chunk=chunk: chunk)
            monkeypatch.setattr(kernels, "_ROWS", 3)  # |m_j - c|^2 in row blocks too
            monkeypatch.setattr(kernels, "_ONE_SHOT", 0)
        leaves = [t.clone().requires_grad_() for t in inputs]
        out = unit_randers_logits(*leaves, sign=SIGNS[direction])
        results.append((out, *torch.autograd.grad((out * weights).sum(), leaves)))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
