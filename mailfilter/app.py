"""The service: build the pipeline from settings, listen, reload, drain.

- SIGHUP reloads settings and policy; a bad file is logged and the old
  ones stay (a typo must not stop mail). Open connections are not touched:
  each message uses the context it started with.
- SIGTERM stops accepting, lets in-flight messages finish within
  `shutdown_timeout` (those whose client has gone too), and then closes
  what is left; Postfix retries those (aiosmtpd's own stop() cancels
  everything at once; see docs/performance-and-reliability.md, "aiosmtpd").
- `max_connections` bounds connections and, separately, messages in
  progress (`smtp.slots`): a message keeps its slot until its processing
  ends, even when its client went away after the final dot.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import functools
import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mailfilter import config as configmod
from mailfilter.addresses import parse_endpoint
from mailfilter.auth import setup as authsetup
from mailfilter.decision.policyfile import load_policy
from mailfilter.downstream.reinject import Downstream
from mailfilter.milter import server as milter_server
from mailfilter.ops import metrics as metricsmod
from mailfilter.pipeline import Context, Pipeline
from mailfilter.smtp import replies
from mailfilter.smtp.server import FilterSMTP
from mailfilter.smtp.slots import ProcessingSlots
from mailfilter.store.quarantine import Quarantine

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from mailfilter.addresses import Endpoint
    from mailfilter.auth import bank as authbank
    from mailfilter.config import Config
    from mailfilter.decision.policy import Policy
    from mailfilter.ops.metrics import MetricsSink
    from mailfilter.scan import Scanner
    from mailfilter.smtp.envelope import Envelope

log = logging.getLogger("mailfilter.app")


def release_big_buffers_to_the_os() -> None:
    """Keep glibc from holding on to freed multi-megabyte messages.

    glibc raises its mmap threshold after a large block is freed, so the
    next 20 MB message comes from the heap and stays in RSS after it is
    gone. A fixed threshold keeps large buffers in mmap, returned on free.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: nothing to tune
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 128 * 1024)


def myhostname(config: Config) -> str:
    """Our name, looked up once (never per connection)."""
    return config.hostname or socket.getfqdn()


def build_scanners(config: Config, policy: Policy) -> list[Scanner]:
    """The registry: one literal list, no discovery.

    See docs/engineering-rules.md, Rule 4.
    """
    from mailfilter.scan.banned import BannedScanner
    from mailfilter.scan.clamav import ClamAV
    from mailfilter.scan.spamassassin import SpamAssassin

    scanners: list[Scanner] = [BannedScanner(policy.banned)]
    if config.clamd != "off":
        scanners.append(
            ClamAV(
                parse_endpoint(config.clamd, unix_ok=True),
                timeout=config.clamd_timeout,
                workers=config.max_connections,
            )
        )
    if config.spamd != "off":
        scanners.append(
            SpamAssassin(
                parse_endpoint(config.spamd),
                timeout=config.spamd_timeout,
                max_size=policy.spam.max_size,
            )
        )
    return scanners


def build_context(
    config: Config, metrics: MetricsSink | None = None
) -> Context:
    """Everything the pipeline needs, from validated settings."""
    policy = load_policy(Path(config.policy))
    host = myhostname(config)
    domain = host.partition(".")[2] or host
    inbound, originating = authsetup.banks(config, host)
    context = Context(
        policy=policy,
        scanners=build_scanners(config, policy),
        downstream=Downstream(
            parse_endpoint(config.forward),
            helo="localhost",
            max_idle=config.max_connections,
        ),
        quarantine=Quarantine(config.quarantine),
        metrics=metrics or metricsmod.create(enabled=False),
        myhostname=host,
        virus_scanned=config.virus_scanned_header.format(domain=domain),
        scan_timeout=config.scan_timeout,
        forward_timeout=config.forward_timeout,
        bank=inbound,
    )
    _add_originating_bank(config, context, originating)
    return context


def _add_originating_bank(
    config: Config, context: Context, bank: authbank.Bank
) -> None:
    """The ORIGINATING bank's context, keyed by its listeners."""
    from mailfilter.scan.banned import BannedScanner

    policy = context.policy
    if config.originating_policy:
        policy = load_policy(Path(config.originating_policy))
    # clamd and spamd connections are shared; only the banned-file rules
    # come from the bank's own policy.
    scanners: list[Scanner] = [
        BannedScanner(policy.banned) if s.name == "banned" else s
        for s in context.scanners
        if s.name in config.originating_scanners
    ]
    originating = dataclasses.replace(
        context, policy=policy, scanners=scanners, bank=bank, banks={}
    )
    for text in config.listen_originating:
        endpoint = parse_endpoint(text)
        context.banks[endpoint.host, endpoint.port] = originating


