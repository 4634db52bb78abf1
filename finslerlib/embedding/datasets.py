r"""Directed graphs built at run time on the user's machine: nothing is downloaded.

Real graphs:

* `stdlib_import_graph`: the running Python's standard library, one node per module, an edge
  $u \to v$ when module $u$ imports $v$ (parsed with `ast`, nothing imported; cyclic);
* `distribution_graph`: the installed distributions (`importlib.metadata`), an edge $u \to v$ when
  $u$ requires $v$ (unconditional requirements only, both installed; a DAG in practice);
* `dpkg_graph`: Debian's installed packages and their `Depends` / `Pre-Depends`
  (`/var/lib/dpkg/status`); `None` where that file does not exist.

Controlled graphs (numpy only, seeded):

* `growing_network`: Krapivsky–Redner growing network, each new node links to one older node
  chosen in proportion to its in-degree + 1 (networkx's `gn_graph`): a tree, edges new $\to$ old;
* `growing_network_copying`: each new node links to a uniformly chosen older node and to all of
  its successors (networkx's `gnc_graph`): a DAG with several edges per node;
* `scale_free_digraph`: Bollobás et al.'s directed preferential attachment (networkx's
  `scale_free_graph`, duplicates and self-loops dropped); cycles allowed;
* `random_dag`: nodes in a random order, each forward pair an edge with probability `p`;
* `binary_tree_digraph`: the complete binary tree, parent $\to$ child (Dagès et al.'s Fig. 5 graph
  without its lengths).

Each returns a `DirectedGraph`: `edges` `[E, 2]` int64 (no self-loops, no duplicates), `names`
(one per node), `groups` (a label per node for plots: the top-level package, a section, a depth).
"""

from __future__ import annotations

import ast
import functools
import os
import re
import sys
import sysconfig
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = [
    "DirectedGraph",
    "binary_tree_digraph",
    "distribution_graph",
    "dpkg_graph",
    "growing_network",
    "growing_network_copying",
    "random_dag",
    "scale_free_digraph",
    "stdlib_import_graph",
]


@dataclass
class DirectedGraph:
    """A directed graph: `edges[k] = (u, v)` means $u \\to v$ (integer node ids `0..n_nodes-1`).

    Attributes:
        edges: numpy int64 array `[E, 2]`, no self-loops, no repeated edge.
        names: node names, length `n_nodes`.
        groups: a label per node (package, section, depth), length `n_nodes`.
        name: the graph's name.
    """

    edges: np.ndarray
    names: list[str]
    groups: list[str] = field(default_factory=list)
    name: str = "graph"

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.names)

    def __repr__(self) -> str:
        return f"DirectedGraph({self.name!r}, n_nodes={self.n_nodes}, n_edges={len(self.edges)})"


def _clean(edges, n: int) -> np.ndarray:
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    e = e[e[:, 0] != e[:, 1]]
    if len(e):
        e = np.unique(e, axis=0)
    assert e.size == 0 or (e.min() >= 0 and e.max() < n)
    return e


def _largest_weak_component(edges: np.ndarray, names: list[str], groups: list[str], name: str):
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(names)
    adj = csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(adj, directed=True, connection="weak")
    keep = labels == np.bincount(labels).argmax()
    new_id = np.cumsum(keep) - 1
    mask = keep[edges[:, 0]] & keep[edges[:, 1]]
    e = new_id[edges[mask]]
    idx = np.flatnonzero(keep)
    return DirectedGraph(_clean(e, len(idx)), [names[i] for i in idx], [groups[i] for i in idx], name)


# ---------------------------------------------------------------------------- real graphs
def _import_statements(body):
    """`Import` / `ImportFrom` statements at any nesting of statements (expressions are skipped)."""
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            yield stmt
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                yield from _import_statements(inner)


_SKIP_STDLIB = ("test", "idlelib", "lib2to3", "turtledemo", "ensurepip", "pydoc_data", "__phello__")
_SKIP_DIRS = {*_SKIP_STDLIB, "site-packages", "dist-packages", "__pycache__", "tests", "encodings"}


