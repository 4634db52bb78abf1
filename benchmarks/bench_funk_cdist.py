"""Benchmark: `FunkBall.cdist` against `torch.cdist` (Euclidean), same inputs, same run.

Prints the best-of-N times (runs interleaved, so machine noise hits both alike) and the ratios,
inference (`torch.no_grad()`) and forward + backward (goal <= 1.3x at N = M = 4096, D = 128,
float32), and records them for `make bench`.

Usage:
    PYTHONPATH=. python benchmarks/bench_funk_cdist.py [--n 4096 --m 4096 --dim 128 --repeats 9]
        [--threads T] [--device cpu]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _record import record  # noqa: E402
from bench_randers_cdist import best_times, fwd_bwd  # noqa: E402

from finslerlib import FunkBall  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--m", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype, device = getattr(torch, args.dtype), torch.device(args.device)
    torch.manual_seed(0)
    ball = FunkBall(args.dim)
    x = ball.random(args.n, args.dim, dtype=dtype).as_subclass(torch.Tensor).to(device)
    y = ball.random(args.m, args.dim, dtype=dtype).as_subclass(torch.Tensor).to(device)
    timing = {"warmup": args.warmup, "repeats": args.repeats, "device": device}
    with torch.no_grad():
        t_ref, t_funk = best_times([lambda: torch.cdist(x, y), lambda: ball.cdist(x, y)], **timing)
    b_ref, b_funk = best_times([fwd_bwd(torch.cdist, x, y), fwd_bwd(ball.cdist, x, y)], **timing)
    print(
        f"FunkBall.cdist vs torch.cdist  N={args.n} M={args.m} D={args.dim} {args.dtype} on {device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"  inference    {t_funk * 1e3:9.2f} ms vs {t_ref * 1e3:9.2f} ms   ratio {t_funk / t_ref:5.2f}")
    print(f"  fwd+bwd      {b_funk * 1e3:9.2f} ms vs {b_ref * 1e3:9.2f} ms   ratio {b_funk / b_ref:5.2f}")
    size = (
        f"N = M = {args.n}, D = {args.dim}, {args.dtype}"
        if args.n == args.m
        else f"{args.n} x {args.m} x {args.dim}"
    )
    where = "" if device.type == "cpu" else f" on {device.type}"
    for name, ratio in (("FunkBall.cdist", t_funk / t_ref), ("FunkBall.cdist fwd+bwd", b_funk / b_ref)):
        record(
            name + where,
            ratio,
            script="benchmarks/bench_funk_cdist.py",
            baseline=f"torch.cdist, {size}",
            bar_op="<=",
            bar=1.3,
        )
    return {"ratio": t_funk / t_ref, "ratio_fwd_bwd": b_funk / b_ref}


if __name__ == "__main__":
    main()
