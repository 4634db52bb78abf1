r"""Run `check_manifold` from pytest: a base test class and a parametrize helper.

pytest is imported only when these helpers run, so `finslerlib.testing` stays importable
without it.

Typical use in a project's `tests/`: subclass `ManifoldConformance`, give it a `manifold`
fixture, and pytest collects one test per conformance property (`test_norm_triangle`,
`test_dual_norm`, ...), each reported as passed, failed (with the counterexample) or skipped
(with the reason, e.g. a method the manifold does not implement). For a position-dependent
metric, return a `RandersField(a=..., b=..., dim=D)` from the fixture and set `rtol` in
`check_options` to the tolerance of its geodesic solver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from finslerlib.testing.check import check_manifold
from finslerlib.testing.registry import PROPERTIES

__all__ = ["ManifoldConformance", "parametrize_manifolds", "run_property"]


def run_property(manifold, name: str, **options) -> None:
    """Check one property with `check_manifold`; `pytest.skip` if it is skipped.

    Args:
        manifold: the manifold to check.
        name: a property name (see `finslerlib.testing.PROPERTIES`).
        **options: passed to `check_manifold` (`n`, `seed`, `rtol`, `atol`, `scale`, ...).

    Raises:
        AssertionError: the property is violated (message with the counterexample).

    Example:
        >>> from finslerlib import Randers
        >>> run_property(Randers(torch.eye(2, dtype=torch.float64)), "norm_triangle")
    """
    import pytest

    skip = set(options.pop("skip", ()))
    if name in skip:
        pytest.skip(f"{name}: skipped by the caller")
    report = check_manifold(manifold, properties=[name], **options)
    if name in report.skipped:
        pytest.skip(f"{name}: {report.skipped[name]}")


class ManifoldConformance:
    """Base class for pytest: one test method per conformance property of `check_manifold`.

    Subclass it in a `Test...` class and provide a `manifold` fixture (and optionally
    `check_options`, a dict passed to `check_manifold`, e.g. `{"rtol": 1e-5, "n": 32,
    "skip": ["large_steps"]}`). A fixture with `params` checks several manifolds.

    The tests are named `test_<property>` for every name in `finslerlib.testing.PROPERTIES`,
    including properties registered (`register_property`) before the subclass is defined.

    Example:
        A user-defined metric (with finslerlib's `RandersField(a=..., b=..., dim=2)` the fixture
        returns the field instead; here a constant one, so that the example runs fast):

        >>> import pytest
        >>> from finslerlib import Randers
        >>> class TestMyMetric(ManifoldConformance):
        ...     check_options = {"n": 8}
        ...
        ...     @pytest.fixture(params=[0.0, 0.5], ids=["riemannian", "drifting"])
        ...     def manifold(self, request):
        ...         a = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
        ...         return Randers(a, torch.tensor([request.param, 0.0], dtype=torch.float64))
        >>> sorted(name for name in dir(TestMyMetric) if name.startswith("test_"))[:3]
        ['test_cdist', 'test_dist_gradient', 'test_dist_is_norm_of_log']
        >>> m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
        >>> TestMyMetric().test_dual_norm(m)  # what pytest runs, with the fixture's manifold
    """

    check_options: Mapping = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in PROPERTIES:
            if not hasattr(cls, f"test_{name}"):
                setattr(cls, f"test_{name}", _make_test(name))


def _make_test(name: str) -> Callable:
    def test(self, manifold):
        run_property(manifold, name, **dict(self.check_options))

    test.__name__ = f"test_{name}"
    test.__qualname__ = f"ManifoldConformance.test_{name}"
    test.__doc__ = f"Conformance property '{name}': {PROPERTIES[name]}."
    return test


for _name in PROPERTIES:
    setattr(ManifoldConformance, f"test_{_name}", _make_test(_name))
del _name


def parametrize_manifolds(manifolds: Mapping[str, object] | Iterable, *, argname: str = "manifold"):
    """`pytest.mark.parametrize` over manifolds, with readable ids.

    Args:
        manifolds: `{id: manifold}` or an iterable of manifolds (ids from their `repr`). A value
            may be a zero-argument callable returning the manifold (called at collection).
        argname: the test argument that receives the manifold.

    Returns:
        A pytest mark to decorate a test function.

    Example:
        >>> from finslerlib import Randers
        >>> from finslerlib.testing import check_manifold
        >>> @parametrize_manifolds({"euclidean": lambda: Randers(torch.eye(2, dtype=torch.float64))})
        ... def test_conformance(manifold):
        ...     check_manifold(manifold)
        >>> test_conformance.pytestmark[0].args[0]
        'manifold'
    """
    import pytest

    if isinstance(manifolds, Mapping):
        ids, values = list(manifolds), list(manifolds.values())
    else:
        values = list(manifolds)
        ids = None
    values = [v() if callable(v) and not hasattr(v, "dist") else v for v in values]
    if ids is None:
        ids = [repr(v).replace(" manifold", "") for v in values]
    return pytest.mark.parametrize(argname, values, ids=ids)
