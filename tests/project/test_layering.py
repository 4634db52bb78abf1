"""The package's layering (scripts/check_layering.py): no import circle, imports flow one way
(`math <- {geodesics, eikonal} <- manifolds <- {curvature, nn, embedding, testing, ...}`), no
private name used across subpackages. The checker itself is tested on small packages written
here, each with one known defect."""

import importlib.util
import pathlib
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _checker():
    spec = importlib.util.spec_from_file_location("check_layering", ROOT / "scripts" / "check_layering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_new_layering_violation():
    new, _ = _checker().check(ROOT / "finslerlib")
    assert not new, "\n".join(new)


def _package(tmp_path, files: dict[str, str]) -> pathlib.Path:
    root = tmp_path / "finslerlib"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return root


def test_circle_through_an_import_inside_a_function_is_found(tmp_path):
    root = _package(tmp_path, {
        "manifolds/base.py": "def reverse():\n    from finslerlib.manifolds.reversed import Reversed\n",
        "manifolds/reversed.py": "from finslerlib.manifolds.base import reverse\n",
    })
    new, _ = _checker().check(root)
    assert new == ["circle: finslerlib.manifolds.base, finslerlib.manifolds.reversed"]


def test_an_import_against_the_layers_is_found(tmp_path):
    root = _package(tmp_path, {
        "math/randers.py": "from finslerlib.manifolds.base import FinslerManifold\n",
        "manifolds/base.py": "class FinslerManifold:\n    pass\n",
    })
    new, _ = _checker().check(root)
    assert new == ["layer: finslerlib.math.randers imports finslerlib.manifolds.base"]


@pytest.mark.parametrize("use", ["m._wind_at(x)", "getattr(m, '_wind_at')(x)"])
def test_a_private_member_of_another_subpackage_is_found(tmp_path, use):
    root = _package(tmp_path, {
        "manifolds/navigation.py": "class Navigation:\n    def _wind_at(self, x):\n        return x\n",
        "curvature/transport.py": f"def transport(m, x):\n    return {use}\n",
    })
    new, _ = _checker().check(root)
    assert len(new) == 1 and new[0].startswith("private: finslerlib/curvature/transport.py:"), new


def test_clean_package_passes(tmp_path):
    root = _package(tmp_path, {
        "math/linalg.py": "def solve(a, b):\n    return b\n",
        "manifolds/base.py": "from finslerlib.math.linalg import solve\n",
        "nn/head.py": "from finslerlib.manifolds.base import solve\n",
    })
    assert _checker().check(root) == ([], [])
