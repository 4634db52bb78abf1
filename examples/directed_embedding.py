r"""Embed a directed graph and an asymmetric Swiss roll with `finslerlib.embedding.FinslerMDS`.

Reproduces the two synthetic experiments of Dagès et al., "Finsler Multi-Dimensional Scaling"
(CVPR 2025, arXiv 2503.18010), and compares symmetric baselines against Finsler targets.

1. Binary-tree digraph (the paper's Fig. 5 setting): a complete binary tree of depth 7 (255
   nodes), edges parent -> child of length 0.5, child -> parent of length 1.5, and, as in the
   paper's public code, edges of length 0.1 both ways between *every* two nodes of the same depth
   (depth >= 1). $\Delta$ = directed shortest paths. Embedded in 2-D by: scikit-learn's metric MDS
   of the symmetrized $\Delta$; a Poincaré-disk embedding (geoopt `PoincareBall` +
   `RiemannianAdam` on the stress); FinslerMDS with alpha = 0 (symmetric: it must sit on the
   symmetric floor), alpha = 0.5 (SMACOF, and RiemannianAdam from the same start), a learned drift,
   a learnable full Randers metric, and a Funk ball (the reverse Funk metric, whose cheap
   direction points outwards like the tree's cheap parent -> child edges; the forward one is
   reported too). Random initialization throughout.
2. Swiss roll with a drift (the paper's Swiss-roll experiment): `make_swiss_roll`, a 10-NN graph
   (made symmetric) whose edge $x_i \to x_j$ costs $|x_j - x_i| + \alpha\,\omega_i \cdot (x_j - x_i)$
   with $\omega_i$ the unit tangent along the roll (a Randers drift, as in the paper's code),
   $\Delta$ = directed shortest paths, for alpha in {0, 0.1, 0.3, 0.5}; embedded by SMACOF in the
   2-D canonical space with alpha = 0 (Euclidean) and alpha = 0.5 (as in the paper), and with a
   learned drift by RiemannianAdam on sampled pairs; classical-MDS initialization (the paper uses
   Isomap, the same thing on geodesic distances).

Outputs (in `--out`, default `outputs/directed_embedding/`): `tree_embeddings.png`, `swiss_roll.png`,
`results.json` and `table.md` (the table of docs/how-to/directed-graph.md).

Run:
    python examples/directed_embedding.py            # ~2-3 minutes on one CPU core
    python examples/directed_embedding.py --smoke    # seconds, used by the test suite
"""

from __future__ import annotations

import argparse
import inspect
import json
import platform
import time
import warnings
from pathlib import Path

import geoopt
import numpy as np
import torch
from _common import output_folder

from finslerlib.embedding import (
    FinslerMDS,
    graph_dissimilarities,
    mean_average_precision,
    mean_rank,
    normalized_stress,
    stress,
    symmetric_floor,
)
from finslerlib.manifolds import FunkBall


def binary_tree_digraph(depth: int, down=0.5, up=1.5, across=0.1):
    """Edges and lengths of the paper's weighted binary-tree digraph; node k's children 2k+1, 2k+2."""
    n = 2 ** (depth + 1) - 1
    edges, lengths, tree_edges = [], [], []
    for parent in range(n):
        for child in (2 * parent + 1, 2 * parent + 2):
            if child < n:
                edges += [(parent, child), (child, parent)]
                lengths += [down, up]
                tree_edges.append((parent, child))
    level = np.floor(np.log2(np.arange(n) + 1)).astype(int)
    for d in range(1, depth + 1):
        nodes = np.flatnonzero(level == d)
        for i in nodes:
            for j in nodes:
                if i != j:
                    edges.append((i, j))
                    lengths.append(across)
    return np.array(edges), np.array(lengths), n, np.array(tree_edges), level


