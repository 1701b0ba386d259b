"""The service: listen, reload, drain (the context comes from `wiring`).

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
import functools
import logging
import signal
from typing import TYPE_CHECKING

from mailfilter import config as configmod
from mailfilter.addresses import parse_endpoint
from mailfilter.milter import server as milter_server
from mailfilter.ops import metrics as metricsmod
from mailfilter.pipeline import Context, Pipeline
from mailfilter.session import BACKLOG, Session
from mailfilter.smtp import replies
from mailfilter.smtp.slots import ProcessingSlots
from mailfilter.wiring import (
    build_context,
    close_context,
    release_big_buffers_to_the_os,
)

if TYPE_CHECKING:

    from mailfilter.addresses import Endpoint
    from mailfilter.config import Config
    from mailfilter.downstream.reinject import Downstream
    from mailfilter.smtp.envelope import Envelope

log = logging.getLogger("mailfilter.app")


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
        self._sessions: set[Session] = set()
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
                    backlog=BACKLOG,
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

    def _factory(self, endpoint: Endpoint, lmtp: bool) -> Session:
        try:
            return self._session(endpoint, lmtp)
        except Exception:
            log.exception("(!!)cannot create an SMTP session")
            raise

    def _session(self, endpoint: Endpoint, lmtp: bool) -> Session:
        host, port = endpoint.host, endpoint.port
        cfg = self.config
        return Session(
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
            close_context(old, after=budget)
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
            await close_context(old)
        await close_context(self.pipeline.context)
        self.metrics.stop()


def _host_port(text: str) -> tuple[str, int]:
    endpoint = parse_endpoint(text)
    return endpoint.host, endpoint.port
