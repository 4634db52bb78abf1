"""finslerlib.optim: weight-decay parameter groups and the non-Riemannian optimizer check."""

from __future__ import annotations

import warnings

import geoopt
import pytest
import torch
from torch import nn

from finslerlib import FunkBall, Randers
from finslerlib.nn import FAIMBlock, FAIMHead
from finslerlib.optim import check_optimizer, param_groups


def _model():
    torch.manual_seed(0)
    m = Randers.learnable(4)
    return nn.Sequential(
        nn.Linear(6, 4), nn.LayerNorm(4), FAIMBlock(m, base_point="dynamic"), FAIMBlock(m),
        FAIMHead(4, 3, rank=2),
    )


def _names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_groups_keep_geometry_biases_and_norms_out_of_weight_decay():
    model = _model()
    decay, rest = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and rest["weight_decay"] == 0.0
    assert _names(model, decay["params"]) == {
        "0.weight", "2.inner.weight", "2.base_map.0.weight", "2.base_map.2.weight", "3.inner.weight",
        "4.projection.weight",
    }
    # named_parameters lists the shared metric once, under the first block
    assert _names(model, rest["params"]) == {
        "0.bias", "1.weight", "1.bias", "2.inner.bias", "2.base_map.0.bias", "2.base_map.2.bias",
        "2.manifold.chol_raw", "2.manifold.drift_raw", "3.base_point", "3.inner.bias",
        "4.prototype_coords", "4.log_scale", "4.manifold.chol_raw", "4.manifold.drift_raw",
    }
    n_all = len(list(model.parameters()))
    assert len(decay["params"]) + len(rest["params"]) == n_all  # every trainable parameter, once


def test_adamw_with_the_groups_leaves_prototypes_where_they_are():
    # oracle: decoupled decay shrinks a parameter by (1 - lr wd) per step even at zero gradient
    model = nn.Sequential(nn.Linear(4, 4), FAIMHead(4, 3))
    before = model[1].prototypes.detach().clone()
    weight = model[0].weight.detach().clone()
    opt = torch.optim.AdamW(param_groups(model, 0.5), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(model[1].prototypes.detach(), before, rtol=0, atol=0)
    torch.testing.assert_close(model[0].weight.detach(), weight * (1 - 0.1 * 0.5))
    naive = FAIMHead(4, 3)
    start = naive.prototypes.detach().clone()
    for p in naive.parameters():
        p.grad = torch.zeros_like(p)
    torch.optim.AdamW(naive.parameters(), lr=0.1, weight_decay=0.5).step()
    assert not torch.equal(naive.prototypes.detach(), start)  # what the groups prevent


def test_no_weight_decay_names_and_frozen_parameters():
    class Net(nn.Sequential):
        def no_weight_decay(self):
            return {"0.weight"}

    model = Net(nn.Linear(3, 3), nn.Linear(3, 2))
    model[1].weight.requires_grad_(False)
    groups = param_groups(model, 0.1, no_decay=["1.bias"])
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    assert _names(model, groups[0]["params"]) == {"0.weight", "0.bias", "1.bias"}
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, -1.0)


def test_check_optimizer_flags_plain_optimizers_on_bounded_manifolds():
    funk = FAIMHead(4, 3, FunkBall(4))
    with pytest.warns(UserWarning, match="RiemannianSGD"):
        found = check_optimizer(torch.optim.SGD(funk.parameters(), lr=1.0))
    assert len(found) == 1 and "FunkBall" in found[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_optimizer(geoopt.optim.RiemannianSGD(funk.parameters(), lr=1.0)) == []
        assert check_optimizer(torch.optim.SGD(FAIMHead(4, 3).parameters(), lr=1.0)) == []  # Randers: R^D
    # the hazard the warning is about: one plain step leaves the ball, a Riemannian one does not
    for opt_cls, inside in ((torch.optim.SGD, False), (geoopt.optim.RiemannianSGD, True)):
        head = FAIMHead(4, 3, FunkBall(4))
        head.prototypes.grad = torch.full_like(head.prototypes, -5.0)
        head.log_scale.grad = torch.zeros_like(head.log_scale)
        opt_cls(head.parameters(), lr=1.0).step()
        assert bool((head.prototypes.norm(dim=-1) < 1).all()) == inside
