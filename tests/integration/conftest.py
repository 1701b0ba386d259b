"""Real daemons for the integration tests, each started once per run.

Skipped, with the reason, when a binary is missing. Every daemon runs in a
temporary directory on free loopback ports and is stopped by PID.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import daemons
from tests.support.filter import FilterProcess, start_sandwich
from tests.support.postfix import POSTFIX, PostfixInstance

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="session")
def clamd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Daemon]:
    """clamd with a one-line EICAR database."""
    yield from daemons.running(
        daemons.CLAMD,
        lambda: daemons.start_clamd(tmp_path_factory.mktemp("clamd")),
    )


@pytest.fixture(scope="session")
def spamd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Daemon]:
    """spamd -L on a free port."""
    yield from daemons.running(
        daemons.SPAMD,
        lambda: daemons.start_spamd(tmp_path_factory.mktemp("spamd")),
    )


def need_postfix() -> None:
    """Skip when Postfix is not installed."""
    if not Path(POSTFIX).exists():
        pytest.skip("postfix is not installed (apt-get install postfix)")


@pytest.fixture
def sandwich(
    tmp_path: Path,
) -> Iterator[tuple[PostfixInstance, FilterProcess]]:
    """Postfix -> mailfilter (scanners off) -> Postfix 10025 -> Maildir."""
    need_postfix()
    pf, mf = start_sandwich(tmp_path)
    yield pf, mf
    mf.stop()
    pf.stop()


@pytest.fixture
def scanned_sandwich(
    tmp_path: Path, clamd: daemons.Daemon, spamd: daemons.Daemon
) -> Iterator[tuple[PostfixInstance, FilterProcess]]:
    """The same sandwich, its filter using the real clamd and spamd."""
    need_postfix()
    pf, mf = start_sandwich(tmp_path, clamd=clamd.address, spamd=spamd.address)
    yield pf, mf
    mf.stop()
    pf.stop()
