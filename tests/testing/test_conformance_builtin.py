"""Every built-in manifold passes finslerlib.testing.check_manifold (the users' conformance kit)."""

import geoopt
import pytest
import torch

import finslerlib
from finslerlib import FunkBall, KillingWind, Navigation, Randers, RandersField
from finslerlib.testing import check_manifold


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


def _navigation() -> Navigation:
    """Navigation on the stereographic sphere in a rotation (exact Killing geodesics; the domain
    |W|_h < 1 is the whole chart, so long steps are fine). Sphere / hyperboloid bases and general
    winds are checked in tests/manifolds/test_navigation.py."""
    a = torch.tensor([[0.0, -0.3, 0.1], [0.3, 0.0, -0.2], [-0.1, 0.2, 0.0]], dtype=torch.float64)
    return Navigation(geoopt.SphereProjection(k=1.0), KillingWind(a))


# numerical geodesics: tolerances at the solver's accuracy (16 RK4 steps), fewer samples and a
# moderate "large step" (each is a long integration)
FIELD_OPTIONS = {"n": 8, "rtol": 1e-4, "atol": 1e-6, "large_steps": (3.0,)}

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
    "navigation": (_navigation, {"scale": 0.3}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_builtin_manifold_conforms(case, dtype):
    make, options = CASES[case]
    if case == "field" and dtype == torch.float32:
        options = {**options, "rtol": 2e-3, "atol": 1e-4}
    report = check_manifold(make(), dtype=dtype, seed=0, **options)
    assert report.ok and not report.failed
    # nothing silently skipped: these manifolds implement the whole API
    assert not report.skipped, report.skipped


def test_every_public_manifold_is_covered():
    names = {n for n in finslerlib.__all__ if isinstance(getattr(finslerlib, n), type)}
    manifolds = {n for n in names if issubclass(getattr(finslerlib, n), finslerlib.FinslerManifold)}
    covered = {type(make()).__name__ for make, _ in CASES.values()} | {"FinslerManifold"}
    assert manifolds <= covered | {"Randers"}, manifolds - covered
