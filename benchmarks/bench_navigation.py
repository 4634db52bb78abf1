"""Killing-wind `Navigation.dist` on the sphere versus `geoopt.Sphere.dist` and the numerical solver.

The metric is Zermelo navigation on $S^2$ in a steady rotational wind $W(x) = A x$ (a rotation of
rate `--rate` about a tilted axis, `KillingWind`). Three contenders, timed in the same run on ONE
core (the process pins itself to a single CPU and sets one torch thread):

* `geoopt.Sphere().dist`: the Riemannian distance of the base (one arccos per pair), the floor;
* `Navigation(Sphere(), KillingWind(A)).dist`: the exact distance, a batched safeguarded Newton
  root find of $d_h(x, e^{-TA} y) = T$ per pair to dtype precision;
* `Navigation(Sphere(), lambda x: x @ A.T, dim=2).dist`: the same wind as a plain callable, so
  the numerical path (RK4 shooting in the stereographic chart, `--steps` steps) on `--num-pairs`
  of the pairs.

Printed: milliseconds per call (best of `--repeats`) and the ratios (wall and CPU time; on a
loaded machine the CPU-time ratio is the more stable one), exact / Sphere.dist for each batch size in
`--pairs`, numerical / exact on the same `--num-pairs` pairs and per pair, and the largest
|exact - numerical| difference (the numerical solver's error).

    PYTHONPATH=. python benchmarks/bench_navigation.py [--pairs 4096,65536] [--num-pairs 16] [--rate 0.5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import geoopt  # noqa: E402
import torch  # noqa: E402

from finslerlib import KillingWind, Navigation  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _record import record  # noqa: E402

SCRIPT = "benchmarks/bench_navigation.py"


def best_time(fn, repeats: int, clock=time.perf_counter) -> float:
    fn()  # warm-up (caches, allocator)
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", default="4096,20000,65536", help="comma-separated batch sizes")
    parser.add_argument(
        "--num-pairs", type=int, default=16, help="pairs given to the numerical solver (0: skip it)"
    )
    parser.add_argument("--rate", type=float, default=0.5, help="rotation rate |A| (< 1: all of S^2)")
    parser.add_argument("--steps", type=int, default=16, help="RK4 steps of the numerical solver")
    parser.add_argument("--std", type=float, default=0.6, help="spread of the points around e_0")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where the Killing distances run (float64)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    dtype = torch.float64
    device = torch.device(args.device)
    axis = torch.tensor([0.3, -0.2, 1.0], dtype=dtype)
    axis = axis / axis.norm()
    a = args.rate * torch.tensor(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]], dtype=dtype
    )
    sphere = geoopt.Sphere()
    exact = Navigation(sphere, KillingWind(a.to(device)))
    numerical = Navigation(sphere, lambda x: x @ a.T, dim=2, steps=args.steps)
    sizes = [int(n) for n in str(args.pairs).split(",")]
    # points around e_0, away from the numerical solver's chart pole -e_0 (see the concept page)
    x = exact.random(max(sizes), 3, dtype=dtype, std=args.std).as_subclass(torch.Tensor)
    y = exact.random(max(sizes), 3, dtype=dtype, std=args.std).as_subclass(torch.Tensor)
    x, y = x.to(device), y.to(device)
    where = "" if device.type == "cpu" else f", {device.type}"
    print(f"sphere S^2, rotation rate {args.rate}, float64, 1 thread; best of {args.repeats}")
    out = {"vs_sphere": {}}
    with torch.no_grad():
        for n in sizes:
            xs, ys = x[:n], y[:n]
            t_base = best_time(lambda xs=xs, ys=ys: sphere.dist(xs, ys), args.repeats)
            t_exact = best_time(lambda xs=xs, ys=ys: exact.dist(xs, ys), args.repeats)
            c_base = best_time(lambda xs=xs, ys=ys: sphere.dist(xs, ys), args.repeats, time.process_time)
            c_exact = best_time(lambda xs=xs, ys=ys: exact.dist(xs, ys), args.repeats, time.process_time)
            report = exact.solve(xs, ys)
            print(
                f"  {n:6d} pairs: geoopt.Sphere.dist {t_base * 1e3:8.3f} ms, Navigation (Killing) dist "
                f"{t_exact * 1e3:8.3f} ms ({report.iterations} Newton iterations, max residual "
                f"{report.residual.max().item():.1e})  ratio {t_exact / t_base:6.1f}x wall, "
                f"{c_exact / c_base:6.1f}x CPU   (goal <= 10x)"
            )
            out["vs_sphere"][n] = t_exact / t_base
            record(f"Navigation(Sphere, KillingWind).dist, {n:,} pairs{where}", t_exact / t_base,
                   script=SCRIPT, baseline=f"geoopt.Sphere.dist, same pairs, float64, 1 thread{where}",
                   bar_op="<=", bar=10.0)
        if device.type != "cpu":
            return out
        k = args.num_pairs
        if k <= 0:
            return out
        t_exact_k = best_time(lambda: exact.dist(x[:k], y[:k]), args.repeats)
        start = time.perf_counter()
        d_num = numerical.dist(x[:k], y[:k])
        t_num_k = time.perf_counter() - start
        err = (exact.dist(x[:k], y[:k]) - d_num).abs().max().item()
    with torch.no_grad():
        per_pair_exact = best_time(lambda: exact.dist(x, y), 3) / x.shape[0]
    print(
        f"  numerical solver (RK4 {args.steps} steps, shooting): {t_num_k * 1e3:.1f} ms for {k} pairs; "
        f"exact on the same {k} pairs {t_exact_k * 1e3:.3f} ms"
    )
    print(
        f"  ratio numerical / exact, same {k} pairs:            {t_num_k / t_exact_k:8.0f}x   (goal > 100x)"
    )
    print(f"  ratio numerical / exact, per pair (exact batched): {t_num_k / k / per_pair_exact:8.0f}x")
    print(f"  max |exact - numerical| = {err:.2e} (the numerical solver's error at {args.steps} steps)")
    out.update(vs_numerical=t_num_k / t_exact_k, error=err)
    record("Navigation KillingWind dist speed-up over the numerical solver", t_num_k / t_exact_k,
           script=SCRIPT, baseline=f"the same wind as a callable, {k} pairs, RK4 {args.steps} steps",
           bar_op=">=", bar=100.0, note=f"max difference {err:.1e}")
    return out


if __name__ == "__main__":
    main()
