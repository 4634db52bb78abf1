"""Public extension points of `FinslerManifold` and their deprecated private names (one release).

A subclass that overrides an old name (`_reverse_expmap`, `_validate`, ...) still works: its method
becomes the public extension point, with a `DeprecationWarning` when the class is defined; calling an
old name warns and reaches the public one. Oracles: the reverse distance d~(x -> y) = d(y -> x) and
the straight-line geodesics of a constant metric.
"""

import warnings

import pytest
import torch

from finslerlib import FinslerManifold, Randers
from finslerlib.manifolds.base import DEPRECATED_HOOKS, Reversed

F64 = torch.float64


class _Constant(FinslerManifold):
    """A constant Randers metric on R^2 with straight-line geodesics, written by hand."""

    def __init__(self):
        super().__init__(2)
        a = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=F64)
        self.ref = Randers(a, torch.tensor([0.4, -0.2], dtype=F64))

    def coefficients(self, x):
        return self.ref.a.to(x), self.ref.b.to(x)

    def expmap(self, x, u):
        self.validate_inputs(x, u, names=("x", "u"))
        return x + u

    def logmap(self, x, y):
        self.validate_inputs(x, y, names=("x", "y"))
        return y - x


def _pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 2, dtype=F64, generator=g), torch.randn(5, 2, dtype=F64, generator=g)


def test_public_names_define_the_reverse():
    class New(_Constant):
        def reverse_expmap(self, x, u):
            return x + u

        def reverse_logmap(self, x, y):
            return y - x

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        m = New()
        x, y = _pair()
        r = m.reverse()
        torch.testing.assert_close(r.dist(x, y), m.ref.dist(y, x))
        torch.testing.assert_close(r.logmap(x, y), y - x)
    assert isinstance(r, Reversed) and r.reverse() is m


def test_old_names_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="_reverse_expmap .*rename it to reverse_expmap"):

        class Old(_Constant):
            def _reverse_expmap(self, x, u):
                return x + u

            def _reverse_logmap(self, x, y):
                return y - x

    m = Old()
    x, y = _pair()
    r = m.reverse()  # the old overrides are the extension points
    torch.testing.assert_close(r.dist(x, y), m.ref.dist(y, x))
    torch.testing.assert_close(r.expmap(x, y - x), y)
    torch.testing.assert_close(m.reverse_logmap(x, y), y - x)  # the public name reaches the override
    assert Old.reverse_expmap is Old._reverse_expmap


def test_old_validate_override_is_honoured_and_may_call_super():
    seen = []
    with pytest.warns(DeprecationWarning, match="_validate"):

        class Old(_Constant):
            def _validate(self, *tensors, names=None, batch_dims=1):
                seen.append(names)
                return super()._validate(*tensors, names=names, batch_dims=batch_dims)

    m = Old()
    x, y = _pair()
    with pytest.warns(DeprecationWarning):
        m.norm(x, y)  # the base calls validate_inputs, which is the old override
    assert seen == [("x", "u")]
    with pytest.raises(ValueError, match="x must have shape"), pytest.warns(DeprecationWarning):
        m.norm(torch.zeros(3, dtype=F64), torch.zeros(3, dtype=F64))


def test_calling_an_old_name_reaches_the_public_override():
    x, y = _pair()
    m = Randers(torch.eye(2, dtype=F64), torch.tensor([0.5, 0.0], dtype=F64))
    for new in DEPRECATED_HOOKS.values():
        assert callable(getattr(m, new)), new
    with pytest.warns(DeprecationWarning, match="call validate_inputs"):
        m._validate(x, names=("x",))
    with pytest.warns(DeprecationWarning, match="call reverse_cdist"):
        torch.testing.assert_close(m._reverse_cdist(x, y), m.cdist(y, x).mT)


def test_explicit_alias_of_the_old_name_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)

        class Aliased(_Constant):
            def reverse_retr(self, x, u):
                return x + u

            _reverse_retr = reverse_retr  # a transition alias, as a library may keep

    assert Aliased.reverse_retr is Aliased._reverse_retr


def test_no_reverse_without_reverse_geodesics():
    with pytest.raises(NotImplementedError, match="define reverse_expmap and reverse_logmap"):
        _Constant().reverse()