@functools.lru_cache(maxsize=4)
def _stdlib_import_graph(max_depth: int, largest_component: bool) -> DirectedGraph:
    return _build_stdlib_import_graph(max_depth, largest_component)


def stdlib_import_graph(*, max_depth: int = 2, largest_component: bool = True) -> DirectedGraph:
    """The import graph of the running Python's standard library (pure-Python modules).

    Every `.py` file under `sysconfig.get_paths()["stdlib"]` whose dotted name has at most
    `max_depth` parts is a node (test suites, `idlelib`, `lib2to3`, `turtledemo`, `ensurepip`,
    the codec modules under `encodings` and `site-packages` excluded); each `import a.b.c` /
    `from a.b import c` statement anywhere in the file (relative imports resolved) is an edge to
    the longest node name that prefixes the target.

    Args:
        max_depth: keep modules with at most this many dotted parts (2: `json`, `json.decoder`).
        largest_component: keep only the largest weakly connected component.

    Returns:
        `DirectedGraph`, `groups` = top-level package.

    Example:
        >>> g = stdlib_import_graph()
        >>> g.n_nodes > 100 and len(g.edges) > g.n_nodes
        True
    """
    if int(max_depth) != max_depth or max_depth < 1:
        raise ValueError(f"max_depth must be an integer >= 1, got {max_depth}")
    g = _stdlib_import_graph(int(max_depth), bool(largest_component))  # parsing takes seconds: cached
    return DirectedGraph(g.edges.copy(), list(g.names), list(g.groups), g.name)


def _build_stdlib_import_graph(max_depth: int, largest_component: bool) -> DirectedGraph:
    root = Path(sysconfig.get_paths()["stdlib"])
    files: dict[str, Path] = {}
    paths = []
    for folder, subdirs, filenames in os.walk(root):
        rel_dir = Path(folder).relative_to(root)
        # prune: third-party packages, test suites, caches, and folders deeper than max_depth
        subdirs[:] = sorted(
            d for d in subdirs if d.isidentifier() and d not in _SKIP_DIRS and len(rel_dir.parts) < max_depth
        )
        paths += [Path(folder) / f for f in filenames if f.endswith(".py")]
    for path in sorted(paths):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or any(not p.isidentifier() for p in parts):
            continue
        dotted = ".".join(parts)
        if any(dotted == s or dotted.startswith(s + ".") for s in _SKIP_STDLIB) or "test" in parts[1:]:
            continue
        if len(parts) > max_depth:
            continue
        files[dotted] = path
    names = sorted(files)
    index = {m: i for i, m in enumerate(names)}

    def resolve(target: str) -> int | None:
        parts = target.split(".")
        for k in range(len(parts), 0, -1):
            i = index.get(".".join(parts[:k]))
            if i is not None:
                return i
        return None

    edges = []
    for mod in names:
        path = files[mod]
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        src = index[mod]
        for node in _import_statements(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".") if package else []
                    up = up[: len(up) - (node.level - 1)] if node.level > 1 else up
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" if base else a.name for a in node.names]
            for t in targets:
                j = resolve(t)
                if j is not None and j != src:
                    edges.append((src, j))
    groups = [m.split(".")[0] for m in names]
    e = _clean(edges, len(names))
    if largest_component:
        return _largest_weak_component(e, names, groups, "stdlib imports")
    return DirectedGraph(e, names, groups, "stdlib imports")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_graph(*, largest_component: bool = False) -> DirectedGraph:
    """The requirement graph of the installed distributions (`importlib.metadata`).

    Nodes: installed distributions (PEP 503-normalized names); an edge $u \\to v$ when `u`
    declares `Requires-Dist: v` without an environment marker (extras and platform-conditional
    requirements are left out) and `v` is installed.

    Args:
        largest_component: keep only the largest weakly connected component.

    Returns:
        `DirectedGraph`, `groups`: `"top"` for distributions nothing requires, `"dependency"`
        otherwise.

    Example:
        >>> g = distribution_graph()
        >>> g.n_nodes >= 1
        True
    """
    reqs: dict[str, list[str]] = {}
    for dist in metadata.distributions():
        raw = dist.metadata["Name"] if dist.metadata else None
        if not raw:
            continue
        name = _normalize(raw)
        out = reqs.setdefault(name, [])
        for r in dist.requires or []:
            if ";" in r:
                continue  # conditional (extra / platform marker)
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r)
            if m:
                out.append(_normalize(m.group(1)))
    names = sorted(reqs)
    index = {m: i for i, m in enumerate(names)}
    edges = [(index[u], index[v]) for u in names for v in reqs[u] if v in index]
    e = _clean(edges, len(names))
    has_in = np.zeros(len(names), dtype=bool)
    has_in[e[:, 1]] = True
    groups = ["dependency" if h else "top" for h in has_in]
    if largest_component and len(e):
        return _largest_weak_component(e, names, groups, "installed distributions")
    return DirectedGraph(e, names, groups, "installed distributions")


