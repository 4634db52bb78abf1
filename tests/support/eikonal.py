"""The eikonal backends as pytest parameters: the compiled kernel (skipped where it cannot be
built) and the torch sweeps."""

import pytest

from finslerlib.eikonal import kernel as kernel_module

needs_kernel = pytest.mark.skipif(
    not kernel_module.compiled_available(), reason="the compiled kernel cannot be built here"
)

BACKENDS = [pytest.param("cpp", marks=needs_kernel), "torch"]
