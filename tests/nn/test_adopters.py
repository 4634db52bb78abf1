"""What adopters hit with the FAIM layers (issue 24): empty batches, rows that must not couple,
writes to `head.prototypes`, messages that name the argument."""

import geoopt
import pytest
import torch

from finslerlib import Randers
from finslerlib.nn import FAIMHead, FAIMInfoNCELoss, FAIMMarginLoss
from finslerlib.nn.functional import margin_loss

HEADS = {
    "full": lambda: FAIMHead(8, 5),
    "rank=3": lambda: FAIMHead(8, 5, rank=3),
    "margin": lambda: FAIMHead(8, 5, margin=0.3),
    "max": lambda: FAIMHead(8, 5, direction="max"),
}


# ----------------------------------------------------------------- empty batches (item 8)
@pytest.mark.parametrize("name", list(HEADS))
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_an_empty_batch_gives_finite_gradients_and_a_step_keeps_the_head_finite(name, reduction):
    torch.manual_seed(0)
    head = HEADS[name]()
    x, y = torch.empty(0, 8), torch.empty(0, dtype=torch.long)
    logits = head(x, y)
    assert logits.shape == (0, 5)
    loss = torch.nn.functional.cross_entropy(logits, y, reduction=reduction)
    if reduction == "mean":  # the mean of nothing is NaN by torch's convention; its gradient is 0 * NaN
        loss = torch.nan_to_num(loss)
    loss.backward()
    for pname, p in head.named_parameters():
        assert p.grad is None or bool(torch.isfinite(p.grad).all()), pname
    geoopt.optim.RiemannianAdam(head.parameters(), lr=1e-2).step()
    assert bool(torch.isfinite(head(torch.randn(4, 8))).all())


def test_learnable_cdist_and_info_nce_on_empty_inputs_give_finite_gradients():
    metric = Randers.learnable(4)
    metric.cdist(torch.empty(0, 4), torch.empty(0, 4)).sum().backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in metric.parameters())
    loss = FAIMInfoNCELoss(Randers.learnable(4), reduction="sum")
    loss(torch.empty(0, 4), torch.empty(0, 4)).backward()
    assert all(bool(torch.isfinite(p.grad).all()) for p in loss.parameters())


# ----------------------------------------------------------------- rows independent (item 9)
@pytest.mark.parametrize("direction", ["to_prototype", "from_prototype", "max"])
def test_one_rows_logits_do_not_depend_on_the_other_rows(direction):
    # an nn.Linear gives each sample a result computed from that sample alone; so must the head
    torch.manual_seed(0)
    head = FAIMHead(8, 7, direction=direction)
    with torch.no_grad():
        head.prototype_coords.mul_(6.0)  # logits of a few tens, as in the report
    x = torch.randn(6, 8) * 4
    far = x.clone()
    far[5] *= 1e4
    with torch.no_grad():
        near_logits, far_logits = head(x), head(far)
        alone = torch.cat([head(x[i : i + 1]) for i in range(5)])
    eps = torch.finfo(torch.float32).eps
    size = near_logits[:5].abs().max()
    # the same row gives the same logits whatever the other rows are (up to the matmul's rounding)
    assert torch.allclose(far_logits[:5], near_logits[:5], rtol=0, atol=64 * eps * size)
    assert torch.allclose(alone, near_logits[:5], rtol=0, atol=64 * eps * size)


def test_a_huge_row_does_not_change_another_rows_nearest_prototype():
    torch.manual_seed(1)
    head = FAIMHead(64, 100)
    x = torch.randn(32, 64)
    far = x.clone()
    far[0] *= 1e4
    with torch.no_grad():
        assert torch.equal(head(x)[1:].argmax(1), head(far)[1:].argmax(1))


