"""Prometheus metrics: what the pipeline records, and the loopback endpoint."""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING

import pytest

from mailfilter.ops import metrics

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def m() -> Iterator[metrics.Metrics]:
    """A Metrics instance, stopped after the test."""
    instance = metrics.Metrics()
    yield instance
    instance.stop()


def test_messages_counted_by_verdict_and_action(m: metrics.Metrics) -> None:
    """Each count_message adds one to its (verdict, action) pair only."""
    m.count_message("CLEAN", "pass")
    m.count_message("CLEAN", "pass")
    m.count_message("INFECTED", "discard")
    get = m.registry.get_sample_value
    assert 2.0 == get(
        "mailfilter_messages_total", {"verdict": "CLEAN", "action": "pass"}
    )
    assert 1.0 == get(
        "mailfilter_messages_total",
        {"verdict": "INFECTED", "action": "discard"},
    )


def test_scan_histogram_and_scanner_up(m: metrics.Metrics) -> None:
    """A failed scan is timed, counted as an error and marks the scanner down."""
    m.observe_scan("clamav", 0.02, ok=True)
    m.observe_scan("clamav", 0.3, ok=False)
    get = m.registry.get_sample_value
    assert 2.0 == get("mailfilter_scan_seconds_count", {"scanner": "clamav"})
    assert 0.32 == pytest.approx(
        get("mailfilter_scan_seconds_sum", {"scanner": "clamav"})
    )
    assert 1.0 == get(
        "mailfilter_scan_seconds_bucket", {"scanner": "clamav", "le": "0.025"}
    )
    assert 0.0 == get("mailfilter_scanner_up", {"scanner": "clamav"})
    assert 1.0 == get("mailfilter_scan_errors_total", {"scanner": "clamav"})
    m.set_scanner_up("clamav", True)
    assert 1.0 == get("mailfilter_scanner_up", {"scanner": "clamav"})


def test_reinject_histogram(m: metrics.Metrics) -> None:
    """Reinjection times land in their own histogram."""
    m.observe_reinject(0.004)
    assert 1.0 == m.registry.get_sample_value(
        "mailfilter_reinject_seconds_count"
    )
    assert 1.0 == m.registry.get_sample_value(
        "mailfilter_reinject_seconds_bucket", {"le": "0.005"}
    )


def test_in_flight_gauge(m: metrics.Metrics) -> None:
    """The in-flight gauge counts open in_flight() blocks."""
    get = m.registry.get_sample_value
    with m.in_flight(), m.in_flight():
        assert 2.0 == get("mailfilter_messages_in_flight")
    assert 0.0 == get("mailfilter_messages_in_flight")


def test_instances_do_not_share_a_registry() -> None:
    """Two instances keep separate counts (no global registry clash)."""
    a, b = metrics.Metrics(), metrics.Metrics()
    a.count_message("SPAM", "discard")
    labels = {"verdict": "SPAM", "action": "discard"}
    assert 1.0 == a.registry.get_sample_value(
        "mailfilter_messages_total", labels
    )
    assert (
        b.registry.get_sample_value("mailfilter_messages_total", labels)
        is None
    )


def test_endpoint_serves_metrics_on_loopback(m: metrics.Metrics) -> None:
    """A scrape of the started endpoint returns the recorded series."""
    m.count_message("BANNED", "discard")
    m.observe_scan("spamassassin", 1.2, ok=True)
    port = m.start("127.0.0.1", 0)
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=5
    ) as r:
        body = r.read().decode()
    assert (
        'mailfilter_messages_total{action="discard",verdict="BANNED"} 1.0'
        in body
    )
    assert 'mailfilter_scanner_up{scanner="spamassassin"} 1.0' in body
    assert "mailfilter_messages_in_flight 0.0" in body


def test_endpoint_refuses_non_loopback(m: metrics.Metrics) -> None:
    """The unauthenticated endpoint is never bound to a public address."""
    with pytest.raises(ValueError, match="loopback"):
        m.start("0.0.0.0", 0)


def test_disabled_metrics_are_a_no_op() -> None:
    """create(False) gives an object whose calls do nothing and record nothing."""
    null = metrics.create(False)
    assert isinstance(null, metrics.NullMetrics)
    assert 0 == null.start("127.0.0.1", 0)
    null.count_message("CLEAN", "pass")
    null.observe_scan("clamav", 0.1, ok=False)
    null.observe_reinject(0.1)
    with null.in_flight(), null.in_flight():
        pass
    assert not hasattr(null, "registry")
    assert isinstance(metrics.create(True), metrics.Metrics)