def poincare_embedding(delta: np.ndarray, steps: int, seed: int):
    """Symmetric baseline: geoopt PoincareBall(c=1) points fitted to the stress by RiemannianAdam."""
    ball = geoopt.PoincareBall(c=1.0)
    gen = torch.Generator().manual_seed(seed)
    d = torch.as_tensor(delta)
    x = geoopt.ManifoldParameter(
        ball.expmap0(0.1 * torch.randn(len(d), 2, generator=gen, dtype=d.dtype)), manifold=ball
    )
    opt = geoopt.optim.RiemannianAdam([x], lr=0.03)
    off = 1 - torch.eye(len(d), dtype=d.dtype)
    for _ in range(steps):
        opt.zero_grad()
        dist = ball.dist(x.unsqueeze(1), x.unsqueeze(0))
        loss = (off * (dist - d) ** 2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return x.detach(), ball.dist(x.unsqueeze(1), x.unsqueeze(0)) * off


def euclidean_mds(delta: np.ndarray, seed: int):
    """scikit-learn's metric MDS (SMACOF) of the symmetrized dissimilarities."""
    from sklearn.manifold import MDS

    sym = 0.5 * (delta + delta.T)
    params = inspect.signature(MDS).parameters
    kw = dict(n_components=2, n_init=4, random_state=seed, max_iter=300)
    if "metric_mds" in params:  # scikit-learn >= 1.8
        kw.update(metric="precomputed", metric_mds=True, init="random", normalized_stress=False)
    else:
        kw.update(dissimilarity="precomputed", metric=True, normalized_stress=False)
    pts = torch.as_tensor(MDS(**kw).fit_transform(sym))
    return pts, torch.cdist(pts, pts)


def tree_experiment(args) -> dict:
    edges, lengths, n, tree_edges, level = binary_tree_digraph(args.depth)
    delta = graph_dissimilarities(edges, lengths, n)
    floor = float(symmetric_floor(delta))
    rows, points = [], {}

    def record(name, pts, dist, seconds, note=""):
        rows.append(
            {
                "method": name,
                "stress": float(stress(delta, dist)),
                "normalized_stress": float(normalized_stress(delta, dist)),
                "ratio_to_floor": float(stress(delta, dist)) / floor,
                "mAP": mean_average_precision(dist, edges),
                "mean_rank": mean_rank(dist, edges),
                "seconds": seconds,
                "note": note,
            }
        )
        points[name] = pts.cpu().numpy()

    t = time.perf_counter()
    pts, dist = euclidean_mds(delta, args.seed)
    record("Euclidean MDS (scikit-learn, symmetrized)", pts, dist, time.perf_counter() - t)
    t = time.perf_counter()
    pts, dist = poincare_embedding(delta, max(args.steps // 2, 100), args.seed)
    record("Poincaré disk (geoopt, RiemannianAdam)", pts, dist, time.perf_counter() - t)

    def fit(name, note="", **kw):
        t = time.perf_counter()
        mds = FinslerMDS(random_state=args.seed, **kw).fit(delta)
        seconds = time.perf_counter() - t
        with torch.no_grad():
            dist = mds.manifold_.cdist(mds.embedding_, mds.embedding_)
        extra = f"{mds.solver_}, {mds.n_iter_} it{'' if mds.converged_ else ' (budget)'}" + (
            f", alpha={mds.alpha_:.3f}" if mds.alpha_ is not None else ""
        )
        record(name, mds.embedding_, dist, seconds, f"{extra}{'; ' + note if note else ''}")
        return mds

    smacof_iter = args.smacof_iter
    fit("FinslerMDS alpha=0 (SMACOF)", alpha=0.0, max_iter=smacof_iter, tol=1e-7)
    smacof = fit("FinslerMDS alpha=0.5 (SMACOF)", alpha=0.5, max_iter=smacof_iter, tol=1e-7)
    adam = fit("FinslerMDS alpha=0.5 (RiemannianAdam)", alpha=0.5, solver="adam", max_iter=args.steps)
    fit("FinslerMDS learned drift (RiemannianAdam)", target="drift", max_iter=args.steps)
    fit("FinslerMDS Randers.learnable (RiemannianAdam)", target="learnable", max_iter=args.steps)
    fit("FinslerMDS reverse FunkBall (RiemannianAdam)", target=FunkBall(2).reverse(), max_iter=args.steps)
    fit("FinslerMDS FunkBall (RiemannianAdam)", target="funk", max_iter=args.steps)
    # is the SMACOF result a stationary point of the stress? continue it with Adam
    polish = FinslerMDS(alpha=0.5, solver="adam", max_iter=args.steps // 2, lr=1e-3, random_state=args.seed)
    polish.fit(delta, init=smacof.embedding_)
    agreement = {
        "smacof_stress": smacof.stress_,
        "adam_stress": adam.stress_,
        "relative_gap": abs(adam.stress_ - smacof.stress_) / smacof.stress_,
        "adam_from_smacof_stress": polish.stress_,
    }
    return {
        "n": n,
        "floor": floor,
        "normalized_floor": float(symmetric_floor(delta, normalized=True)),
        "rows": rows,
        "agreement": agreement,
        "points": points,
        "tree_edges": tree_edges,
        "level": level,
    }


def swiss_roll_delta(n: int, alpha: float, k: int, seed: int):
    from sklearn.datasets import make_swiss_roll
    from sklearn.neighbors import kneighbors_graph

    x, t = make_swiss_roll(n, random_state=seed)
    # unit tangent along the roll (x = t cos t, z = t sin t): the Randers drift direction
    tangent = np.stack([np.cos(t) - t * np.sin(t), np.zeros_like(t), np.sin(t) + t * np.cos(t)], 1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    graph = kneighbors_graph(x, k, mode="distance")
    graph = graph.maximum(graph.T).tocoo()  # both directions of every kNN edge
    i, j = graph.row, graph.col
    cost = graph.data + alpha * np.einsum("ed,ed->e", tangent[i], x[j] - x[i])
    return graph_dissimilarities(np.stack([i, j], 1), cost, n), x, t


def swiss_experiment(args) -> dict:
    rows, points = [], {}
    for a in args.alphas:
        delta, x, t = swiss_roll_delta(args.swiss_n, a, 10, args.seed)
        for emb_alpha in (0.0, 0.5):
            start = time.perf_counter()
            mds = FinslerMDS(
                alpha=emb_alpha, init="classical", max_iter=args.smacof_iter, random_state=args.seed
            )
            mds.fit(delta)
            rows.append(
                {
                    "roll_alpha": a,
                    "embedding_alpha": emb_alpha,
                    "stress": mds.stress_,
                    "normalized_stress": mds.normalized_stress_,
                    "normalized_floor": mds.normalized_symmetric_floor_,
                    "iterations": mds.n_iter_,
                    "seconds": time.perf_counter() - start,
                }
            )
            points[(a, emb_alpha)] = mds.embedding_.cpu().numpy()
        # a learned drift, fitted on sampled pairs (RiemannianAdam, `batch_pairs` per step)
        start = time.perf_counter()
        mds = FinslerMDS(
            target="drift",
            batch_pairs=args.batch_pairs,
            max_iter=args.steps,
            check_every=50,
            init="classical",
            random_state=args.seed,
        ).fit(delta)
        rows.append(
            {
                "roll_alpha": a,
                "embedding_alpha": f"learned ({mds.alpha_:.3f})",
                "stress": mds.stress_,
                "normalized_stress": mds.normalized_stress_,
                "normalized_floor": mds.normalized_symmetric_floor_,
                "iterations": mds.n_iter_,
                "seconds": time.perf_counter() - start,
            }
        )
    return {"n": args.swiss_n, "rows": rows, "points": points, "x": x, "t": t}


def plot(tree: dict, swiss: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tree["points"])
    cols = 3
    rows = (len(names) + cols - 1) // cols
    # equal panels: every axes box has the same size, the data limits adapt (adjustable="datalim")
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        p = tree["points"][name]
        for parent, child in tree["tree_edges"]:
            ax.annotate(
                "",
                xy=p[child],
                xytext=p[parent],
                arrowprops=dict(arrowstyle="-|>", lw=0.6, color="tab:blue", alpha=0.7, shrinkA=0, shrinkB=1),
            )
        ax.scatter(p[:, 0], p[:, 1], c=tree["level"], cmap="viridis", s=8, zorder=3)
        row = next(r for r in tree["rows"] if r["method"] == name)
        ax.set_title(f"{name}\nnormalized stress {row['normalized_stress']:.3f}", fontsize=11)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=9)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"Binary-tree digraph ({tree['n']} nodes): arrows parent -> child, colour = depth; "
        f"canonical drift points up (+y)",
        fontsize=13,
    )
    fig.tight_layout()
    fig.savefig(out / "tree_embeddings.png", dpi=110)
    plt.close(fig)

    alphas = sorted({k[0] for k in swiss["points"]})
    fig = plt.figure(figsize=(4.5 * (len(alphas) + 1), 9))
    grid = fig.add_gridspec(2, len(alphas) + 1)
    # the 3-D roll spans both rows of the first column: no empty slot
    ax = fig.add_subplot(grid[:, 0], projection="3d")
    ax.scatter(swiss["x"][:, 0], swiss["x"][:, 1], swiss["x"][:, 2], c=swiss["t"], cmap="Spectral", s=4)
    ax.set_title("Swiss roll (colour: position along the roll)\nrows: embedding alpha 0 and 0.5", fontsize=11)
    ax.tick_params(labelsize=8)
    for row, emb_alpha in enumerate((0.0, 0.5)):
        for k, a in enumerate(alphas):
            ax = fig.add_subplot(grid[row, k + 1])
            p = swiss["points"][(a, emb_alpha)]
            ax.scatter(p[:, 0], p[:, 1], c=swiss["t"], cmap="Spectral", s=3)
            r = next(r for r in swiss["rows"] if r["roll_alpha"] == a and r["embedding_alpha"] == emb_alpha)
            ax.set_title(
                f"roll drift {a}, embedding alpha {emb_alpha}\nnormalized stress "
                f"{r['normalized_stress']:.3f} (floor {r['normalized_floor']:.3f})",
                fontsize=10,
            )
            ax.set_aspect("equal", adjustable="datalim")
            ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(out / "swiss_roll.png", dpi=100)
    plt.close(fig)


def table(tree: dict, swiss: dict, machine: str) -> str:
    lines = [
        f"Binary-tree digraph, depth {int(np.log2(tree['n'] + 1)) - 1} ({tree['n']} nodes), 2-D. "
        f"Symmetric floor: raw {tree['floor']:.1f}, normalized {tree['normalized_floor']:.4f}.",
        "",
        "| method | raw stress | normalized stress | stress / floor | mAP | mean rank | time (s) | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in tree["rows"]:
        lines.append(
            f"| {r['method']} | {r['stress']:.1f} | {r['normalized_stress']:.4f} | {r['ratio_to_floor']:.4f} "
            f"| {r['mAP']:.3f} | {r['mean_rank']:.2f} | {r['seconds']:.1f} | {r['note']} |"
        )
    a = tree["agreement"]
    lines += [
        "",
        f"SMACOF vs RiemannianAdam on the canonical target (alpha = 0.5, same random start): stress "
        f"{a['smacof_stress']:.2f} vs {a['adam_stress']:.2f} (relative gap {a['relative_gap']:.3f}); "
        f"Adam continued from the SMACOF result: {a['adam_from_smacof_stress']:.2f}.",
        "",
        f"Swiss roll with a drift along the roll, n = {swiss['n']}, 2-D: SMACOF for a fixed alpha, "
        "RiemannianAdam on sampled pairs for the learned drift.",
        "",
        "| roll drift alpha | embedding alpha | raw stress | normalized stress | normalized floor "
        "| iterations | time (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in swiss["rows"]:
        lines.append(
            f"| {r['roll_alpha']} | {r['embedding_alpha']} | {r['stress']:.4g} "
            f"| {r['normalized_stress']:.4f} "
            f"| {r['normalized_floor']:.4f} | {r['iterations']} | {r['seconds']:.1f} |"
        )
    lines += ["", f"Measured by `examples/directed_embedding.py` on {machine}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default outputs/<example>/, --smoke runs outputs/smoke/<example>/)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (timings use 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.depth, args.steps, args.smacof_iter, args.swiss_n, args.alphas = 4, 150, 1000, 150, [0.0, 0.5]
        args.batch_pairs = 2000
    else:
        args.batch_pairs = 20000
        args.depth, args.steps, args.smacof_iter, args.swiss_n, args.alphas = (
            7,
            1500,
            1000,
            1000,
            [0.0, 0.1, 0.3, 0.5],
        )
    out = output_folder("directed_embedding", args.smoke, args.out)
    start = time.perf_counter()
    with warnings.catch_warnings():
        # fixed iteration budgets: non-convergence is reported in the table instead
        warnings.filterwarnings("ignore", message="FinslerMDS did not converge", category=RuntimeWarning)
        tree = tree_experiment(args)
        swiss = swiss_experiment(args)
    machine = (
        f"{platform.machine()} CPU ({platform.processor() or 'unknown'}), torch {torch.__version__}, "
        f"{args.threads} thread(s), float64, total {time.perf_counter() - start:.0f} s"
    )
    plot(tree, swiss, out)
    text = table(tree, swiss, machine)
    (out / "table.md").write_text(text)
    summary = {
        "tree": {k: tree[k] for k in ("n", "floor", "normalized_floor", "rows", "agreement")},
        "swiss_roll": {k: swiss[k] for k in ("n", "rows")},
        "machine": machine,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(text)
    return summary


if __name__ == "__main__":
    main()
