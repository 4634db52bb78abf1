"""Generate the docs figures into `docs/assets/figures/` (git-ignored; run by `make docs`).

Every figure is drawn from closed-form formulas (numpy only, see the Concepts pages), so the
script does not depend on which finslerlib manifolds are merged:

* `randers_indicatrix.png`: unit balls $\\{v : F(v) \\le 1\\}$ of Minkowski–Randers norms for
  growing drifts, and the navigation picture (an ellipse translated by the wind).
* `funk_geodesics.png`: Funk geodesics from one point (straight chords, equal-distance ticks
  piling up at the boundary) and forward vs backward balls.
* `sphere_navigation.png`: F-geodesics on the sphere in a rotational (Killing) wind: great circles
  carried by the rotation, and forward / backward balls (rotated Riemannian balls).
* `benchmarks.png`: measured ratios against their bars, from `docs/data/benchmarks.json`.
* `flag_curvature.png`: the flag curvature $K(x, y)$ of a 2-D user field for two flagpoles; the
  one figure computed with finslerlib itself (`finslerlib.curvature`, torch), since curvature has
  no closed form for a user field.

Usage: `python scripts/make_figures.py [--out DIR]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "assets" / "figures"
BENCHMARKS_JSON = ROOT / "docs" / "data" / "benchmarks.json"
DPI = 110


# ----------------------------------------------------------------------------- formulas
def randers_norm(a: np.ndarray, b: np.ndarray, v: np.ndarray) -> np.ndarray:
    """$F(v) = \\sqrt{v^T a v} + b^T v$ for rows `v` of shape `[N, D]`."""
    return np.sqrt(np.einsum("nd,de,ne->n", v, a, v)) + v @ b


def indicatrix(a: np.ndarray, b: np.ndarray, n: int = 400) -> np.ndarray:
    """Points of the unit sphere $\\{F = 1\\}$ in 2-D: each direction $u$ scaled to $u / F(u)$."""
    theta = np.linspace(0.0, 2.0 * np.pi, n)
    u = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return u / randers_norm(a, b, u)[:, None]


def navigation_to_randers(h: np.ndarray, wind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zermelo data $(h, W)$ to Randers data: $a = h/\\lambda + W^\\flat W^{\\flat T}/\\lambda^2$,
    $b = -W^\\flat / \\lambda$ with $W^\\flat = h W$, $\\lambda = 1 - |W|_h^2$."""
    w_flat = h @ wind
    lam = 1.0 - wind @ w_flat
    return h / lam + np.outer(w_flat, w_flat) / lam**2, -w_flat / lam