def dpkg_graph(
    path: str | Path = "/var/lib/dpkg/status", *, largest_component: bool = True
) -> DirectedGraph | None:
    """Debian's installed packages and their `Depends` / `Pre-Depends` (an edge package $\\to$ dependency).

    For an alternative `a | b` the first installed one counts; versions and `:arch` are ignored.
    Packages whose status is not `install ok installed` are left out.

    Args:
        path: the dpkg status file.
        largest_component: keep only the largest weakly connected component.

    Returns:
        `DirectedGraph` (`groups` = the package's `Section`), or `None` when `path` does not exist.
    """
    p = Path(path)
    if not p.is_file():
        return None
    pkgs: dict[str, tuple[str, list[list[str]]]] = {}
    for para in p.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        name = fields.get("Package")
        if not name or "installed" not in fields.get("Status", "").split()[-1:]:
            continue
        deps = []
        for k in ("Pre-Depends", "Depends"):
            for clause in filter(None, (c.strip() for c in fields.get(k, "").split(","))):
                deps.append([re.split(r"[\s:(]", alt.strip())[0] for alt in clause.split("|")])
        pkgs[name] = (fields.get("Section", "unknown").split("/")[-1], deps)
    names = sorted(pkgs)
    index = {m: i for i, m in enumerate(names)}
    edges = []
    for u in names:
        for alts in pkgs[u][1]:
            hit = next((a for a in alts if a in index), None)
            if hit is not None:
                edges.append((index[u], index[hit]))
    groups = [pkgs[m][0] for m in names]
    e = _clean(edges, len(names))
    if largest_component and len(e):
        return _largest_weak_component(e, names, groups, "dpkg Depends")
    return DirectedGraph(e, names, groups, "dpkg Depends")


# ---------------------------------------------------------------------------- generators
def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def _synthetic(edges, n: int, name: str, groups=None) -> DirectedGraph:
    names = [str(i) for i in range(n)]
    return DirectedGraph(_clean(edges, n), names, groups or ["node"] * n, name)


def _check_n(n: int, least: int = 2) -> int:
    if int(n) != n or n < least:
        raise ValueError(f"n must be an integer >= {least}, got {n}")
    return int(n)


def growing_network(n: int, *, seed=0) -> DirectedGraph:
    """Growing network (networkx `gn_graph` with the linear kernel): a tree, edges new $\\to$ old.

    Node $t$ links to an older node $s$ with probability $\\propto \\mathrm{indeg}(s) + 1$.

    Example:
        >>> g = growing_network(50)
        >>> len(g.edges), bool((g.edges[:, 0] > g.edges[:, 1]).all())
        (49, True)
    """
    n = _check_n(n)
    rng = _rng(seed)
    weight = np.zeros(n)
    weight[0] = 1.0
    edges = []
    for t in range(1, n):
        s = int(rng.choice(t, p=weight[:t] / weight[:t].sum()))
        edges.append((t, s))
        weight[s] += 1.0
        weight[t] = 1.0
    return _synthetic(edges, n, f"growing network (n={n})")


