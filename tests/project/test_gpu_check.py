"""`scripts/gpu_check.sh` on a machine without a GPU: says so and exits 0 at once; `--dry-run` lists
every step (the CUDA tests and the GPU benchmarks) without running any."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args, timeout=60):
    env = dict(os.environ, PYTHON=sys.executable)
    cmd = ["bash", str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the script would run")
def test_without_a_device_it_says_so_and_exits_0():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout


def test_dry_run_lists_the_steps_and_runs_nothing():
    out = _run("--dry-run")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "-m pytest" in text and "-k cuda" in text
    for script in ("bench_randers_cdist.py", "bench_funk_cdist.py", "bench_head.py", "bench_navigation.py"):
        assert f"benchmarks/{script} --device cuda" in text
    limits = [int(part.split("s)")[0]) for part in text.split("(limit ")[1:]]
    assert sum(limits) <= 8 * 60  # the whole check fits in 8 minutes
