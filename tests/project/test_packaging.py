"""The package as a user gets it: build the sdist and wheel, install the wheel into a fresh virtual
environment, import it and run a tiny forward, outside this checkout.

The fresh environment reaches torch, geoopt, numpy and scipy through a `.pth` line pointing at
the running interpreter's site-packages (no download, no second torch); the wheel itself is
installed with `--no-deps --no-index`, and the check asserts finslerlib is imported from the
fresh environment, not from this checkout or an editable install.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMOKE = """
import importlib.resources, pathlib, sys, torch
import finslerlib
from finslerlib.nn import FAIMHead
from finslerlib.integrations import pml  # importable without pytorch-metric-learning
here = pathlib.Path(finslerlib.__file__).resolve()
assert here.is_relative_to(pathlib.Path(sys.prefix).resolve()), here
assert importlib.resources.files("finslerlib").joinpath("py.typed").is_file()
head = FAIMHead(4, 3)
out = head(torch.randn(2, 4))
assert out.shape == (2, 3) and bool(torch.isfinite(out).all())
print("ok", finslerlib.__version__)
"""


@pytest.mark.slow
def test_wheel_builds_installs_and_runs_in_a_fresh_venv(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    )
    (wheel,) = dist.glob("finslerlib-*.whl")
    (sdist,) = dist.glob("finslerlib-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "finslerlib/py.typed" in names
    assert "finslerlib/integrations/pml.py" in names and "finslerlib/optim/groups.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert not any(n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    ).decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: pml" in metadata and "Provides-Extra: testing" in metadata

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    Path(target, "host_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )
    done = subprocess.run([str(python), "-I", "-c", SMOKE], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok 0.1.0")
    assert sdist.stat().st_size > 0
