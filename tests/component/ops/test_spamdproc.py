"""A real spamd on a loopback port: /proc leads from its port to its
master process, its --max-children and -L."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mailfilter.ops import spamdproc
from tests.support import daemons

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

# Not spamd's default (5) nor start_spamd's (4), so a found 3 was read.
CHILDREN = 3


@pytest.fixture(scope="module")
def spamd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Daemon]:
    yield from daemons.running(
        daemons.SPAMD,
        lambda: daemons.start_spamd(
            tmp_path_factory.mktemp("spamd"), children=CHILDREN
        ),
    )


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if spamdproc.ppid_of(stat.read_text()) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_finds_the_master_and_its_options(spamd):
    found = spamdproc.find("127.0.0.1", spamd.port)
    assert found.pid == spamd.proc.pid
    assert found.options == spamdproc.SpamdOptions(CHILDREN, local=True)


def test_localhost_names_the_same_spamd(spamd):
    assert spamdproc.find("localhost", spamd.port).pid == spamd.proc.pid


def test_a_child_leads_to_its_master(spamd):
    """The children share the socket, so the holder may be a child."""
    deadline = time.monotonic() + 60
    while not (kids := _children(spamd.proc.pid)):
        assert time.monotonic() < deadline, "spamd started no child"
        time.sleep(0.2)
    argv = spamdproc.argv_of(Path(f"/proc/{kids[0]}/cmdline").read_bytes())
    assert argv == ["spamd child"]
    assert spamdproc.top_spamd(kids[0]) == spamd.proc.pid