class Service:
    """Listeners plus the pipeline; `run()` until SIGTERM."""

    def __init__(
        self,
        config: Config,
        config_path: str | None,
        overrides: dict[str, object],
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._overrides = overrides
        self.metrics = metricsmod.create(enabled=bool(config.metrics))
        if config.metrics:
            self.metrics.start(*_host_port(config.metrics))
        self.pipeline = Pipeline(build_context(config, self.metrics))
        self._servers: list[asyncio.Server] = []
        self._sessions: set[_Session] = set()
        self._stopping = asyncio.Event()
        self.slots = ProcessingSlots(lambda: self.config.max_connections)
        # Contexts replaced by SIGHUP, closed once their messages are done.
        self._retiring: dict[asyncio.Task[None], Context] = {}

    async def start(self) -> list[tuple[str, int]]:
        """Bind every listener; returns the bound addresses."""
        bound = []
        builtin = self.config.policy == str(configmod.BUILTIN_POLICY)
        log.info(
            "settings from %s; policy in force: %s%s",
            self.config.source,
            self.config.policy,
            " (the built-in default)" if builtin else "",
        )
        for text in (*self.config.listen, *self.config.listen_originating):
            endpoint = parse_endpoint(text)
            lmtp = endpoint.proto == "lmtp"
            if endpoint.door == "milter":
                server = await milter_server.start(
                    endpoint, self._milter_process, self._milter_limits
                )
            else:
                server = await asyncio.get_running_loop().create_server(
                    functools.partial(self._factory, endpoint, lmtp),
                    host=endpoint.host,
                    port=endpoint.port,
                    reuse_address=True,
                    # A burst of connects must wait in the kernel's queue,
                    # not be dropped before the greeting: 128 overflowed
                    # at 1000 concurrent clients. Linux caps it at
                    # net.core.somaxconn.
                    backlog=_BACKLOG,
                )
            self._servers.append(server)
            addr = server.sockets[0].getsockname()
            if endpoint.proto == "unix":
                addr = (endpoint.path, 0)
            bound.append((addr[0], addr[1]))
            log.info(
                "listening on %s:%s (%s, %s)",
                addr[0],
                addr[1],
                endpoint.door or ("LMTP" if lmtp else "SMTP"),
                "ORIGINATING"
                if text in self.config.listen_originating
                else "INBOUND",
            )
        return bound

    def _milter_limits(self) -> milter_server.Limits:
        cfg = self.config
        return milter_server.Limits(
            size_limit=cfg.message_size_limit,
            max_recipients=cfg.max_recipients,
            idle_timeout=cfg.idle_timeout,
            busy_timeout=cfg.scan_timeout + cfg.forward_timeout + 30,
            hold=cfg.milter_discard == "hold",
        )

    async def _milter_process(
        self, envelope: Envelope, keep: Downstream
    ) -> list[str]:
        """A message through the milter door, in a processing slot."""
        if not await self.slots.admit():
            return [replies.BUSY]
        try:
            return await self.pipeline.process(envelope, "milter", keep)
        finally:
            self.slots.release()

    def _factory(self, endpoint: Endpoint, lmtp: bool) -> _Session:
        try:
            return self._session(endpoint, lmtp)
        except Exception:
            log.exception("(!!)cannot create an SMTP session")
            raise

    def _session(self, endpoint: Endpoint, lmtp: bool) -> _Session:
        host, port = endpoint.host, endpoint.port
        cfg = self.config
        return _Session(
            self,
            functools.partial(
                self.pipeline.process, door=endpoint.door or "content_filter"
            ),
            helo_name=f"[{host}]",
            local_addr=(host, port),
            lmtp=lmtp,
            size_limit=cfg.message_size_limit,
            max_recipients=cfg.max_recipients,
            idle_timeout=cfg.idle_timeout,
            busy_timeout=cfg.scan_timeout + cfg.forward_timeout + 30,
        )

    def reload(self) -> None:
        """SIGHUP: new settings and policy for new messages."""
        try:
            config = configmod.load(self._config_path, self._overrides)
            context = build_context(config, self.metrics)
        except Exception as exc:
            log.error("(!)reload failed, keeping the old settings: %s", exc)  # noqa: TRY400
            return
        old = self.pipeline.context
        self.config = config
        self.pipeline.context = context
        log.info(
            "reloaded settings from %s and policy from %s",
            config.source,
            config.policy,
        )
        # Messages in flight keep using `old` (their snapshot): close its
        # scanners and connections only once they must have finished.
        budget = old.scan_timeout + old.forward_timeout
        task = asyncio.get_running_loop().create_task(
            _close_context(old, after=budget)
        )
        self._retiring[task] = old
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then drain."""
        release_big_buffers_to_the_os()
        loop = asyncio.get_running_loop()
        await self.start()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        await self.shutdown()

    def stop(self) -> None:
        """Ask `run()` to drain and return."""
        self._stopping.set()

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight messages finish, then 421 the rest."""
        for server in self._servers:
            server.close()
        try:
            async with asyncio.timeout(self.config.shutdown_timeout):
                await self.slots.idle.wait()
        except TimeoutError:
            log.warning(
                "(!)shutdown: %d messages still in flight get 421",
                self.slots.busy,
            )
        for session in list(self._sessions):
            session.say_goodbye()
        # In-flight messages are done or answered 421: close everything now.
        for task, old in list(self._retiring.items()):
            task.cancel()
            del self._retiring[task]
            await _close_context(old)
        await _close_context(self.pipeline.context)
        self.metrics.stop()


_BACKLOG = 4096


class _Session(FilterSMTP):
    """A FilterSMTP that the service can count and close."""

    def __init__(self, service: Service, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._service = service
        self._holders = 0
        self._uncounted = self._process
        self._process = self._counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Past max_connections: 421 and close (Postfix retries)."""
        sessions = self._service._sessions
        if len(sessions) >= self._service.config.max_connections:
            writer = cast("asyncio.WriteTransport", transport)
            writer.write((replies.SHUTTING_DOWN + "\r\n").encode())
            transport.close()
            return
        sessions.add(self)
        try:
            super().connection_made(transport)
        except Exception:
            # asyncio would drop the connection without a word; say why.
            log.exception("(!!)cannot start an SMTP session")
            sessions.discard(self)
            transport.close()

    def eof_received(self) -> bool | None:
        """The client closed its side: close ours too.

        aiosmtpd cancels its command loop on EOF but keeps the transport
        half-open; when that happens before the greeting (port probes,
        health checks, a client's connect timeout), nothing closes it until
        idle_timeout, and the session keeps a max_connections slot that
        long. Nothing more can be said to a client that has gone, and a
        message already being processed holds its own slot.
        """
        super().eof_received()
        return False

    def connection_lost(self, error: Exception | None) -> None:
        """Forget the session."""
        if self not in self._service._sessions:
            return
        self._service._sessions.discard(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str | None) -> None:
        """Hold a processing slot from DATA until processing ends.

        Two holders share the slot: this command (until the reply is
        sent, or the client is gone) and the processing task (until the
        message is done, even when nobody waits for it any more). It is
        given back when both have let go, so the drain on SIGTERM waits
        for orphaned processing, and never cuts a reply about to be sent.
        """
        # Waiting for a slot is not idleness.
        self._reset_timeout(self._busy_timeout)
        if not await self._service.slots.admit():
            await self._reply(replies.BUSY)
            return
        self._holders = 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self._let_go()

    def _counted(self, envelope: Envelope) -> Awaitable[list[str]]:
        # Called synchronously as the processing task is created: the
        # task holds the slot from then on, with no await in between.
        self._holders += 1
        return self._process_then_let_go(envelope)

    async def _process_then_let_go(self, envelope: Envelope) -> list[str]:
        try:
            return await self._uncounted(envelope)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._service.slots.release()

    def say_goodbye(self) -> None:
        """421 and close (shutdown)."""
        transport = cast("asyncio.WriteTransport | None", self.transport)
        if transport is not None and not transport.is_closing():
            transport.write((replies.SHUTTING_DOWN + "\r\n").encode())
            transport.close()


async def _close_context(context: Context, after: float = 0) -> None:
    if after:
        await asyncio.sleep(after)
    for scanner in context.scanners:
        await scanner.aclose()
    await context.downstream.aclose()


def _host_port(text: str) -> tuple[str, int]:
    endpoint = parse_endpoint(text)
    return endpoint.host, endpoint.port
