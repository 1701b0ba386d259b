"""The decoding limits of one message, and what an archive yields.

Limits are counted while reading: the number of members, the nesting
depth, and the expansion quota. Hitting a limit raises `OverLimits`; an
archive that cannot be read raises `Undecodable`. `scan.banned` turns both
into UNCHECKED verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from mailfilter.scan.filetype import HEAD, is_container, short_types

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


def read_member(stream: IO[bytes], charged: int, budget: Budget) -> bytes:
    """Read a member's head, and the rest only if it is an archive.

    `charged` bytes (the declared size) are already on the budget; only
    what decodes beyond them is charged, as it is read, so a member that
    lies about its size stops at the quota instead of filling memory.
    """
    parts = [stream.read(HEAD)]
    total = len(parts[0])
    if total == HEAD and is_container(short_types(parts[0])):
        while chunk := stream.read(CHUNK):
            parts.append(chunk)
            total += len(chunk)
            if total > charged:
                budget.charge(total - charged)
                charged = total
    budget.charge(total - charged)
    return b"".join(parts)
