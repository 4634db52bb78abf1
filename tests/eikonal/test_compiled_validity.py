"""The compiled validity pass of the eikonal kernel against `randers_validity` (the torch formulas)
on random, non-SPD, strong-drift and non-finite grid data, float32 and float64, D = 2 and 3."""

import pytest
import torch

from finslerlib.eikonal.kernel import compiled_validity
from finslerlib.math.validation import randers_validity
from tests.support.eikonal import needs_kernel

pytestmark = needs_kernel


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [2, 3])
def test_compiled_validity_matches_randers_validity(dtype, d):
    g = torch.Generator().manual_seed(d)
    n = 4000
    m = torch.randn(n, d, d, generator=g, dtype=torch.float64)
    a = m @ m.mT + 0.05 * torch.eye(d, dtype=torch.float64)
    a[:300] = 0.5 * (m[:300] + m[:300].mT)  # mostly indefinite
    b = torch.randn(n, d, generator=g, dtype=torch.float64)
    # drifts spread around |b|_{a^-1} = 1 (0.2 .. 1.8)
    size = torch.linalg.solve(a[300:], b[300:].unsqueeze(-1)).squeeze(-1).mul(b[300:]).sum(-1).abs().sqrt()
    b[300:] *= (torch.rand(n - 300, generator=g, dtype=torch.float64) * 1.6 + 0.2).unsqueeze(
        -1
    ) / size.unsqueeze(-1)
    a[5, 0, 0] = float("nan")
    a[6, d - 1, 0] = float("inf")
    a[7, 0, d - 1] = float("nan")  # the upper triangle is not read (as randers_validity)
    b[8, 1] = float("nan")
    b[9, 0] = float("inf")
    a, b = a.to(dtype).reshape(40, 100, d, d), b.to(dtype).reshape(40, 100, d)
    ok = compiled_validity(a, b)
    assert ok is not None and ok.shape == (40, 100) and ok.dtype == torch.bool
    ref, drift, _ = randers_validity(a, b)
    # the two may round differently only where the drift is within a few eps of 1
    edge = (drift - 1).abs() <= 64 * torch.finfo(dtype).eps
    assert bool(((ok == ref) | edge).all()), int((ok != ref).sum())
    assert 0 < int(ok.sum()) < ok.numel()


def test_compiled_validity_declines_what_it_does_not_handle():
    a, b = torch.eye(3).expand(5, 3, 3), torch.zeros(5, 3)
    assert compiled_validity(a, b) is None  # expanded (not contiguous): the torch formulas
    assert compiled_validity(torch.eye(4).repeat(2, 1, 1), torch.zeros(2, 4)) is None  # D = 4
    assert (
        compiled_validity(
            torch.eye(2, dtype=torch.float16).repeat(2, 1, 1), torch.zeros(2, 2, dtype=torch.float16)
        )
        is None
    )
    assert compiled_validity(torch.eye(2).repeat(0, 1, 1), torch.zeros(0, 2)) is None
