"""ShardedFAIMHead on torch.distributed (gloo, CPU, float64) against the single-process oracle:
`FAIMHead` + `cross_entropy` / `margin_loss` over all classes, computed in every worker.

One spawn of 3 processes runs every distributed check twice: on a 2-rank subgroup (which
saves a checkpoint) and on the 3-rank world (which loads it).
"""

import datetime
import os
import socket

import geoopt
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as nnf

from finslerlib import Randers
from finslerlib.nn import FAIMHead, ShardedFAIMHead, shard_range
from finslerlib.nn.functional import margin_loss

TOL = {"rtol": 1e-10, "atol": 1e-10}
D, B = 4, 3  # feature size, batch per rank
CONFIGS = {
    "factor": {"classes": 7, "kwargs": {}, "margin": 0.0},
    "factor_rank_max_margin": {"classes": 8, "kwargs": {"rank": 2, "direction": "max"}, "margin": 0.3},
    "given_manifold_from": {"classes": 5, "kwargs": {"direction": "from_prototype"}, "margin": 0.2,
                            "manifold": True},
}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manifold():
    a = torch.tensor([[2.0, 0.3, 0.0, 0.1], [0.3, 1.0, 0.2, 0.0], [0.0, 0.2, 1.5, 0.0], [0.1, 0.0, 0.0, 1.0]],
                     dtype=torch.float64)
    return Randers(a, torch.tensor([0.3, -0.2, 0.1, 0.0], dtype=torch.float64))


def _reference(config, seed=0):
    """The single-process head, with every parameter moved off its symmetric initialization."""
    torch.manual_seed(seed)
    manifold = _manifold() if config.get("manifold") else None
    head = FAIMHead(D, config["classes"], manifold, scale=3.0, dtype=torch.float64, **config["kwargs"])
    with torch.no_grad():
        for name, p in head.named_parameters():
            if name not in ("prototypes", "prototype_coords", "log_scale"):
                p.add_(0.3 * torch.randn_like(p))
    return head


def _reference_loss(head, x, y, margin):
    if margin:
        return margin_loss(head.distances(x), y, scale=head.scale, margin=margin)
    return nnf.cross_entropy(head(x), y)


def _sharded_like(reference, config, group, **kwargs):
    manifold = _manifold() if config.get("manifold") else None
    head = ShardedFAIMHead(D, config["classes"], manifold, margin=config["margin"], scale=3.0,
                           dtype=torch.float64, process_group=group, **config["kwargs"], **kwargs)
    head.load_state_dict(reference.state_dict())
    return head


