r"""Shortest sailing routes on the globe in a steady rotational wind, both ways.

The globe is `geoopt.Sphere()` (the unit sphere in $\mathbb{R}^3$, north pole $e_2$) and the wind is
a solid rotation about the polar axis blowing west to east, $W(x) = \omega\, e_2 \times x$: strongest
on the equator (speed $\omega$), calm at the poles. A ship of unit speed through the air has the
Zermelo navigation metric $F(x, v) = 1 \iff |v - W(x)| = 1$, a Randers metric on the sphere:
`finslerlib.Navigation(geoopt.Sphere(), finslerlib.KillingWind(A))`.

A rotation is a Killing field, so the fastest routes are exact: great circles carried along by the
wind, $P(t) = e^{tA} \exp_x(t u)$, and the sailing time $T = d(x \to y)$ solves
$d_{S^2}(x, e^{-TA} y) = T$. The script, for a few pairs of ports,

1. computes the sailing times both ways (eastward with the wind is faster) and the routes;
2. checks each route: it ends at the port (`expmap(x, logmap(x, y)) == y`), its F-length by
   quadrature along the sampled curve equals the time, and it is no slower than sailing the
   great circle (whose time is also a quadrature);
3. draws the routes on a longitude/latitude map to `outputs/sphere_navigation/sphere_navigation.png`.

Run:
    python examples/sphere_navigation.py            # 4 routes, fine quadrature
    python examples/sphere_navigation.py --smoke    # 2 routes, coarse (seconds)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import geoopt
import torch
from _common import output_folder

import finslerlib
from finslerlib.manifolds.domains import SphereDomain

SPHERE = SphereDomain(2)  # the base: its exponential and logarithm

# (name, latitude, longitude) in degrees
PORTS = [
    ("Lisbon", 38.7, -9.1),
    ("New York", 40.7, -74.0),
    ("Cape Town", -33.9, 18.4),
    ("Rio", -22.9, -43.2),
    ("Singapore", 1.3, 103.8),
    ("Perth", -31.9, 115.9),
]
ROUTES = [(0, 1), (2, 3), (4, 5), (1, 2)]


def point(lat: float, lon: float) -> torch.Tensor:
    """Unit vector of a latitude / longitude (degrees); the north pole is e_2."""
    la, lo = math.radians(lat), math.radians(lon)
    return torch.tensor(
        [math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)], dtype=torch.float64
    )


def lat_lon(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rad2deg(torch.asin(x[..., 2].clamp(-1, 1))), torch.rad2deg(torch.atan2(x[..., 1], x[..., 0]))


def route(
    m: finslerlib.Navigation, x: torch.Tensor, y: torch.Tensor, samples: int
) -> tuple[torch.Tensor, float]:
    """The fastest route as `samples` points $P(t) = e^{tA} \\exp_x(t u)$, and its sailing time."""
    t_total = m.dist(x, y).item()
    z = m.wind.flow(torch.tensor(-t_total, dtype=x.dtype), y)  # where y was when we left, in wind coordinates
    u = SPHERE.logmap(x, z) / t_total  # unit-speed direction through the air
    t = torch.linspace(0, t_total, samples, dtype=x.dtype)
    along = SPHERE.expmap(x.expand(samples, 3), t[:, None] * u)
    return m.wind.flow(t, along), t_total


def f_length(m: finslerlib.Navigation, curve: torch.Tensor) -> float:
    """$\\int F(c, c')\\,dt$ by the midpoint rule on a sampled curve (tangent chords at midpoints)."""
    mid = curve[1:] + curve[:-1]
    mid = mid / mid.norm(dim=-1, keepdim=True)
    chord = m.proju(mid, curve[1:] - curve[:-1])
    return m.norm(mid, chord).sum().item()


def great_circle(x: torch.Tensor, y: torch.Tensor, samples: int) -> torch.Tensor:
    t = torch.linspace(0, 1, samples, dtype=x.dtype)[:, None]
    v = SPHERE.logmap(x, y)
    return SPHERE.expmap(x.expand(samples, 3), t * v)


def draw(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    lat = torch.linspace(-80, 80, 9)
    lon = torch.linspace(-180, 180, 25)
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    speed = torch.cos(torch.deg2rad(la))
    ax.quiver(lo, la, speed, torch.zeros_like(speed), color="0.8", scale=30, width=0.002)
    for r in results:
        for key, style, label in (("forward", "-", "{a} → {b}"), ("backward", "--", "{b} → {a}")):
            la_, lo_ = lat_lon(r[key + "_route"])
            ax.plot(lo_, la_, style, lw=1.8, label=label.format(a=r["from"], b=r["to"]) + f"  {r[key]:.2f}")
        la_, lo_ = lat_lon(r["great_circle"])
        ax.plot(lo_, la_, ":", color="0.4", lw=1)
    for name, plat, plon in PORTS:
        ax.plot(plon, plat, "ko", ms=3)
        ax.annotate(name, (plon, plat), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("Fastest routes in a west-to-east rotational wind (dotted: great circles; times in legend)")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--omega", type=float, default=0.5, help="wind speed on the equator (< 1, default 0.5)"
    )
    parser.add_argument("--samples", type=int, default=2001, help="points per route for the quadrature")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default outputs/<example>/, --smoke runs outputs/smoke/<example>/)",
    )
    parser.add_argument("--smoke", action="store_true", help="2 routes, coarse quadrature (test suite)")
    args = parser.parse_args(argv)
    args.out = output_folder("sphere_navigation", args.smoke, args.out)
    samples = 401 if args.smoke else args.samples
    routes = ROUTES[:2] if args.smoke else ROUTES

    a = torch.zeros(3, 3, dtype=torch.float64)
    a[0, 1], a[1, 0] = -args.omega, args.omega  # W(x) = omega * e_2 x x: west to east
    globe = finslerlib.Navigation(geoopt.Sphere(), finslerlib.KillingWind(a))

    print(
        f"Fastest routes on the unit sphere in a west-to-east wind of rate omega = {args.omega}\n"
        "(times at unit ship speed, in Earth radii; the great circles are sailed in the same wind)\n"
    )
    header = (
        f"{'from':>10}    {'to':<10} {'forward':>8} {'back':>8} {'no wind':>8} "
        f"{'great circle fwd':>17} {'great circle back':>18}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for i, j in routes:
        (na, lat_a, lon_a), (nb, lat_b, lon_b) = PORTS[i], PORTS[j]
        x, y = point(lat_a, lon_a), point(lat_b, lon_b)
        r = {"from": na, "to": nb}
        for key, (p, q) in (("forward", (x, y)), ("backward", (y, x))):
            curve, time = route(globe, p, q, samples)
            arrival = globe.expmap(p, globe.logmap(p, q))
            r[key] = time
            r[key + "_route"] = curve
            r[key + "_miss"] = max((arrival - q).abs().max().item(), (curve[-1] - q).abs().max().item())
            r[key + "_quadrature"] = f_length(globe, curve)
            r[key + "_great_circle"] = f_length(globe, great_circle(p, q, samples))
        r["great_circle"] = great_circle(x, y, samples)
        r["riemannian"] = geoopt.Sphere().dist(x, y).item()
        results.append(r)
        print(
            f"{na:>10} -> {nb:<10} {r['forward']:>8.4f} {r['backward']:>8.4f} {r['riemannian']:>8.4f} "
            f"{r['forward_great_circle']:>17.4f} {r['backward_great_circle']:>18.4f}"
        )
        tol = 5.0 / samples**2  # midpoint-rule error of the quadrature
        for key in ("forward", "backward"):
            if r[key + "_miss"] > 1e-9:
                raise RuntimeError(f"{na}-{nb} {key}: the route misses the port by {r[key + '_miss']:.2e}")
            if abs(r[key + "_quadrature"] - r[key]) > tol * max(1.0, r[key]):
                raise RuntimeError(f"{na}-{nb} {key}: quadrature {r[key + '_quadrature']} != time {r[key]}")
            if r[key] > r[key + "_great_circle"] + tol:
                raise RuntimeError(f"{na}-{nb} {key}: the great circle is faster than the computed route")

    figure = args.out / "sphere_navigation.png"
    draw(results, figure)
    print(f"routes drawn to {figure}")
    return {
        "times": {(r["from"], r["to"]): (r["forward"], r["backward"]) for r in results},
        "great_circle": {
            (r["from"], r["to"]): (r["forward_great_circle"], r["backward_great_circle"]) for r in results
        },
        "miss": max(max(r["forward_miss"], r["backward_miss"]) for r in results),
        "figure": figure,
    }


if __name__ == "__main__":
    main()
