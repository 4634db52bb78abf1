"""Killing-wind `Navigation.dist` on the sphere versus `geoopt.Sphere.dist` and the numerical solver.

The metric is Zermelo navigation on $S^2$ in a steady rotational wind $W(x) = A x$ (a rotation of
rate `--rate` about a tilted axis, `KillingWind`). Three contenders, timed in the same run on ONE
core (the process pins itself to a single CPU and sets one torch thread):

* `geoopt.Sphere().dist`: the Riemannian distance of the base (one arccos per pair), the floor;
* `Navigation(Sphere(), KillingWind(A)).dist`: the exact distance, a batched safeguarded Newton
  root find of $d_h(x, e^{-TA} y) = T$ per pair to dtype precision;
* `Navigation(Sphere(), lambda x: x @ A.T, dim=2).dist`: the same wind as a plain callable, so
  the numerical path (RK4 shooting in the stereographic chart, `--steps` steps) on `--num-pairs`
  of the pairs; its time is scaled per pair.

Printed: seconds per call, the ratios (exact / Sphere.dist, numerical / exact per pair) and the
largest |exact - numerical| difference (the numerical solver's error).

    PYTHONPATH=. python benchmarks/bench_navigation.py [--pairs 4096] [--num-pairs 64] [--rate 0.5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import time  # noqa: E402

import geoopt  # noqa: E402
import torch  # noqa: E402

from finslerlib import KillingWind, Navigation  # noqa: E402


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (caches, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=4096)
    parser.add_argument("--num-pairs", type=int, default=64, help="pairs given to the numerical solver")
    parser.add_argument("--rate", type=float, default=0.5, help="rotation rate |A| (< 1: all of S^2)")
    parser.add_argument("--steps", type=int, default=16, help="RK4 steps of the numerical solver")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    dtype = torch.float64
    axis = torch.tensor([0.3, -0.2, 1.0], dtype=dtype)
    axis = axis / axis.norm()
    a = args.rate * torch.tensor(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]], dtype=dtype
    )
    sphere = geoopt.Sphere()
    exact = Navigation(sphere, KillingWind(a))
    numerical = Navigation(sphere, lambda x: x @ a.T, dim=2, steps=args.steps)

    # points in the open hemisphere around e_0 for the numerical solver's stereographic chart
    x = exact.random(args.pairs, 3, dtype=dtype, std=0.8).as_subclass(torch.Tensor)
    y = exact.random(args.pairs, 3, dtype=dtype, std=0.8).as_subclass(torch.Tensor)
    k = args.num_pairs
    with torch.no_grad():
        t_base = best_time(lambda: sphere.dist(x, y), args.repeats)
        t_exact = best_time(lambda: exact.dist(x, y), args.repeats)
        t_exact_k = best_time(lambda: exact.dist(x[:k], y[:k]), args.repeats)
        start = time.perf_counter()
        d_num = numerical.dist(x[:k], y[:k])
        t_num_k = time.perf_counter() - start
        d_exact = exact.dist(x, y)
        report = exact.solve(x, y)
    err = (d_exact[:k] - d_num).abs().max().item()
    per_pair_exact = t_exact / args.pairs
    per_pair_num = t_num_k / k
    print(f"sphere S^2, rotation rate {args.rate}, {args.pairs} pairs, float64, 1 thread")
    print(f"  geoopt.Sphere.dist          {t_base * 1e3:9.3f} ms")
    print(
        f"  Navigation (Killing) dist   {t_exact * 1e3:9.3f} ms   "
        f"(Newton iterations {report.iterations}, max residual {report.residual.max().item():.1e})"
    )
    print(f"  Navigation (numerical) dist {t_num_k * 1e3:9.3f} ms for {k} pairs (RK4 {args.steps} steps)")
    print(f"  exact on the same {k} pairs  {t_exact_k * 1e3:9.3f} ms")
    print(f"  ratio exact / Sphere.dist:               {t_exact / t_base:8.1f}x   (goal <= 20x)")
    print(f"  ratio numerical / exact, per pair:       {per_pair_num / per_pair_exact:8.0f}x   (goal > 100x)")
    print(f"  ratio numerical / exact, same {k} pairs: {t_num_k / t_exact_k:8.0f}x")
    print(f"  max |exact - numerical| = {err:.2e} (the numerical solver's error at {args.steps} steps)")
    return {"vs_sphere": t_exact / t_base, "vs_numerical": per_pair_num / per_pair_exact, "error": err}


if __name__ == "__main__":
    main()
