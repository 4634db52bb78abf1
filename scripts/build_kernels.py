"""Build (or load from torch's extension cache) finslerlib's compiled CPU kernels.

`make install` runs this once, so that the first distance map, float32 cdist or Killing distance of
a session (and the test suite) does not wait for the C++ compiler. Each kernel is also built on
first use where this was not run; where a kernel cannot be built (no compiler, no ninja) the
library warns once and uses its pure-torch path, so a failure here is reported but is not an
error.

    python scripts/build_kernels.py
"""

from __future__ import annotations

import time
import warnings

from finslerlib.eikonal.kernel import load_kernel
from finslerlib.math.arrival import load_arrival
from finslerlib.math.epilogue import load_epilogue
from finslerlib.nn._head_compiled import load_head_kernel


def main() -> None:
    kernels = (
        ("eikonal sweeps", load_kernel),
        ("cdist epilogue", load_epilogue),
        ("Killing arrival time", load_arrival),
        ("FAIMHead logits", load_head_kernel),
    )
    for name, load in kernels:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = load()
        status = "ready" if module is not None else "not built, the torch path is used"
        print(f"finslerlib kernel ({name}): {status} ({time.perf_counter() - start:.1f} s)")
        for w in caught:
            print(f"  {w.message}")


if __name__ == "__main__":
    main()
