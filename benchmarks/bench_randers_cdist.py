"""Benchmark: `Randers.cdist` against `torch.cdist`, measured in the same run.

Prints the median wall time of each and the ratio `Randers.cdist / torch.cdist` (bar: <= 2.0 at
N = M = 4096, D = 128, float32). Both run under `torch.no_grad()` (inference), after warmup; the
forward+backward ratio is printed too, for information.

Usage:
    PYTHONPATH=. python benchmarks/bench_randers_cdist.py [--n 4096] [--m 4096] [--dim 128]
        [--dtype float32] [--repeats 9] [--warmup 2] [--threads T] [--device cpu] [--backward]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from finslerlib import Randers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, *, repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of `fn()` over `repeats` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_randers(dim: int, *, dtype, device, drift: float = 0.5, seed: int = 0) -> Randers:
    """A Randers metric with a random well-conditioned `a` and `||b||_{a^-1} = drift`."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    eig = torch.exp(torch.empty(dim, dtype=torch.float64).uniform_(-1.0, 1.0, generator=gen))
    a = (q * eig) @ q.T
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    b = torch.linalg.cholesky(a) @ (drift * w / w.norm())
    return Randers(a.to(dtype), b.to(dtype)).to(device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4096, help="number of source points N")
    parser.add_argument("--m", type=int, default=4096, help="number of target points M")
    parser.add_argument("--dim", type=int, default=128, help="dimension D")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backward", action="store_true", help="also time forward + backward")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.n, args.dim, generator=gen).to(dtype=dtype, device=device)
    y = torch.randn(args.m, args.dim, generator=gen).to(dtype=dtype, device=device)
    metrics = {
        "Randers": random_randers(args.dim, dtype=dtype, device=device),
        "Randers.learnable": Randers.learnable(args.dim, dtype=dtype, device=device),
    }
    timing = {"repeats": args.repeats, "warmup": args.warmup, "device": device}

    print(
        f"cdist N={args.n} M={args.m} D={args.dim} {args.dtype} on {device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    results = {}
    with torch.no_grad():
        base = median_time(lambda: torch.cdist(x, y), **timing)
        print(f"  torch.cdist                    {base * 1e3:9.2f} ms   (baseline)")
        for name, m in metrics.items():
            t = median_time(lambda m=m: m.cdist(x, y), **timing)
            results[name] = t / base
            print(f"  {name + '.cdist':30s} {t * 1e3:9.2f} ms   ratio {t / base:5.2f}  (bar <= 2.0)")

    if args.backward:
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()

        def fwd_bwd(fn):
            xg.grad = yg.grad = None
            fn(xg, yg).sum().backward()

        base = median_time(lambda: fwd_bwd(torch.cdist), **timing)
        print(f"  torch.cdist fwd+bwd            {base * 1e3:9.2f} ms   (baseline)")
        for name, m in metrics.items():
            t = median_time(lambda m=m: fwd_bwd(m.cdist), **timing)
            results[name + " fwd+bwd"] = t / base
            print(f"  {name + '.cdist fwd+bwd':30s} {t * 1e3:9.2f} ms   ratio {t / base:5.2f}")
    return results


if __name__ == "__main__":
    main()
