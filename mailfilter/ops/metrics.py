"""Prometheus metrics for the filter, served on loopback when enabled.

`Metrics` owns a private CollectorRegistry, so tests and several filter
instances in one process never clash over the global one. `NullMetrics`
has the same methods doing nothing: the pipeline calls the same API
whether or not metrics are on, at the cost of one method call.

The pipeline decides what to observe and when; this module only counts.
Exposing the endpoint beyond loopback (a reverse proxy, TLS, auth) is
left to the deployment.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)

# Scans take milliseconds (clamd on a small message) to tens of seconds
# (spamd with network tests, a big archive); reinjection is usually fast
# but a slow 10025 listener is exactly what we want to see.
SCAN_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
REINJECT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class MetricsSink(Protocol):
    """What the pipeline may call; both classes below implement it."""

    def observe_scan(self, scanner: str, seconds: float, ok: bool) -> None:
        """One scanner call, and whether it answered."""

    def observe_reinject(self, seconds: float) -> None:
        """One reinjection transaction."""

    def count_message(self, verdict: str, action: str) -> None:
        """One message's final verdict and action."""

    def in_flight(self) -> contextlib.AbstractContextManager[Any]:
        """Held while a message is being processed."""


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        # The endpoint has no authentication: refuse to publish it.
        raise ValueError(f"metrics endpoint must be on loopback, not {host}")


class Metrics:
    """The real thing: counters, histograms and gauges in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self._messages = Counter(
            "mailfilter_messages",
            "Messages by final verdict and action",
            ["verdict", "action"],
            registry=reg,
        )
        self._scan = Histogram(
            "mailfilter_scan_seconds",
            "Time spent in one scanner call",
            ["scanner"],
            buckets=SCAN_BUCKETS,
            registry=reg,
        )
        self._scan_errors = Counter(
            "mailfilter_scan_errors",
            "Scanner calls that gave no answer",
            ["scanner"],
            registry=reg,
        )
        self._scanner_up = Gauge(
            "mailfilter_scanner_up",
            "1 if the scanner's last call answered",
            ["scanner"],
            registry=reg,
        )
        self._reinject = Histogram(
            "mailfilter_reinject_seconds",
            "Reinjection transaction time",
            buckets=REINJECT_BUCKETS,
            registry=reg,
        )
        self._in_flight = Gauge(
            "mailfilter_messages_in_flight",
            "Messages being processed",
            registry=reg,
        )
        self._server: Any = None
        self._thread: Any = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve /metrics on host:port (loopback only); the bound port."""
        _check_loopback(host)
        self._server, self._thread = start_http_server(
            port, addr=host, registry=self.registry
        )
        return int(self._server.server_port)

    def stop(self) -> None:
        """Close the endpoint, if started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def observe_scan(self, scanner: str, seconds: float, ok: bool) -> None:
        """One scanner call, and whether it answered."""
        self._scan.labels(scanner).observe(seconds)
        self._scanner_up.labels(scanner).set(1 if ok else 0)
        if not ok:
            self._scan_errors.labels(scanner).inc()

    def set_scanner_up(self, scanner: str, up: bool) -> None:
        """A health check's view of a scanner, between messages."""
        self._scanner_up.labels(scanner).set(1 if up else 0)

    def observe_reinject(self, seconds: float) -> None:
        """One reinjection transaction."""
        self._reinject.observe(seconds)

    def count_message(self, verdict: str, action: str) -> None:
        """One message's final verdict and action."""
        self._messages.labels(verdict, action).inc()

    def in_flight(self) -> contextlib.AbstractContextManager[Any]:
        """Held while a message is being processed."""
        return self._in_flight.track_inprogress()


class NullMetrics:
    """Metrics switched off: every call returns at once."""

    _NULL = contextlib.nullcontext()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Nothing to serve."""
        del host, port
        return 0

    def stop(self) -> None:
        """Nothing to stop."""

    def observe_scan(self, scanner: str, seconds: float, ok: bool) -> None:
        """Ignored."""

    def set_scanner_up(self, scanner: str, up: bool) -> None:
        """Ignored."""

    def observe_reinject(self, seconds: float) -> None:
        """Ignored."""

    def count_message(self, verdict: str, action: str) -> None:
        """Ignored."""

    def in_flight(self) -> contextlib.AbstractContextManager[Any]:
        """A shared, reusable no-op context manager."""
        return self._NULL


def create(enabled: bool) -> Metrics | NullMetrics:
    """Metrics when enabled, otherwise the free no-op object."""
    return Metrics() if enabled else NullMetrics()
