"""What `check_manifold` returns and raises: `PropertyResult`, `CheckReport`, `PropertyViolation`."""

from __future__ import annotations

import dataclasses

__all__ = ["PropertyViolation", "PropertyResult", "CheckReport"]


class PropertyViolation(AssertionError):
    """A conformance property failed; `property` names it, the message has the counterexample."""

    def __init__(self, prop: str, message: str):
        super().__init__(message)
        self.property = prop


@dataclasses.dataclass
class PropertyResult:
    """Outcome of one property: `status` is `"passed"`, `"failed"` or `"skipped"`.

    `error` is the exception the manifold raised on valid inputs (a failure), with its traceback.
    """

    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    error: BaseException | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass
class CheckReport:
    """What `check_manifold` ran: one `PropertyResult` per property, in order.

    Attributes:
        manifold: `repr` of the checked manifold.
        results: `{name: PropertyResult}`.
        settings: the resolved options (n, seed, dtype, tolerances, scale).
    """

    manifold: str
    results: dict[str, PropertyResult]
    settings: dict

    @property
    def passed(self) -> list[str]:
        """Names of the properties that held."""
        return [r.name for r in self.results.values() if r.status == "passed"]

    @property
    def skipped(self) -> dict[str, str]:
        """`{name: reason}` of the properties that did not run."""
        return {r.name: r.detail for r in self.results.values() if r.status == "skipped"}

    @property
    def failed(self) -> dict[str, str]:
        """`{name: message}` of the violated properties."""
        return {r.name: r.detail for r in self.results.values() if r.status == "failed"}

    @property
    def ok(self) -> bool:
        """`True` when no property failed (skips do not count as failures)."""
        return not self.failed

    def __str__(self) -> str:
        lines = [f"check_manifold({self.manifold}): {len(self.passed)} passed, "
                 f"{len(self.failed)} failed, {len(self.skipped)} skipped"]
        for r in self.results.values():
            extra = f"  ({r.detail.splitlines()[0]})" if r.status != "passed" and r.detail else ""
            lines.append(f"  {r.status:7s} {r.name}{extra}")
        return "\n".join(lines)
