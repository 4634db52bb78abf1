"""Minimal paths on an image-derived Randers metric: the distance map and both one-way paths.

The image is scikit-learn's sample photograph (`load_sample_image("china.jpg")`, shipped with the
package, no download). The cost is low along strong edges, $c(x) = 0.25 + \\exp(-|\\nabla I(x)| / s)$
(gradient of the smoothed grey image, $s$ its 90th percentile), and a drift makes travelling to the
right cheaper than to the left: $F(x, v) = c(x) (|v| - \\delta\\, e_\\text{col} \\cdot v)$, a Randers
metric with $a = c^2 I$, $b = -c\\,\\delta\\, e_\\text{col}$, $|b|_{a^{-1}} = \\delta < 1$.
`finslerlib.eikonal.distance_map` computes the forward maps from both end points,
`geodesic_from_map` the paths A -> B and B -> A, which differ because the metric is asymmetric.
Each path's length (the metric integrated along the polyline) is checked against the map.

Writes `outputs/image_path/image_path.png` (`--smoke`: `outputs/smoke/image_path/`).

    python examples/image_path.py            # 1/3 resolution, about a minute on one CPU
    python examples/image_path.py --smoke    # 1/10 resolution, a few seconds
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from finslerlib.eikonal import distance_map, geodesic_from_map, interpolate


def image_cost(scale: int) -> torch.Tensor:
    """The cost grid `[H, W]` from the sample image, downsampled by `scale`."""
    from scipy.ndimage import gaussian_filter
    from sklearn.datasets import load_sample_image

    grey = load_sample_image("china.jpg").mean(-1) / 255.0
    grey = gaussian_filter(grey, 1.0)[::scale, ::scale]
    gy, gx = np.gradient(grey)
    mag = np.hypot(gx, gy)
    cost = 0.25 + np.exp(-mag / np.percentile(mag, 90))
    return torch.tensor(cost, dtype=torch.float64)


def make_metric(cost: torch.Tensor, axes, drift: float):
    def metric(x: torch.Tensor):
        c = interpolate(cost, axes, x.reshape(-1, 2)).reshape(x.shape[:-1])
        a = (c * c)[..., None, None] * torch.eye(2, dtype=x.dtype)
        b = torch.stack([torch.zeros_like(c), -drift * c], -1)  # cheaper towards increasing columns
        return a, b

    return metric


def polyline_length(metric, path: torch.Tensor) -> float:
    mid, delta = 0.5 * (path[1:] + path[:-1]), path[1:] - path[:-1]
    a, b = metric(mid)
    alpha = torch.sqrt(torch.einsum("ni,nij,nj->n", delta, a, delta))
    return float((alpha + (b * delta).sum(-1)).sum())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=3, help="downsampling of the 427x640 image")
    parser.add_argument("--drift", type=float, default=0.5, help="preference for moving right, < 1")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--smoke", action="store_true", help="coarse grid (test suite)")
    args = parser.parse_args(argv)
    scale = 10 if args.smoke else args.scale
    out = args.out or Path("outputs") / ("smoke" if args.smoke else "") / "image_path"
    out.mkdir(parents=True, exist_ok=True)

    cost = image_cost(scale)
    h, w = cost.shape
    axes = (torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64))
    metric = make_metric(cost, axes, args.drift)
    a_pt = torch.tensor([[0.3 * (h - 1), 0.1 * (w - 1)]], dtype=torch.float64)
    b_pt = torch.tensor([[0.75 * (h - 1), 0.9 * (w - 1)]], dtype=torch.float64)
    from_a = distance_map(metric, axes, a_pt)
    from_b = distance_map(metric, axes, b_pt)
    if not (from_a.converged and from_b.converged):
        changes = f"{from_a.change:.3g}, {from_b.change:.3g}"
        raise RuntimeError(f"the sweeps did not converge (last changes {changes})")
    path_ab, ok_ab = geodesic_from_map(from_a, metric, b_pt)
    path_ba, ok_ba = geodesic_from_map(from_b, metric, a_pt)
    if not (bool(ok_ab.all()) and bool(ok_ba.all())):
        raise RuntimeError("a backtracked path did not reach its source")
    d_ab = float(interpolate(from_a.values, axes, b_pt))
    d_ba = float(interpolate(from_b.values, axes, a_pt))
    len_ab, len_ba = polyline_length(metric, path_ab[0]), polyline_length(metric, path_ba[0])
    print(f"grid {h}x{w}: d(A->B) = {d_ab:.3f} (path {len_ab:.3f}), d(B->A) = {d_ba:.3f} (path {len_ba:.3f})")
    # the traced path is admissible, so not shorter than the distance beyond the map's error; and
    # not much longer (first-order backtracking on a grid: a few percent)
    for d, length in ((d_ab, len_ab), (d_ba, len_ba)):
        if not (0.9 * d <= length <= 1.15 * d):
            raise RuntimeError(f"path length {length:.4f} does not match the map's distance {d:.4f}")
    if not d_ab < d_ba:
        raise RuntimeError("travelling right (A -> B) should be cheaper than back")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_sample_image

    fig, axs = plt.subplots(1, 2, figsize=(12, 4.5))
    axs[0].imshow(load_sample_image("china.jpg")[::scale, ::scale])
    axs[0].set_title("paths: A -> B (red), B -> A (cyan)")
    shown = torch.where(torch.isfinite(from_a.values), from_a.values, torch.nan).numpy()
    im = axs[1].imshow(shown, cmap="viridis")
    axs[1].set_title("forward distance map from A")
    fig.colorbar(im, ax=axs[1], shrink=0.8)
    for ax in axs:
        ax.plot(path_ab[0, :, 1], path_ab[0, :, 0], "r-", lw=2)
        ax.plot(path_ba[0, :, 1], path_ba[0, :, 0], "c--", lw=2)
        ax.plot([a_pt[0, 1], b_pt[0, 1]], [a_pt[0, 0], b_pt[0, 0]], "wo")
    fig.tight_layout()
    fig.savefig(out / "image_path.png", dpi=110)
    plt.close(fig)
    return {"d_ab": d_ab, "d_ba": d_ba, "length_ab": len_ab, "length_ba": len_ba, "grid": (h, w)}


if __name__ == "__main__":
    main()
