"""One milter connection as a state machine: packets in, reply packets out.

Postfix (`smtpd_milters`) reports each SMTP step; we collect the envelope,
the header fields and the body, and at end of message hand an `Envelope`
to the pipeline, then turn its per-recipient answers into milter actions
(`actions.py`). No sockets here: `server.py` feeds packets in and writes
the replies out, so the protocol corner cases (abort mid-message, several
messages per connection, macros) are tested without a network.

Postfix keeps the message: nothing is reinjected. We negotiate only the
actions we use (add/change headers, delete recipients, quarantine) and ask
Postfix not to wait for a reply to each header and body chunk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailfilter.milter import actions, codec
from mailfilter.milter.keep import KeepAtMTA
from mailfilter.milter.message import Macros, Message, mail_params
from mailfilter.smtp import replies
from mailfilter.smtp.envelope import Recipient

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from mailfilter.downstream.reinject import Downstream
    from mailfilter.smtp.envelope import Envelope

    Process = Callable[[Envelope, Downstream], Awaitable[list[str]]]

WANTED_ACTIONS = (
    codec.ACT_ADDHDRS
    | codec.ACT_CHGHDRS
    | codec.ACT_DELRCPT
    | codec.ACT_QUARANTINE
)
# Steps whose reply Postfix need not wait for, and the steps we skip.
WANTED_PROTOCOL = (
    codec.P_NR_HDR
    | codec.P_NR_BODY
    | codec.P_HDR_LEADSPC
    | codec.P_NOUNKNOWN
    | codec.P_NODATA
)
_CONTINUE = codec.encode(codec.CONTINUE)
class MilterSession:
    """Feed `handle()` every packet of one connection, in order."""

    def __init__(
        self,
        process: Process,
        *,
        local_addr: tuple[str, int],
        size_limit: int,
        max_recipients: int,
        hold: bool = False,
    ) -> None:
        self._process = process
        self._local_addr = local_addr
        self._size_limit = size_limit
        self._max_recipients = max_recipients
        self._hold = hold
        self.protocol = 0
        self.actions = 0
        self.closed = False
        self._macros = Macros()
        self._client = ("", "", 0)
        self._helo = ""
        self._msg: Message | None = None

    async def handle(self, packet: codec.Packet) -> list[bytes]:
        """The reply packets for one command (often none)."""
        command = packet.command
        if command == codec.BODYEOB:
            return await self._end_of_message(packet)
        handler = _HANDLERS.get(command)
        if handler is None:
            raise codec.MilterProtocolError(f"unknown command {command!r}")
        return handler(self, packet)

    # -- connection-level steps --------------------------------------------

    def _optneg(self, packet: codec.Packet) -> list[bytes]:
        version, offered_actions, offered_protocol = codec.parse_optneg(packet)
        if version < 2:
            raise codec.MilterProtocolError(f"milter version {version}")
        self.actions = WANTED_ACTIONS & offered_actions
        self.protocol = WANTED_PROTOCOL & offered_protocol
        return [
            codec.optneg(
                min(version, codec.VERSION), self.actions, self.protocol
            )
        ]

    def _macro(self, packet: codec.Packet) -> list[bytes]:
        self._macros.set(*codec.parse_macros(packet))
        return []

    @property
    def macros(self) -> dict[str, str]:
        """The macros in force now."""
        return self._macros.merged()

    def _end_message(self) -> None:
        self._msg = None
        self._macros.end_message()

    def _connect(self, packet: codec.Packet) -> list[bytes]:
        self._client = codec.parse_connect(packet)
        return [_CONTINUE]

    def _hello(self, packet: codec.Packet) -> list[bytes]:
        self._helo = _text(packet.strings()[0])
        return [_CONTINUE]

    def _quit(self, _packet: codec.Packet) -> list[bytes]:
        self.closed = True
        return []

    def _quit_new_connection(self, _packet: codec.Packet) -> list[bytes]:
        """SMFIC_QUIT_NC: the next SMTP connection reuses this socket."""
        self._macros.clear()
        self._client, self._helo, self._msg = ("", "", 0), "", None
        return []

    def _abort(self, _packet: codec.Packet) -> list[bytes]:
        """The SMTP client went away or sent RSET: forget the message."""
        self._end_message()
        return []

    # -- message steps -----------------------------------------------------

    def _mail(self, packet: codec.Packet) -> list[bytes]:
        args = [_text(a) for a in packet.strings()]
        self._msg = Message(
            sender=args[0].strip().removeprefix("<").removesuffix(">"),
            params=mail_params(args[1:]),
        )
        return [_CONTINUE]

    def _rcpt(self, packet: codec.Packet) -> list[bytes]:
        msg = self._need_message()
        if len(msg.recipients) >= self._max_recipients:
            return [_reply(replies.TOO_MANY_RECIPIENTS)]
        address = _text(packet.strings()[0]).strip()
        msg.recipients.append(
            Recipient(address.removeprefix("<").removesuffix(">"))
        )
        return [_CONTINUE]

    def _header(self, packet: codec.Packet) -> list[bytes]:
        msg = self._need_message()
        name, value = packet.strings()[:2]
        if not self.protocol & codec.P_HDR_LEADSPC:
            value = b" " + value  # Postfix ate the first space for us
        # Postfix sends a folded field with bare LF between its lines.
        line = name + b":" + value.replace(b"\r\n", b"\n") + b"\n"
        self._add(msg, msg.head, line.replace(b"\n", b"\r\n"))
        return [] if self.protocol & codec.P_NR_HDR else [_CONTINUE]

    def _end_of_header(self, _packet: codec.Packet) -> list[bytes]:
        return [_CONTINUE]

    def _body(self, packet: codec.Packet) -> list[bytes]:
        msg = self._need_message()
        self._add(msg, msg.body, packet.payload)
        return [] if self.protocol & codec.P_NR_BODY else [_CONTINUE]

    def _step(self, _packet: codec.Packet) -> list[bytes]:
        return [_CONTINUE]

    def _add(self, msg: Message, parts: list[bytes], data: bytes) -> None:
        msg.size += len(data)
        if msg.size <= self._size_limit:
            parts.append(data)

    def _need_message(self) -> Message:
        if self._msg is None:
            raise codec.MilterProtocolError("message step before MAIL")
        return self._msg

    async def _end_of_message(self, packet: codec.Packet) -> list[bytes]:
        msg = self._need_message()
        macros = self.macros
        self._end_message()
        if packet.payload:  # Sendmail may send the last chunk with EOB
            self._add(msg, msg.body, packet.payload)
        if msg.size > self._size_limit:
            return [_reply(replies.TOO_BIG.format(size=msg.size))]
        content = msg.content()
        envelope = msg.envelope(
            content,
            client=self._client,
            helo=self._helo,
            macros=macros,
            local_addr=self._local_addr,
        )
        keep = KeepAtMTA(macros.get("i", ""))
        answers = await self._process(envelope, keep)
        return actions.packets(
            actions.plan(answers, keep.kept, content, envelope.recipients),
            negotiated=self.actions,
            leading_space=bool(self.protocol & codec.P_HDR_LEADSPC),
            hold=self._hold,
        )

def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _reply(text: str) -> bytes:
    return codec.encode(codec.REPLYCODE, codec.reply_code(text))


_HANDLERS: dict[bytes, Callable[[MilterSession, codec.Packet], list[bytes]]]
_HANDLERS = {
    codec.OPTNEG: MilterSession._optneg,
    codec.MACRO: MilterSession._macro,
    codec.CONNECT: MilterSession._connect,
    codec.HELO: MilterSession._hello,
    codec.MAIL: MilterSession._mail,
    codec.RCPT: MilterSession._rcpt,
    codec.DATA: MilterSession._step,
    codec.UNKNOWN: MilterSession._step,
    codec.HEADER: MilterSession._header,
    codec.EOH: MilterSession._end_of_header,
    codec.BODY: MilterSession._body,
    codec.ABORT: MilterSession._abort,
    codec.QUIT: MilterSession._quit,
    codec.QUIT_NC: MilterSession._quit_new_connection,
}
