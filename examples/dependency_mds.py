r"""FinslerMDS on a real directed graph: the requirements of the distributions installed here.

The graph is built at run time from `importlib.metadata` (`finslerlib.embedding.datasets.
distribution_graph`, the largest weakly connected component): an edge $u \to v$ when $u$
requires $v$. Two dissimilarity matrices:

1. **reverse edges at cost 3** (every pair reachable): $\Delta$ = directed shortest paths with
   "requires" at cost 1 and "is required by" at cost 3. Symmetric baselines: scikit-learn's metric
   MDS on the symmetrized $\Delta$ (`n_init=4`) and FinslerMDS with `alpha=0` (Euclidean SMACOF).
   Asymmetric: FinslerMDS with `alpha="auto"` (the default: the best of a grid of drift sizes),
   `alpha=0.5` (the paper's), and a learned drift. Every method can go as low as the
   *symmetric floor* only if it is asymmetric; the table gives normalized stress / floor.
2. **the DAG alone**, unreachable pairs missing (`NaN`, weight 0: most pairs of a DAG): the
   symmetric floor is 0 there, so the table gives the normalized stress and the directed mAP.

Outputs (in `--out`, default `outputs/dependency_mds/`; `--smoke`:
`outputs/smoke/dependency_mds/`): `table.md`, `results.json`.

Run:
    python examples/dependency_mds.py            # many minutes: 4 starts x 5 drift sizes, and Adam on the DAG
    python examples/dependency_mds.py --smoke    # under a minute
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import output_folder

from finslerlib.embedding import FinslerMDS, graph_dissimilarities, mean_average_precision, symmetric_floor
from finslerlib.embedding.datasets import distribution_graph


def normalized(delta: np.ndarray, dist: np.ndarray) -> float:
    w = ~np.eye(len(delta), dtype=bool) & np.isfinite(delta)
    return float(np.sqrt(((dist - delta)[w] ** 2).sum() / (delta[w] ** 2).sum()))


def sklearn_mds(sym: np.ndarray, dim: int, n_init: int, seed: int) -> np.ndarray:
    from sklearn.manifold import MDS

    kw = dict(n_components=dim, dissimilarity="precomputed", n_init=n_init, random_state=seed, metric=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8 renames MDS's arguments
        try:
            model = MDS(normalized_stress=False, **kw)
        except TypeError:  # older scikit-learn
            model = MDS(**kw)
        x = model.fit_transform(sym)
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="fewer iterations (seconds)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = output_folder("dependency_mds", args.smoke, args.out)
    torch.set_num_threads(1)
    n_init = 1 if args.smoke else 4
    max_iter = 100 if args.smoke else 1000
    adam_iter = 100 if args.smoke else 1500
    g = distribution_graph(largest_component=True)
    if len(g.edges) < 3:
        raise SystemExit(f"too few installed distributions with requirements here ({g}); nothing to embed")
    e = g.edges
    delta = graph_dissimilarities(
        np.r_[e, e[:, ::-1]], np.r_[np.ones(len(e)), np.full(len(e), 3.0)], g.n_nodes
    )
    dag = graph_dissimilarities(e, None, g.n_nodes, on_unreachable="nan")
    missing = float(np.isnan(dag).sum() / (g.n_nodes * (g.n_nodes - 1)))
    sym = 0.5 * (delta + delta.T)
    rows: list[dict] = []

    def fit(data, name, dim, **kw):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="FinslerMDS did not converge", category=RuntimeWarning)
            m = FinslerMDS(dim, random_state=args.seed, n_init=n_init, **kw).fit(data)
        with torch.no_grad():
            dist = m.manifold_.cdist(m.embedding_, m.embedding_).numpy()
        return dict(
            method=name,
            dim=dim,
            stress=normalized(data, dist),
            floor=m.normalized_symmetric_floor_,
            map=mean_average_precision(dist, e),
            alpha=m.alpha_,
            seconds=time.perf_counter() - t,
        )

    for dim in args.dims:
        t = time.perf_counter()
        dist = sklearn_mds(sym, dim, n_init, args.seed)
        floor = float(symmetric_floor(delta, normalized=True))
        rows.append(
            dict(
                data="reverse at cost 3",
                method="scikit-learn MDS (symmetrized)",
                dim=dim,
                stress=normalized(delta, dist),
                floor=floor,
                map=mean_average_precision(dist, e),
                alpha=None,
                seconds=time.perf_counter() - t,
            )
        )
        for name, kw in [
            ("FinslerMDS alpha=0 (Euclidean)", dict(alpha=0.0, max_iter=max_iter)),
            ('FinslerMDS alpha="auto" (default)', dict(max_iter=max_iter)),
            ("FinslerMDS alpha=0.5", dict(alpha=0.5, max_iter=max_iter)),
            ("FinslerMDS learned drift", dict(target="drift", max_iter=adam_iter)),
        ]:
            rows.append(dict(data="reverse at cost 3", **fit(delta, name, dim, **kw)))
        for name, kw in [
            ("FinslerMDS alpha=0 (Euclidean, weighted)", dict(alpha=0.0, max_iter=max_iter)),
            ('FinslerMDS alpha="auto" (default)', dict(max_iter=max_iter)),
            ("FinslerMDS learned drift", dict(target="drift", max_iter=adam_iter)),
        ]:
            rows.append(dict(data="DAG, unreachable missing", **fit(dag, name, dim, **kw)))

    lines = [
        f"{g.name}: {g.n_nodes} distributions, {len(e)} requirements (largest weakly connected component); "
        f"in the DAG {missing:.0%} of the ordered pairs have no path (missing, weight 0). n_init={n_init}.",
        "",
        "| data | method | dim | normalized stress | / symmetric floor | directed mAP | alpha | time (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        ratio = f"{r['stress'] / r['floor']:.3f}" if r["floor"] > 0 else "– (floor 0)"
        alpha = "" if r["alpha"] is None else f"{r['alpha']:.2f}"
        lines.append(
            f"| {r['data']} | {r['method']} | {r['dim']} | {r['stress']:.4f} | {ratio} | {r['map']:.3f} | "
            f"{alpha} | {r['seconds']:.1f} |"
        )
    lines += [
        "",
        f"Measured by `examples/dependency_mds.py` on {platform.machine()}, torch {torch.__version__}.",
    ]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    result = dict(graph=g.name, n_nodes=g.n_nodes, n_edges=len(e), missing=missing, rows=rows)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(text)
    # what the example promises: the default is at least as good as scikit-learn's symmetric MDS
    for dim in args.dims:
        sk = next(r for r in rows if r["dim"] == dim and r["method"].startswith("scikit"))
        auto = next(r for r in rows if r["dim"] == dim and r["data"] == sk["data"] and "auto" in r["method"])
        if not args.smoke:
            assert auto["stress"] <= sk["stress"] * 1.02, (auto, sk)
    return result


if __name__ == "__main__":
    main()
