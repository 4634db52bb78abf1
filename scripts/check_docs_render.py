"""Check the built docs site as a reader sees it: pages rendered in headless Chromium.

For each checked page the site (`site/`, built by `make docs`) is served from 127.0.0.1, the page
is loaded in headless Chromium with its JavaScript, and the resulting DOM is inspected:

* the math is typeset: the page has `.katex` elements, every `.arithmatex` element contains one,
  no KaTeX error is shown, and no raw `$...$`, `\\(...\\)` or `\\[...\\]` is left in the text
  (code blocks excepted);
* nothing is loaded from another host (no CDN script, stylesheet or font);
* page-specific content is there (e.g. the `FAIMHead` entry on the `finslerlib.nn` API page);
* at a narrow window (760 px), no name in a table's first column (`finslerlib.testing`) is broken
  inside a word: a probe page loads the page in a same-origin iframe and measures, with
  `getClientRects`, every inline `code` of a table cell that holds a single word.

A screenshot of each page is written to `outputs/docs-check/` for a person to look at.

Usage: `python scripts/check_docs_render.py [--site site] [--out outputs/docs-check]`.
Needs Debian's `chromium` (`apt-get install chromium`) or `CHROMIUM=/path/to/chrome`.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (page path in the site, name, minimum number of typeset formulas, texts that must appear)
PAGES = [
    ("index.html", "home", 3, ["finslerlib"]),
    ("concepts/randers-norm/index.html", "concepts-randers-norm", 10, ["fundamental tensor"]),
    ("api/nn/index.html", "api-nn", 1, ["FAIMHead"]),
    ("concepts/notation/index.html", "concepts-notation", 40, ["one meaning"]),
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]
RAW_MATH = [
    re.compile(r"(?<![\\$])\$(?!\s)[^$\n]{1,200}(?<!\s)\$"),  # $...$ left untouched
    re.compile(r"\\\(|\\\)|\\\[|\\\]"),  # arithmatex delimiters that KaTeX never replaced
]


class _DomScan(HTMLParser):
    """Collects visible prose text (outside code, scripts and typeset math) and math counters."""

    SKIP_TAGS = {"script", "style", "code", "pre", "annotation", "textarea", "kbd"}
    VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                 "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool, bool]] = []  # (tag, skip, is_arithmatex, is_katex)
        self.text: list[str] = []
        self.katex = 0
        self.katex_errors = 0
        self.arithmatex = 0
        self.arithmatex_typeset = 0
        self._arith_has_katex: list[bool] = []
        self.external: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _, skip, _, _ in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "script" and re.match(r"(https?:)?//", attrs.get("src") or ""):
            self.external.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "") and re.match(
            r"(https?:)?//", attrs.get("href") or ""
        ):
            self.external.append(attrs["href"])
        is_katex = "katex" in classes or "katex-display" in classes
        if is_katex:
            self.katex += 1
            if self._arith_has_katex:
                self._arith_has_katex[-1] = True
        if "katex-error" in classes:
            self.katex_errors += 1
        is_arith = "arithmatex" in classes
        if is_arith:
            self.arithmatex += 1
            self._arith_has_katex.append(False)
        if tag in self.VOID_TAGS:
            return
        self.stack.append((tag, tag in self.SKIP_TAGS or is_katex, is_arith, is_katex))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _, is_arith, _ = self.stack.pop()
            if is_arith:
                self.arithmatex_typeset += self._arith_has_katex.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if not self._skipping():
            self.text.append(data)


def find_chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    sys.exit("check_docs_render: no Chromium found; `apt-get install chromium` or set CHROMIUM")


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.startswith("/" + PROBE):
            body = PROBE_HTML.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


# The layout probe: served at /__layout_probe__.html?page=<path>; it loads the page in an iframe of
# PROBE_WIDTH px and writes, into <pre id="result">, the single-word inline code elements of table
# cells that the browser laid out on more than one line (a word broken in the middle).
PROBE = "__layout_probe__.html"
PROBE_WIDTH = 760
PROBE_HTML = f"""<!doctype html><html><body style="margin:0">
<iframe id="page" style="width:{PROBE_WIDTH}px;height:1400px;border:0"></iframe>
<pre id="result">pending</pre>
<script>
const page = new URLSearchParams(location.search).get("page");
const frame = document.getElementById("page");
frame.onload = () => setTimeout(() => {{
  const broken = [];
  for (const code of frame.contentDocument.querySelectorAll(".md-typeset td code, .md-typeset th code")) {{
    const text = code.textContent.trim();
    if (/\\s/.test(text)) continue;  // several words may wrap between them
    if (code.getClientRects().length > 1) broken.push(text);
  }}
  document.getElementById("result").textContent = JSON.stringify({{checked: true, broken}});
}}, 1500);
frame.src = "/" + page;
</script></body></html>"""


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def check_page(binary: str, base: str, page: str, name: str, min_math: int, needles, out: Path):
    problems = []
    with tempfile.TemporaryDirectory(prefix="docs-check-") as profile:
        dumped = chromium(binary, Path(profile), "--dump-dom", base + page)
    if dumped.returncode != 0 or "<html" not in dumped.stdout:
        return [f"chromium could not render {page}: exit {dumped.returncode}: {dumped.stderr[-500:]}"]
    (out / f"{name}.html").write_text(dumped.stdout)
    scan = _DomScan()
    scan.feed(dumped.stdout)
    text = " ".join(" ".join(scan.text).split())
    if scan.katex < min_math:
        problems.append(f"only {scan.katex} typeset formulas (.katex), expected >= {min_math}")
    if scan.arithmatex_typeset != scan.arithmatex:
        problems.append(f"{scan.arithmatex - scan.arithmatex_typeset} of {scan.arithmatex} "
                        "formulas were not typeset by KaTeX")
    if scan.katex_errors:
        problems.append(f"{scan.katex_errors} KaTeX errors (.katex-error) on the page")
    for pattern in RAW_MATH:
        hits = pattern.findall(text)
        if hits:
            problems.append(f"raw math left in the text: {hits[:5]}")
    if scan.external:
        problems.append(f"resources loaded from other hosts: {scan.external}")
    for needle in needles:
        if needle not in text:
            problems.append(f"expected text {needle!r} not on the page")
    problems += wrapped_names(binary, base, page)
    with tempfile.TemporaryDirectory(prefix="docs-check-") as profile:
        shot = chromium(binary, Path(profile), "--window-size=1280,1800",
                        f"--screenshot={out / (name + '.png')}", base + page)
    if shot.returncode != 0 or not (out / f"{name}.png").is_file():
        problems.append(f"screenshot failed: {shot.stderr[-300:]}")
    print(f"  {page}: {scan.katex} formulas typeset ({scan.arithmatex} arithmatex), "
          f"{'OK' if not problems else 'FAILED'}")
    return problems


def wrapped_names(binary: str, base: str, page: str) -> list[str]:
    """Problems for single-word inline code in table cells that is broken across lines."""
    with tempfile.TemporaryDirectory(prefix="docs-check-") as profile:
        dumped = chromium(binary, Path(profile), "--window-size=800,1600", "--dump-dom",
                          f"{base}{PROBE}?page={page}")
    match = re.search(r'<pre id="result">(.*?)</pre>', dumped.stdout, re.S)
    if match is None or '"checked"' not in match[1]:
        return [f"layout probe did not run on {page}: {dumped.stderr[-300:]}"]
    broken = json.loads(html.unescape(match[1]))["broken"]
    return [f"names broken inside a word in table cells at {PROBE_WIDTH} px: {broken}"] if broken else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "docs-check")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        sys.exit(f"check_docs_render: {args.site}/index.html missing; run `make docs` first")
    binary = find_chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    server, base = serve(args.site)
    failures = {}
    try:
        print(f"check_docs_render: {binary} on {base}")
        for page, name, min_math, needles in PAGES:
            problems = check_page(binary, base, page, name, min_math, needles, args.out)
            if problems:
                failures[page] = problems
    finally:
        server.shutdown()
    for page, problems in failures.items():
        for problem in problems:
            print(f"FAIL {page}: {problem}")
    print(f"check_docs_render: {len(PAGES) - len(failures)} passed, {len(failures)} failed; "
          f"screenshots in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