# ----------------------------------------------------------------- messages (item 14)
@pytest.mark.parametrize(
    "labels, error, message",
    [
        (torch.tensor([0, 5]), ValueError, r"labels must be classes in \[0, 5\), got values in \[0, 5\]"),
        (torch.tensor([-1, 2]), ValueError, r"labels must be classes in \[0, 5\), got values in \[-1, 2\]"),
        (torch.tensor([True, False]), TypeError, "labels must be an integer tensor.*torch.bool"),
        (torch.tensor([0.0, 1.0]), TypeError, "labels must be an integer tensor.*torch.float32"),
    ],
)
def test_bad_labels_are_named_with_their_values(labels, error, message):
    head = FAIMHead(8, 5)
    x = torch.randn(2, 8)
    with pytest.raises(error, match=message):
        head(x, labels)
    with pytest.raises(error, match=message):
        FAIMMarginLoss(head, margin=0.2)(x, labels)
    with pytest.raises(error, match=message):
        margin_loss(head.distances(x), labels, scale=1.0)
    with pytest.raises(error, match=message):
        head.init_prototypes_(x, labels)


def test_bad_features_are_named():
    head = FAIMHead(3, 4)
    with pytest.raises(ValueError, match="x has non-finite entries.*features must be finite"):
        head(torch.tensor([[0.0, float("nan"), 1.0]]))
    for bad in (torch.ones(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool)):
        with pytest.raises(TypeError, match="x must be a floating tensor.*" + str(bad.dtype)):
            head(bad)
    with pytest.raises(ValueError, match="x is on the meta device but the layer's parameters are on device"):
        head(torch.empty(2, 3, device="meta"))
    deferred = FAIMHead(3, 4, device="meta")
    with pytest.raises(ValueError, match="materialize the layer"):
        deferred(torch.randn(2, 3))


# ----------------------------------------------------------------- export with value checks on (item 2)
def test_torch_export_with_value_checks_on_keeps_the_checks_in_the_graph():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), FAIMHead(4, 3))
    x = torch.randn(5, 6)
    program = torch.export.export(model, (x,))
    # the traced graph uses the composite ops instead of the fused kernel: rounding differs
    ref = model(x).detach()
    atol = 64 * torch.finfo(torch.float32).eps * float(ref.abs().max())
    torch.testing.assert_close(program.module()(x), ref, rtol=0, atol=atol)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite entries"):
        program.module()(bad)


# ----------------------------------------------------------------- writes to head.prototypes (item 10)
def _funk_head():
    from finslerlib import FunkBall

    return FAIMHead(3, 4, FunkBall(3))


