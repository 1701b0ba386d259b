"""ClamAV through clamd's INSTREAM, with python-clamd.

python-clamd is blocking, so every call runs in a bounded thread pool: the
event loop never waits on clamd, and at most `workers` scans are in clamd
at once (size it to clamd's MaxThreads). Its known traps are handled
(docs/performance-and-reliability.md, "python-clamd"): no default timeout (we
pass one), an `ERROR` status or a connection reset at the INSTREAM size limit
would look clean to a caller that only checks for FOUND - here anything but OK
or FOUND is a scanner failure, never a clean verdict.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mailfilter.decision.verdict import ScanResult

if TYPE_CHECKING:
    from mailfilter.addresses import Endpoint

with warnings.catch_warnings():
    # python-clamd imports pkg_resources for its version string only.
    warnings.simplefilter("ignore")
    import clamd


class ClamAV:
    """The clamd scanner."""

    name = "clamav"

    def __init__(
        self, endpoint: Endpoint, *, timeout: float, workers: int
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="clamd")

    def _client(self) -> Any:
        if self.endpoint.proto == "unix":
            return clamd.ClamdUnixSocket(self.endpoint.path, self.timeout)
        return clamd.ClamdNetworkSocket(
            self.endpoint.host, self.endpoint.port, self.timeout
        )

    async def scan(self, content: bytes) -> ScanResult:
        """INSTREAM the message; FOUND gives the signature names."""
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            answer = await asyncio.wait_for(
                loop.run_in_executor(self._pool, self._instream, content),
                self.timeout + 5,
            )
        except TimeoutError:
            return self._failed("timed out", start)
        except Exception as exc:
            return self._failed(f"{type(exc).__name__}: {exc}", start)
        status, name = answer.get("stream", ("ERROR", "no result"))
        elapsed = time.monotonic() - start
        if status == "OK":
            return ScanResult(self.name, elapsed=elapsed)
        if status == "FOUND":
            return ScanResult(self.name, viruses=(str(name),), elapsed=elapsed)
        return self._failed(f"clamd said {status}: {name}", start)

    def _instream(self, content: bytes) -> dict[str, tuple[str, str | None]]:
        result: dict[str, tuple[str, str | None]]
        result = self._client().instream(io.BytesIO(content))
        return result

    def _failed(self, why: str, start: float) -> ScanResult:
        return ScanResult(
            self.name, ok=False, error=why, elapsed=time.monotonic() - start
        )

    async def ping(self) -> str:
        """PING and VERSION, for the selftest."""
        loop = asyncio.get_running_loop()

        def check() -> str:
            client = self._client()
            client.ping()
            return str(client.version())

        return await loop.run_in_executor(self._pool, check)

    async def threads(self) -> int | None:
        """clamd's MaxThreads, from STATS (`THREADS: live 1 idle 0 max 16`)."""
        loop = asyncio.get_running_loop()
        try:
            stats = await loop.run_in_executor(
                self._pool, lambda: str(self._client().stats())
            )
        except Exception:
            return None
        match = re.search(r"THREADS:.*\bmax (\d+)", stats)
        return int(match.group(1)) if match else None

    async def aclose(self) -> None:
        """Stop the thread pool."""
        self._pool.shutdown(wait=False, cancel_futures=True)
