"""ShardedFAIMHead on W gloo ranks vs FAIMHead + cross-entropy in one process (CPU).

Usage:
    PYTHONPATH=. python benchmarks/bench_sharded_head.py [--classes 100000 --features 128
        --batch 256 --world-size 2 --steps 5]

One training step = forward, backward and a `RiemannianSGD` step, on the same global batch
(`--batch` rows: split over the ranks, whole in the single process). Printed, as ratios to the
single process timed in the same run:

* prototype memory per rank (the `[C / W, D]` block, float32),
* peak memory per rank: the growth of the process's peak resident set (`ru_maxrss`) over its
  resident set after building the model, i.e. everything a training step allocates,
* time per step (slowest rank; minimum over steps, median printed too), and the CPU time of a
  step (all of a process's threads; the slowest rank), which waiting for a core held by another
  process does not inflate.

Every process runs one thread (`--single-threads W` gives the single process as many cores as
the ranks have together; on a machine shared with other jobs its threads then mostly wait for
each other). gloo moves the data through loopback TCP; see docs/how-to/millions-of-classes.md
for what to expect with NCCL on GPUs.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import time

import geoopt
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as nnf

from finslerlib.nn import FAIMHead, ShardedFAIMHead


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _steps(step, count):
    wall, cpu = [], []
    for _ in range(count):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _run(rank, world, port, args, queue):
    torch.manual_seed(0)
    if world > 1:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        head = ShardedFAIMHead(args.features, args.classes)
        rows = args.batch // world
    else:
        torch.set_num_threads(args.single_threads)
        head = FAIMHead(args.features, args.classes)
        rows = args.batch
    opt = geoopt.optim.RiemannianSGD(head.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.randn(rows, args.features, generator=g)
    y = torch.randint(0, args.classes, (rows,), generator=g)
    base = _rss_mib()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = head(x, y) if world > 1 else nnf.cross_entropy(head(x), y)
        loss.backward()
        opt.step()
        if world > 1:
            dist.barrier()

    _steps(step, 2)  # warm-up
    times, cpu = _steps(step, args.steps)
    stored = head._stored_prototypes()
    queue.put({
        "rank": rank,
        "prototype_mib": stored.numel() * stored.element_size() / 2**20,
        "peak_growth_mib": _peak_mib() - base,
        "times": times,
        "cpu": cpu,
    })
    if world > 1:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classes", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--batch", type=int, default=256, help="global batch")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--single-threads", type=int, default=1, help="threads of the single process")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    results = {}
    for world in (1, args.world_size):
        queue = ctx.Queue()
        port = _free_port()
        procs = [ctx.Process(target=_run, args=(r, world, port, args, queue)) for r in range(world)]
        for p in procs:
            p.start()
        reports = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        per_step = [max(step) for step in zip(*(r["times"] for r in reports), strict=True)]
        results[world] = {
            "prototype_mib": max(r["prototype_mib"] for r in reports),
            "peak_growth_mib": max(r["peak_growth_mib"] for r in reports),
            "min_s": min(per_step),
            "median_s": statistics.median(per_step),
            "cpu_s": min(max(step) for step in zip(*(r["cpu"] for r in reports), strict=True)),
        }
    one, many = results[1], results[args.world_size]
    print(f"C={args.classes} D={args.features} global B={args.batch} float32, "
          f"forward+backward+RiemannianSGD step, CPU, gloo")
    print(f"{'':26s} {'prototypes MiB':>15s} {'peak growth MiB':>16s} {'min s/step':>11s} {'median':>8s}"
          f" {'CPU s/step':>11s}")
    for name, r in (("one process", one), (f"{args.world_size} ranks (per rank)", many)):
        print(f"{name:26s} {r['prototype_mib']:15.1f} {r['peak_growth_mib']:16.1f} {r['min_s']:11.3f} "
              f"{r['median_s']:8.3f} {r['cpu_s']:11.3f}")
    print(f"per-rank / one process: prototypes {many['prototype_mib'] / one['prototype_mib']:.2f}x, "
          f"peak memory {many['peak_growth_mib'] / one['peak_growth_mib']:.2f}x, "
          f"time per step {many['min_s'] / one['min_s']:.2f}x "
          f"(median {many['median_s'] / one['median_s']:.2f}x), CPU time per step "
          f"{many['cpu_s'] / one['cpu_s']:.2f}x")
    return results


if __name__ == "__main__":
    main()