@pytest.mark.parametrize("make", [lambda: FAIMHead(3, 4), lambda: FAIMHead(6, 4, rank=3), _funk_head])
def test_assigning_prototypes_writes_them_on_every_head(make):
    torch.manual_seed(0)
    head = make()
    stored = head._stored_prototypes()
    dim = stored.shape[1]
    points = head.manifold.projx(0.3 * torch.randn(4, dim))
    head.prototypes = points
    assert head._stored_prototypes() is stored  # the same parameter: optimizers keep it
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(head.prototypes.detach(), points, rtol=0, atol=64 * eps)
    # the logits follow: they are the manifold's distances to the assigned points
    x = torch.randn(5, head.in_features)
    with torch.no_grad():
        expected = -head.scale * head.manifold.cdist(head.embed(x), points)
        torch.testing.assert_close(head(x), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        head.prototypes = torch.zeros(2, dim)


def test_in_place_writes_to_the_computed_view_raise_and_name_the_setter():
    head = FAIMHead(3, 4)
    before = head.prototype_coords.detach().clone()
    for write in (
        lambda p: p.copy_(torch.zeros(4, 3)),
        lambda p: p.mul_(0),
        lambda p: p.__setitem__(0, 1.0),
        lambda p: setattr(p, "data", torch.zeros(4, 3)),
    ):
        with torch.no_grad(), pytest.raises(RuntimeError, match="head.prototypes = points"):
            write(head.prototypes)
    assert torch.equal(head.prototype_coords, before)
    # on a given manifold the parameter is the points: in-place writes take effect
    funk = _funk_head()
    with torch.no_grad():
        funk.prototypes.mul_(0)
    assert torch.equal(funk.prototypes, torch.zeros(4, 3))


# ----------------------------------------------------------------- embedded manifolds (item 11)
def _sphere_and_hyperboloid():
    import finslerlib

    rot = torch.zeros(3, 3, dtype=torch.float64)
    rot[0, 1], rot[1, 0] = -0.3, 0.3
    boost = torch.zeros(3, 3, dtype=torch.float64)
    boost[0, 1] = boost[1, 0] = 0.2
    return {
        "sphere": finslerlib.Navigation(geoopt.Sphere(), finslerlib.KillingWind(rot)),
        "hyperboloid": finslerlib.Navigation(geoopt.Lorentz(), finslerlib.KillingWind(boost)),
    }


@pytest.mark.parametrize("name", ["sphere", "hyperboloid"])
def test_every_feature_moves_the_logits_on_embedded_manifolds(name):
    manifold = _sphere_and_hyperboloid()[name]
    assert (manifold.dim, manifold.ambient_dim) == (2, 3)
    torch.manual_seed(0)
    head = FAIMHead(2, 3, manifold, dtype=torch.float64)
    assert head.prototypes.shape == (3, 3)
    x = 0.3 * torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        base = head(x)
        for i in range(2):
            moved = x.clone()
            moved[:, i] += 0.2
            assert (head(moved) - base).abs().max() > 1e-3, f"feature {i} has no effect"
        # the features are the tangent vector (0, x) at the origin e_0: the oracle is the
        # manifold's own distance to exp_{e_0}(0, x)
        origin = torch.zeros(4, 3, dtype=torch.float64)
        origin[:, 0] = 1.0
        points = manifold.expmap(origin, torch.nn.functional.pad(x, (1, 0)))
        want = -head.scale * manifold.cdist(points, head.prototypes.detach())
        torch.testing.assert_close(base, want, rtol=1e-9, atol=1e-9)


def test_embedded_manifold_with_ambient_in_features_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="in_features is 3.*intrinsic coordinates"):
        FAIMHead(3, 4, _sphere_and_hyperboloid()["sphere"])


def test_features_and_prototypes_far_from_the_origin_keep_their_accuracy():
    # the centring that replaced the batch mean (the prototypes' mean) still removes the Gram
    # trick's cancellation: a flat metric is translation invariant, so shifting features and
    # prototypes by 1e3 must leave the float32 logits at float32 accuracy of the distances
    torch.manual_seed(2)
    head = FAIMHead(16, 10)
    x = torch.randn(32, 16)
    with torch.no_grad():
        near = head.distances(x)
        shift = torch.full((16,), 1e3)
        head.prototypes = head.prototypes.detach() + shift
        far = head.distances(x + shift)
    # the inputs themselves carry float32 rounding of size eps * 1e3 * sqrt(16) per coordinate
    bound = 16 * torch.finfo(torch.float32).eps * 1e3 * 4
    assert (far - near).abs().max() < bound, float((far - near).abs().max())
    assert bound < 0.01 * float(near.min())  # a meaningful bound: far below the distances


def test_small_integer_labels_are_refused_with_the_arguments_name():
    """Audit: uint8 labels passed the check and failed inside scatter ("Expected dtype int32/int64
    for index"), a message naming no argument."""
    head = FAIMHead(4, 3)
    for dtype in (torch.uint8, torch.int8, torch.int16):
        with pytest.raises(TypeError, match="labels must be an integer tensor"):
            head(torch.randn(2, 4), torch.tensor([0, 1], dtype=dtype))
    assert head(torch.randn(2, 4), torch.tensor([0, 1], dtype=torch.int32)).shape == (2, 3)
