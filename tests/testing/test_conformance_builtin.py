"""Every built-in manifold passes finslerlib.testing.check_manifold (the users' conformance kit)."""

import geoopt
import pytest
import torch

import finslerlib
from finslerlib import FunkBall, KillingWind, Navigation, Randers, RandersField
from finslerlib.testing import check_manifold
from tests.support import THOROUGH, sized


def _randers(seed: int, dim: int = 4, drift: float = 0.6) -> Randers:
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(dim, dtype=torch.float64)
    b = torch.randn(dim, generator=g, dtype=torch.float64)
    size = torch.sqrt(b @ torch.linalg.solve(a, b))
    return Randers(a, b * (drift / size))


def _learnable() -> Randers:
    torch.manual_seed(3)
    m = Randers.learnable(4, dtype=torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return m


def _field() -> RandersField:
    """A genuinely position-dependent metric: conformal a(x), bounded nonlinear drift."""

    def a(x):
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return eye * (1 + 0.1 * (x * x).sum(-1))[..., None, None]

    return RandersField(a=a, b=lambda x: 0.3 * torch.tanh(x), dim=2)


def _skew(n: int, size: float, seed: int) -> torch.Tensor:
    """A random skew-symmetric matrix of spectral norm `size` (a rotation's generator)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=g, dtype=torch.float64)
    m = m - m.T
    return size * m / torch.linalg.matrix_norm(m, ord=2)


def _navigation(base, n: int, size: float, *, lorentz: bool = False, shift=None):
    """Navigation in a Killing wind (exact geodesics) over a geoopt base; `make(seed)` draws the wind.
    General winds are checked in tests/manifolds/test_navigation.py."""

    def make(seed: int = 0) -> Navigation:
        a = _skew(n, size, seed)
        if lorentz:  # J-skew: A^T J + J A = 0 for J = diag(-1, 1, ..., 1)
            a = torch.diag(torch.tensor([-1.0] + [1.0] * (n - 1), dtype=torch.float64)) @ a
        return Navigation(base(), KillingWind(a, shift=shift))

    return make


# every Riemannian base of Navigation (the stereographic model in both signs of curvature): the
# admissible set |W|_h < 1 of a Killing wind is bounded on R^2 and on the Poincare disk, so long
# steps leave it by design there ("large_steps" skipped); on the hyperboloid too
NAVIGATION = {
    "navigation-euclidean": (_navigation(lambda: geoopt.Euclidean(ndim=1), 2, 0.4,
                                         shift=torch.tensor([0.1, -0.05], dtype=torch.float64)),
                             {"scale": 0.3, "skip": ["large_steps"]}),
    "navigation-sphere": (_navigation(geoopt.Sphere, 3, 0.5), {"scale": 0.3}),
    "navigation-lorentz": (_navigation(lambda: geoopt.Lorentz(k=1.5), 3, 0.3, lorentz=True),
                           {"scale": 0.3, "skip": ["large_steps"]}),
    "navigation-poincare": (_navigation(lambda: geoopt.PoincareBall(c=1.0), 2, 0.3),
                            {"scale": 0.3, "skip": ["large_steps"]}),
    "navigation-stereographic-negative": (_navigation(lambda: geoopt.Stereographic(k=-0.5), 2, 0.3),
                                          {"scale": 0.3, "skip": ["large_steps"]}),
    "navigation-sphere-projection": (_navigation(lambda: geoopt.SphereProjection(k=1.0), 3, 0.4),
                                     {"scale": 0.3}),
}


# numerical geodesics: tolerances at the solver's accuracy (16 RK4 steps), fewer samples and a
# moderate "large step" (each is a long integration); the default `ci` hypothesis profile runs 4
# samples per law, `dev` 8 (the field's kit runs are the longest of this file)
FIELD_OPTIONS = {"n": sized(4, 8), "rtol": 1e-4, "atol": 1e-6, "large_steps": (3.0,)}

CASES = {
    "randers": (lambda: _randers(0), {}),
    "randers-strong-drift": (lambda: _randers(1, drift=0.9), {}),
    "randers-reverse": (lambda: _randers(2).reverse(), {}),
    "randers-learnable": (_learnable, {}),
    "funk": (lambda: FunkBall(3), {}),
    "funk-radius-2": (lambda: FunkBall(2, radius=2.0), {}),
    # the reverse Funk metric is forward incomplete (the boundary is at finite distance, at most
    # log 2 from the centre): the kit's geodesic laws use fractions of logmap(x, y), within reach
    "funk-reverse": (lambda: FunkBall(3).reverse(), {}),
    "funk-small-radius": (lambda: FunkBall(3, radius=1e-3), {}),
    "field": (_field, FIELD_OPTIONS),
    **{name: (make, options) for name, (make, options) in NAVIGATION.items()},
}

# several seeds: the `dev` hypothesis profile runs three per case and dtype; the default `ci`
# profile one, rotating over the cases so that the matrix as a whole still sees three seeds
MATRIX = [
    pytest.param(case, dtype, seed, id=f"{case}-{name}-seed{seed}")
    for i, case in enumerate(CASES)
    for j, (dtype, name) in enumerate([(torch.float64, "float64"), (torch.float32, "float32")])
    for seed in ((0, 1, 2) if THOROUGH else ((i + j) % 3,))
]


@pytest.mark.parametrize(("case", "dtype", "seed"), MATRIX)
def test_builtin_manifold_conforms(case, dtype, seed):
    """Issue 20: the kit passes every built-in manifold, on every base, in float32 and float64,
    for several seeds (of the kit's sampling, and of the wind for navigation)."""
    make, options = CASES[case]
    if case == "field" and dtype == torch.float32:
        options = {**options, "rtol": 2e-3, "atol": 1e-4}
    m = make(seed) if case in NAVIGATION else make()
    report = check_manifold(m, dtype=dtype, seed=seed, **options)
    assert report.ok and not report.failed
    # nothing silently skipped: these manifolds implement the whole API (skips asked for by name)
    assert set(report.skipped) == set(options.get("skip", ())), report.skipped


def test_every_public_manifold_is_covered():
    names = {n for n in finslerlib.__all__ if isinstance(getattr(finslerlib, n), type)}
    manifolds = {n for n in names if issubclass(getattr(finslerlib, n), finslerlib.FinslerManifold)}
    covered = {type(make()).__name__ for make, _ in CASES.values()} | {"FinslerManifold"}
    assert manifolds <= covered | {"Randers"}, manifolds - covered
