"""Regressions from the third audit (independent oracles: float64 on the same float32 inputs)."""

import geoopt
import pytest
import torch

from finslerlib import KillingWind, Navigation


def _rotation(rate, dtype):
    A = torch.zeros(3, 3, dtype=dtype)
    A[0, 1], A[1, 0] = -rate, rate
    return A


def test_float32_killing_distances_match_float64_on_the_same_inputs():
    """At rate 0.99 the float32 root find stopped with |G| ~ 2e-4 (1168 of 20,000 pairs off by
    more than 1e-5). The float32 answer must be the float64 answer rounded: the inputs are exact
    in both, and d(x -> y) is conditioned like 1 / (1 - |W|) <= 100, so a few hundred float32
    ulps at most."""
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(3000, 3, generator=g), dim=-1)
    m32 = Navigation(geoopt.Sphere(), KillingWind(_rotation(0.99, torch.float32)))
    m64 = Navigation(geoopt.Sphere(), KillingWind(_rotation(0.99, torch.float64)))
    d32 = m32.dist(x, y, on_failure="nan")
    d64 = m64.dist(x.double(), y.double(), on_failure="nan")
    assert d32.dtype == torch.float32
    ok = torch.isfinite(d64)
    assert ok.float().mean() > 0.5
    rel = ((d32.double() - d64).abs() / d64.clamp_min(1e-3))[ok]
    assert rel.max() <= 256 * torch.finfo(torch.float32).eps, rel.max()


def test_float32_points_cast_to_float64_lie_on_the_base():
    """Unit vectors rounded to float32 are off the sphere by ~1e-7 in float64: they were rejected
    (tolerance 3e-8) while a point off by 1e-3 must still be."""
    m = Navigation(geoopt.Sphere(), KillingWind(_rotation(0.5, torch.float64)))
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(200, 3, generator=g), dim=-1).double()
    y = torch.nn.functional.normalize(torch.randn(200, 3, generator=g), dim=-1).double()
    assert ((x.norm(dim=-1) - 1).abs().max() > 3e-8) or ((y.norm(dim=-1) - 1).abs().max() > 3e-8)
    assert torch.isfinite(m.dist(x, y, on_failure="nan")).any()
    try:
        m.dist(x, 1.001 * y)
    except ValueError as err:
        assert "y" in str(err)
    else:
        raise AssertionError("a point off the sphere by 1e-3 was accepted")


def test_a_thin_band_where_the_wind_is_too_strong_is_found_between_samples():
    """Audit: a rotation of rate 1.0005 leaves only the band |x_2| < 0.03 where |W| >= 1 between
    the polar caps; 16 samples per geodesic missed it (629 of 2000 cap-to-cap pairs got a finite
    distance). Oracle: the band separates the caps, so no admissible path joins them."""
    m = Navigation(geoopt.Sphere(), KillingWind(_rotation(1.0005, torch.float64)))
    unit = torch.nn.functional.normalize
    x = unit(torch.tensor([[-0.61635, -0.54528, 0.56814]], dtype=torch.float64), dim=-1)
    y = unit(torch.tensor([[0.46047, 0.20913, -0.86269]], dtype=torch.float64), dim=-1)
    with pytest.raises(ValueError, match="admissible|certify"):
        m.dist(x, y)
    g = torch.Generator().manual_seed(1)
    p = torch.nn.functional.normalize(torch.randn(400, 3, generator=g, dtype=torch.float64), dim=-1)
    q = torch.nn.functional.normalize(torch.randn(400, 3, generator=g, dtype=torch.float64), dim=-1)
    # pairs within one cap (same sign of x_2, well away from the band) keep finite distances
    same = (p[:, 2] * q[:, 2] > 0) & (p[:, 2].abs() > 0.3) & (q[:, 2].abs() > 0.3)
    d = m.dist(p[same][:40], q[same][:40], on_failure="nan")
    assert torch.isfinite(d).float().mean() > 0.5
    for i in range(200):
        if p[i, 2] * q[i, 2] < 0 and min(p[i, 2].abs(), q[i, 2].abs()) > 0.1:
            with pytest.raises(ValueError):
                m.dist(p[i : i + 1], q[i : i + 1])
