"""The Makefile installs once (a stamp file that depends on pyproject.toml) and installs numpy with
torch, so `make test` / `make demo` do not reinstall every time and the first install does not
print "Failed to initialize NumPy". Checked with `make -n` (prints the commands, runs nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the Makefile and pyproject.toml with a virtual environment that 'exists'."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / ".venv" / "bin" / "python").chmod(0o755)
    return tmp_path


def dry_run(project: Path, target: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    cmd = ["make", "-n", target]
    out = subprocess.run(cmd, cwd=project, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_first_run_installs_torch_with_numpy(project: Path):
    commands = dry_run(project, "test")
    assert "pip install -q -c" in commands  # finslerlib and its extras
    (torch_line,) = [line for line in commands.splitlines() if "pip install" in line and "torch==" in line]
    assert "numpy" in torch_line.split("pip install", 1)[1], torch_line


@pytest.mark.parametrize("target", ["test", "demo", "lint", "typecheck"])
def test_installed_once_until_pyproject_changes(project: Path, target: str):
    stamp = project / ".venv" / ".installed"
    stamp.touch()
    assert "pip install" not in dry_run(project, target)
    later = time.time() + 10
    os.utime(project / "pyproject.toml", (later, later))  # pyproject.toml edited after the install
    assert "pip install" in dry_run(project, target)
