"""FAIM margin training under DistributedDataParallel: 2 gloo ranks, small sizes, a free port.

Oracle: DDP's contract itself. Both ranks start from the same weights and see different data;
when gradients are all-reduced the ranks' parameters stay bit-identical after every step. The
same harness run on the margin computed outside the module's forward (what
`FAIMMarginLoss(bare_head)` did) shows the drift it detects, so the check can fail.
"""

from __future__ import annotations

import datetime
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as nnf
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from finslerlib.nn import FAIMHead, FAIMMarginLoss, functional

STEPS = 3


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(6, 5)
        self.head = FAIMHead(5, 3, margin=0.3)

    def forward(self, x, labels=None):
        return self.head(self.body(x), labels)


def _batch(rank, step):
    g = torch.Generator().manual_seed(1000 * rank + step)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def _train(rank, path):
    """Each scenario: same initial weights on both ranks, different data, a few SGD steps."""
    results = {}
    for scenario in ("forward_labels", "loss_on_wrapped_head", "bypass"):
        torch.manual_seed(0)
        net = _Net()
        if scenario == "loss_on_wrapped_head":
            ddp_head = DistributedDataParallel(net.head)
            criterion = FAIMMarginLoss(ddp_head, margin=0.3)
            params = list(net.parameters())
        else:
            ddp = DistributedDataParallel(net)
            params = list(ddp.parameters())
        opt = torch.optim.SGD(params, lr=0.5)
        for step in range(STEPS):
            x, y = _batch(rank, step)
            opt.zero_grad()
            if scenario == "forward_labels":
                loss = nnf.cross_entropy(ddp(x, y), y)
            elif scenario == "loss_on_wrapped_head":
                loss = criterion(net.body(x), y)  # the body is not wrapped: keep it fixed here
                net.body.zero_grad()
            else:  # the margin computed outside DDP.forward, as the old loss did
                d = net.head.distances(net.body(x))
                loss = functional.margin_loss(d, y, scale=net.head.scale, margin=0.3)
            loss.backward()
            if scenario == "loss_on_wrapped_head":
                net.body.weight.grad = net.body.bias.grad = None
            opt.step()
        results[scenario] = {k: v.detach().clone() for k, v in net.state_dict().items()}
    try:
        FAIMMarginLoss(_Net().head)(torch.randn(2, 5), torch.tensor([0, 1]))
        results["bare_head_error"] = None
    except RuntimeError as err:
        results["bare_head_error"] = str(err)
    torch.save(results, os.path.join(path, f"rank{rank}.pt"))


def _worker(rank, world, port, path):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    # a hung collective fails the test within a minute instead of gloo's default 30 minutes
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        _train(rank, path)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_margin_training_under_ddp_keeps_ranks_identical(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for scenario in ("forward_labels", "loss_on_wrapped_head"):
        for key, value in r0[scenario].items():
            assert torch.equal(value, r1[scenario][key]), f"{scenario}: {key} differs between ranks"
        # and training did move the head (the check is not vacuous)
        assert not torch.equal(r0[scenario]["head.prototype_coords"], _initial_prototypes())
    drift = max((r0["bypass"][k] - r1["bypass"][k]).abs().max().item() for k in r0["bypass"])
    assert drift > 1e-3, "the harness must detect unsynchronized gradients"
    for r in (r0, r1):
        assert r["bare_head_error"] is not None and "bypass DistributedDataParallel" in r["bare_head_error"]


def _initial_prototypes():
    torch.manual_seed(0)
    return _Net().head.prototype_coords.detach()  # the stored parameter (factor coordinates)
