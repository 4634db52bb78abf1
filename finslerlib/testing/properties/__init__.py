"""The conformance properties, one module per family; importing this package registers them all.

`FAMILIES` lists the modules in the order of `finslerlib.testing.PROPERTIES` (the order of a
run). A new family is a new module here, added to `FAMILIES`.
"""

import importlib

FAMILIES = ("api", "norm", "duality", "geodesics", "distance", "curvature")

for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")
del _family

__all__ = ["FAMILIES"]
