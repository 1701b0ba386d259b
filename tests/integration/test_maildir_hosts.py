"""Four simulated hosts delivering into one Maildir at once.

Covers docs/maildir-on-shared-storage.md, "How it is tested" #1-2.

Each "host" is `unshare --uts --pid --fork`: its own hostname and its own
PID namespace, so PIDs repeat across hosts like on real servers. Variant
two gives every host the same hostname and freezes the clock in the
children, leaving only the random part of the name to keep them apart.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.maildir_support import check_maildir, message

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS, PROCS, PER_PROC = 4, 4, 500

CHILD = r"""
import os, socket, sys
sys.path.insert(0, sys.argv[1])
from tests.integration.maildir_support import message
import maildir
from maildir import names
root, host, hostname, freeze = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
socket.sethostname(hostname)
if freeze == "1":
    names.clock = lambda: 1_700_000_000.123456
kids = []
for p in range(int(sys.argv[6])):
    pid = os.fork()
    if pid == 0:
        for i in range(int(sys.argv[7])):
            maildir.deliver(root, message(f"h{host}p{p}m{i}"))
        os._exit(0)
    kids.append(pid)
bad = sum(os.waitpid(k, 0)[1] != 0 for k in kids)
print(os.getpid(), socket.gethostname())
sys.exit(1 if bad else 0)
"""


def expected() -> dict[str, bytes]:
    return {
        f"h{h}p{p}m{i}": message(f"h{h}p{p}m{i}")
        for h in range(HOSTS)
        for p in range(PROCS)
        for i in range(PER_PROC)
    }


def run_hosts(root: Path, *, same_name: bool) -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) not installed")
    procs = [
        subprocess.Popen(
            [
                "unshare",
                "--uts",
                "--pid",
                "--fork",
                sys.executable,
                "-c",
                CHILD,
                str(REPO),
                str(root),
                str(h),
                "mx" if same_name else f"mx{h}",
                "1" if same_name else "0",
                str(PROCS),
                str(PER_PROC),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for h in range(HOSTS)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0 and b"Operation not permitted" in err:
            pytest.skip(
                f"namespaces not permitted here: {err.decode()[-200:]}"
            )
        assert 0 == proc.returncode, err.decode()
        outs.append(out.decode().strip())
    return outs


@pytest.mark.slow
def test_storm_distinct_hosts(tmp_path):
    """4 hosts x 4 procs: every message exactly once, right size, tmp empty."""
    import maildir

    root = maildir.create(tmp_path / "M")
    outs = run_hosts(root, same_name=False)
    assert {f"mx{h}" for h in range(HOSTS)} == {o.split()[1] for o in outs}
    check_maildir(root, expected())


@pytest.mark.slow
def test_storm_same_hostname_same_pids_frozen_clock(tmp_path):
    """Same hostname, PID 1 everywhere, clock frozen: still no collision."""
    import maildir

    root = maildir.create(tmp_path / "M")
    outs = run_hosts(root, same_name=True)
    assert {"1 mx"} == set(outs)
    check_maildir(root, expected())
    stamps = {p.name.split(".")[0] for p in (root / "new").iterdir()}
    assert {"1700000000"} == stamps


@pytest.mark.slow
def test_concurrent_folder_autocreate(tmp_path):
    """Hosts racing to create the same folder all succeed; folder complete."""
    import maildir

    root = maildir.create(tmp_path / "M")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import maildir\n"
        "for i in range(30): maildir.deliver(sys.argv[2], b'x', folder='Junk.' + str(i))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(REPO), str(root)])
        for _ in range(HOSTS)
    ]
    assert [0] * HOSTS == [p.wait(timeout=120) for p in procs]
    for i in range(30):
        box = root / f".Junk.{i}"
        assert {"tmp", "new", "cur", "maildirfolder"} == {
            p.name for p in box.iterdir()
        }
        assert HOSTS == len(list((box / "new").iterdir()))
    assert [] == list((root / "tmp").iterdir())
