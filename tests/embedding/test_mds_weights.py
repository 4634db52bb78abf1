"""Regression from the third audit: entries of weight 0 must not change FinslerMDS's fit."""

import numpy as np
import pytest
import torch

from finslerlib import Randers
from finslerlib.embedding import FinslerMDS


@pytest.mark.filterwarnings("ignore:FinslerMDS did not converge")
@pytest.mark.parametrize("init", ["random", "classical"])
def test_zero_weight_entries_do_not_reach_the_start(init):
    """Masked entries set to 1e6 with weight 0 gave a final stress of 75 (random start) and 5e7
    (classical start) instead of ~0: the start symmetrized the matrix over all entries. The same
    mask written as NaN is the oracle: both fits must reach the same (small) stress."""
    g = torch.Generator().manual_seed(0)
    x = 0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64)
    metric = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.4, 0.0], dtype=torch.float64))
    delta = metric.cdist(x, x).numpy()
    rng = np.random.default_rng(0)
    mask = rng.random(delta.shape) < 0.2
    np.fill_diagonal(mask, False)
    big = delta.copy()
    big[mask] = 1e6
    weights = (~mask).astype(float)
    nan = delta.copy()
    nan[mask] = np.nan
    kwargs = dict(alpha=0.4, random_state=0, init=init, max_iter=300)
    with_weights = FinslerMDS(2, **kwargs).fit(big, weights=weights)
    with_nan = FinslerMDS(2, **kwargs).fit(nan)
    assert np.isfinite(with_weights.stress_)
    assert with_weights.stress_ <= 10 * with_nan.stress_ + 1e-6, (with_weights.stress_, with_nan.stress_)
