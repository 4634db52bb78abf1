"""Fetch the KaTeX assets the docs site serves itself (no CDN at view time).

`npm pack katex@VERSION` downloads the release tarball from the npm registry with npm's own
client; its sha512 is checked against the pinned value below before anything is extracted.
Only what the site needs is unpacked into `docs/assets/katex/` (git-ignored): `katex.min.js`,
`katex.min.css`, `contrib/auto-render.min.js` and `fonts/`. A second run with the same version
is a no-op.

Offline: `KATEX_TARBALL=/path/to/katex-0.16.22.tgz python scripts/fetch_katex.py` uses a local
copy of the same tarball (still integrity-checked).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "0.16.22"
INTEGRITY = "sha512-XCHRdUw4lf3SKBaJe4EvgqIuWwkPSo9XoeO8GjQW94Bp7TWv9hNhzZjZ+OH9yf1UmLygb7DIT5GSFQiyt16zYg=="
ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "docs" / "assets" / "katex"
STAMP = DEST / "VERSION"
WANTED = ("dist/katex.min.js", "dist/katex.min.css", "dist/contrib/auto-render.min.js")


def _integrity(path: Path) -> str:
    digest = hashlib.sha512(path.read_bytes()).digest()
    return "sha512-" + base64.b64encode(digest).decode()


def _download(workdir: Path) -> Path:
    local = os.environ.get("KATEX_TARBALL")
    if local:
        return Path(local)
    npm = shutil.which("npm")
    if npm is None:
        sys.exit(
            "fetch_katex: npm not found. Install Node.js/npm, or set KATEX_TARBALL to a local "
            f"katex-{VERSION}.tgz"
        )
    subprocess.run(
        [npm, "pack", f"katex@{VERSION}", "--silent", "--pack-destination", str(workdir)],
        check=True,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    return workdir / f"katex-{VERSION}.tgz"


def main() -> int:
    if STAMP.is_file() and STAMP.read_text().strip() == VERSION:
        print(f"fetch_katex: KaTeX {VERSION} already in {DEST.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tarball = _download(Path(tmp))
        got = _integrity(tarball)
        if got != INTEGRITY:
            sys.exit(f"fetch_katex: integrity mismatch for {tarball}: {got} != {INTEGRITY}")
        staging = Path(tmp) / "katex"
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                if not member.isfile() or not (name in WANTED or name.startswith("dist/fonts/")):
                    continue
                target = staging / name.removeprefix("dist/")
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        (staging / "VERSION").write_text(VERSION + "\n")
        if DEST.exists():
            shutil.rmtree(DEST)
        DEST.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(staging, DEST)
    print(f"fetch_katex: KaTeX {VERSION} unpacked into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
