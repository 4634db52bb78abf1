r"""finslerlib demo: a small CNN on scikit-learn's handwritten digits with three different heads.

The same convolutional backbone (same seed, same initial weights, same batches) is trained on
`sklearn.datasets.load_digits` (1,797 8x8 images bundled with scikit-learn, no download) with:

* `linear`  - the usual `nn.Linear` classifier;
* `randers` - `finslerlib.nn.FAIMHead` on a learnable Randers metric (`Randers.learnable`):
  logits are `-scale * d(x -> mu_k)`, class prototypes `mu_k` and the metric are trained;
* `funk`    - `FAIMHead` on a `finslerlib.FunkBall`: features are mapped into the unit ball by
  `expmap0`, prototypes are `geoopt.ManifoldParameter`s kept inside the ball.

Every model is optimized with `geoopt.optim.RiemannianAdam` (plain parameters take ordinary Adam
steps, prototypes Riemannian ones). The script prints a table of test accuracy, test loss and
training time per head and writes to the output folder (`outputs/digits_demo/`; `--smoke` runs
write to `outputs/smoke/digits_demo/`):

* `learning_curves.png`    - test accuracy and train/test loss per epoch, every head;
* `randers_indicatrix.png` - the learned Randers unit ball, in two 2-D sections (see the plot);
* `funk_embeddings.png`    - test embeddings and prototypes of the Funk head, projected to a disk;
* `table.md`               - the printed table as Markdown (the README's demo table is this file);
* `digits_results.json`    - the numbers of the table and the learning curves.

Run `python examples/digits_demo.py --help` for the options; `make demo` runs it with defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import geoopt
import numpy as np
import torch
import torch.nn.functional as nnf
from _common import output_folder
from torch import nn

HEADS = ("linear", "randers", "funk")
NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------- data
def load_data(seed: int, *, limit_train: int | None = None, limit_test: int | None = None, device="cpu"):
    """Digits as `[N, 1, 8, 8]` float tensors in [0, 1], stratified 75/25 split by `seed`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=seed
    )
    x_tr, y_tr, x_te, y_te = x_tr[:limit_train], y_tr[:limit_train], x_te[:limit_test], y_te[:limit_test]

    def as_tensors(x, y):
        return torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)

    return as_tensors(x_tr, y_tr), as_tensors(x_te, y_te)


# ---------------------------------------------------------------------------------------- model
class Backbone(nn.Module):
    """Two 3x3 convolutions, a max-pool and two linear layers: 8x8 image -> `dim` features.

    The last layer has no activation: the features are signed coordinates, as the Randers head
    (on all of R^D) and the Funk head (through `expmap0` into the ball) expect.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 32 x 4 x 4
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, dim),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def build_head(name: str, dim: int) -> nn.Module:
    """The classifier on top of the backbone's `dim` features."""
    if name == "linear":
        return nn.Linear(dim, NUM_CLASSES)
    import finslerlib
    from finslerlib.nn import FAIMHead

    if name == "randers":
        # manifold=None: a learnable full-rank Randers metric on R^dim, trained with the network
        return FAIMHead(dim, NUM_CLASSES)
    if name == "funk":
        return FAIMHead(dim, NUM_CLASSES, manifold=finslerlib.FunkBall(dim))
    raise ValueError(f"unknown head {name!r}; choose from {HEADS}")


