"""Run a coroutine on uvloop when it is installed, else on asyncio's loop.

Per message the services do many small reads and writes, where the event
loop's own overhead shows; uvloop keeps the asyncio API and cuts it
(docs/bench-filter.md). Nothing else in the code depends on it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Coroutine

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