def _batch(world, classes, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(world * B, D, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (world * B,), generator=g)
    return x, y


def _check_loss_and_gradients(rank, world, group, config):
    reference = _reference(config)
    head = _sharded_like(reference, config, group)
    assert (head.class_start, head.class_stop) == shard_range(config["classes"], rank, world)
    x, y = _batch(world, config["classes"])
    x_ref = x.clone().requires_grad_()
    loss_ref = _reference_loss(reference, x_ref, y, config["margin"])
    loss_ref.backward()
    mine = slice(rank * B, (rank + 1) * B)
    x_local = x[mine].clone().requires_grad_()
    loss = head(x_local, y[mine])
    loss.backward()
    torch.testing.assert_close(loss, loss_ref, **TOL)
    torch.testing.assert_close(x_local.grad, x_ref.grad[mine], **TOL)
    ref_params = dict(reference.named_parameters())
    block = slice(head.class_start, head.class_stop)
    for name, p in head.named_parameters():
        expected = ref_params[name].grad
        if name in ("prototypes", "prototype_coords"):
            expected = expected[block]
        torch.testing.assert_close(p.grad, expected, **TOL, msg=f"gradient of {name}")


def _check_adam_steps_and_save(rank, world, group, config, path):
    reference = _reference(config)
    head = _sharded_like(reference, config, group)
    opt_ref = geoopt.optim.RiemannianAdam(reference.parameters(), lr=0.05)
    opt = geoopt.optim.RiemannianAdam(head.parameters(), lr=0.05)
    mine = slice(rank * B, (rank + 1) * B)
    for step in range(5):
        x, y = _batch(world, config["classes"], seed=10 + step)
        opt_ref.zero_grad()
        _reference_loss(reference, x, y, config["margin"]).backward()
        opt_ref.step()
        opt.zero_grad()
        head(x[mine], y[mine]).backward()
        opt.step()
    state = head.state_dict()  # collective: the full prototypes on every rank
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(state[name], value, **TOL, msg=f"{name} after 5 Adam steps")
    if path is not None and rank == 0:
        torch.save({"state": state, "config": config}, path)


def _check_sampling_keeps_positives(rank, world, group):
    config = {"classes": 12, "kwargs": {}, "margin": 0.0}
    reference = _reference(config)
    head = _sharded_like(reference, config, group, sample_rate=0.5)
    torch.manual_seed(100 + rank)
    x, y = _batch(world, 12, seed=3)
    mine = slice(rank * B, (rank + 1) * B)
    x_local = x[mine].clone().requires_grad_()
    loss = head(x_local, y[mine])
    loss.backward()
    sampled = head.last_sampled
    block = set(range(head.class_start, head.class_stop))
    assert {int(c) for c in y if int(c) in block} <= set(sampled.tolist())
    assert len(sampled) == max(-(-len(block) // 2), len({int(c) for c in y if int(c) in block}))
    everyone = [None] * world
    dist.all_gather_object(everyone, sampled.tolist(), group=group)
    kept = torch.tensor(sorted(c for part in everyone for c in part))
    # oracle: softmax over the kept classes of the full head's logits
    x_ref = x.clone().requires_grad_()
    logits = reference(x_ref)[:, kept]
    target = torch.searchsorted(kept, y)
    loss_ref = nnf.cross_entropy(logits, target)
    loss_ref.backward()
    torch.testing.assert_close(loss, loss_ref, **TOL)
    torch.testing.assert_close(x_local.grad, x_ref.grad[mine], **TOL)
    # classes that were not kept get no gradient
    unused = [c - head.class_start for c in block if c not in set(sampled.tolist())]
    assert bool((head.prototype_coords.grad[unused] == 0).all())


def _check_load(rank, world, group, path):
    saved = torch.load(path, weights_only=False)
    config = saved["config"]
    reference = FAIMHead(D, config["classes"], scale=3.0, dtype=torch.float64, **config["kwargs"])
    reference.load_state_dict(saved["state"])
    head = ShardedFAIMHead(D, config["classes"], margin=config["margin"], scale=3.0, dtype=torch.float64,
                           process_group=group, **config["kwargs"])
    head.load_state_dict(saved["state"])
    assert head.prototype_coords.shape[0] == head.class_stop - head.class_start
    x, y = _batch(world, config["classes"], seed=7)
    mine = slice(rank * B, (rank + 1) * B)
    torch.testing.assert_close(head(x[mine], y[mine]), _reference_loss(reference, x, y, config["margin"]),
                               **TOL)
    for name, value in head.state_dict().items():
        torch.testing.assert_close(value, saved["state"][name], rtol=0, atol=0)


def _check_ddp_mean_grads(rank, world, group):
    config = CONFIGS["factor"]
    reference = _reference(config)
    head = _sharded_like(reference, config, group, ddp_mean_grads=True)
    x, y = _batch(world, config["classes"])
    x_ref = x.clone().requires_grad_()
    _reference_loss(reference, x_ref, y, 0.0).backward()
    mine = slice(rank * B, (rank + 1) * B)
    x_local = x[mine].clone().requires_grad_()
    head(x_local, y[mine]).backward()
    torch.testing.assert_close(x_local.grad, world * x_ref.grad[mine], **TOL)


def _check_initialization_is_by_global_class(rank, world, group):
    # the same seed on every rank (the usual DDP practice): the shards are the blocks of the
    # single-process head's prototypes, none duplicated (2100 classes span three init blocks)
    for manifold in (None, _manifold()):
        torch.manual_seed(5)
        head = ShardedFAIMHead(D, 2100, manifold, dtype=torch.float64, process_group=group)
        torch.manual_seed(5)
        plain = FAIMHead(D, 2100, _manifold() if manifold is not None else None, dtype=torch.float64)
        name = "prototypes" if manifold is not None else "prototype_coords"
        torch.testing.assert_close(head.state_dict()[name], plain.state_dict()[name], rtol=0, atol=0)


def _check_mismatched_dtypes_raise_on_every_rank(rank, world, group):
    head = ShardedFAIMHead(D, 7, dtype=torch.float64, process_group=group)
    x, y = _batch(1, 7, seed=rank)
    cases = {
        "features": (x.float() if rank == 0 else x, y),
        "labels": (x, y.int() if rank == world - 1 else y),
    }
    for what, (features, labels) in cases.items():
        try:
            head(features, labels)
        except ValueError as err:
            assert f"every rank needs {what} of the same dtype" in str(err), str(err)
        else:
            raise AssertionError(f"rank {rank}: mismatched {what} dtypes did not raise")
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        head(x, y.bool())


def _checks(rank, world, group, save_path=None, load_path=None):
    _check_initialization_is_by_global_class(rank, world, group)
    _check_mismatched_dtypes_raise_on_every_rank(rank, world, group)
    for config in CONFIGS.values():
        _check_loss_and_gradients(rank, world, group, config)
    _check_adam_steps_and_save(rank, world, group, CONFIGS["factor_rank_max_margin"], save_path)
    _check_sampling_keeps_positives(rank, world, group)
    _check_ddp_mean_grads(rank, world, group)
    if load_path is not None:
        _check_load(rank, world, group, load_path)


def _worker(rank, port, path):
    torch.set_num_threads(1)
    # a hung collective fails the test within a minute instead of gloo's default 30 minutes
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=3,
                            timeout=datetime.timedelta(seconds=60))
    try:
        pair = dist.new_group([0, 1])  # every rank takes part in creating it
        if rank < 2:
            _checks(rank, 2, pair, save_path=path)
        dist.barrier()
        _checks(rank, 3, dist.group.WORLD, load_path=path)
    finally:
        dist.destroy_process_group()


def test_one_rank_initializes_exactly_like_faimhead():
    _check_initialization_is_by_global_class(0, 1, None)


def test_world_sizes_2_and_3_match_the_single_process_and_reshard_a_checkpoint(tmp_path):
    # world size 2 (a subgroup) saves after 5 Adam steps; world size 3 loads that checkpoint
    path = str(tmp_path / "head.pt")
    mp.spawn(_worker, args=(_free_port(), path), nprocs=3, join=True)
    assert os.path.exists(path)


# --------------------------------------------------------------------------- single process
def test_shard_range_covers_the_classes_contiguously_with_sizes_within_one():
    for classes in (3, 7, 10, 101):
        for world in range(1, 4):
            ranges = [shard_range(classes, r, world) for r in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == classes
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
            sizes = [stop - start for start, stop in ranges]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="rank"):
        shard_range(5, 2, 2)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_without_process_group_it_is_exactly_faimhead_and_cross_entropy(name):
    config = CONFIGS[name]
    reference = _reference(config)
    head = _sharded_like(reference, config, None)
    assert head.world_size == 1 and (head.class_start, head.class_stop) == (0, config["classes"])
    x, y = _batch(2, config["classes"])
    torch.testing.assert_close(head(x, y), _reference_loss(reference, x, y, config["margin"]), rtol=0, atol=0)


def test_state_dict_without_process_group_loads_into_faimhead_and_old_point_checkpoints():
    config = CONFIGS["factor"]
    reference = _reference(config)
    head = _sharded_like(reference, config, None)
    plain = FAIMHead(D, config["classes"], dtype=torch.float64)
    plain.load_state_dict(head.state_dict())
    x, y = _batch(1, config["classes"])
    torch.testing.assert_close(plain(x), reference(x), rtol=0, atol=0)
    # a checkpoint storing points (`prototypes`) instead of factor coordinates
    old = {k: v for k, v in reference.state_dict().items() if k != "prototype_coords"}
    old["prototypes"] = reference.prototypes.detach()
    fresh = ShardedFAIMHead(D, config["classes"], scale=3.0, dtype=torch.float64)
    fresh.load_state_dict(old)
    torch.testing.assert_close(fresh(x, y), _reference_loss(reference, x, y, 0.0), **TOL)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="margin"):
        ShardedFAIMHead(4, 3, margin=-1.0)
    with pytest.raises(ValueError, match="sample_rate"):
        ShardedFAIMHead(4, 3, sample_rate=0.0)
    with pytest.raises(ValueError, match="reduction"):
        ShardedFAIMHead(4, 3, reduction="max")
    head = ShardedFAIMHead(4, 3)
    with pytest.raises(ValueError, match=r"labels must be classes in \[0, 3\), got values in \[0, 3\]"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="features must be"):
        head(torch.randn(2, 4), torch.tensor([0]))
