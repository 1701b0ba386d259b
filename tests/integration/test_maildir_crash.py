"""SIGKILL at every step of a delivery, and the syscall order.

Covers docs/maildir-on-shared-storage.md, "How it is tested" #5-6.

The child installs `maildir.delivery.step_hook`, a test-only hook called
after each step, which SIGKILLs the process at the chosen step: a real
crash at a precise point, no mocks. new/ must then hold either nothing or
one complete message; leftovers may only be in tmp/. The MTA's retry can
add a second copy only if the kill came after publishing (at-least-once).
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# 2.5 MiB: several 1 MiB write() chunks, so "write" is a kill mid-write.
BODY = b"Subject: big\n\n" + b"0123456789abcde\n" * (5 * 1024 * 1024 // 32)
CHILD = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import maildir
from maildir import delivery
target = sys.argv[3]
def hook(step):
    if step == target:
        os.kill(os.getpid(), signal.SIGKILL)
delivery.step_hook = hook
maildir.deliver(sys.argv[2], sys.stdin.buffer.read())
"""
PUBLISHED = {"linked", "unlinked", "dirsynced"}
STEPS = ["opened", "write", "written", "fsynced", "closed", *sorted(PUBLISHED)]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_step(tmp_path, step):
    """Killed at `step`: new/ has 0 (before publish) or 1 complete copy."""
    import maildir

    root = maildir.create(tmp_path / "M")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(root), step],
        input=BODY,
        capture_output=True,
        timeout=60,
    )
    assert -signal.SIGKILL == proc.returncode, proc.stderr.decode()
    new = list((root / "new").iterdir())
    assert (1 if step in PUBLISHED else 0) == len(new)
    for path in new:
        assert BODY == path.read_bytes()
    assert [] == [
        p for p in root.iterdir() if p.name not in {"tmp", "new", "cur"}
    ]
    # The MTA retries after the crash: one more complete copy.
    maildir.deliver(root, BODY)
    copies = [p.read_bytes() for p in (root / "new").iterdir()]
    assert [BODY] * (2 if step in PUBLISHED else 1) == copies


def test_syscall_order(tmp_path):
    """strace: write... fsync(file) -> close -> link -> unlink -> fsync(new/)."""
    if shutil.which("strace") is None:
        pytest.skip("strace not installed")
    import maildir

    root = maildir.create(tmp_path / "M")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import maildir\n"
        "maildir.deliver(sys.argv[2], b'hello\\n' * 10)\n"
    )
    log = tmp_path / "strace.log"
    subprocess.run(
        [
            "strace",
            "-f",
            "-o",
            str(log),
            "-e",
            "trace=openat,write,fsync,close,link,linkat,unlink,unlinkat,rename,renameat,renameat2",
            sys.executable,
            "-c",
            code,
            str(REPO),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    lines = log.read_text().splitlines()
    start = next(
        i for i, ln in enumerate(lines) if "O_EXCL" in ln and "openat" in ln
    )
    fd = re.search(r"= (\d+)$", lines[start]).group(1)
    events = []
    for line in lines[start:]:
        found = re.match(r"\d+\s+(\w+)\(", line)
        if found is None:  # "+++ exited", "--- SIGCHLD" and the like
            continue
        call = found.group(1)
        if (
            call in {"write", "fsync", "close"}
            and re.search(rf"{call}\({fd}[,)]", line)
            or call
            in {
                "linkat",
                "unlinkat",
                "renameat",
                "renameat2",
                "link",
                "unlink",
            }
        ):
            events.append(call)
        elif call == "fsync":
            events.append("fsync-dir")
    events = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert [
        "write",
        "fsync",
        "close",
        "linkat",
        "unlinkat",
        "fsync-dir",
    ] == events
