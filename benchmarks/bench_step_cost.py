r"""Benchmark: the cost of one `RiemannianAdam` step on a `RandersField` against the same step on
the flat base (`geoopt.Euclidean`), timed in the same run.

The problem is `bench_finsler_descent.py`'s `field-quadratic` (a strong rotating drift,
$|b| = 0.9$, $f(x) = |x - c|^2$), on `--points` points at once. The field runs with the default
parallel transport (one RK4 step of the Chern transport) and with `renormalized_transport`, with
its input validation on (the default) and off. The clock is the thread's CPU time (robust on a
shared machine), best of `--repeats`.

Run: `python benchmarks/bench_step_cost.py [--points 1] [--steps 100] [--repeats 7]`.
"""

from __future__ import annotations

import argparse
import time

import geoopt
import torch
from _record import record
from bench_finsler_descent import problems

from finslerlib.manifolds import renormalized_transport


def step_time(manifold, f, start, steps: int) -> float:
    """Thread CPU seconds per `RiemannianAdam` step (after 5 warm-up steps)."""
    x = geoopt.ManifoldParameter(start.clone(), manifold=manifold)
    opt = geoopt.optim.RiemannianAdam([x], lr=0.01)
    for i in range(steps + 5):
        if i == 5:
            t0 = time.thread_time()
        opt.zero_grad()
        f(x).backward()
        opt.step()
    return (time.thread_time() - t0) / steps


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    field, f, _, start, _ = problems()["field-quadratic"]
    gen = torch.Generator().manual_seed(0)
    start = start + 0.3 * torch.randn(args.points, 2, dtype=torch.float64, generator=gen)
    variants = {
        "parallel transport (default)": (None, True),
        "renormalized_transport": (renormalized_transport, True),
        "renormalized_transport, validate=False": (renormalized_transport, False),
    }
    best = {"Euclidean": float("inf"), **{k: float("inf") for k in variants}}
    for _ in range(args.repeats):
        best["Euclidean"] = min(best["Euclidean"], step_time(geoopt.Euclidean(), f, start, args.steps))
        for name, (transport, validate) in variants.items():
            field.vector_transport, field.validate = transport, validate
            steps = max(args.steps // 20, 3) if transport is None else args.steps
            best[name] = min(best[name], step_time(field, f, start, steps))
    print(f"RiemannianAdam step, {args.points} point(s) in R^2, thread CPU time, best of {args.repeats}")
    for name, t in best.items():
        print(f"  {name:<42}{t * 1e3:9.3f} ms   ratio {t / best['Euclidean']:7.1f}")
    baseline = f"the same RiemannianAdam step on geoopt.Euclidean, {args.points} point(s), thread CPU time"
    for name in ("parallel transport (default)", "renormalized_transport"):
        record(f"RandersField RiemannianAdam step, {name}, validated", best[name] / best["Euclidean"],
               script="benchmarks/bench_step_cost.py", baseline=baseline, bar_op="<=", bar=5.0)
    return best


if __name__ == "__main__":
    main()