def growing_network_copying(n: int, *, seed=0) -> DirectedGraph:
    """Growing network with copying (networkx `gnc_graph`): a DAG, edges new $\\to$ old.

    Node $t$ picks an older node $s$ uniformly and links to $s$ and to every successor of $s$.

    Example:
        >>> g = growing_network_copying(100)
        >>> bool((g.edges[:, 0] > g.edges[:, 1]).all()), len(g.edges) > 2 * 99
        (True, True)
    """
    n = _check_n(n)
    rng = _rng(seed)
    succ: list[list[int]] = [[] for _ in range(n)]
    edges = []
    for t in range(1, n):
        s = int(rng.integers(t))
        succ[t] = [s, *succ[s]]
        edges.extend((t, v) for v in succ[t])
    return _synthetic(edges, n, f"growing network with copying (n={n})")


def scale_free_digraph(n: int, *, alpha=0.41, beta=0.54, gamma=0.05, delta_in=0.2, delta_out=0.0, seed=0):
    """Directed preferential attachment (Bollobás, Borgs, Chayes, Riordan 2003; networkx `scale_free_graph`).

    Starting from the 3-cycle, each step adds with probability `alpha` a new node with an edge to an
    existing node chosen $\\propto$ in-degree + `delta_in`; with `beta` an edge between existing nodes
    (source $\\propto$ out-degree + `delta_out`, target $\\propto$ in-degree + `delta_in`); with
    `gamma` a new node with an edge from an existing node chosen $\\propto$ out-degree + `delta_out`;
    until there are `n` nodes. Duplicate edges and self-loops are dropped.

    Example:
        >>> g = scale_free_digraph(200)
        >>> g.n_nodes, len(g.edges) > 200
        (200, True)
    """
    n = _check_n(n, 3)
    if not np.isclose(alpha + beta + gamma, 1.0) or min(alpha, beta, gamma) < 0:
        raise ValueError(f"alpha + beta + gamma must be 1 with each >= 0, got {alpha}, {beta}, {gamma}")
    rng = _rng(seed)
    indeg = np.zeros(n)
    outdeg = np.zeros(n)
    edges = [(0, 1), (1, 2), (2, 0)]
    for u, v in edges:
        outdeg[u] += 1
        indeg[v] += 1
    count = 3

    def pick(deg, shift):
        w = deg[:count] + shift
        return int(rng.choice(count, p=w / w.sum())) if w.sum() > 0 else int(rng.integers(count))

    while count < n:
        r = rng.random()
        if r < alpha:
            v = pick(indeg, delta_in)
            u = count
            count += 1
        elif r < alpha + beta:
            u, v = pick(outdeg, delta_out), pick(indeg, delta_in)
        else:
            u = pick(outdeg, delta_out)
            v = count
            count += 1
        edges.append((u, v))
        outdeg[u] += 1
        indeg[v] += 1
    return _synthetic(edges, n, f"scale-free digraph (n={n})")


def random_dag(n: int, p: float = 0.05, *, seed=0) -> DirectedGraph:
    """A random DAG: a random order of the nodes, each pair $u \\to v$ with $u$ earlier an edge w.p. `p`.

    Example:
        >>> g = random_dag(60, 0.1)
        >>> g.n_nodes
        60
    """
    n = _check_n(n)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p must be in (0, 1], got {p}")
    rng = _rng(seed)
    order = rng.permutation(n)
    i, j = np.triu_indices(n, 1)
    keep = rng.random(len(i)) < p
    edges = np.stack([order[i[keep]], order[j[keep]]], 1)
    return _synthetic(edges, n, f"random DAG (n={n}, p={p})")


def binary_tree_digraph(depth: int) -> DirectedGraph:
    """The complete binary tree of the given depth, parent $\\to$ child; node $k$'s children $2k+1, 2k+2$.

    `groups` = the depth of each node.

    Example:
        >>> g = binary_tree_digraph(3)
        >>> g.n_nodes, len(g.edges)
        (15, 14)
    """
    if int(depth) != depth or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth}")
    n = 2 ** (int(depth) + 1) - 1
    child = np.arange(1, n)
    edges = np.stack([(child - 1) // 2, child], 1)
    level = np.floor(np.log2(np.arange(n) + 1)).astype(int)
    return _synthetic(edges, n, f"binary tree (depth {depth})", [f"depth {d}" for d in level])


if __name__ == "__main__":  # pragma: no cover - a quick look at the graphs of this machine
    for g in (stdlib_import_graph(), distribution_graph(), dpkg_graph()):
        print(g, file=sys.stdout)
