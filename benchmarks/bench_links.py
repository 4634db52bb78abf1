"""Training speed of `DirectedGraphEmbedding`: seconds per epoch over 10^5 edges at dimension 16.

Goal (issue 25): an epoch over 10^5 edges in <= 2 s on the CPU, for the Finsler geometries.
The symmetric Euclidean embedding through the same code is the baseline timed in the same run
(ratios are what to compare across machines; the absolute seconds depend on the load, printed
with `uptime`'s averages). Best of `--repeats` one-epoch fits per geometry.

Run:
    python benchmarks/bench_links.py                 # ~1 minute
    python benchmarks/bench_links.py --edges 20000   # quicker
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from finslerlib.embedding import DirectedGraphEmbedding


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--geometries", nargs="+", default=["euclidean", "randers", "learnable", "poincare", "funk"]
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    edges = rng.integers(args.nodes, size=(args.edges, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = {}
    for geometry in args.geometries:
        best = float("inf")
        for r in range(args.repeats):
            model = DirectedGraphEmbedding(
                args.dim, geometry=geometry, epochs=1, batch_size=args.batch_size, random_state=r
            )
            t = time.perf_counter()
            model.fit(edges, args.nodes)
            best = min(best, time.perf_counter() - t)
        out[geometry] = best
    base = out.get("euclidean")
    print(f"load averages {os.getloadavg()}, torch threads {torch.get_num_threads()}")
    print(
        f"{'geometry':<12} {'s/epoch':>8} {'x euclidean':>12}   ({len(edges)} edges, dim {args.dim}, "
        f"batch {args.batch_size}, 5 negatives + reversal)"
    )
    for geometry, sec in out.items():
        ratio = f"{sec / base:.2f}" if base else "-"
        print(f"{geometry:<12} {sec:8.3f} {ratio:>12}")
    return out


if __name__ == "__main__":
    main()
