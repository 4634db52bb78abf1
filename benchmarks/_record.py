"""Where the benchmark scripts put their figures: `record(...)` appends one ratio to the file named by
`FINSLERLIB_BENCH_RECORD` (set by `run_all.py`, i.e. `make bench`); run alone, a script only prints.

Each record is a ratio against a baseline timed in the same run, with the machine's load averages
when it was taken, so that `docs/data/benchmarks.json` never holds a number that `make bench` did not
measure.
"""

from __future__ import annotations

import json
import os
import time

ENV = "FINSLERLIB_BENCH_RECORD"


def record(
    name: str,
    measured: float,
    *,
    script: str,
    baseline: str,
    bar_op: str,
    bar: float,
    unit: str = "x",
    note: str = "",
) -> None:
    """Append one measured ratio (no-op unless `FINSLERLIB_BENCH_RECORD` names a file)."""
    path = os.environ.get(ENV)
    if not path:
        return
    entry = {
        "name": name,
        "script": script,
        "baseline": baseline,
        "bar_op": bar_op,
        "bar": float(bar),
        "unit": unit,
        "measured": round(float(measured), 3),
        "load": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    if note:
        entry["note"] = note
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
