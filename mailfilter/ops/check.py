"""One line of the selftest report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mailfilter.pipeline import Context

S = TypeVar("S")


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    # ok but worth fixing: shown with "!" and its fix, exit status 0.
    warn: bool = False

    @property
    def mark(self) -> str:
        """The report's first column."""
        if not self.ok:
            return "✗"
        return "!" if self.warn else "✓"


def scanner_of(context: Context | None, kind: type[S]) -> S | None:
    """The scanner of that class in the context, if it is switched on."""
    if context is None:
        return None
    # A wrapper (the spam result cache) names what it wraps as `inner`.
    found = (getattr(s, "inner", s) for s in context.scanners)
    return next((s for s in found if isinstance(s, kind)), None)
