"""Every built-in manifold passes finslerlib.testing.check_manifold (the users' conformance kit)."""

import pytest
import torch

import finslerlib
from finslerlib import FunkBall, Randers
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


CASES = {
    "randers": (lambda: _randers(0), {}),
    "randers-strong-drift": (lambda: _randers(1, drift=0.9), {}),
    "randers-reverse": (lambda: _randers(2).reverse(), {}),
    "randers-learnable": (_learnable, {}),
    "funk": (lambda: FunkBall(3), {}),
    "funk-radius-2": (lambda: FunkBall(2, radius=2.0), {}),
    # the reverse Funk metric is forward incomplete: the boundary is at finite distance
    # (at most log 2 from the centre), so "short" steps must be short against that
    "funk-reverse": (lambda: FunkBall(3).reverse(), {"scale": 0.1}),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_builtin_manifold_conforms(case, dtype):
    make, options = CASES[case]
    report = check_manifold(make(), dtype=dtype, seed=0, **options)
    assert report.ok and not report.failed
    # nothing silently skipped: these manifolds implement the whole API
    assert not report.skipped, report.skipped


def test_every_public_manifold_is_covered():
    names = {n for n in finslerlib.__all__ if isinstance(getattr(finslerlib, n), type)}
    manifolds = {n for n in names if issubclass(getattr(finslerlib, n), finslerlib.FinslerManifold)}
    covered = {type(make()).__name__ for make, _ in CASES.values()} | {"FinslerManifold"}
    assert manifolds <= covered | {"Randers"}, manifolds - covered
