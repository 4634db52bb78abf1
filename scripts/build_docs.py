"""Build the docs site into `site/`: fetch KaTeX, draw the figures, `mkdocs build --strict`.

This is what `make docs` runs (after installing the `docs` extra). The strict build fails on a
broken link or reference, a docstring that does not parse, and (through the hook in
`scripts/docs_hooks.py`) a public symbol missing from the API reference.

Usage: `python scripts/build_docs.py [extra mkdocs build arguments]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    env = dict(os.environ)
    # mkdocstrings reads the source tree (mkdocs.yml `paths: [.]`); the coverage hook imports it.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("NO_MKDOCS_2_WARNING", "1")
    subprocess.run([sys.executable, *args], check=True, cwd=ROOT, env=env)


def main(argv: list[str]) -> int:
    run("scripts/fetch_katex.py")
    run("scripts/make_figures.py")
    run("-m", "mkdocs", "build", "--strict", *argv)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as err:
        print(f"build_docs: `{' '.join(map(str, err.cmd[1:]))}` failed (exit {err.returncode})")
        raise SystemExit(1) from None
