"""Build-once loading of finslerlib's compiled CPU kernels, with a warned torch fallback.

Each kernel module (`finslerlib.math.epilogue`, `finslerlib.math.arrival`,
`finslerlib.eikonal.kernel`) holds its C++ source, a module name made from the source's hash
(trees with different sources never share, and clobber, a build in torch's extension cache) and a
`state` dict; `load_compiled` builds the source with `torch.utils.cpp_extension.load_inline` on the
first call and remembers the module, or, where it cannot be built (no compiler, no `ninja`, an
unsupported machine), warns once and remembers `None`, so the caller uses its torch path.
"""

from __future__ import annotations

import hashlib
import platform
import warnings
from collections.abc import Sequence

__all__ = ["load_compiled", "module_name"]


def module_name(prefix: str, source: str) -> str:
    """`prefix` followed by the first 12 hex digits of the SHA-256 of `source`.

    Example:
        >>> module_name("finslerlib_demo_", "int f() { return 1; }")[:16]
        'finslerlib_demo_'
    """
    return prefix + hashlib.sha256(source.encode()).hexdigest()[:12]


def load_compiled(
    state: dict[str, object],
    *,
    name: str,
    source: str,
    functions: Sequence[str],
    what: str,
    fallback: str,
    extra_cflags: Sequence[str] = ("-O3",),
    machines: Sequence[str] | None = None,
):
    """The module compiled from `source` (built on the first call, then kept in `state`), or `None`.

    Args:
        state: the caller's cache (`{}` before the first call; `{"module": m}` after it).
        name: the extension's module name (`module_name`).
        source: C++ source for `load_inline` (`cpp_sources`).
        functions: the functions to bind.
        what: the kernel as the warning names it, e.g. "finslerlib.math: the compiled cdist epilogue".
        fallback: what is used instead, e.g. "the torch epilogue (slower)".
        extra_cflags: compiler flags.
        machines: `platform.machine()` values (lower case) the source supports; `None`: any.

    Returns:
        The module, or `None` where it cannot be built (the first failure warns once, a
        `RuntimeWarning` with the reason; an unsupported machine is silent).

    Example:
        >>> state = {}
        >>> load_compiled(state, name="x", source="", functions=[], what="demo", fallback="torch",
        ...               machines=["no-such-machine"]) is None
        True
        >>> state
        {'module': None}
    """
    if "module" in state:
        return state["module"]
    module = None
    if machines is not None and platform.machine().lower() not in machines:
        state["module"] = None
        return None
    try:
        from torch.utils.cpp_extension import load_inline

        module = load_inline(
            name=name,
            cpp_sources=source,
            functions=list(functions),
            extra_cflags=list(extra_cflags),
            verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - any build failure falls back to the torch path
        reason = str(exc).splitlines()[0] if str(exc) else ""
        warnings.warn(
            f"{what} could not be built ({type(exc).__name__}: {reason}); using {fallback}.",
            RuntimeWarning,
            stacklevel=4,  # the user's call of the kernel's loader's caller
        )
        module = None
    state["module"] = module
    return module