class Classifier(nn.Module):
    def __init__(self, head: str, dim: int):
        super().__init__()
        self.backbone = Backbone(dim)
        self.head = build_head(head, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


# ---------------------------------------------------------------------------------------- training
@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> tuple[float, float]:
    model.eval()
    logits = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train()
    loss = nnf.cross_entropy(logits, y).item()
    acc = (logits.argmax(-1) == y).float().mean().item()
    return loss, acc


def train(head: str, train_data, test_data, args) -> dict:
    """Train backbone + `head` from the seed; returns the curves, final metrics and the model."""
    from tqdm.auto import tqdm

    torch.manual_seed(args.seed)  # identical backbone initialization for every head
    model = Classifier(head, args.dim).to(args.device)
    optimizer = geoopt.optim.RiemannianAdam(model.parameters(), lr=args.lr)
    x_tr, y_tr = train_data
    batches = math.ceil(len(x_tr) / args.batch_size)
    order = torch.Generator().manual_seed(args.seed)  # identical batches for every head
    history = {"epoch": [], "train_loss": [], "test_loss": [], "test_acc": []}
    start = time.perf_counter()
    with tqdm(total=args.epochs * batches, desc=f"{head:>7} head", unit="batch", disable=args.quiet) as bar:
        for epoch in range(1, args.epochs + 1):
            perm = torch.randperm(len(x_tr), generator=order).to(x_tr.device)
            running = 0.0
            for i in range(batches):
                idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
                loss = nnf.cross_entropy(model(x_tr[idx]), y_tr[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if args.clip:
                    # the same for every head, when asked for
                    nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                optimizer.step()
                running += loss.item() * len(idx)
                bar.update()
            test_loss, test_acc = evaluate(model, *test_data)
            history["epoch"].append(epoch)
            history["train_loss"].append(running / len(x_tr))
            history["test_loss"].append(test_loss)
            history["test_acc"].append(test_acc)
            bar.set_postfix(train_loss=f"{running / len(x_tr):.3f}", test_acc=f"{test_acc:.3f}")
    seconds = time.perf_counter() - start
    head_params = sum(p.numel() for p in model.head.parameters())
    return {
        "head": head,
        "test_acc": history["test_acc"][-1],
        "test_loss": history["test_loss"][-1],
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / args.epochs,
        "head_params": head_params,
        "history": history,
        "model": model,
    }


HEAD_LABELS = {
    "linear": "`nn.Linear`",
    "randers": "`FAIMHead`, learnable Randers",
    "funk": "`FAIMHead`, `FunkBall`",
}
TABLE_COLUMNS = ("head", "test accuracy", "test loss", "training time", "time per epoch", "head parameters")


def results_table(results: list[dict]) -> str:
    """The table the demo prints and writes to `table.md` (the README's demo table is this file)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "| " + " | ".join("---" for _ in TABLE_COLUMNS) + " |"]
    for r in results:
        cells = (
            HEAD_LABELS[r["head"]],
            f"{r['test_acc']:.3f}",
            f"{r['test_loss']:.3f}",
            f"{r['train_seconds']:.1f} s",
            f"{r['seconds_per_epoch']:.2f} s",
            f"{r['head_params']:,}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_caption(args: argparse.Namespace, total_seconds: float) -> str:
    """One line saying how the table was measured (the first line of `table.md`)."""
    load = f", 1-minute load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"`python examples/digits_demo.py{' --smoke' if args.smoke else ''}`: {args.epochs} epochs, "
        f"seed {args.seed}, {args.threads} CPU thread(s) on {args.device}, torch {torch.__version__}; "
        f"the whole script took {total_seconds:.0f} s ({os.cpu_count()} CPUs{load})."
    )


# ---------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(results: list[dict], path: Path) -> None:
    plt = _pyplot()
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for i, r in enumerate(results):
        h, c = r["history"], f"C{i}"
        ax_acc.plot(h["epoch"], h["test_acc"], c=c, marker="o", ms=3, label=r["head"])
        ax_loss.plot(h["epoch"], h["train_loss"], c=c, label=f"{r['head']} train")
        ax_loss.plot(h["epoch"], h["test_loss"], c=c, ls="--", label=f"{r['head']} test")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy")
    ax_loss.set(
        xlabel="epoch", ylabel="cross-entropy", title="Loss (solid: train, dashed: test)", yscale="log"
    )
    ax_acc.grid(alpha=0.3)
    ax_loss.grid(alpha=0.3)
    ax_acc.legend()
    ax_loss.legend(fontsize=7, ncol=2)
    fig.suptitle("Digits (8x8): same CNN backbone, three heads")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@torch.no_grad()
def head_embeddings(model: Classifier, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Test points on the head's manifold (`FAIMHead.embed`) and the prototypes, float64 on CPU."""
    model.eval()
    z = model.head.embed(model.backbone(images))
    model.train()
    mu = model.head.prototypes.detach()
    return z.double().cpu(), mu.as_subclass(torch.Tensor).double().cpu()


@torch.no_grad()
def _unit_circle_section(manifold, basis: torch.Tensor, n: int = 721) -> tuple[np.ndarray, np.ndarray]:
    r"""Points of $\{v : F(v) = 1\}$ and of the reverse $\{v : F(-v) = 1\}$ in the plane `basis`.

    `basis` is `[D, 2]` with orthonormal columns $e_1, e_2$; a direction $u_\theta$ of the plane
    reaches the unit sphere of $F$ at radius $1 / F(u_\theta)$ (positive homogeneity). The
    coordinates returned are $(\langle v, e_1\rangle, \langle v, e_2\rangle)$.
    """
    theta = torch.linspace(0, 2 * math.pi, n, dtype=torch.float64)
    plane = torch.stack([theta.cos(), theta.sin()], -1)  # [n, 2]
    dirs = (plane @ basis.mT).to(manifold_dtype(manifold))  # [n, D]
    origin = torch.zeros_like(dirs)
    forward = manifold.norm(origin, dirs).double()
    backward = manifold.norm(origin, -dirs).double()
    return (plane / forward[:, None]).numpy(), (plane / backward[:, None]).numpy()


def manifold_dtype(manifold) -> torch.dtype:
    for t in (*manifold.parameters(), *manifold.buffers()):
        return t.dtype
    return torch.get_default_dtype()


def _top_directions(x: torch.Tensor, k: int, *, centre: bool) -> torch.Tensor:
    """`[D, k]` orthonormal top-k principal directions of the rows of `x`."""
    if centre:
        x = x - x.mean(0)
    return torch.linalg.svd(x, full_matrices=False).Vh[:k].mT


def plot_randers_indicatrix(result: dict, test_images: torch.Tensor, path: Path) -> None:
    """The learned Randers unit ball in two planes of feature space (see the subplot titles)."""
    plt = _pyplot()
    from matplotlib.ticker import MultipleLocator

    model = result["model"]
    manifold = model.head.manifold
    z, _ = head_embeddings(model, test_images)
    with torch.no_grad():
        a, b = (t.detach().double().cpu() for t in manifold.coefficients(z[:1]))
    a, b = a.reshape(a.shape[-2:]), b.reshape(-1)
    pca = _top_directions(z, 2, centre=True)
    # F(v)/F(-v) is largest along b# = a^{-1} b (the direction the drift favours most)
    b_sharp = torch.linalg.solve(a, b)
    planes = [("top-2 principal directions of the test features", pca, ("PC 1", "PC 2"))]
    if b_sharp.norm() > 1e-8:
        e1 = b_sharp / b_sharp.norm()
        e2 = pca[:, 0] - (pca[:, 0] @ e1) * e1
        e2 = e2 / e2.norm()
        planes.append(
            ("most asymmetric direction $a^{-1}b$ and PC 1", torch.stack([e1, e2], -1), ("$a^{-1}b$", "PC 1"))
        )
    fig, axes = plt.subplots(1, len(planes), figsize=(5.2 * len(planes), 5.2), squeeze=False)
    theta = np.linspace(0, 2 * np.pi, 361)
    for ax, (title, basis, labels) in zip(axes[0], planes, strict=True):
        fwd, bwd = _unit_circle_section(manifold, basis)
        ratio = np.linalg.norm(fwd, axis=1) / np.linalg.norm(bwd, axis=1)
        ax.plot(np.cos(theta), np.sin(theta), c="0.7", lw=1, label="Euclidean $|v| = 1$ (initial metric)")
        ax.fill(fwd[:, 0], fwd[:, 1], alpha=0.15, c="C1")
        ax.plot(fwd[:, 0], fwd[:, 1], c="C1", lw=2, label="learned $F(v) = 1$")
        ax.plot(bwd[:, 0], bwd[:, 1], c="C0", lw=1.2, ls="--", label="reverse $F(-v) = 1$")
        ax.scatter([0], [0], c="k", s=12)
        ax.set_aspect("equal")
        ax.set(xlabel=labels[0], ylabel=labels[1])
        # ticks every 0.5 (at most ~6 labels per axis): long labels such as -0.75 never run together
        ax.xaxis.set_major_locator(MultipleLocator(0.5))
        ax.yaxis.set_major_locator(MultipleLocator(0.5))
        ax.set_title(
            f"plane of the {title}\nlargest $F(-v)/F(v)$ in this plane: {ratio.max():.2f}", fontsize=9
        )
        ax.grid(alpha=0.3)
    # one legend below the panels, off the curves
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
    drift = manifold.drift_norm().item()
    fig.suptitle(
        f"Learned Randers metric of the FAIM head (D = {manifold.dim}): 2-D sections of its unit ball\n"
        f"$\\|b\\|_{{a^{{-1}}}}$ = {drift:.3f}; the sections are shifted ellipses, off-centre by the drift",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _label_offsets(points: np.ndarray, radius: float = 0.09) -> np.ndarray:
    """An offset per point for its text label, chosen greedily so labels avoid the points and each other.

    Each label goes at `radius` (data units) from its point, in the direction (of 16) whose
    label position is farthest from every point and from the labels already placed.
    """
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], -1)
    placed: list[np.ndarray] = []
    offsets = np.zeros_like(points)
    # the most crowded points choose first
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points)) * 1e9
    for i in np.argsort(gaps.min(1)):
        spots = points[i] + radius * directions
        obstacles = np.concatenate([points, *(p[None] for p in placed)]) if placed else points
        clearance = np.linalg.norm(spots[:, None] - obstacles[None], axis=-1).min(1)
        clearance -= 0.5 * np.linalg.norm(spots, axis=-1).clip(min=0.95)  # keep labels inside the disk
        best = spots[np.argmax(clearance)]
        placed.append(best)
        offsets[i] = best - points[i]
    return offsets


