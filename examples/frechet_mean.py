r"""Finsler Fréchet means with a geoopt optimizer, checked against scipy.

In a Randers space the distance is asymmetric, so a set of points has two Fréchet means:

* the **forward** mean $\arg\min_x \sum_i d(x \to y_i)^2$, the best *depot* (travel out to
  every point), and
* the **backward** mean $\arg\min_x \sum_i d(y_i \to x)^2$, the best *meeting point*
  (everyone travels in).

Here the metric is Zermelo navigation in a wind (`Randers.from_navigation`): travel time with
a constant wind $W$. The forward mean sits *upwind* of the points (going out is then fast),
the backward mean *downwind*. Both are found by a `geoopt.ManifoldParameter` on the
`Randers` manifold, optimized with `geoopt.optim.RiemannianAdam` and with
`geoopt.optim.RiemannianSGD` (which step along the steepest descent of $F$,
$\ell_x^{-1}(-df) = -$`Randers.egrad2rgrad`). Each result is checked against
`scipy.optimize.minimize` on the same objective written independently in numpy
($F(v) = \sqrt{v^\top a v} + b^\top v$ from the matrices), and the script fails if they differ.

Run:
    python examples/frechet_mean.py            # prints the means, writes outputs/frechet_mean/*.png
    python examples/frechet_mean.py --smoke    # a few seconds, used by the test suite
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import geoopt
import numpy as np
import scipy.optimize
import torch
from _common import output_folder

import finslerlib


def frechet_objective(manifold, x: torch.Tensor, points: torch.Tensor, *, direction: str) -> torch.Tensor:
    """Mean squared forward (`x -> y_i`) or backward (`y_i -> x`) distance."""
    if direction == "forward":
        d = manifold.dist(x.expand_as(points), points)
    else:
        d = manifold.dist(points, x.expand_as(points))
    return (d**2).mean()


def geoopt_frechet_mean(manifold, points, *, direction, optimizer, lr, steps):
    """Minimize the Fréchet objective over a `ManifoldParameter` with a geoopt optimizer."""
    x = geoopt.ManifoldParameter(points.mean(0).clone(), manifold=manifold)
    if optimizer == "adam":
        opt = geoopt.optim.RiemannianAdam([x], lr=lr, betas=(0.9, 0.99))
    else:
        opt = geoopt.optim.RiemannianSGD([x], lr=lr, momentum=0.9)
    # decay the step so Adam's last iterates settle instead of hovering at the scale of lr
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in range(steps):
        opt.zero_grad()
        loss = frechet_objective(manifold, x, points, direction=direction)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        final = frechet_objective(manifold, x, points, direction=direction).item()
    return x.detach().clone(), final


def numpy_randers_norm(v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """$F(v) = \\sqrt{v^T a v} + b^T v$ for rows `v`, written directly from the definition."""
    return np.sqrt(np.einsum("...i,ij,...j->...", v, a, v)) + v @ b


def scipy_frechet_mean(a, b, points, *, direction):
    """Same objective in numpy, minimized by BFGS from the Euclidean mean."""

    def objective(x):
        diff = points - x if direction == "forward" else x - points
        return float(np.mean(numpy_randers_norm(diff, a, b) ** 2))

    res = scipy.optimize.minimize(
        objective, points.mean(0), method="BFGS", options={"gtol": 1e-10, "maxiter": 1000}
    )
    return res.x, res.fun


def plot(path: Path, manifold, points, means: dict[str, np.ndarray], wind: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    ax.scatter(points[:, 0], points[:, 1], s=14, c="0.6", label="points $y_i$")
    styles = {"Euclidean mean": ("k", "P"), "forward mean": ("C3", "o"), "backward mean": ("C0", "s")}
    for name, x in means.items():
        colour, marker = styles[name]
        ax.scatter(*x, s=90, c=colour, marker=marker, label=name, zorder=3, edgecolors="white")
    # the indicatrix {v : F(v) = 1} drawn around the forward mean: the set reached in unit time
    theta = torch.linspace(0, 2 * np.pi, 361, dtype=torch.float64)
    dirs = torch.stack([theta.cos(), theta.sin()], -1)
    radius = 1.0 / manifold.norm(torch.zeros_like(dirs), dirs)
    ring = (dirs * radius[:, None]).numpy() + means["forward mean"]
    ax.plot(
        ring[:, 0], ring[:, 1], c="C3", lw=1, ls="--", label="unit-time set $F(v)=1$\naround the forward mean"
    )
    centre = points.mean(0)
    ax.annotate("", xy=centre + wind, xytext=centre, arrowprops={"arrowstyle": "->", "color": "C2", "lw": 2})
    ax.text(*(centre + wind * 1.05), "wind", color="C2")
    ax.set_aspect("equal")
    ax.set_title("Fréchet means in a wind (Randers metric)\nforward mean upwind, backward mean downwind")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=60, help="number of points (default 60)")
    parser.add_argument("--wind", type=float, default=0.6, help="wind speed |W| < 1 (default 0.6)")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default outputs/<example>/, --smoke runs outputs/smoke/<example>/)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite (seconds)")
    args = parser.parse_args(argv)
    args.out = output_folder("frechet_mean", args.smoke, args.out)
    if args.smoke:
        args.n = 20
    # A 2-D problem: thread start-up and synchronisation cost far more than the arithmetic
    # (10x slower with 2 threads on a busy 2-core machine).
    torch.set_num_threads(1)

    torch.manual_seed(args.seed)
    dtype = torch.float64  # so the comparison with scipy is limited by the optimizers, not rounding
    h = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=dtype)
    # a wind of h-norm args.wind pointing along +x
    wind = torch.tensor([1.0, 0.0], dtype=dtype)
    wind = args.wind * wind / torch.sqrt(wind @ h @ wind)
    manifold = finslerlib.Randers.from_navigation(h, wind)
    points = torch.randn(args.n, 2, dtype=dtype) * torch.tensor([1.5, 0.8], dtype=dtype)
    a_np, b_np, pts_np = manifold.a.numpy(), manifold.b.numpy(), points.numpy()

    print(f"Randers metric from navigation: wind W = {wind.numpy().round(3)}, ")
    print(
        f"  |b|_(a^-1) = {manifold.drift_norm().item():.3f}, max asymmetry F(v)/F(-v) = "
        f"{manifold.max_asymmetry().item():.2f}"
    )
    means = {"Euclidean mean": pts_np.mean(0)}
    results = {}
    for direction in ("forward", "backward"):
        x_ref, f_ref = scipy_frechet_mean(a_np, b_np, pts_np, direction=direction)
        for optimizer, lr in (("adam", 0.2), ("sgd", 0.05)):
            start = time.perf_counter()
            x, f = geoopt_frechet_mean(
                manifold, points, direction=direction, optimizer=optimizer, lr=lr, steps=args.steps
            )
            seconds = time.perf_counter() - start
            err = float(np.linalg.norm(x.numpy() - x_ref))
            print(
                f"{direction:>8} mean, Riemannian{'Adam' if optimizer == 'adam' else 'SGD':4}: "
                f"x = {x.numpy().round(5)}  objective {f:.8f}  | scipy BFGS x = {x_ref.round(5)} "
                f"objective {f_ref:.8f}  | |x - x_scipy| = {err:.1e}  ({seconds:.2f} s)"
            )
            # the objective is strictly convex, so both must find the same minimizer
            if err > 1e-5 or f > f_ref * (1 + 1e-8) + 1e-12:
                raise RuntimeError(
                    f"{direction} mean with {optimizer} disagrees with scipy: |dx| = {err:.2e}, "
                    f"objective {f:.10f} vs {f_ref:.10f}"
                )
            results[(direction, optimizer)] = {"x": x.numpy(), "objective": f, "scipy_x": x_ref, "error": err}
        means[f"{direction} mean"] = results[(direction, "adam")]["x"]

    upwind = float((means["forward mean"] - means["backward mean"]) @ wind.numpy())
    print(
        f"forward mean is {'up' if upwind < 0 else 'down'}wind of the backward mean "
        f"(offset along the wind: {upwind:.3f})"
    )
    figure = args.out / "frechet_mean.png"
    plot(figure, manifold, pts_np, means, wind.numpy())
    print(f"wrote {figure}")
    return {"results": results, "means": means, "upwind_offset": upwind, "figure": figure}


if __name__ == "__main__":
    main()
