r"""Define your own position-dependent Randers metric and verify it with `finslerlib.testing`.

The metric models travel across a river with a current: $F(x, v) = \sqrt{v^\top a(x) v} + b(x)^\top v$
with

* $a(x) = (1 + |x|^2 / 4)\, I$: moving gets slower away from the origin (a conformal factor);
* $b(x) = -s\, e^{-x_2^2}\, e_1$: a drift along the $x_1$ axis, strongest on the line $x_2 = 0$.
  Since $b$ enters as $+b^\top v$, travelling *with* the current ($v_1 > 0$) is cheaper.
  $\|b(x)\|_{a(x)^{-1}} \le s < 1$ everywhere, so the metric is strongly convex.

`finslerlib.RandersField(a=..., b=..., dim=2)` turns the two callables into a full manifold:
closed-form pointwise quantities, and numerically computed geodesics (`expmap` integrates them,
`logmap`/`dist` solve the boundary-value problem). The script then

1. runs `finslerlib.testing.check_manifold` on it, with points drawn from the square
   $[-2, 2]^2$ where the metric is used: the Finsler laws (positivity, homogeneity,
   convexity, duality, Legendre maps, exp/log inverse, $F(x, \log_x y) = d(x \to y)$, ...);
2. shows the kit catching a plausible bug: a subclass whose `dist` uses the straight segment
   instead of the geodesic;
3. prints forward and backward distances across the river (they differ), checks each against the
   length of the straight segment computed by quadrature (a geodesic is never longer), and plots
   both geodesics to `outputs/custom_field/custom_field.png`.

Run:
    python examples/custom_field.py            # all 20 laws (under a minute)
    python examples/custom_field.py --smoke    # a subset of the laws, a few seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import output_folder

import finslerlib
from finslerlib.testing import check_manifold

# the pointwise laws and one geodesic law: fast enough for the smoke run
SMOKE_PROPERTIES = [
    "sampling",
    "norm_positive",
    "norm_homogeneous",
    "norm_triangle",
    "strong_convexity",
    "dual_norm",
    "legendre",
    "finsler_gradient",
    "exp_log_inverse",
]


def river_metric(strength: float):
    """`a(x)`, `b(x)` of the river metric as plain callables on `[..., 2]` tensors."""

    def a(x: torch.Tensor) -> torch.Tensor:
        conformal = 1 + (x * x).sum(-1) / 4
        return conformal[..., None, None] * torch.eye(2, dtype=x.dtype, device=x.device)

    def b(x: torch.Tensor) -> torch.Tensor:
        current = -strength * torch.exp(-(x[..., 1] ** 2))
        return torch.stack([current, torch.zeros_like(current)], -1)

    return a, b


def straight_length(field, x: torch.Tensor, y: torch.Tensor, nodes: int = 64) -> torch.Tensor:
    r"""$\int_0^1 F(x + t(y - x), y - x)\, dt$ by Gauss–Legendre quadrature: the straight path's length.

    `x`, `y`: `[..., D]` (broadcast); returns `[...]`.
    """
    t, w = np.polynomial.legendre.leggauss(nodes)
    t = torch.as_tensor((t + 1) / 2, dtype=x.dtype, device=x.device)
    w = torch.as_tensor(w / 2, dtype=x.dtype, device=x.device)
    x, y = torch.broadcast_tensors(x, y)
    u = (y - x).unsqueeze(-2)  # [..., 1, D]
    path = x.unsqueeze(-2) + t[:, None] * u  # [..., nodes, D]
    return (field.norm(path, u.expand_as(path)) * w).sum(-1)


class StraightLineField(finslerlib.RandersField):
    """A plausible bug: `dist` as the length of the straight segment, not of the geodesic."""

    def dist(self, x, y, *, keepdim=False, **options):
        d = straight_length(self, x, y)
        return d.unsqueeze(-1) if keepdim else d


def plot(path: Path, field, x, y, forward, backward) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    g1, g2 = np.meshgrid(np.linspace(-2.5, 2.5, 21), np.linspace(-2.2, 2.2, 17))
    grid = torch.as_tensor(np.stack([g1, g2], -1))
    _, b = field.coefficients(grid)
    b = b.detach().numpy()
    # the current flows against b (b^T v < 0 is cheap): draw -b
    ax.quiver(g1, g2, -b[..., 0], -b[..., 1], color="0.7", scale=12, width=0.003, label="current ($-b(x)$)")
    ax.plot(*np.stack([x, y]).T, c="k", ls=":", lw=1.5, label="straight segment")
    ax.plot(forward[:, 0], forward[:, 1], c="C3", lw=2, label="geodesic $x \\to y$")
    ax.plot(backward[:, 0], backward[:, 1], c="C0", lw=2, label="geodesic $y \\to x$")
    ax.scatter(*x, c="k", zorder=3)
    ax.scatter(*y, c="k", zorder=3)
    ax.annotate("x", x, xytext=(-12, -4), textcoords="offset points")
    ax.annotate("y", y, xytext=(6, -4), textcoords="offset points")
    ax.set_aspect("equal")
    ax.set_title("A custom RandersField: the fastest routes across a river, each way")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strength", type=float, default=0.6, help="current strength s < 1 (default 0.6)")
    parser.add_argument("--n", type=int, default=4, help="samples per law in check_manifold (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of check_manifold's samples (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default outputs/<example>/, --smoke runs outputs/smoke/<example>/)",
    )
    parser.add_argument("--smoke", action="store_true", help="a subset of the laws, seconds (test suite)")
    args = parser.parse_args(argv)
    args.out = output_folder("custom_field", args.smoke, args.out)
    # small batched geodesic solves: threads cost more than they save
    torch.set_num_threads(1)

    a, b = river_metric(args.strength)
    field = finslerlib.RandersField(a=a, b=b, dim=2)

    # 1. the conformance suite. Geodesics are numerical (RK4 + shooting), so the tolerance is the
    # solver's, not float64 round-off.
    properties = SMOKE_PROPERTIES if args.smoke else None
    n = 3 if args.smoke else args.n
    start = time.perf_counter()
    # Sample points where the metric will be used: the 4 x 4 square around the river.
    region = (
        4 * torch.rand(256, 2, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64) - 2
    )
    report = check_manifold(
        field,
        n=n,
        seed=args.seed,
        dtype=torch.float64,
        rtol=1e-3,
        atol=1e-6,
        properties=properties,
        points=region,
    )
    print(report)
    print(f"check_manifold: {len(report.passed)} laws hold ({time.perf_counter() - start:.1f} s)\n")

    # 2. the same kit catches a dist that ignores the curvature of geodesics
    broken = StraightLineField(a=a, b=b, dim=2)
    caught = check_manifold(
        broken,
        points=region,
        n=3,
        seed=args.seed,
        dtype=torch.float64,
        rtol=1e-3,
        atol=1e-6,
        properties=["dist_is_norm_of_log"],
        raise_on_failure=False,
    )
    if caught.ok:
        raise RuntimeError("check_manifold did not catch the straight-segment dist")
    print("A subclass with dist = straight-segment length is caught:")
    print("  " + caught.failed["dist_is_norm_of_log"].replace("\n", "\n  ") + "\n")

    # 3. across the river and back: both directions in one batched boundary-value solve
    x = torch.tensor([-1.5, -1.5], dtype=torch.float64)
    y = torch.tensor([1.5, 1.5], dtype=torch.float64)
    starts, ends = torch.stack([x, y]), torch.stack([y, x])
    with torch.no_grad():
        velocities = field.logmap(starts, ends)  # [2, 2]: x -> y and y -> x
        d_xy, d_yx = field.norm(starts, velocities).tolist()  # F(x, log_x y) = d(x -> y)
        s_xy, s_yx = straight_length(field, starts, ends).tolist()
        t = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None, None]
        curves = field.expmap(starts.expand(len(t), 2, 2), t * velocities)  # [41, 2, 2]
    print(f"d(x -> y) = {d_xy:.5f}   (straight segment: {s_xy:.5f})")
    print(f"d(y -> x) = {d_yx:.5f}   (straight segment: {s_yx:.5f})")
    if not (d_xy <= s_xy + 1e-6 and d_yx <= s_yx + 1e-6):
        raise RuntimeError("a geodesic came out longer than the straight segment")
    miss = (curves[-1] - ends).norm(dim=-1).max().item()
    if miss > 1e-5:
        raise RuntimeError(f"expmap(x, logmap(x, y)) misses y by {miss:.2e}")
    forward, backward = curves[:, 0].numpy(), curves[:, 1].numpy()
    figure = args.out / "custom_field.png"
    plot(figure, field, x.numpy(), y.numpy(), forward, backward)
    print(f"wrote {figure}")
    return {
        "report": report,
        "caught": caught,
        "dist": (d_xy, d_yx),
        "straight": (s_xy, s_yx),
        "endpoint_miss": miss,
        "figure": figure,
    }


if __name__ == "__main__":
    main()
