"""The reliability suite's figures, and the daemons its outage tests stop.

Every test reports what it tried through the `record` fixture: one JSON
line per case, appended to the file named by RELIABILITY_RESULTS (nothing
is written when it is unset). `bench/reliability_report.py` sets it to a
file under tests/reliability/results/ and turns the lines into the table
of docs/reliability.md. The format:

    {"suite": "overload", "case": "1000 concurrent connections",
     "mode": "short", "runs": 1000, "lost": 0, "duplicated": 0,
     "bounced": 0, "worst_latency_s": 2.1, "rss_max_mb": 84.0,
     "cpu_max_s": null, "verdicts": {"250": 1000, "421": 12}}

`runs` counts attempts (messages, sessions or fuzz examples); `lost`,
`duplicated` and `bounced` (5xx after the final dot) count messages;
`worst_latency_s` is the slowest final reply; `rss_max_mb` the filter's
peak resident memory (VmHWM); `cpu_max_s` the most CPU one message took;
`verdicts` tallies whatever the case classifies (reply codes, verdicts,
exceptions). A figure a case does not measure is null.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.reliability.support import MODE
from tests.support import daemons

if TYPE_CHECKING:
    from collections.abc import Iterator

FIGURES = (
    "runs",
    "lost",
    "duplicated",
    "bounced",
    "worst_latency_s",
    "rss_max_mb",
    "cpu_max_s",
    "verdicts",
)

Record = Callable[..., dict[str, Any]]


def results_path() -> Path | None:
    """Where the JSON lines go (None: not collected in this run)."""
    path = os.environ.get("RELIABILITY_RESULTS")
    return Path(path) if path else None


def write_record(suite: str, case: str, **figures: Any) -> dict[str, Any]:
    """Append one result line; unknown figure names are refused."""
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise TypeError(f"unknown figures: {sorted(unknown)}")
    line: dict[str, Any] = {"suite": suite, "case": case, "mode": MODE}
    line.update({name: figures.get(name) for name in FIGURES})
    line["verdicts"] = dict(figures.get("verdicts") or {})
    line["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = results_path()
    if path is None:
        return line
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")
    return line


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Keep the call phase's outcome on the item (for `record` users)."""
    report = yield
    if report.when == "call":
        item.reliability_outcome = report.outcome  # type: ignore[attr-defined]
    return report


@pytest.fixture
def record() -> Record:
    """`record(suite, case, **figures)`: one line of the results table."""
    return write_record


@pytest.fixture(scope="session")
def clamd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Daemon]:
    """A clamd of our own (the outage tests stop and resume it)."""
    yield from daemons.running(
        daemons.CLAMD,
        lambda: daemons.start_clamd(tmp_path_factory.mktemp("rel-clamd")),
    )


@pytest.fixture(scope="session")
def spamd(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[daemons.Daemon]:
    """A spamd of our own, with one child (so stopping it is total)."""
    yield from daemons.running(
        daemons.SPAMD,
        lambda: daemons.start_spamd(
            tmp_path_factory.mktemp("rel-spamd"), children=1
        ),
    )
