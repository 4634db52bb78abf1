r"""Verify a Finsler metric: a conformance suite, hypothesis strategies and pytest helpers.

* `check_manifold(manifold)` runs the numerical conformance suite (no hypothesis needed) and
  returns a `CheckReport`; it raises `AssertionError` naming the violated law, the tolerance and a
  counterexample.
* `ManifoldConformance` and `parametrize_manifolds` run the suite as pytest tests, one test per
  property (pytest is imported only when they are used).
* `finslerlib.testing.strategies` has hypothesis strategies (`points`, `tangent_vectors`,
  `covectors`, `randers_params`); it needs hypothesis, from the `test` extra
  (`pip install finslerlib[test]`), and is not imported by this package.
"""

from finslerlib.testing.check import (
    PROPERTIES,
    CheckReport,
    PropertyResult,
    PropertyViolation,
    check_manifold,
)

__all__ = [
    "PROPERTIES",
    "CheckReport",
    "PropertyResult",
    "PropertyViolation",
    "check_manifold",
]
