r"""The property registry: every conformance law is a function registered once, by name.

A property is a function `prop(ctx) -> str | None` that draws its samples from `ctx` (a
`finslerlib.testing.context.Context`), asserts with `ctx.close` / `ctx.leq` / `ctx.holds` /
`ctx.fail_shape` (which raise `PropertyViolation`) and may return a short note for the report.
It raises `NotImplementedError` (directly or through the manifold) when it cannot run.

Register it with the decorator, in the module of its family under
`finslerlib/testing/properties/`:

    @register_property("norm_homogeneous", "F(x, c v) = c F(x, v) for c > 0", family="norm")
    def norm_homogeneous(ctx):
        x = ctx.points(ctx.n)
        ...

`PROPERTIES` (name -> statement) follows registration order, which is the order in which
`check_manifold` runs them. Each property gets its own random stream, seeded from the user's seed
and the property's *name*, so its samples do not depend on which other properties exist or run.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

__all__ = [
    "PROPERTIES", "Property", "register_property", "unregister_property", "registered", "property_seed",
]


@dataclasses.dataclass(frozen=True)
class Property:
    """A registered law: `name`, one-line `statement`, `family` (module) and the function."""

    name: str
    statement: str
    family: str
    fn: Callable


_REGISTRY: dict[str, Property] = {}

# name -> one-line statement of the law, in registration (= run) order
PROPERTIES: dict[str, str] = {}


def register_property(name: str, statement: str, *, family: str) -> Callable[[Callable], Callable]:
    """Decorator registering `fn(ctx)` as the conformance property `name`.

    Args:
        name: unique name (used by `properties=`, `skip=` and as the pytest test name suffix).
        statement: the law in one line (shown in failure messages and `PROPERTIES`).
        family: the group it belongs to (`"api"`, `"norm"`, `"duality"`, ...).

    Raises:
        ValueError: `name` is already registered by another function.
    """

    def decorate(fn: Callable) -> Callable:
        old = _REGISTRY.get(name)
        if old is not None and old.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"conformance property {name!r} is already registered by {old.fn.__module__}")
        _REGISTRY[name] = Property(name, statement, family, fn)
        PROPERTIES[name] = statement
        return fn

    return decorate


def unregister_property(name: str) -> None:
    """Remove the property `name` (e.g. one registered for a single test); `KeyError` if unknown."""
    del _REGISTRY[name]
    del PROPERTIES[name]


def registered(name: str) -> Property:
    """The `Property` registered under `name` (`KeyError` if none)."""
    return _REGISTRY[name]


def property_seed(seed: int, name: str) -> int:
    """Seed of property `name`'s random stream: a stable hash of the user's seed and the name."""
    return zlib.crc32(f"{int(seed)}:{name}".encode())
