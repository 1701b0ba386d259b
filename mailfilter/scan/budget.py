"""The decoding limits of one message, and what an archive yields.

Limits are counted while reading: the number of members, the nesting
depth, and the expansion quota. Hitting a limit raises `OverLimits`; an
archive that cannot be read raises `Undecodable`. `scan.banned` turns both
into UNCHECKED verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:

    from mailfilter.decision.policy import DecodingLimits


CHUNK = 1 << 20


class OverLimits(Exception):  # noqa: N818 - amavis's word for it
    """A decoding limit was hit; the text is amavis's hold reason."""


class Undecodable(Exception):  # noqa: N818
    """An archive (or one member) could not be read."""


class Budget:
    """What is left of the decoding limits for one message."""

    def __init__(self, limits: DecodingLimits, size: int) -> None:
        self.limits = limits
        self.quota = limits.quota(size)
        self.left = self.quota
        self.files = 0

    def enter(self, depth: int) -> None:
        """Account for decoding at nesting `depth` (the message is 0)."""
        if depth > self.limits.max_depth:
            raise OverLimits(
                f"Maximum decoding depth ({self.limits.max_depth}) exceeded"
            )

    def file(self) -> None:
        """Account for one more part or member."""
        self.files += 1
        if self.files > self.limits.max_files:
            raise OverLimits(
                f"Maximum number of files ({self.limits.max_files}) exceeded"
            )

    def charge(self, size: int) -> None:
        """Account for `size` decoded bytes."""
        self.left -= max(size, 0)
        if self.left < 0:
            raise OverLimits(f"Exceeded storage quota ({self.quota} bytes)")


@dataclass(frozen=True, slots=True)
class Member:
    """One archive member: its name, and its bytes (or only their head)."""

    name: str
    data: bytes = b""
    encrypted: bool = False
