"""Helpers shared by the scripts in `examples/` (not an example itself: the test suite skips `_` files).

Every example writes to its own folder, `outputs/<example name>/`; its `--smoke` runs (the test
suite's, or yours) write to `outputs/smoke/<example name>/`, so a smoke run never overwrites what
a full run (`make demo`) produced. `--out DIR` overrides both.
"""

from __future__ import annotations

from pathlib import Path

OUTPUTS = Path("outputs")


def output_folder(name: str, smoke: bool, out: str | Path | None = None) -> Path:
    """The folder an example writes to, created if missing.

    Args:
        name: the example's name, e.g. `"digits_demo"` (its file name without `.py`).
        smoke: whether this is a `--smoke` run.
        out: an explicit folder (`--out`); `None` for the default
            `outputs/<name>/` (`outputs/smoke/<name>/` for smoke runs), relative to the
            working directory.

    Returns:
        The folder, as a `Path`.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name must be a plain example name, got {name!r}")
    folder = Path(out) if out is not None else (OUTPUTS / "smoke" / name if smoke else OUTPUTS / name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
