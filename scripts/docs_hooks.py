"""mkdocs hooks (configured in mkdocs.yml): keep the docs site from rotting.

* `on_page_markdown`: renders the benchmark table of `docs/benchmarks.md` from
  `docs/data/benchmarks.json`, the single place where measured numbers are written.
* `on_post_build`: a raw-math scan of every built page (a `$...$` that arithmatex did not pick
  up, e.g. `$x $` with a space before the closing dollar, would reach the reader as raw TeX),
  then the API-coverage check. Every name in the `__all__` of every public
  finslerlib module must be documented somewhere in the API reference (present in the
  `objects.inv` inventory mkdocstrings writes). A missing one is logged as a warning, which
  fails `mkdocs build --strict`: a new public subpackage cannot land without an API page.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import re
import sys
import types
import zlib
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_JSON = ROOT / "docs" / "data" / "benchmarks.json"
TABLE_MARKER = "<!-- benchmarks-table -->"

log = logging.getLogger("mkdocs.hooks.finslerlib_docs")


# ----------------------------------------------------------------------------- benchmarks table
def benchmark_table(entries: list[dict]) -> str:
    """A Markdown table of the benchmark entries; unmeasured values show as *not measured*."""
    lines = [
        "| Benchmark | Measured against | Bar | Measured | Script |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        measured = e.get("measured")
        shown = "*not measured yet*" if measured is None else f"**{measured:g}{e.get('unit', '')}**"
        if e.get("note"):
            shown += f" ({e['note']})"
        op = {"<=": "≤", ">=": "≥"}.get(e["bar_op"], e["bar_op"])
        bar = f"{op} {e['bar']:g}{e.get('unit', '')}"
        lines.append(f"| {e['name']} | {e['baseline']} | {bar} | {shown} | `{e['script']}` |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if TABLE_MARKER not in markdown:
        return markdown
    data = json.loads(BENCHMARKS_JSON.read_text())
    table = benchmark_table(data["benchmarks"])
    note = data.get("measured_on") or "not measured yet"
    return markdown.replace(TABLE_MARKER, f"{table}\n\n*Machine and date:* {note}")


# ----------------------------------------------------------------------------- API coverage
def read_inventory(path: Path) -> set[str]:
    """Object names in a Sphinx `objects.inv` (version 2: 4 header lines, then zlib data)."""
    raw = path.read_bytes()
    header_end = 0
    for _ in range(4):
        header_end = raw.index(b"\n", header_end) + 1
    body = zlib.decompress(raw[header_end:]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line.strip()}


def _resolve(dotted: str):
    """The Python object named by a dotted path, or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:  # noqa: BLE001 - any failure means "not a module prefix"
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def public_api(package: str = "finslerlib") -> dict[str, object]:
    """`{"module.name": object}` for every name in `__all__` of every public module.

    A module is public when no component of its dotted name starts with `_`. Private names
    (leading `_`, e.g. `__version__`) are not API surface that needs a docs entry.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    root = importlib.import_module(package)
    names = [package] + [
        info.name for info in pkgutil.walk_packages(root.__path__, prefix=package + ".")
    ]
    api = {}
    for modname in names:
        if any(part.startswith("_") for part in modname.split(".")):
            continue
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            if not name.startswith("_"):
                api[f"{modname}.{name}"] = getattr(module, name)
    return api


def undocumented(api: dict[str, object], inventory: set[str]) -> list[str]:
    """Names of `api` whose object is not reachable from any inventory entry."""
    documented = set(inventory)
    documented_ids = set()
    for entry in inventory:
        obj = _resolve(entry)
        if obj is not None:
            documented_ids.add(id(obj))
    missing = []
    for dotted, obj in sorted(api.items()):
        if dotted in documented or id(obj) in documented_ids:
            continue
        if isinstance(obj, types.ModuleType) and any(e.startswith(obj.__name__ + ".") for e in inventory):
            continue  # a submodule re-exported in __all__ counts as documented when its members are
        missing.append(dotted)
    return missing


# ----------------------------------------------------------------------------- raw math scan
RAW_MATH = re.compile(r"(?<![\\$])\$(?!\s)[^$\n]{1,200}?\$")


class _ProseText(HTMLParser):
    """Text of a page outside code, scripts and arithmatex-wrapped math."""

    SKIP = {"script", "style", "code", "pre", "textarea"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        classes = (dict(attrs).get("class") or "").split()
        self.stack.append(tag in self.SKIP or "arithmatex" in classes)

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not any(self.stack):
            self.chunks.append(data)


def raw_math(html: str) -> list[str]:
    """`$...$` snippets left as plain text in a built page."""
    parser = _ProseText()
    parser.feed(html)
    return RAW_MATH.findall("".join(parser.chunks))


def on_post_build(config) -> None:
    site = Path(config["site_dir"])
    for page in sorted(site.rglob("*.html")):
        for snippet in raw_math(page.read_text(encoding="utf-8"))[:3]:
            log.warning("raw math: %s shows %r as plain text (check the $...$ in its source)",
                        page.relative_to(site), snippet)
    inventory_path = Path(config["site_dir"]) / "objects.inv"
    if not inventory_path.is_file():
        log.warning("API coverage: %s not written (is mkdocstrings enabled?)", inventory_path)
        return
    missing = undocumented(public_api(), read_inventory(inventory_path))
    for dotted in missing:
        log.warning(
            "API coverage: public symbol %s (in its module's __all__) is on no API page; "
            "add its module to a page under docs/api/ with a `::: module` block",
            dotted,
        )
    if not missing:
        log.info("API coverage: every public symbol is documented")
