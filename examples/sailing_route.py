"""A sailing route in a current field on the plane: distance maps out and back, and the routes.

Zermelo navigation: the boat moves at unit speed through the water, the water moves with the
current $W(x)$ (a gyre plus a jet), so the travel time is the Randers metric of the navigation
data $(h = I, W)$. `finslerlib.eikonal.distance_map` gives the time from the harbour to every
point (forward) and from every point back to it (`reverse=True`); `geodesic_from_map` the fastest
routes out and back. The times are checked against the certified shooting solver
(`RandersField.dist`) on the same pairs, and the routes against sailing straight.

Writes `outputs/sailing_route/sailing_route.png` (`--smoke`: `outputs/smoke/sailing_route/`).

    python examples/sailing_route.py            # 161^2 grid
    python examples/sailing_route.py --smoke    # 41^2 grid, a few seconds
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from finslerlib import RandersField
from finslerlib.eikonal import distance_map, geodesic_from_map, interpolate
from finslerlib.math.randers import navigation_to_randers


def current(x: torch.Tensor) -> torch.Tensor:
    """A gyre around (0.3, 0.2) plus an eastward jet along y = -0.4 (|W| <= 0.75)."""
    u, v = x[..., 0] - 0.3, x[..., 1] - 0.2
    swirl = 0.5 * torch.exp(-(u * u + v * v) / 0.3)
    jet = 0.35 * torch.exp(-((x[..., 1] + 0.4) ** 2) / 0.05)
    return torch.stack([-swirl * v / 0.55 + jet, swirl * u / 0.55], -1)


def metric(x: torch.Tensor):
    eye = torch.eye(2, dtype=x.dtype).expand(*x.shape[:-1], 2, 2)
    return navigation_to_randers(eye, current(x))


def straight_time(p: torch.Tensor, q: torch.Tensor, samples: int = 400) -> float:
    """Travel time along the straight segment p -> q (the metric integrated by the midpoint rule)."""
    t = (torch.arange(samples, dtype=p.dtype) + 0.5) / samples
    mid = p + t[:, None] * (q - p)
    a, b = metric(mid)
    d = (q - p) / samples
    return float((torch.sqrt(torch.einsum("i,nij,j->n", d, a, d)) + b @ d).sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=161, help="grid points per axis on [-1, 1]^2")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--smoke", action="store_true", help="coarse grid (test suite)")
    args = parser.parse_args(argv)
    n = 41 if args.smoke else args.n
    out = args.out or Path("outputs") / ("smoke" if args.smoke else "") / "sailing_route"
    out.mkdir(parents=True, exist_ok=True)

    ax = torch.linspace(-1, 1, n, dtype=torch.float64)
    harbour = torch.tensor([[-0.8, -0.6]], dtype=torch.float64)
    island = torch.tensor([[0.75, 0.6]], dtype=torch.float64)
    out_map = distance_map(metric, (ax, ax), harbour)
    back_map = distance_map(metric, (ax, ax), harbour, reverse=True)
    if not (out_map.converged and back_map.converged):
        raise RuntimeError("the sweeps did not converge")
    route_out, ok_out = geodesic_from_map(out_map, metric, island)
    route_back, ok_back = geodesic_from_map(back_map, metric, island)
    if not (bool(ok_out.all()) and bool(ok_back.all())):
        raise RuntimeError("a route did not reach the harbour")
    t_out = float(interpolate(out_map.values, (ax, ax), island))
    t_back = float(interpolate(back_map.values, (ax, ax), island))
    field = RandersField.from_navigation(wind=current, dim=2)
    shot = field.dist(torch.cat([harbour, island]), torch.cat([island, harbour]))
    s_out, s_back = straight_time(harbour[0], island[0]), straight_time(island[0], harbour[0])
    print(
        f"harbour -> island: map {t_out:.4f}, shooting {shot[0].item():.4f}, straight {s_out:.4f}\n"
        f"island -> harbour: map {t_back:.4f}, shooting {shot[1].item():.4f}, straight {s_back:.4f}"
    )
    h = 2 / (n - 1)
    for t_map, t_shot in ((t_out, shot[0].item()), (t_back, shot[1].item())):
        if abs(t_map - t_shot) > 2 * h * t_shot:  # second-order map; the bound is loose on purpose
            raise RuntimeError(
                f"the map's time {t_map:.4f} disagrees with the shooting solver's {t_shot:.4f}"
            )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(11, 5))
    x = torch.stack(torch.meshgrid(ax, ax, indexing="ij"), -1)
    w = current(x)
    for panel, (m, title) in zip(
        axs, ((out_map, "time from the harbour"), (back_map, "time to the harbour")), strict=True
    ):
        im = panel.contourf(ax, ax, m.values.T.numpy(), 30, cmap="viridis")
        fig.colorbar(im, ax=panel, shrink=0.8)
        k = max(1, n // 16)
        panel.quiver(x[::k, ::k, 0], x[::k, ::k, 1], w[::k, ::k, 0], w[::k, ::k, 1], color="w", alpha=0.7)
        panel.plot(route_out[0, :, 0], route_out[0, :, 1], "r-", lw=2, label="out")
        panel.plot(route_back[0, :, 0], route_back[0, :, 1], "c--", lw=2, label="back")
        panel.plot(*harbour[0], "ks")
        panel.plot(*island[0], "k^")
        panel.set_title(title)
        panel.set_aspect("equal")
    axs[0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "sailing_route.png", dpi=110)
    plt.close(fig)
    return {"out": t_out, "back": t_back, "shooting": shot.tolist(), "straight": (s_out, s_back)}


if __name__ == "__main__":
    main()
