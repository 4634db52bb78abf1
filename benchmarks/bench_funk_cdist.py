"""Benchmark: `FunkBall.cdist` against `torch.cdist` (Euclidean), same inputs, same run.

Prints the median times and their ratio (bar: <= 3.0 at N = M = 4096, D = 128, float32).
Run: `python benchmarks/bench_funk_cdist.py [--n 4096 --m 4096 --dim 128 --repeats 7]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from finslerlib import FunkBall


def _median_times(fns, *, warmup: int, repeats: int) -> list[float]:
    """Median wall time of each function; runs are interleaved so machine noise hits all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def run(
    n: int = 4096,
    m: int = 4096,
    dim: int = 128,
    *,
    dtype=torch.float32,
    warmup: int = 2,
    repeats: int = 7,
    seed: int = 0,
) -> dict:
    """Time both cdists on the same random points of the ball; returns times and the ratio."""
    torch.manual_seed(seed)
    ball = FunkBall(dim)
    x = ball.random(n, dim, dtype=dtype).as_subclass(torch.Tensor)
    y = ball.random(m, dim, dtype=dtype).as_subclass(torch.Tensor)
    with torch.no_grad():
        t_funk, t_ref = _median_times(
            [lambda: ball.cdist(x, y), lambda: torch.cdist(x, y)], warmup=warmup, repeats=repeats
        )
    return {"funk_s": t_funk, "torch_cdist_s": t_ref, "ratio": t_funk / t_ref}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    res = run(
        args.n, args.m, args.dim, dtype=getattr(torch, args.dtype), warmup=args.warmup, repeats=args.repeats
    )
    print(
        f"FunkBall.cdist vs torch.cdist  N={args.n} M={args.m} D={args.dim} {args.dtype} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"  FunkBall.cdist  {res['funk_s'] * 1e3:9.2f} ms (median of {args.repeats})")
    print(f"  torch.cdist     {res['torch_cdist_s'] * 1e3:9.2f} ms")
    print(f"  ratio           {res['ratio']:9.2f}  (bar <= 3.0)")
    return res


if __name__ == "__main__":
    main()
