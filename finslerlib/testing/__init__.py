r"""Verify a Finsler metric: a conformance suite, hypothesis strategies and pytest helpers.

* `check_manifold(manifold)` runs the numerical conformance suite (no hypothesis needed) and
  returns a `CheckReport`; it raises `AssertionError` naming the violated law, the tolerance and a
  counterexample.
* `ManifoldConformance` and `parametrize_manifolds` run the suite as pytest tests, one test per
  property (pytest is imported only when they are used).
* `finslerlib.testing.strategies` has hypothesis strategies (`points`, `tangent_vectors`,
  `covectors`, `randers_params`); it needs hypothesis, from the `test` extra
  (`pip install finslerlib[test]`), and is not imported by this package.

Example:
    >>> from finslerlib import Randers
    >>> from finslerlib.testing import check_manifold
    >>> m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
    >>> check_manifold(m, n=8).ok
    True
"""

from finslerlib.testing.check import (
    PROPERTIES,
    CheckReport,
    PropertyResult,
    PropertyViolation,
    check_manifold,
)
from finslerlib.testing.conformance import ManifoldConformance, parametrize_manifolds, run_property

__all__ = [
    "PROPERTIES",
    "CheckReport",
    "PropertyResult",
    "PropertyViolation",
    "check_manifold",
    "ManifoldConformance",
    "parametrize_manifolds",
    "run_property",
]
