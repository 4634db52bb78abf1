"""Run the benchmark scripts (`make bench`), write `docs/data/benchmarks.json`, render the tables.

Each script prints its ratios to a baseline timed in the same run and records them through
`benchmarks/_record.py`; this collects the records, stores them with the machine (CPU, threads,
torch, load averages before and after) and regenerates the README's table and the docs' Benchmarks
page (`scripts/render_benchmarks.py`). Entries of scripts not run this time keep their previous
values, each with its own date and load.

Usage:
    python benchmarks/run_all.py [--only randers_cdist funk_cdist ...] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
JSON_PATH = ROOT / "docs" / "data" / "benchmarks.json"


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_before": [round(v, 2) for v in os.getloadavg()],
    }


def merge(old: list[dict], new: list[dict], scripts_run: set[str]) -> list[dict]:
    """New records replace the entries of the scripts that ran; the others are kept, in order."""
    kept = [e for e in old if e.get("script") not in scripts_run]
    names = {e["name"] for e in new}
    return [e for e in kept if e["name"] not in names] + new


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", default=None, help="script stems, e.g. randers_cdist funk_cdist")
    parser.add_argument("--no-write", action="store_true", help="print only, leave the JSON and tables alone")
    args = parser.parse_args(argv)

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    info = machine()
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        record_file = pathlib.Path(tmp) / "records.jsonl"
        env = dict(os.environ, FINSLERLIB_BENCH_RECORD=str(record_file), PYTHONPATH=str(ROOT))
        for script in scripts:
            print(f"\n=== {script.name}", flush=True)
            if subprocess.call([sys.executable, str(script)], cwd=ROOT, env=env) != 0:
                failed.append(script.name)
        records = []
        if record_file.exists():
            records = [json.loads(line) for line in record_file.read_text().splitlines() if line.strip()]
    info["load_after"] = [round(v, 2) for v in os.getloadavg()]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    if args.no_write:
        print(json.dumps(records, indent=1))
        return 1 if failed else 0
    data = json.loads(JSON_PATH.read_text()) if JSON_PATH.exists() else {"benchmarks": []}
    ran = {f"benchmarks/{s.name}" for s in scripts if s.name not in failed}
    data["benchmarks"] = merge(data.get("benchmarks", []), records, ran)
    data["machine"] = info
    data["measured_on"] = (
        f"{info['date']}, {info['cpu']} ({info['cpu_count']} CPUs), torch {info['torch']}, "
        f"{info['threads']} threads, load {info['load_before'][0]:.1f} before / "
        f"{info['load_after'][0]:.1f} after "
        "(each row: its own date and load); `make bench`"
    )
    JSON_PATH.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {JSON_PATH.relative_to(ROOT)} ({len(records)} new figures)")
    return subprocess.call([sys.executable, str(ROOT / "scripts" / "render_benchmarks.py")], cwd=ROOT) or (
        1 if failed else 0
    )


if __name__ == "__main__":
    sys.exit(main())
