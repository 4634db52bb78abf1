"""Helpers shared by the tests (imported as `tests.support`; the toy manifolds live in `toys`)."""

import torch


def tol(dtype):
    """(rtol, atol) suited to a dtype for closed-form comparisons.

    float32: about 1000 ulps relative (eps = 1.2e-7), for formulas of a few dozen operations on
    well-conditioned data; float64: the same margin over its eps (2.2e-16) plus conditioning.
    """
    return (1e-4, 1e-5) if dtype == torch.float32 else (1e-9, 1e-10)
