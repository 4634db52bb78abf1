"""Zero failures of the Killing-wind root find on 10^5 random pairs per base and rate (issue 20, item 5).

For each base (Sphere(), SphereProjection(k=1), PoincareBall(c=1), Lorentz(k=1)) and each rotation
rate in 0.5 / 0.7 / 0.8 / 0.9 / 0.99, draws `--pairs` random pairs (spread widely over the base,
the wind at most the rate) and counts the pairs whose safeguarded root find did not converge
(`Navigation.solve(...).converged`), with the iteration count and the largest residual. The old
clamped Newton iteration failed on 11 / 104 / 326 / 578 of 10^4 sphere pairs at rates 0.7 to 0.99.

    PYTHONPATH=. python scripts/check_killing_root_find.py [--pairs 100000]

Exits with status 1 if any pair failed.
"""

from __future__ import annotations

import argparse
import sys
import time

import geoopt
import torch

from finslerlib import KillingWind, Navigation

F64 = torch.float64


def generator(rate: float, n: int, seed: int, boost: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, dtype=F64, generator=g)
    a = a - a.T
    if boost:  # a rotation of the hyperboloid (acts on x_1.. only): A^T J + J A = 0
        a[0, :] = 0.0
        a[:, 0] = 0.0
    return rate * a / torch.linalg.matrix_norm(a, ord=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rates", default="0.5,0.7,0.8,0.9,0.99")
    args = parser.parse_args(argv)
    bases = {
        "Sphere()": (lambda: geoopt.Sphere(), 3, 3.0, False),
        "SphereProjection(k=1)": (
            lambda: geoopt.SphereProjection(k=torch.tensor(1.0, dtype=F64)),
            2,
            2.0,
            False,
        ),
        "PoincareBall(c=1)": (lambda: geoopt.PoincareBall(c=torch.tensor(1.0, dtype=F64)), 2, 2.0, False),
        "Lorentz(k=1)": (lambda: geoopt.Lorentz(k=torch.tensor(1.0, dtype=F64)), 3, 2.0, True),
    }
    failures = 0
    for name, (make, n, std, boost) in bases.items():
        for rate in (float(r) for r in args.rates.split(",")):
            m = Navigation(make(), KillingWind(generator(rate, n, seed=int(rate * 100), boost=boost)))
            torch.manual_seed(int(rate * 1000))
            x = m.random(args.pairs, n, dtype=F64, std=std, max_wind=1 - 1e-9).as_subclass(torch.Tensor)
            y = m.random(args.pairs, n, dtype=F64, std=std, max_wind=1 - 1e-9).as_subclass(torch.Tensor)
            start = time.perf_counter()
            sol = m.solve(x, y)
            bad = int((~sol.converged).sum())
            failures += bad
            print(
                f"{name:22s} rate {rate:4.2f}: {bad} failures of {args.pairs}, {sol.iterations} iterations, "
                f"max residual {sol.residual.max().item():.1e}, {time.perf_counter() - start:.1f} s"
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
