"""Graph loaders built at run time, checked against independent reads of the same sources.

Oracles: `importlib.metadata.requires`, the source text of a stdlib module, a hand-written dpkg
status file, the generators' defining properties (acyclicity by a topological sort, the copying
rule, networkx's degree sequence for the tree), networkx where it is installed.
"""

from __future__ import annotations

import sysconfig
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from finslerlib.embedding.datasets import (
    binary_tree_digraph,
    distribution_graph,
    dpkg_graph,
    growing_network,
    growing_network_copying,
    random_dag,
    scale_free_digraph,
    stdlib_import_graph,
)


def is_acyclic(edges: np.ndarray, n: int) -> bool:
    indeg = np.bincount(edges[:, 1], minlength=n)
    out = [[] for _ in range(n)]
    for u, v in edges:
        out[u].append(v)
    stack = [i for i in range(n) if indeg[i] == 0]
    seen = 0
    while stack:
        u = stack.pop()
        seen += 1
        for v in out[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                stack.append(v)
    return seen == n


def clean(g) -> None:
    e = g.edges
    assert e.dtype == np.int64 and e.ndim == 2 and e.shape[1] == 2
    assert (e[:, 0] != e[:, 1]).all() and len(np.unique(e, axis=0)) == len(e)
    assert e.min() >= 0 and e.max() < g.n_nodes and len(g.groups) == g.n_nodes


def test_stdlib_import_graph_has_the_imports_of_json():
    g = stdlib_import_graph()
    clean(g)
    assert 100 < g.n_nodes < 2000 and not is_acyclic(g.edges, g.n_nodes)  # imports are cyclic
    idx = {m: i for i, m in enumerate(g.names)}
    source = (Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py").read_text()
    assert "import re" in source and "from json import scanner" in source
    edges = {(int(a), int(b)) for a, b in g.edges}
    assert (idx["json.decoder"], idx["re"]) in edges
    assert (idx["json.decoder"], idx["json.scanner"]) in edges
    assert (idx["json"], idx["json.decoder"]) in edges  # relative: from .decoder import ...
    assert g.groups[idx["json.decoder"]] == "json"
    assert not any(n.startswith("test.") or n == "test" for n in g.names)
    with pytest.raises(ValueError, match="max_depth"):
        stdlib_import_graph(max_depth=0)


def test_distribution_graph_matches_importlib_metadata():
    g = distribution_graph()
    clean(g)
    idx = {m: i for i, m in enumerate(g.names)}
    edges = {(g.names[a], g.names[b]) for a, b in g.edges}
    checked = 0
    for name in g.names:
        for req in metadata.requires(name) or []:
            if ";" in req:
                continue
            target = req.split()[0]
            for sep in "<>=!~[(":
                target = target.split(sep)[0]
            target = target.lower().replace("_", "-").replace(".", "-")
            if target in idx and target != name:
                assert (name, target) in edges
                checked += 1
    assert checked == len(edges)


def test_dpkg_graph_parses_a_status_file(tmp_path):
    status = tmp_path / "status"
    status.write_text(
        "Package: a\nStatus: install ok installed\nSection: libs\nDepends: b (>= 1.0), c:amd64 | d\n\n"
        "Package: b\nStatus: install ok installed\nSection: utils\nPre-Depends: d\n\n"
        "Package: d\nStatus: install ok installed\nSection: libs\n\n"
        "Package: e\nStatus: deinstall ok config-files\nDepends: a\n"
    )
    g = dpkg_graph(status)
    assert g.names == ["a", "b", "d"]
    assert {(g.names[u], g.names[v]) for u, v in g.edges} == {("a", "b"), ("a", "d"), ("b", "d")}
    assert g.groups == ["libs", "utils", "libs"]
    assert dpkg_graph(tmp_path / "missing") is None


def test_growing_network_is_a_tree_towards_the_root():
    g = growing_network(200, seed=3)
    clean(g)
    assert len(g.edges) == 199
    assert np.array_equal(np.sort(g.edges[:, 0]), np.arange(1, 200))  # one out-edge per new node
    assert (g.edges[:, 0] > g.edges[:, 1]).all()


def test_growing_network_with_copying_follows_its_rule():
    g = growing_network_copying(150, seed=1)
    clean(g)
    succ = {i: set() for i in range(g.n_nodes)}
    for u, v in g.edges:
        succ[int(u)].add(int(v))
    for t in range(1, g.n_nodes):
        # t links to some s and to all of s's successors: s is the successor with the most successors
        s = max(succ[t], key=lambda v: len(succ[v]))
        assert succ[t] == {s} | succ[s]
    assert is_acyclic(g.edges, g.n_nodes) and len(g.edges) > 2 * g.n_nodes


def test_random_dag_and_scale_free_and_tree():
    dag = random_dag(100, 0.1, seed=2)
    clean(dag)
    assert is_acyclic(dag.edges, 100)
    expected = 0.1 * 100 * 99 / 2
    assert abs(len(dag.edges) - expected) < 5 * np.sqrt(expected)
    sf = scale_free_digraph(300, seed=0)
    clean(sf)
    assert sf.n_nodes == 300
    indeg = np.bincount(sf.edges[:, 1], minlength=300)
    assert indeg.max() > 10 * np.median(indeg)  # heavy-tailed in-degrees
    tree = binary_tree_digraph(5)
    clean(tree)
    assert len(tree.edges) == 62 and is_acyclic(tree.edges, 63)
    assert set(np.bincount(tree.edges[:, 0], minlength=63).tolist()) == {0, 2}
    for bad in (
        lambda: random_dag(1),
        lambda: random_dag(10, 0.0),
        lambda: binary_tree_digraph(0),
        lambda: scale_free_digraph(10, alpha=0.5, beta=0.6, gamma=0.1),
    ):
        with pytest.raises(ValueError):
            bad()


def test_generators_agree_with_networkx_where_installed():
    nx = pytest.importorskip("networkx")
    tree = binary_tree_digraph(4)
    ref = nx.balanced_tree(2, 4, create_using=nx.DiGraph)
    assert {(int(a), int(b)) for a, b in tree.edges} == set(ref.edges())
    g = growing_network_copying(120, seed=0)
    assert nx.is_directed_acyclic_graph(nx.DiGraph(g.edges.tolist()))
