"""Empty batches through `cdist`: shape `[N, 0]`, `[0, M]`, `[0, 0]` (and batched), never a crash.

Regression: `FunkBall.cdist` with 0 columns raised `RuntimeError: max(): Expected reduction dim`
(an audit of issue 20, item 8's neighbours).
"""

import pytest
import torch

from finslerlib import FunkBall, Randers


def _manifolds(dtype):
    a = torch.tensor([[1.5, -0.2, 0.1], [-0.2, 2.0, 0.3], [0.1, 0.3, 1.0]], dtype=dtype)
    return {
        "funk": FunkBall(3),
        "funk-reversed": FunkBall(3).reverse(),
        "randers": Randers(a, torch.tensor([0.3, 0.0, -0.2], dtype=dtype)),
    }


@pytest.mark.parametrize("name", ["funk", "funk-reversed", "randers"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows,cols", [(2, 0), (0, 2), (0, 0)])
def test_cdist_of_empty_sets_has_the_empty_shape_and_a_gradient(name, dtype, rows, cols):
    manifold = _manifolds(dtype)[name]
    x = (0.1 * torch.ones(rows, 3, dtype=dtype)).requires_grad_()
    y = (0.2 * torch.ones(cols, 3, dtype=dtype)).requires_grad_()
    out = manifold.cdist(x, y)
    assert out.shape == (rows, cols) and out.dtype == dtype
    out.sum().backward()
    assert x.grad.shape == x.shape and y.grad.shape == y.shape


def test_batched_cdist_with_an_empty_side():
    x = torch.full((4, 2, 3), 0.1, dtype=torch.float64)
    y = torch.zeros(4, 0, 3, dtype=torch.float64)
    assert FunkBall(3).cdist(x, y).shape == (4, 2, 0)
