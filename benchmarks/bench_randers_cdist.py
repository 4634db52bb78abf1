"""Benchmark: `Randers.cdist` against `torch.cdist`, measured in the same run.

A general SPD `a` (eigenvalues spread over [1/e, e]) with a drift ||b||_{a^-1} = 0.7, and the
learnable metric. Prints best-of-N times (runs interleaved, so machine noise hits all alike) and
the ratios to `torch.cdist`, inference (`torch.no_grad()`) and forward + backward (goal <= 1.3x at
N = M = 4096, D = 128, float32), and records them for `make bench`.

Usage:
    PYTHONPATH=. python benchmarks/bench_randers_cdist.py [--n 4096] [--m 4096] [--dim 128]
        [--dtype float32] [--drift 0.7] [--repeats 9] [--warmup 1] [--threads T] [--device cpu]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _record import record  # noqa: E402

from finslerlib import Randers  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(fns, *, repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Best wall time of each function over `repeats` interleaved rounds after `warmup` rounds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def fwd_bwd(cdist, x, y):
    """A function timing `cdist(x, y).sum().backward()` on leaf copies of `x` and `y`."""
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()

    def step():
        xg.grad = yg.grad = None
        cdist(xg, yg).sum().backward()

    return step


def random_randers(dim: int, *, dtype, device, drift: float = 0.7, seed: int = 0) -> Randers:
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
    parser.add_argument("--drift", type=float, default=0.7, help="||b||_{a^-1} of the general metric")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(args.n, args.dim, generator=gen).to(dtype=dtype, device=device)
    y = torch.randn(args.m, args.dim, generator=gen).to(dtype=dtype, device=device)
    metrics = {
        f"Randers.cdist (general a, drift {args.drift:g})": random_randers(
            args.dim, dtype=dtype, device=device, drift=args.drift
        ),
        "Randers.learnable().cdist": Randers.learnable(args.dim, dtype=dtype, device=device),
    }
    timing = {"repeats": args.repeats, "warmup": args.warmup, "device": device}
    print(
        f"cdist N={args.n} M={args.m} D={args.dim} {args.dtype} on {device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeats}"
    )
    results = {}
    with torch.no_grad():
        base, *times = best_times(
            [lambda: torch.cdist(x, y)] + [lambda m=m: m.cdist(x, y) for m in metrics.values()], **timing
        )
    print(f"  torch.cdist                    {base * 1e3:9.2f} ms   (baseline)")
    for name, t in zip(metrics, times, strict=True):
        results[name] = t / base
        print(f"  {name:45s} {t * 1e3:9.2f} ms   ratio {t / base:5.2f}")
    base, *times = best_times(
        [fwd_bwd(torch.cdist, x, y)] + [fwd_bwd(m.cdist, x, y) for m in metrics.values()], **timing
    )
    print(f"  torch.cdist fwd+bwd            {base * 1e3:9.2f} ms   (baseline)")
    for name, t in zip(metrics, times, strict=True):
        results[name + " fwd+bwd"] = t / base
        print(f"  {name + ' fwd+bwd':45s} {t * 1e3:9.2f} ms   ratio {t / base:5.2f}")
    where = "" if device.type == "cpu" else f" on {device.type}"
    for name, ratio in results.items():
        record(
            name + where,
            ratio,
            script="benchmarks/bench_randers_cdist.py",
            baseline=f"torch.cdist, N = {args.n}, M = {args.m}, D = {args.dim}, {args.dtype}",
            bar_op="<=",
            bar=1.3,
        )
    return results


if __name__ == "__main__":
    main()
