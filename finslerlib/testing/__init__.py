r"""Verify a Finsler metric: a conformance suite, hypothesis strategies and pytest helpers.

* `check_manifold(manifold)` runs the numerical conformance suite (no hypothesis needed) and
  returns a `CheckReport`; it raises `AssertionError` naming the violated law, the tolerance and a
  counterexample.
* `ManifoldConformance` and `parametrize_manifolds` run the suite as pytest tests, one test per
  property (pytest is imported only when they are used).
* `check_gradient` / `check_hessian` check a derivative by the order of its Taylor remainder
  (log-log slope 2 / 3, `finslerlib.testing.taylor`): the kit's derivative laws use them.
* `register_property` adds a law to the suite (see `finslerlib.testing.registry`); the built-in
  laws live in `finslerlib.testing.properties`, one module per family.
* `finslerlib.testing.strategies` has hypothesis strategies (`points`, `tangent_vectors`,
  `covectors`, `randers_params`); it needs hypothesis, from the `test` extra
  (`pip install finslerlib[test]`), and is not imported by this package. It samples through
  `finslerlib.testing.sampling`, as `check_manifold` does.

Example:
    >>> from finslerlib import Randers
    >>> from finslerlib.testing import check_manifold
    >>> m = Randers(torch.eye(2, dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64))
    >>> check_manifold(m, n=8).ok
    True
"""

from finslerlib.testing.check import check_manifold
from finslerlib.testing.conformance import ManifoldConformance, parametrize_manifolds, run_property
from finslerlib.testing.registry import PROPERTIES, register_property
from finslerlib.testing.report import CheckReport, PropertyResult, PropertyViolation
from finslerlib.testing.taylor import TaylorCheck, check_gradient, check_hessian

__all__ = [
    "PROPERTIES",
    "CheckReport",
    "PropertyResult",
    "PropertyViolation",
    "TaylorCheck",
    "check_gradient",
    "check_hessian",
    "check_manifold",
    "register_property",
    "ManifoldConformance",
    "parametrize_manifolds",
    "run_property",
]
