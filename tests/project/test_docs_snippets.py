"""Every ```python block of README.md and docs/**/*.md runs, so the documentation cannot drift from the API.

Every block runs **alone**, in a fresh namespace and a fresh temporary working directory, as a
reader who pastes it into a script or a REPL would run it: it has its own imports and data, and
it prints what it shows (a bare expression whose value a script would discard, such as
`m.dist(x, y)` on its own line, fails the test: write `print(m.dist(x, y))`). Two HTML comments,
written on the line(s) right before a block, change what happens to it:

* `<!-- snippet: skip (reason) -->`: the block is not run (GPU, long training, a third-party
  model); the reason is required. Use sparingly: prefer a snippet small enough to run.
* `<!-- snippet: requires module -->`: the block runs only where `module` is importable (an
  optional extra such as `pytorch_metric_learning` or `lightning`); otherwise it is skipped.
* `<!-- snippet: signature dotted.name -->`: the block is a call signature such as
  `FAIMHead(in_features, num_classes, manifold=None, *, scale=10.0)`; it is not run but compared
  with `inspect.signature(dotted.name)` (names, kinds, order and defaults; annotations ignored).

Test functions a block defines (`def test_...`, e.g. a hypothesis `@given` test or one decorated
with `parametrize_manifolds`) are called after the block, once per parameter, so the tests the
docs recommend pass too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PAGES = [p for p in PAGES if "assets" not in p.relative_to(ROOT).parts]

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*snippet:\s*(?P<kind>\w+)\s*(?P<arg>.*?)\s*-->\s*\Z", re.S)


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    kind: str  # "run", "skip" or "signature"
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip()
        marker = MARKER.search(before[-300:])
        kind, arg = ("run", "") if marker is None else (marker["kind"], marker["arg"])
        found.append(Block(page, line, match[1], kind, arg))
    return found


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def _resolve(dotted: str):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise LookupError(dotted)


def _documented_parameters(code: str) -> list[tuple[str, str, object]]:
    """`Name(params)` as written in the docs -> [(name, kind, default)], kinds as in inspect."""
    call = code.strip()
    params = call[call.index("(") + 1 : call.rindex(")")]
    fn = ast.parse(f"def f({params}): pass").body[0].args
    out = []
    positional = fn.posonlyargs + fn.args
    defaults = [inspect.Parameter.empty] * (len(positional) - len(fn.defaults)) + fn.defaults
    for arg, default in zip(positional, defaults, strict=True):
        out.append((arg.arg, "POSITIONAL_OR_KEYWORD", default))
    if fn.vararg:
        out.append((fn.vararg.arg, "VAR_POSITIONAL", inspect.Parameter.empty))
    for arg, default in zip(fn.kwonlyargs, fn.kw_defaults, strict=True):
        out.append((arg.arg, "KEYWORD_ONLY", inspect.Parameter.empty if default is None else default))
    if fn.kwarg:
        out.append((fn.kwarg.arg, "VAR_KEYWORD", inspect.Parameter.empty))
    return [
        (name, kind, d if d is inspect.Parameter.empty else ast.literal_eval(d)) for name, kind, d in out
    ]


def _call_page_tests(namespace: dict, where: str) -> int:
    """Call the module-level `test_*` functions of a page (pytest-parametrized ones per value)."""
    called = 0
    for name, fn in list(namespace.items()):
        if not (name.startswith("test_") and inspect.isfunction(fn)):
            continue
        marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"]
        if marks:
            (mark,) = marks
            argname, values = mark.args[0], mark.args[1]
            calls = [{argname: v} for v in values]
        else:
            calls = [{}]
        for kwargs in calls:
            try:
                fn(**kwargs)
            except Exception as err:
                raise AssertionError(f"{where}: the page's {name}({kwargs}) failed: {err}") from err
            called += 1
    return called


def _actual_parameters(obj) -> list[tuple[str, str, object]]:
    sig = inspect.signature(obj)
    return [
        (p.name, "POSITIONAL_OR_KEYWORD" if p.kind is p.POSITIONAL_ONLY else p.kind.name, p.default)
        for p in sig.parameters.values()
        if p.name != "self"
    ]


ALL = [b for page in PAGES for b in blocks(page)]


def test_pages_have_snippets():
    """The extraction finds the blocks (a broken regex would make every page pass vacuously)."""
    pages = {b.page.name for b in ALL}
    assert {"README.md", "getting-started.md", "custom-metric.md", "verify-metric.md"} <= pages
    assert {"timm-torchvision.md", "pml.md", "distributed.md", "compile-export.md"} <= pages  # Integrations
    assert sum(b.kind == "run" for b in ALL) >= 20


def test_markers_are_known_and_skips_give_a_reason():
    for b in ALL:
        known = {"run", "skip", "signature", "requires"}
        assert b.kind in known, f"{b.where}: unknown snippet marker {b.kind!r}"
        if b.kind == "skip":
            assert re.fullmatch(r"\(.{8,}\)", b.arg), f"{b.where}: `snippet: skip` needs a (reason)"
        if b.kind == "signature":
            assert b.arg, f"{b.where}: `snippet: signature` needs the dotted name of the callable"
        if b.kind == "requires":
            assert re.fullmatch(r"[\w.]+", b.arg), f"{b.where}: `snippet: requires` needs a module name"


_SHOWN_TYPES = (torch.Tensor, numbers.Number, str, bytes, tuple, list, dict, set)


def _with_shown_values(code: str, where: str):
    """`code` compiled with every top-level expression statement wrapped in `__shown__(value, line)`."""
    tree = ast.parse(code, where)
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Await):
            call = ast.Call(
                func=ast.Name("__shown__", ast.Load()),
                args=[node.value, ast.Constant(node.lineno)],
                keywords=[],
            )
            tree.body[i] = ast.copy_location(ast.Expr(call), node)
    ast.fix_missing_locations(tree)
    return compile(tree, where, "exec")


RUNNABLE = [b for b in ALL if b.kind == "run" or b.kind == "requires"]


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_snippet_runs_alone(block, tmp_path, monkeypatch):
    """The block runs in a fresh namespace (its own imports), and shows what it computes by printing."""
    if block.kind == "requires" and not _importable(block.arg):
        pytest.skip(f"needs {block.arg}")
    monkeypatch.chdir(tmp_path)  # snippets that save files write into a scratch folder
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    discarded: list[str] = []

    def shown(value, line):
        # `load_state_dict`'s status tuple is not a result a reader expects to see
        status = type(value).__name__ == "_IncompatibleKeys"
        if value is not None and isinstance(value, _SHOWN_TYPES) and not status:
            discarded.append(f"line {line}: {type(value).__name__}")
        return value

    namespace: dict = {"__name__": f"snippet_{block.page.stem}_{block.line}", "__shown__": shown}
    try:
        exec(_with_shown_values(block.code, block.where), namespace)
    except Exception as err:
        raise AssertionError(f"snippet at {block.where} failed alone: {type(err).__name__}: {err}") from err
    finally:
        torch.set_default_dtype(default_dtype)
    assert not discarded, (
        f"{block.where}: a bare expression's value is discarded when the block runs as a script "
        f"({', '.join(discarded)}): print it"
    )
    called = _call_page_tests(namespace, block.where)
    defined = len(re.findall(r"^def test_", block.code, re.M))
    assert called >= defined, f"{block.where}: {defined} test functions defined, only {called} called"


def test_blocks_do_not_share_state():
    """Each block gets its own namespace: a name defined by one block is unknown to the next."""
    first = Block(ROOT / "README.md", 1, "shared = 1\n", "run")
    second = Block(ROOT / "README.md", 2, "print(shared)\n", "run")
    namespace: dict = {"__shown__": lambda v, line: v}
    exec(_with_shown_values(first.code, first.where), namespace)
    with pytest.raises(NameError):
        exec(_with_shown_values(second.code, second.where), {"__shown__": lambda v, line: v})


def test_bare_expressions_are_caught():
    """`m.dist(x, y)` alone on a line shows nothing in a script: the check sees the discarded value."""
    seen: list = []
    code = "import torch\nx = torch.ones(2)\nx.sum()\nprint(x)\nNone\n"
    exec(_with_shown_values(code, "<test>"), {"__shown__": lambda v, line: seen.append((line, v))})
    assert [line for line, v in seen if isinstance(v, _SHOWN_TYPES)] == [3]


@pytest.mark.parametrize(
    "block", [b for b in ALL if b.kind == "signature"], ids=lambda b: f"{b.where} {b.arg}"
)
def test_documented_signatures_match(block):
    documented = _documented_parameters(block.code)
    actual = _actual_parameters(_resolve(block.arg))
    assert documented == actual, f"{block.where}: the documented signature of {block.arg} is stale"


def test_readme_quickstart_is_short():
    """The README quickstart (run with the other README blocks above) stays a quickstart."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 12
