"""One rule for argument types (issue 20 item 11), and the switches users reach from the top level.

Every tensor argument, of a constructor or a method, must be a `torch.Tensor`: anything else
(numpy arrays, lists) is a `TypeError` naming the argument and the type. Randers data in half
precision are a `TypeError` at construction (they used to fail later, inside Cholesky).
"""

import warnings

import numpy as np
import pytest
import torch

import finslerlib
from finslerlib import FunkBall, Randers, RandersField
from finslerlib.manifolds.base import Reversed
from finslerlib.math import randers as rmath
from finslerlib.math.validation import value_checks

F64 = torch.float64


def _metric():
    return Randers(torch.eye(2, dtype=F64), torch.tensor([0.5, 0.0], dtype=F64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_randers_data_are_rejected_at_construction(dtype):
    with pytest.raises(TypeError, match=rf"a must be float32 or float64, got {dtype}"):
        Randers(torch.eye(2, dtype=dtype), torch.tensor([0.5, 0.0], dtype=dtype))
    with pytest.raises(TypeError, match=rf"b must be float32 or float64, got {dtype}"):
        Randers(torch.eye(2), torch.tensor([0.5, 0.0], dtype=dtype))


def test_numpy_is_a_type_error_in_constructors_and_methods():
    with pytest.raises(TypeError, match="a must be a torch.Tensor, got ndarray"):
        Randers(np.eye(2))
    with pytest.raises(TypeError, match="b must be a torch.Tensor, got list"):
        Randers(torch.eye(2), [0.5, 0.0])
    m = _metric()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 2, dtype=F64, generator=g), torch.randn(5, 2, dtype=F64, generator=g)
    calls = {
        "dist": (lambda: m.dist(x.numpy(), y), "x"),
        "norm": (lambda: m.norm(x, np.ones((5, 2))), "u"),
        "cdist": (lambda: m.cdist(x, y.numpy()), "y"),
        "expmap": (lambda: m.expmap(x, [[0.0, 1.0]]), "u"),
        "reverse": (lambda: m.reverse().dist(x, y.numpy()), "x"),  # d~(x -> y) = d(y -> x)
        "funk": (lambda: FunkBall(2).logmap(0.1 * x, (0.1 * y).numpy()), "y"),
    }
    for what, (call, name) in calls.items():
        with pytest.raises(TypeError, match=rf"{name} must be a torch.Tensor, got (ndarray|list)"):
            call()
        assert what
    with pytest.raises(TypeError, match="Reversed needs a FinslerManifold"):
        Reversed("sphere")


def test_integer_randers_data_take_the_default_dtype():
    assert Randers(torch.eye(2, dtype=torch.long)).a.dtype == torch.get_default_dtype()


def test_value_checks_is_exported_at_the_top_level():
    assert finslerlib.value_checks is value_checks and "value_checks" in finslerlib.__all__


def test_field_finiteness_check_honours_value_checks():
    """`RandersField` checked finiteness a second time with its own helper, ignoring
    `value_checks(False)`: under the switch a NaN input must not raise the finiteness error."""
    field = RandersField(b=lambda x: 0.3 * torch.tanh(x), dim=2)
    x = torch.tensor([[0.0, float("nan")]], dtype=F64)
    y = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(ValueError, match="x has non-finite entries"):
        field.dist(x, y)
    with value_checks(False):
        try:
            field.dist(x, y)
        except ValueError as exc:  # the metric's own data check may fail on NaN, not the input check
            assert "x has non-finite entries" not in str(exc)


def test_validate_randers_is_deprecated_and_still_checks():
    with pytest.warns(DeprecationWarning, match="check_randers"):
        rmath.validate_randers(torch.eye(2), torch.tensor([0.5, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match="drift too large"):
            rmath.validate_randers(torch.eye(2), torch.tensor([2.0, 0.0]))
    assert "validate_randers" not in rmath.__all__
