"""Benchmark: `flag_curvature` of a D = 16 `RandersField` at 1,000 points, against the spray.

The baseline, timed in the same run on the same points, is one evaluation of the geodesic spray
$G(x, y)$ (`finslerlib.curvature.spray`: one jvp and one vjp of the user's fields): the flag
curvature needs second directional derivatives of it, so its cost in sprays is the figure of merit
(bar: <= 25 sprays). Also printed: the absolute time (bar: a few seconds on one CPU thread) and the
full `[D, D]` operator `riemann_curvature` (D columns). The fields are MLP-like:
$a(x) = I + 0.3\\, s s^\\top$, $s = \\tanh(W_1 x)$, $b(x) = 0.3 \\tanh(W_2 x)/\\sqrt{D}$.
Run: `python benchmarks/bench_curvature.py [--n 1000 --dim 16 --repeats 3 --threads 1]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from finslerlib import RandersField
from finslerlib.curvature import flag_curvature, riemann_curvature, spray


def _median(fn, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_field(dim: int, seed: int = 0) -> RandersField:
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5
    w2 = torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim**0.5

    def a(x):
        s = torch.tanh(x @ w1.T.to(x.dtype))
        return torch.eye(dim, dtype=x.dtype) + 0.3 * s[..., :, None] * s[..., None, :]

    return RandersField(a=a, b=lambda x: 0.3 * torch.tanh(x @ w2.T.to(x.dtype)) / dim**0.5, dim=dim)


def run(n: int = 1000, dim: int = 16, *, dtype=torch.float64, warmup: int = 1, repeats: int = 3) -> dict:
    field = make_field(dim)
    gen = torch.Generator().manual_seed(1)
    x, y, v = (torch.randn(n, dim, generator=gen, dtype=torch.float64).to(dtype) for _ in range(3))
    t_spray = _median(lambda: spray(field, x, y), warmup=warmup, repeats=repeats)
    t_flag = _median(lambda: flag_curvature(field, x, y, v), warmup=warmup, repeats=repeats)
    t_full = _median(lambda: riemann_curvature(field, x[: n // 10], y[: n // 10]), warmup=0, repeats=1)
    return {"spray": t_spray, "flag": t_flag, "riemann_per_100": t_full, "ratio": t_flag / t_spray}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for dtype in (torch.float64, torch.float32):
        r = run(args.n, args.dim, dtype=dtype, repeats=args.repeats)
        print(
            f"{str(dtype):14s} N={args.n} D={args.dim}: flag_curvature {r['flag']:.3f} s, spray "
            f"{r['spray']:.3f} s, ratio {r['ratio']:.1f}x (bar <= 25x); riemann_curvature [D, D] at "
            f"{args.n // 10} points {r['riemann_per_100']:.3f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
