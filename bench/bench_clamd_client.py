"""python-clamd in a bounded thread pool vs a native asyncio INSTREAM.

Issue 3 asks to keep python-clamd in an executor unless a benchmark shows
the executor costs; this measures our process's CPU per message and the
wall time for the bench corpus against one clamd, at concurrency 1 and 4.

    PYTHONPATH=. .venv/bin/python -m bench.bench_clamd_client
"""

import asyncio
import resource
import struct
import tempfile
import time
from pathlib import Path

from bench.corpus import generate
from mailfilter.addresses import parse_endpoint
from mailfilter.scan.clamav import ClamAV
from tests.support.daemons import start_clamd


async def native(path, data):
    r, w = await asyncio.open_unix_connection(path)
    w.write(b"zINSTREAM\0")
    view = memoryview(data)
    for i in range(0, len(view), 1 << 16):
        chunk = view[i : i + (1 << 16)]
        w.write(struct.pack("!L", len(chunk)))
        w.write(chunk)
        await w.drain()
    w.write(b"\0\0\0\0")
    await w.drain()
    reply = await r.readuntil(b"\0")
    w.close()
    return reply


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def run(label, fn, msgs, c):
    sem = asyncio.Semaphore(c)

    async def one(m):
        async with sem:
            return await fn(m.data)

    t, c0 = time.perf_counter(), cpu()
    res = await asyncio.gather(*(one(m) for m in msgs))
    print(
        f"{label:10s} C={c} wall {time.perf_counter() - t:.2f}s  our CPU {1000 * (cpu() - c0) / len(msgs):.2f} ms/msg"
    )
    return res


async def main():
    d = start_clamd(Path(tempfile.mkdtemp()))
    msgs = generate(150, seed=7, salt="clamd")
    print("corpus MB", sum(len(m.data) for m in msgs) / 1e6)
    sc = ClamAV(parse_endpoint(d.address, unix_ok=True), timeout=60, workers=8)
    for c in (1, 4):
        for _ in range(2):
            await run("executor", sc.scan, msgs, c)
            await run(
                "native",
                lambda data: native(str(d.socket_path), data),
                msgs,
                c,
            )
    await sc.aclose()
    d.stop()


if __name__ == "__main__":
    asyncio.run(main())
