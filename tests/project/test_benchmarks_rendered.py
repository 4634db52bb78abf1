"""The README's benchmark table and the docs' Benchmarks page are generated from
`docs/data/benchmarks.json` (`scripts/render_benchmarks.py`): both must agree with it, and every
figure in it must be a ratio recorded by a benchmark script with its date and load."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load("render_benchmarks", ROOT / "scripts" / "render_benchmarks.py")
run_all = _load("run_all", ROOT / "benchmarks" / "run_all.py")


@pytest.mark.parametrize("path", render.TARGETS, ids=lambda p: p.name)
def test_tables_agree_with_the_json(path):
    data = json.loads(render.JSON_PATH.read_text())
    assert render.current(path.read_text()) == render.render(data).strip("\n"), (
        f"{path.name} is out of date: run python scripts/render_benchmarks.py"
    )


def test_every_figure_names_its_script_baseline_date_and_load():
    data = json.loads(render.JSON_PATH.read_text())
    assert data["benchmarks"] and "machine" in data
    assert {"load_before", "load_after", "cpu", "torch"} <= set(data["machine"])
    for e in data["benchmarks"]:
        assert (ROOT / e["script"]).is_file(), e["script"]
        assert e["bar_op"] in ("<=", ">=") and isinstance(e["bar"], float)
        if e.get("measured") is not None:
            assert e.get("date") and len(e.get("load", [])) == 3, e["name"]


def test_render_check_flags_a_hand_edited_table(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{render.START}\n| stale |\n{render.END}\ny\n")
    monkeypatch.setattr(render, "TARGETS", (readme,))
    assert render.main(["--check"]) == 1
    assert render.main([]) == 0 and render.main(["--check"]) == 0
    assert readme.read_text().startswith("x\n") and readme.read_text().endswith("\ny\n")


def test_merge_replaces_only_the_scripts_that_ran():
    old = [
        {"name": "a", "script": "benchmarks/bench_a.py", "measured": 1.0},
        {"name": "b", "script": "benchmarks/bench_b.py", "measured": 2.0},
    ]
    new = [{"name": "a2", "script": "benchmarks/bench_a.py", "measured": 1.5}]
    merged = run_all.merge(old, new, {"benchmarks/bench_a.py"})
    assert [e["name"] for e in merged] == ["b", "a2"]