def plot_funk_embeddings(result: dict, test_data, path: Path) -> None:
    """Test embeddings and prototypes of the Funk head, orthogonally projected to a 2-D disk."""
    plt = _pyplot()
    model = result["model"]
    images, labels = test_data
    z, mu = head_embeddings(model, images)
    # A plane through the centre, so the projection of the unit ball is the unit disk and the
    # straight chords that are the Funk geodesics stay straight; distances are not preserved.
    basis = _top_directions(torch.cat([z, mu]), 2, centre=False)
    zp, mup = (z @ basis).numpy(), (mu @ basis).numpy()
    labels = labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(6.6, 7.0))
    theta = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(theta), np.sin(theta), c="k", lw=1)
    cmap = plt.get_cmap("tab10")
    ax.scatter(zp[:, 0], zp[:, 1], c=cmap(labels % 10), s=9, alpha=0.6, linewidths=0)
    offsets = _label_offsets(mup)
    for k, (px, py) in enumerate(mup):
        ax.scatter(px, py, marker="*", s=260, c=[cmap(k)], edgecolors="k", linewidths=0.8, zorder=3)
        ax.annotate(
            str(k),
            (px, py),
            xytext=(px + offsets[k, 0], py + offsets[k, 1]),
            fontsize=11,
            weight="bold",
            ha="center",
            va="center",
            zorder=4,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=cmap(k), lw=1.2, alpha=0.9),
            arrowprops=dict(arrowstyle="-", color="0.3", lw=0.7, shrinkA=0, shrinkB=6),
        )
    ax.set_aspect("equal")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_axis_off()
    radius = z.norm(dim=-1)
    ax.set_title(
        f"Funk head (D = {z.shape[1]}): test embeddings (dots) and class prototypes (stars)\n"
        f"test accuracy {result['test_acc']:.3f}; embedding radius in the D-ball: median "
        f"{radius.median():.3f}, max {radius.max():.3f}",
        fontsize=9,
    )
    fig.text(
        0.5,
        0.02,
        "2-D view: orthogonal projection onto the plane (through the centre) of the top-2 singular\n"
        "directions of embeddings and prototypes. The ball projects into the unit disk and Funk\n"
        "geodesics (straight chords) stay straight; distances and radii shrink, colour = true digit.",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Outputs: learning_curves.png, randers_indicatrix.png, funk_embeddings.png, "
        "table.md, digits_results.json in --out.",
    )
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per head (default 15)")
    parser.add_argument(
        "--heads",
        nargs="+",
        choices=HEADS,
        default=list(HEADS),
        help="heads to train, in order (default: all three)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device: cpu, cuda, cuda:1, or auto (default cpu)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default outputs/digits_demo/, --smoke runs outputs/smoke/digits_demo/)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the split, weights and batches (default 0)"
    )
    parser.add_argument("--dim", type=int, default=16, help="feature dimension D of the heads (default 16)")
    parser.add_argument("--lr", type=float, default=3e-3, help="RiemannianAdam learning rate (default 3e-3)")
    parser.add_argument(
        "--clip", type=float, default=0.0, help="gradient-norm clipping, 0 for none (default 0)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: for 8x8 images thread overhead outweighs the work, "
        "and a fixed count keeps CPU results bit-reproducible across machines)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds-long run on a data subset (used by the test suite)"
    )
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    limits = {"limit_train": 256, "limit_test": 128} if args.smoke else {}
    if args.smoke:
        args.epochs = min(args.epochs, 2)

    start = time.perf_counter()
    train_data, test_data = load_data(args.seed, device=args.device, **limits)
    print(
        f"digits: {len(train_data[0])} train / {len(test_data[0])} test images, {args.epochs} epochs, "
        f"feature dim {args.dim}, device {args.device}, seed {args.seed}"
    )
    results = [train(head, train_data, test_data, args) for head in args.heads]
    printed = results_table(results)
    print()
    print(printed)

    args.out = output_folder("digits_demo", args.smoke, args.out)
    figures = {"learning_curves": args.out / "learning_curves.png"}
    plot_learning_curves(results, figures["learning_curves"])
    by_head = {r["head"]: r for r in results}
    if "randers" in by_head:
        figures["randers_indicatrix"] = args.out / "randers_indicatrix.png"
        plot_randers_indicatrix(by_head["randers"], test_data[0], figures["randers_indicatrix"])
    if "funk" in by_head:
        figures["funk_embeddings"] = args.out / "funk_embeddings.png"
        plot_funk_embeddings(by_head["funk"], test_data, figures["funk_embeddings"])
    table = table_caption(args, time.perf_counter() - start) + "\n\n" + results_table(results) + "\n"
    (args.out / "table.md").write_text(table)
    summary = {
        "config": {k: (str(v) if isinstance(v, Path | torch.device) else v) for k, v in vars(args).items()},
        "results": [{k: v for k, v in r.items() if k != "model"} for r in results],
    }
    (args.out / "digits_results.json").write_text(json.dumps(summary, indent=2))
    for path in (*figures.values(), args.out / "table.md", args.out / "digits_results.json"):
        print(f"wrote {path}")
    return {"results": results, "figures": figures, "test_data": test_data, "table": printed}


if __name__ == "__main__":
    main()
