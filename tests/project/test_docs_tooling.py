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


# ----------------------------------------------------------------------------- concept pages' numbers
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_randers_norm_page_indicatrix_is_the_h_sphere_around_w():
    """concepts/randers-norm.md: for a = I, b = (0.5, 0) the unit ball is the ellipse centred at
    W = (-2/3, 0) with semi-axes 1.333 (along b) and 1.155, measured on finslerlib's own indicatrix
    (v / F(v) over many directions), not on the formula the page derives."""
    m = finslerlib.Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
    theta = torch.linspace(0, 2 * np.pi, 200_001, dtype=torch.float64)
    u = torch.stack([theta.cos(), theta.sin()], -1)
    v = u / m.norm(torch.zeros_like(u), u)[:, None]  # F(v) = 1
    lo, hi = v.min(0).values, v.max(0).values
    centre, semi = (lo + hi) / 2, (hi - lo) / 2
    np.testing.assert_allclose(centre.numpy(), [-2 / 3, 0.0], atol=1e-9)
    np.testing.assert_allclose(semi.numpy(), [4 / 3, 2 / np.sqrt(3)], atol=1e-9)
    # the points are exactly the h-unit sphere around W, h = (1 - |b|^2)(a - b b^T)
    h = 0.75 * torch.diag(torch.tensor([0.75, 1.0], dtype=torch.float64))
    r = v - torch.tensor([-2 / 3, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(torch.einsum("ni,ij,nj->n", r, h, r).numpy(), 1.0, atol=1e-12)
    page = (DOCS / "concepts" / "randers-norm.md").read_text()
    for shown in ("1.333", "1.155", "W = (-2/3, 0)"):
        assert shown in page, shown


def test_duality_page_reverse_step_ratio():
    """concepts/duality.md: with drift s = 0.95, to lower f(v) = v_1 both descents move against b;
    the reverse metric's step -grad f is ((1 - s)/(1 + s))^2 = 6.6e-4 of the forward step grad(-f),
    and 1/(1 + s)^2 of the Euclidean step -e_1, measured with finslerlib's Finsler gradient."""
    s = 0.95
    m = finslerlib.Randers(torch.eye(2, dtype=torch.float64), torch.tensor([s, 0.0], dtype=torch.float64))
    x, df = torch.zeros(2, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    forward = m.finsler_gradient(x, -df)  # descent = "forward" (the default): l^{-1}(-df)
    reverse = -m.finsler_gradient(x, df)  # descent = "reverse": -l^{-1}(df)
    assert forward[0] < 0 and reverse[0] < 0  # both against the drift b = (s, 0)
    np.testing.assert_allclose((reverse.norm() / forward.norm()).item(), ((1 - s) / (1 + s)) ** 2, rtol=1e-10)
    np.testing.assert_allclose(reverse.norm().item(), 1 / (1 + s) ** 2, rtol=1e-10)
    np.testing.assert_allclose(((1 - s) / (1 + s)) ** 2, 6.6e-4, rtol=0.01)
    assert "6.6e-4" in (DOCS / "concepts" / "duality.md").read_text()


def test_geodesics_page_bump_length():
    """concepts/geodesics.md: the straight path over the bump a = (1 + 2 exp(-|x|^2/0.35^2))^2 I from
    (-1, 0) to (1, 0) has length 2 + 0.7 sqrt(pi) erf(1/0.35) = 3.2407 (scipy quadrature)."""
    from scipy.integrate import quad
    from scipy.special import erf

    length, _ = quad(lambda t: 1 + 2 * np.exp(-(t**2) / 0.35**2), -1, 1, epsabs=1e-13)
    np.testing.assert_allclose(length, 2 + 0.7 * np.sqrt(np.pi) * erf(1 / 0.35), rtol=1e-12)
    field = finslerlib.RandersField(
        a=lambda x: (
            (1 + 2 * torch.exp(-(x**2).sum(-1) / 0.35**2))[..., None, None] ** 2 * torch.eye(2, dtype=x.dtype)
        ),
        dim=2,
    )
    t = torch.linspace(-1, 1, 20_001, dtype=torch.float64)
    path = torch.stack([t, torch.zeros_like(t)], -1)
    speeds = field.norm(path, torch.tensor([1.0, 0.0], dtype=torch.float64).expand_as(path))
    np.testing.assert_allclose(torch.trapezoid(speeds, t).item(), length, rtol=1e-7)
    assert f"{length:.4f}" == "3.2407" and "3.2407" in (DOCS / "concepts" / "geodesics.md").read_text()


def test_notation_page_is_in_the_nav_and_symbols_keep_one_meaning():
    """docs/concepts/notation.md is reachable, and the symbols it fixes are not used otherwise."""
    mkdocs = (DOCS.parent / "mkdocs.yml").read_text()
    assert "concepts/notation.md" in mkdocs
    pages = {p.relative_to(DOCS).as_posix(): p.read_text() for p in DOCS.rglob("*.md")}
    pages = {k: v for k, v in pages.items() if not k.startswith("assets") and k != "changelog.md"}
    for name, text in pages.items():
        assert r"\mathbb{R}^{n,1}" not in text, f"{name}: Minkowski space is R^{{1,n}}"
        assert r"\sigma(t)" not in text, f"{name}: curves are gamma(t); sigma is the homothety rate"
        assert r"\ell = a v" not in text, f"{name}: ell is the Legendre map only"
        # lambda = 1 - |W|_h^2 only, on the pages that define it so
        if r"\lambda" in text and name != "concepts/notation.md":
            defined = r"\lambda = 1 -" in text or r"\lambda\, |v|_h^2" in text
            assert defined, f"{name}: lambda is 1 - |W|_h^2 only"