def funk_norm(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Funk metric of the unit ball, rows `x`, `v` of shape `[N, D]` (broadcast)."""
    x, v = np.broadcast_arrays(x, v)
    xx = (x * x).sum(-1)
    xv = (x * v).sum(-1)
    vv = (v * v).sum(-1)
    return (np.sqrt((1.0 - xx) * vv + xv**2) + xv) / (1.0 - xx)


def funk_dist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward Funk distance $d(x \\to y) = -\\log(1 - F(x, y - x))$."""
    return -np.log1p(-funk_norm(x, y - x))


def funk_geodesic(x: np.ndarray, v: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unit-speed forward geodesic $\\sigma(t) = x + (1 - e^{-t}) v / F(x, v)$, shape `[T, D]`."""
    f = funk_norm(x[None], v[None])[0]
    return x[None] + (1.0 - np.exp(-t))[:, None] * (v / f)[None]


def funk_forward_sphere(x: np.ndarray, r: float, n: int = 400) -> np.ndarray:
    """The forward sphere $\\{y : d(x \\to y) = r\\}$ in 2-D: follow each geodesic for time r."""
    theta = np.linspace(0.0, 2.0 * np.pi, n)
    u = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return x[None] + (1.0 - np.exp(-r)) * u / funk_norm(x[None], u)[:, None]


# ----------------------------------------------------------------------------- figures
def rotation_z(theta: np.ndarray) -> np.ndarray:
    """Rotations $e^{\\theta K}$ about the axis $e_2$ (shape `[..., 3, 3]`), $K e_0 = e_1$."""
    c, s = np.cos(theta), np.sin(theta)
    out = np.zeros(np.shape(theta) + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def sphere_exp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Riemannian exponential map of the unit sphere, rows `v` tangent at `x`."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.cos(n) * x + np.sinc(n / np.pi) * v


def killing_geodesic(x: np.ndarray, u: np.ndarray, omega: float, t: np.ndarray) -> np.ndarray:
    """Unit-speed F-geodesic of the navigation metric with wind $W = \\omega K x$ (rotation about
    $e_2$): $P(t) = e^{\\omega t K} \\exp_x(t u)$, `u` a unit tangent vector (the heading through the
    air). Rows: the times `t`."""
    return np.einsum("tij,tj->ti", rotation_z(omega * t), sphere_exp(x, t[:, None] * u))


def _tangent_circle(x: np.ndarray, n: int) -> np.ndarray:
    a = np.array([0.0, 0.0, 1.0]) if abs(x[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = a - (a @ x) * x
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(x, e1)
    phi = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2


def _orthographic(points: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Project points of the unit sphere seen from `view`; hidden points become NaN."""
    right = np.cross([0.0, 0.0, 1.0], view)
    right /= np.linalg.norm(right)
    up = np.cross(view, right)
    xy = np.stack([points @ right, points @ up], -1)
    xy[points @ view < 0] = np.nan
    return xy


def _pyplot():
    """matplotlib with the file-only Agg backend (imported here: the formulas need numpy only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _unit_circle(ax, **kw):
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), **kw)


def figure_randers_indicatrix(path: Path) -> None:
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 4.4))
    eye = np.eye(2)
    cmap = plt.get_cmap("viridis")
    drifts = [0.0, 0.3, 0.5, 0.7]
    for i, s in enumerate(drifts):
        pts = indicatrix(eye, np.array([s, 0.0]))
        ax1.plot(pts[:, 0], pts[:, 1], color=cmap(i / len(drifts)), lw=2, label=rf"$|b| = {s:g}$")
    ax1.annotate("", xy=(1.0, -1.7), xytext=(0.1, -1.7), arrowprops={"arrowstyle": "->", "lw": 1.5})
    ax1.text(0.55, -1.6, r"$b$", ha="center")
    ax1.plot([0], [0], "k+", ms=10)
    ax1.set_title(r"Unit balls $F(v) \leq 1$, $a = I$, $b = (\beta_1, 0)$")
    ax1.legend(loc="upper left", fontsize=8, frameon=False)

    h = np.array([[1.0, 0.3], [0.3, 0.6]])
    wind = np.array([0.25, 0.55])
    a, b = navigation_to_randers(h, wind)
    pts = indicatrix(a, b)
    ell = indicatrix(h, np.zeros(2))  # the h-unit sphere, before the wind moves it
    ax2.plot(ell[:, 0], ell[:, 1], "--", color="0.55", lw=1.5, label=r"$|v|_h = 1$ (no wind)")
    ax2.plot(pts[:, 0], pts[:, 1], color="C3", lw=2, label=r"$F(v) = 1$: $|v - W|_h = 1$")
    ax2.annotate("", xy=tuple(wind), xytext=(0, 0), arrowprops={"arrowstyle": "->", "lw": 1.5, "color": "C0"})
    ax2.text(wind[0] + 0.05, wind[1] - 0.1, r"$W$", color="C0")
    ax2.plot([0], [0], "k+", ms=10)
    ax2.set_title("Navigation data: the h-ball translated by the wind")
    ax2.legend(loc="lower right", fontsize=8, frameon=False)
    for ax in (ax1, ax2):
        ax.set_aspect("equal")
        ax.set_xlim(-3.5, 1.6)
        ax.set_ylim(-2.0, 2.2)
        ax.grid(alpha=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_funk(path: Path) -> None:
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 5.0))
    x = np.array([0.35, 0.2])
    ticks = np.arange(0.5, 6.01, 0.5)
    t = np.linspace(0.0, 8.0, 200)
    for k in range(10):
        phi = 2 * np.pi * k / 10 + 0.2
        v = np.array([np.cos(phi), np.sin(phi)])
        path_pts = funk_geodesic(x, v, t)
        ax1.plot(path_pts[:, 0], path_pts[:, 1], color="C0", lw=1)
        marks = funk_geodesic(x, v, ticks)
        ax1.plot(marks[:, 0], marks[:, 1], ".", color="C3", ms=3)
    ax1.set_title("Geodesics from $x$: straight chords,\nticks every 0.5 of distance")

    n = 301
    grid = np.linspace(-0.999, 0.999, n)
    gx, gy = np.meshgrid(grid, grid)
    y = np.stack([gx, gy], axis=-1).reshape(-1, 2)
    inside = (y * y).sum(-1) < 0.998**2
    fwd = np.full(len(y), np.nan)
    bwd = np.full(len(y), np.nan)
    fwd[inside] = funk_dist(x[None], y[inside])
    bwd[inside] = funk_dist(y[inside], x[None])
    radii = [0.5, 1.0, 2.0]
    ax2.contour(gx, gy, fwd.reshape(n, n), levels=radii, colors="C0", linewidths=1.8)
    ax2.contour(gx, gy, bwd.reshape(n, n), levels=radii, colors="C3", linewidths=1.2, linestyles="--")
    ax2.plot([], [], color="C0", label=r"forward: $d(x \to y) = 0.5, 1, 2$")
    ax2.plot([], [], "--", color="C3", label=r"backward: $d(y \to x) = 0.5, 1, 2$")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False, ncol=2)
    ax2.set_title("Forward and backward balls around $x$")
    for ax in (ax1, ax2):
        _unit_circle(ax, color="k", lw=1.2)
        ax.plot(*x, "k*", ms=9)
        ax.text(x[0] + 0.04, x[1] + 0.05, "$x$")
        ax.set_aspect("equal")
        ax.set_xlim(-1.08, 1.08)
        ax.set_ylim(-1.08, 1.08)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_sphere_navigation(path: Path) -> None:
    plt = _pyplot()
    omega = 0.6
    view = np.array([np.cos(0.45) * np.cos(0.7), np.cos(0.45) * np.sin(0.7), np.sin(0.45)])
    x = np.array([np.cos(0.3), 0.0, np.sin(0.3)])
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4.9))
    t = np.linspace(0.0, 1.6, 120)
    for ax in axes:
        circle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(circle), np.sin(circle), color="k", lw=1)
        for lat in np.radians([-60, -30, 0, 30, 60]):
            lon = np.linspace(-np.pi, np.pi, 200)
            ring = [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.full_like(lon, np.sin(lat))]
            pts = np.stack(ring, -1)
            ax.plot(*_orthographic(pts, view).T, color="0.85", lw=0.6)
    ax1, ax2 = axes
    for u in _tangent_circle(x, 12):
        ax1.plot(*_orthographic(killing_geodesic(x, u, 0.0, t), view).T, color="0.6", lw=0.8, ls=":")
        ax1.plot(*_orthographic(killing_geodesic(x, u, omega, t), view).T, color="C0", lw=1.3)
    ax1.plot([], [], color="C0", label="F-geodesics (unit speed, t ≤ 1.6)")
    ax1.plot([], [], color="0.6", ls=":", label="great circles (no wind)")
    ax1.set_title("Geodesics from $x$: great circles\ncarried along by the rotation")
    dirs = _tangent_circle(x, 200)
    for r in (0.4, 0.8, 1.2):
        riemann = sphere_exp(x, r * dirs)
        forward = riemann @ rotation_z(omega * r).T  # phi_r(B_h(x, r))
        centre = rotation_z(-omega * r) @ x  # backward sphere: S_h(phi_{-r} x, r)
        backward = sphere_exp(centre, r * _tangent_circle(centre, 200))
        ax2.plot(*_orthographic(np.vstack([forward, forward[:1]]), view).T, color="C0", lw=1.6)
        ax2.plot(*_orthographic(np.vstack([backward, backward[:1]]), view).T, color="C3", lw=1.2, ls="--")
    ax2.plot([], [], color="C0", label=r"forward: $d(x \to y) = 0.4, 0.8, 1.2$")
    ax2.plot([], [], "--", color="C3", label=r"backward: $d(y \to x) = 0.4, 0.8, 1.2$")
    ax2.set_title("Forward and backward spheres around $x$\n(rotated Riemannian spheres)")
    for ax in axes:
        ax.plot(*_orthographic(x[None], view).T, "k*", ms=9)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.02), fontsize=8, frameon=False)
    fig.suptitle(rf"Navigation on $S^2$ in the wind $W = \omega\, e_2 \times x$, $\omega = {omega}$")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def figure_benchmarks(path: Path, data: dict) -> None:
    """Two panels: time ratios (lower is better) and speed-ups (higher is better), bar = black tick."""
    plt = _pyplot()
    groups = [
        ("time / baseline (lower is better)", [e for e in data["benchmarks"] if e["bar_op"] == "<="]),
        ("speed-up (higher is better)", [e for e in data["benchmarks"] if e["bar_op"] == ">="]),
    ]
    groups = [g for g in groups if g[1]]
    heights = [len(entries) for _, entries in groups]
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(8.5, 0.55 * sum(heights) + 1.6 * len(groups)),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )
    for ax, (label, entries) in zip(axes[:, 0], groups, strict=True):
        ys = np.arange(len(entries))[::-1]
        top = max(max(e["bar"], e.get("measured") or 0.0) for e in entries) * 1.35
        for y, e in zip(ys, entries, strict=True):
            ax.plot([e["bar"]], [y], marker="|", ms=20, mew=2.5, color="k")
            if e.get("measured") is None:
                ax.text(e["bar"] + 0.02 * top, y, "not measured yet", fontsize=8, color="0.4", va="center")
            else:
                ok = e["measured"] <= e["bar"] if e["bar_op"] == "<=" else e["measured"] >= e["bar"]
                ax.barh(y, e["measured"], height=0.5, color="C2" if ok else "C3")
                ax.text(e["measured"] + 0.01 * top, y - 0.3, f"{e['measured']:g}x", fontsize=8)
        ax.set_yticks(ys, [f"{e['name']} ({e['bar_op']} {e['bar']:g}x)" for e in entries], fontsize=8)
        ax.set_xlim(0, top)
        ax.set_ylim(-0.7, len(entries) - 0.3)
        ax.set_xlabel(label + "; black tick = bar", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_title("Benchmarks: " + (data.get("measured_on") or "not measured yet"), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def curvature_field_grid(n: int = 61, extent: float = 2.0):
    """$K(x, \\pm e_1)$ on an `n x n` grid for the user field of `docs/concepts/curvature.md`:
    $a(x) = (1 + |x|^2/2) I$, $b(x) = 0.4 \\tanh(x_2, x_1)$. Returns `(grid, k_plus, k_minus)`."""
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import torch

    from finslerlib import RandersField
    from finslerlib.curvature import flag_curvature

    def a(x):
        return (1 + 0.5 * (x * x).sum(-1))[..., None, None] * torch.eye(2, dtype=x.dtype)

    field = RandersField(a=a, b=lambda x: 0.4 * torch.tanh(x.flip(-1)), dim=2)
    grid = np.linspace(-extent, extent, n)
    gx, gy = np.meshgrid(grid, grid)
    x = torch.tensor(np.stack([gx, gy], -1).reshape(-1, 2), dtype=torch.float64)
    e1 = torch.tensor([1.0, 0.0], dtype=torch.float64).expand_as(x)
    e2 = torch.tensor([0.0, 1.0], dtype=torch.float64).expand_as(x)
    k_plus = flag_curvature(field, x, e1, e2).reshape(n, n).numpy()
    k_minus = flag_curvature(field, x, -e1, e2).reshape(n, n).numpy()
    return grid, k_plus, k_minus


def figure_flag_curvature(path: Path) -> None:
    plt = _pyplot()
    grid, k_plus, k_minus = curvature_field_grid()
    top = float(np.abs(np.concatenate([k_plus, k_minus])).max())
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.4), layout="constrained")
    for ax, k, label in ((axes[0], k_plus, "+e_1"), (axes[1], k_minus, "-e_1")):
        im = ax.imshow(k, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]),
                       cmap="RdBu_r", vmin=-top, vmax=top)
        ax.contour(grid, grid, k, levels=[0.0], colors="k", linewidths=0.8)
        ends = ((-0.6, -1.7), (0.6, -1.7))
        tail, head = ends if label == "+e_1" else ends[::-1]
        ax.annotate("", xy=head, xytext=tail, arrowprops=dict(arrowstyle="->", lw=1.5))  # direction of y
        ax.set_title(f"$K(x, y)$, flagpole $y = {label}$")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    fig.colorbar(im, ax=axes, shrink=0.85, label="flag curvature")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    figure_randers_indicatrix(args.out / "randers_indicatrix.png")
    figure_funk(args.out / "funk_geodesics.png")
    figure_sphere_navigation(args.out / "sphere_navigation.png")
    figure_benchmarks(args.out / "benchmarks.png", json.loads(BENCHMARKS_JSON.read_text()))
    figure_flag_curvature(args.out / "flag_curvature.png")
    print(f"make_figures: wrote 5 figures to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
