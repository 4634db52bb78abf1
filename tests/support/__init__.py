"""Helpers shared by the tests (imported as `tests.support`; the toy manifolds live in `toys`)."""

import os

import torch

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "dev"
"""True under the thorough `dev` hypothesis profile (`HYPOTHESIS_PROFILE=dev make test`)."""


def sized(ci, dev):
    """`ci` under the default `ci` profile (the suite stays under 10 minutes), `dev` under `dev`:
    for sample counts of expensive runs (the conformance kit on numerical geodesics, ...)."""
    return dev if THOROUGH else ci


def tol(dtype, scale: float = 1.0):
    """(rtol, atol) for a float32/float64 result compared with a float64 oracle.

    float32: about 1700 ulps relative (eps = 1.2e-7) for formulas of a few dozen operations on
    well-conditioned data; float64: 1e-8 relative, leaving room for the conditioning of the
    test cases (eigenvalue ratios up to about 1e3, drifts up to 0.95) over its eps (2.2e-16).
    `scale` widens the absolute part for results of that size.
    """
    if dtype == torch.float32:
        return 2e-4, 2e-5 * scale
    return 1e-8, 1e-10 * scale


def close(actual, expected, tol=None, *, scale=1.0, rtol=None, atol=None):
    """Assert `actual` ≈ `expected` (tensors, arrays or numbers; compared in float64).

    `tol` is either a dtype (the tolerances `tol(dtype)`, times `scale`, for closed-form
    comparisons computed in that dtype) or a float (an absolute bound on the max error, `rtol = 0`);
    `rtol` / `atol` given explicitly win. With neither, `actual`'s dtype decides.
    """
    actual = torch.as_tensor(actual.detach() if isinstance(actual, torch.Tensor) else actual)
    if tol is None and rtol is None and atol is None:
        tol = actual.dtype if actual.is_floating_point() else torch.float64
    if isinstance(tol, torch.dtype):
        r, a = _tol(tol, scale)
    elif tol is not None:
        r, a = 0.0, float(tol)
    else:
        r, a = 1e-8, 1e-10
    rtol = r if rtol is None else rtol
    atol = a if atol is None else atol
    actual = actual.to(device="cpu", dtype=torch.float64)
    expected = torch.as_tensor(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected,
                               dtype=torch.float64).expand_as(actual)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


_tol = tol
