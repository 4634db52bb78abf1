"""Meta-device construction: `device="meta"` -> `to_empty(device="cpu")` -> `reset_parameters()`.

FSDP2, accelerate's `init_empty_weights` and torchtitan build models this way. `to_empty` leaves
every parameter and buffer uninitialized (filled with NaN here, so nothing passes by luck); the
oracle is a module constructed directly on the CPU from the same random seed: the reset must
reproduce its state bit for bit, and its outputs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from finslerlib import FunkBall, Randers
from finslerlib.nn import FAIMBlock, FAIMHead

HEADS = {
    "default": lambda dev: FAIMHead(8, 3, device=dev),
    "fixed-scale-max": lambda dev: FAIMHead(8, 3, scale=3.0, learn_scale=False, direction="max", device=dev),
    "rank": lambda dev: FAIMHead(8, 3, rank=4, device=dev),
    "low-rank-metric": lambda dev: FAIMHead(8, 3, Randers.learnable(8, rank=2, device=dev), device=dev),
    "funk": lambda dev: FAIMHead(8, 3, FunkBall(8), direction="from_prototype", device=dev),
    "funk-rank": lambda dev: FAIMHead(8, 3, FunkBall(4), rank=4, device=dev),
}
MANIFOLDS = {
    "learnable": lambda dev: Randers.learnable(5, device=dev),
    "learnable-rank": lambda dev: Randers.learnable(5, rank=2, device=dev),
    "funk": lambda dev: FunkBall(5),
}


def _materialize(module: nn.Module) -> nn.Module:
    module.to_empty(device="cpu")
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            t.fill_(math.nan)
    return module


def _assert_same_state(got: nn.Module, want: nn.Module) -> None:
    got_state, want_state = got.state_dict(), want.state_dict()
    assert got_state.keys() == want_state.keys()
    for key in want_state:
        torch.testing.assert_close(got_state[key], want_state[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("name", list(HEADS))
def test_head_reset_after_meta_init_equals_a_fresh_head(name):
    torch.manual_seed(3)
    fresh = HEADS[name]("cpu")
    meta = HEADS[name]("meta")
    assert all(p.is_meta for p in meta.parameters())
    _materialize(meta)
    torch.manual_seed(3)
    meta.reset_parameters()
    _assert_same_state(meta, fresh)
    x = torch.randn(5, 8)
    out = meta(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, fresh(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(HEADS))
def test_head_reset_by_a_loop_over_modules_is_a_valid_start(name):
    # the other common pattern: reset_parameters() on every module, parents before children
    torch.manual_seed(3)
    fresh = HEADS[name]("cpu")
    meta = _materialize(HEADS[name]("meta"))
    for module in meta.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    torch.testing.assert_close(meta.scale, fresh.scale)
    x = torch.randn(5, 8)
    assert torch.isfinite(meta(x)).all()
    if meta.projection is not None:  # the orthogonal projection, not nn.Linear's Kaiming init
        p = meta.projection.weight
        torch.testing.assert_close(p @ p.mT, torch.eye(4) * 2.0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_learnable_metric_reset_is_the_euclidean_start(name):
    torch.manual_seed(1)
    fresh = MANIFOLDS[name]("cpu")
    meta = _materialize(MANIFOLDS[name]("meta"))
    torch.manual_seed(1)
    if hasattr(meta, "reset_parameters"):
        meta.reset_parameters()
    _assert_same_state(meta, fresh)
    if name.startswith("learnable"):
        # independent oracle: the Euclidean start, a ~ I, b = 0 (the rank form adds a small U U^T)
        tol = 1e-7 if name == "learnable" else 0.05
        torch.testing.assert_close(meta.a, torch.eye(5), rtol=0, atol=tol)
        assert meta.b.abs().max() == 0


@pytest.mark.parametrize("kind", list(MANIFOLDS))
@pytest.mark.parametrize("base", ["shared", "dynamic"])
@pytest.mark.parametrize("pattern", ["block", "every-module"])
def test_block_after_meta_init_is_the_identity_again(kind, base, pattern):
    meta = _materialize(FAIMBlock(MANIFOLDS[kind]("meta"), base_point=base, device="meta"))
    if pattern == "block":
        meta.reset_parameters()
    else:
        for module in meta.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    if base == "shared":
        assert (meta.base_point == 0).all()
    x = MANIFOLDS[kind]("cpu").expmap0(0.7 * torch.randn(6, 5))
    torch.testing.assert_close(meta(x), x, rtol=1e-5, atol=1e-5)


def test_block_with_a_custom_inner_resets_it():
    inner = nn.Sequential(nn.Linear(5, 7, device="meta"), nn.GELU(), nn.Linear(7, 5, device="meta"))
    meta = _materialize(FAIMBlock(Randers.learnable(5, device="meta"), inner, device="meta"))
    meta.reset_parameters()
    assert all(torch.isfinite(p).all() for p in meta.parameters())
    assert torch.isfinite(meta(torch.randn(4, 5))).all()


def test_stack_of_blocks_and_head_on_meta():
    def build(dev):
        m = Randers.learnable(6, device=dev)
        return nn.Sequential(FAIMBlock(m, device=dev), FAIMBlock(m, base_point="dynamic", device=dev),
                             FAIMHead(6, 4, m, device=dev))

    torch.manual_seed(0)
    fresh = build("cpu")
    meta = _materialize(build("meta"))
    torch.manual_seed(0)
    for module in meta:
        module.reset_parameters()
    x = torch.randn(3, 6)
    torch.testing.assert_close(meta(x), fresh(x))
