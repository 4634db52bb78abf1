"""The docs tooling: figure formulas against independent computations, and the docs-build checks
(raw-math scan, API coverage, benchmark table, `Example:` sections) on inputs where they must fail."""

import importlib.util
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import finslerlib

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = _load("make_figures")
hooks = _load("docs_hooks")


# ----------------------------------------------------------------------------- figure formulas
@pytest.mark.parametrize("drift", [0.0, 0.3, 0.7])
def test_indicatrix_points_have_unit_norm_under_finslerlib(drift):
    a = np.array([[2.0, 0.3], [0.3, 0.7]])
    b = np.array([drift, -0.5 * drift]) * 0.6
    pts = figures.indicatrix(a, b, n=64)
    metric = finslerlib.Randers(torch.tensor(a), torch.tensor(b))
    norms = metric.norm(torch.zeros(64, 2, dtype=torch.float64), torch.tensor(pts))
    np.testing.assert_allclose(norms.numpy(), 1.0, atol=1e-12)


def test_navigation_data_unit_ball_is_the_translated_h_ball():
    h = np.array([[1.0, 0.3], [0.3, 0.6]])
    wind = np.array([0.25, 0.55])
    a, b = figures.navigation_to_randers(h, wind)
    theta = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    u = np.stack([np.cos(theta), np.sin(theta)], -1)
    u /= np.sqrt(np.einsum("nd,de,ne->n", u, h, u))[:, None]  # |u|_h = 1
    np.testing.assert_allclose(figures.randers_norm(a, b, wind + u), 1.0, atol=1e-12)


def _ray_distance(x, y):
    """Funk distance by the ray construction log(|x - p| / |y - p|), p = exit point of the ray."""
    d = y - x
    # |x + s d| = 1, s > 0
    qa, qb, qc = d @ d, 2 * x @ d, x @ x - 1
    s = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    p = x + s * d
    return np.log(np.linalg.norm(x - p) / np.linalg.norm(y - p))


def test_funk_forward_sphere_is_at_the_ray_distance():
    x = np.array([0.35, 0.2])
    for r in (0.5, 1.0, 2.0):
        for y in figures.funk_forward_sphere(x, r, n=24):
            assert _ray_distance(x, y) == pytest.approx(r, rel=1e-9)
            assert figures.funk_dist(x[None], y[None])[0] == pytest.approx(r, rel=1e-9)


def test_funk_geodesic_is_unit_speed_along_a_chord():
    x, v = np.array([0.1, -0.4]), np.array([0.3, 1.0])
    t = np.linspace(0.0, 3.0, 7)
    pts = figures.funk_geodesic(x, v, t)
    np.testing.assert_allclose([_ray_distance(x, p) for p in pts[1:]], t[1:], rtol=1e-9)
    direction = (pts[1:] - x) / np.linalg.norm(pts[1:] - x, axis=-1, keepdims=True)
    np.testing.assert_allclose(direction, np.broadcast_to(v / np.linalg.norm(v), direction.shape))


def test_flag_curvature_figure_has_the_fields_point_symmetry():
    """x -> -x is an isometry of that field (a even, b odd), so K(-x, -y) = K(x, y)."""
    grid, k_plus, k_minus = figures.curvature_field_grid(n=7)
    assert np.allclose(grid, -grid[::-1])
    np.testing.assert_allclose(k_minus, k_plus[::-1, ::-1], rtol=1e-9, atol=1e-12)
    assert np.ptp(k_plus) > 0.1  # not constant: the figure shows something


# ----------------------------------------------------------------------------- build checks
def test_raw_math_scan_flags_untypeset_dollars_only():
    ok = (
        '<p>A <span class="arithmatex">\\(x \\to y\\)</span> and <code>$HOME $x$</code></p>'
        "<pre>cost: $5 and $6</pre>"
    )
    assert hooks.raw_math(ok) == []
    bad = "<p>with $\\|b\\|_{a^{-1}} &lt;$ max and $x$</p>"
    assert hooks.raw_math(bad) == ["$\\|b\\|_{a^{-1}} <$", "$x$"]


def _inventory(tmp_path, names):
    body = "".join(f"{n} py:class 1 api/#$ -\n" for n in names).encode()
    header = b"# Sphinx inventory version 2\n# Project: t\n# Version: 0\n# zlib\n"
    path = tmp_path / "objects.inv"
    path.write_bytes(header + zlib.compress(body))
    return path


def test_api_coverage_flags_a_symbol_missing_from_the_inventory(tmp_path):
    api = hooks.public_api()
    assert "finslerlib.Randers" in api and "finslerlib.math.randers.norm" in api
    everything = hooks.read_inventory(_inventory(tmp_path, sorted(api)))
    assert hooks.undocumented(api, everything) == []
    # documented under its defining module only: still found (same object)
    canonical = everything - {"finslerlib.Randers", "finslerlib.manifolds.Randers"}
    canonical |= {"finslerlib.manifolds.randers.Randers"}
    assert hooks.undocumented(api, canonical) == []
    missing = everything - {"finslerlib.math.randers.dual_norm"}
    assert hooks.undocumented(api, missing) == ["finslerlib.math.randers.dual_norm"]


def test_benchmark_table_never_shows_an_unmeasured_number():
    data = json.loads(hooks.BENCHMARKS_JSON.read_text())
    assert data["benchmarks"], "benchmarks.json lists no benchmark"
    for entry in data["benchmarks"]:
        assert {"name", "script", "baseline", "bar_op", "bar", "measured"} <= set(entry)
    entry = dict(data["benchmarks"][0], measured=None)
    assert "*not measured yet*" in hooks.benchmark_table([entry])
    assert "**1.7x**" in hooks.benchmark_table([dict(entry, measured=1.7)])


def test_example_sections_parse_as_examples():
    griffe = pytest.importorskip("griffe", reason="griffe comes with the docs extra")
    extension = _load("griffe_examples").ExampleSections()
    func = griffe.Function("f", docstring=griffe.Docstring("Do.\n\nExample:\n    >>> 1 + 1\n    2\n"))
    extension.on_object(obj=func)
    kinds = [s.kind.value for s in func.docstring.parse("google")]
    assert kinds == ["text", "examples"]


def test_sphere_navigation_figure_geodesics_are_the_manifold_geodesics():
    """The figure's numpy Killing geodesics equal finslerlib's Navigation.expmap (exact geodesics)."""
    import geoopt

    omega = 0.6
    a = torch.zeros(3, 3, dtype=torch.float64)
    a[0, 1], a[1, 0] = -omega, omega
    m = finslerlib.Navigation(geoopt.Sphere(), finslerlib.KillingWind(a))
    x = np.array([np.cos(0.3), 0.0, np.sin(0.3)])
    t = np.linspace(0.0, 1.6, 9)
    for u in figures._tangent_circle(x, 5):
        curve = figures.killing_geodesic(x, u, omega, t)
        xt = torch.tensor(x)
        v = torch.tensor(u) + m.wind(xt)  # heading u through the air: F(x, v) = 1
        assert abs(m.norm(xt, v).item() - 1.0) < 1e-12
        ours = m.expmap(xt.expand(len(t), 3), torch.tensor(t)[:, None] * v)
        np.testing.assert_allclose(curve, ours.numpy(), atol=1e-12)
