#!/usr/bin/env python3
"""Layering checks of the package (run from the repository root; `make test` runs them through
tests/project/test_layering.py):

  python scripts/check_layering.py [--root finslerlib]

1. **Import circles** between finslerlib's modules. Every import counts, at module level or inside
   a function. `from finslerlib.pkg import Name` goes to the module that the package's `__init__`
   takes `Name` from (a package `__init__` that only hands names on is transparent).
2. **Layers**: imports flow one way, `math <- {geodesics, eikonal} <- manifolds <- {curvature, nn,
   embedding, testing, integrations, optim}` (see docs/reference/architecture.md). A module may
   import its own subpackage and lower layers; the top layer may import other top-layer packages
   only as listed in `PEERS`.
3. **Private names across subpackages**: `from finslerlib.X import _name` in another subpackage,
   an import of another subpackage's private module, and `obj._member` / `getattr(obj, "_member")`
   in subpackage P where `_member` is defined only in other subpackages' classes.

`KNOWN` lists violations that are being removed (each with the reason it is still there): they are
reported but do not fail the check. Exit status 1 when anything else is found.
The logic of checks 1 and 3 is that of the house tools used while the package was redesigned.
"""

from __future__ import annotations

import argparse
import ast
import collections
import pathlib
import sys

LAYERS = {
    "math": 0,
    "geodesics": 1,
    "eikonal": 1,
    "manifolds": 2,
    "curvature": 3,
    "nn": 3,
    "embedding": 3,
    "testing": 3,
    "integrations": 3,
    "optim": 3,
    "(root)": 4,
}
"""Layer of each subpackage: a module may import subpackages of a lower layer and its own."""

PEERS = {
    ("testing", "curvature"),  # the kit's curvature laws are functions of finslerlib.curvature
    ("integrations", "nn"),  # glue of pytorch-metric-learning to the FAIM losses
}
"""Allowed imports between packages of the same layer, as `(importer, imported)`."""

KNOWN: set[str] = set()
"""Violations being removed, e.g. `"private: finslerlib/nn/head.py: ._chart"`, each with a comment
saying why it is still there (empty: the package has none)."""


def load(root: pathlib.Path):
    mods = {}
    for f in sorted(root.rglob("*.py")):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        mods[".".join(parts)] = (f, is_pkg, ast.parse(f.read_text(encoding="utf-8")))
    return mods


def resolve_from(module, level, current, is_pkg):
    if level == 0:
        return module
    pkg = current.split(".") if is_pkg else current.split(".")[:-1]
    pkg = pkg[: len(pkg) - (level - 1)]
    return ".".join(pkg + ([module] if module else []))


def import_edges(mods, base: str):
    """`{module: {imported module}}` with re-exports of package faces followed."""

    def target(pkgname, name, seen=()):
        sub = f"{pkgname}.{name}"
        if sub in mods:
            return sub
        if pkgname in mods and mods[pkgname][1] and pkgname not in seen:
            _, _, tree = mods[pkgname]
            for node in tree.body:
                if isinstance(node, ast.ImportFrom):
                    m = resolve_from(node.module, node.level, pkgname, True)
                    for a in node.names:
                        if (a.asname or a.name) == name and m and m.startswith(base):
                            return target(m, a.name, seen + (pkgname,)) if m in mods and mods[m][1] else m
        return pkgname if pkgname in mods else None

    edges = {m: set() for m in mods}
    for m, (_, is_pkg, tree) in mods.items():
        if is_pkg:
            continue  # a package face: its re-exports are followed through `target`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                mod = resolve_from(node.module, node.level, m, False)
                if not mod or not mod.startswith(base):
                    continue
                for a in node.names:
                    t = target(mod, a.name)
                    if t and t != m and not mods[t][1]:
                        edges[m].add(t)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(base) and a.name in mods and a.name != m and not mods[a.name][1]:
                        edges[m].add(a.name)
    return edges


def circles(edges) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "(root)"


def layer_violations(edges) -> list[str]:
    found = []
    for m, targets in sorted(edges.items()):
        p = subpackage(m)
        for t in sorted(targets):
            q = subpackage(t)
            if p == q or q == "(root)" and p == "(root)":
                continue
            lp, lq = LAYERS.get(p), LAYERS.get(q)
            if lp is None or lq is None:
                found.append(f"layer: {m} imports {t} (subpackage without a layer in LAYERS)")
            elif lq > lp or (lq == lp and (p, q) not in PEERS) or q == "(root)":
                found.append(f"layer: {m} imports {t}")
    return found


def private_names(root: pathlib.Path) -> list[str]:
    files = sorted(root.rglob("*.py"))

    def pkg_of(f):
        parts = f.relative_to(root).parts
        return parts[0] if len(parts) > 1 else "(root)"

    def private(name):
        return name.startswith("_") and not name.startswith("__")

    defs = collections.defaultdict(set)
    trees = {f: ast.parse(f.read_text(encoding="utf-8")) for f in files}
    for f, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for b in ast.walk(node):
                    if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) and private(b.name):
                        defs[b.name].add(pkg_of(f))
                    if (isinstance(b, ast.Attribute) and isinstance(b.value, ast.Name)
                            and b.value.id == "self" and private(b.attr) and isinstance(b.ctx, ast.Store)):
                        defs[b.attr].add(pkg_of(f))
    found = set()
    rel = root.parent
    for f, tree in trees.items():
        p, name = pkg_of(f), f.relative_to(rel).as_posix()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(root.name + "."):
                parts = node.module.split(".")
                if parts[1] != p:
                    found |= {f"private: {name}: imports {node.module}.{a.name}"
                              for a in node.names if private(a.name)}
                    if any(private(x) for x in parts[2:]):
                        found.add(f"private: {name}: imports private module {node.module}")
            if isinstance(node, ast.Attribute) and private(node.attr):
                v = node.value
                if isinstance(v, ast.Name) and v.id in ("self", "cls"):
                    continue
                if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                    continue
                owners = defs.get(node.attr)
                if owners and p not in owners:
                    found.add(f"private: {name}: .{node.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                    and private(node.args[1].value)):
                owners = defs.get(node.args[1].value)
                if owners and p not in owners:
                    found.add(f"private: {name}: {node.func.id}(..., {node.args[1].value!r})")
    return sorted(found)


def check(root: pathlib.Path) -> tuple[list[str], list[str]]:
    """`(new, known)`: the violations not in `KNOWN`, and those in it (file:line left out, so that
    an edit elsewhere in a file does not change an entry)."""
    mods = load(root)
    edges = import_edges(mods, root.name)
    found = [f"circle: {', '.join(c)}" for c in circles(edges)]
    found += layer_violations(edges) + private_names(root)
    new = [v for v in found if v not in KNOWN]
    return new, [v for v in found if v in KNOWN]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="finslerlib", help="the package directory")
    args = parser.parse_args(argv)
    new, known = check(pathlib.Path(args.root))
    for v in known:
        print(f"known    {v}")
    for v in new:
        print(f"NEW      {v}")
    for v in sorted(KNOWN - set(known)):
        print(f"fixed    {v} (remove it from KNOWN)")
    print(f"{len(new)} new violation(s), {len(known)} known (KNOWN in {pathlib.Path(__file__).name})")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
