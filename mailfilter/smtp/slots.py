"""Processing slots: how many messages may be worked on at once.

A message takes a slot at DATA and gives it back when its processing has
ended, whether or not its client is still connected (processing is shielded
from a client that hangs up after the final dot). Counting connections
alone would let such orphaned messages pile up beyond `max_connections`.

A DATA that finds every slot taken waits, rather than the connection being
refused with 421: Postfix counts a refused connection against the whole
content-filter transport (and may suspend it for all mail), while a short
wait costs nothing. The wait stays well under Postfix's
smtp_data_init_timeout (120 s), the time it gives the reply to DATA; past
it the DATA gets a 4xx, which defers only this message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ADMIT_WAIT = 60.0  # seconds a DATA waits for a slot


class ProcessingSlots:
    """A counter of messages in progress with a bound read at each use.

    The bound is a callable so that a SIGHUP reload of `max_connections`
    applies at once.
    """

    def __init__(self, bound: Callable[[], int]) -> None:
        self._bound = bound
        self.busy = 0
        # Set while no message is in progress (SIGTERM's drain waits on it).
        self.idle = asyncio.Event()
        self.idle.set()
        self._freed = asyncio.Event()  # wakes DATAs waiting for a slot

    async def admit(self) -> bool:
        """Take a slot, waiting up to `ADMIT_WAIT`; False if none came."""
        try:
            async with asyncio.timeout(ADMIT_WAIT):
                while self.busy >= self._bound():
                    self._freed.clear()
                    await self._freed.wait()
        except TimeoutError:
            return False
        self.busy += 1
        self.idle.clear()
        return True

    def release(self) -> None:
        """Give a slot back: its message is done."""
        self.busy -= 1
        self._freed.set()
        if self.busy == 0:
            self.idle.set()
