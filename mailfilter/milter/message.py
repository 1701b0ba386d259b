"""What the milter steps tell us about one message, and the macros.

`Message` collects one MAIL ... end-of-message transaction and turns it
into the `Envelope` the pipeline takes; `Macros` keeps Postfix's macros
by the step they came with. Pure data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailfilter.milter import codec
from mailfilter.smtp.envelope import Client, Envelope, MailParams, Recipient

# Macro stages in protocol order: connection, HELO, then the message's.
_STAGES = (
    codec.CONNECT,
    codec.HELO,
    codec.MAIL,
    codec.RCPT,
    codec.DATA,
    codec.HEADER,
    codec.EOH,
    codec.BODY,
    codec.BODYEOB,
)


class Macros:
    """Macros by the command they came with.

    A stage's macros replace that stage's earlier ones (Sendmail); the
    message's stages end with the message, so a queue ID is never carried
    into the next one.
    """

    def __init__(self) -> None:
        self._stages: dict[bytes, dict[str, str]] = {}

    def set(self, stage: bytes, macros: dict[str, str]) -> None:
        """The macros sent before `stage`'s command."""
        self._stages[stage] = macros

    def merged(self) -> dict[str, str]:
        """The macros in force, later stages over earlier ones."""
        out: dict[str, str] = {}
        for stage in _STAGES:
            out.update(self._stages.get(stage, {}))
        return out

    def end_message(self) -> None:
        """Forget the message's macros; the connection's stay."""
        for stage in _STAGES[2:]:
            self._stages.pop(stage, None)

    def clear(self) -> None:
        """A new SMTP connection on the same milter socket."""
        self._stages.clear()


@dataclass
class Message:
    """What one MAIL ... end-of-message transaction has told us."""

    sender: str = ""
    params: MailParams = field(default_factory=MailParams)
    recipients: list[Recipient] = field(default_factory=list)
    head: list[bytes] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    size: int = 0

    def content(self) -> bytes:
        """The message as the pipeline scans it: header, blank line, body."""
        return b"".join(self.head) + b"\r\n" + b"".join(self.body)

    def envelope(
        self,
        content: bytes,
        *,
        client: tuple[str, str, int],
        helo: str,
        macros: dict[str, str],
        local_addr: tuple[str, int],
    ) -> Envelope:
        """The `Envelope` for the pipeline."""
        name, addr, port = client
        return Envelope(
            sender=self.sender,
            recipients=tuple(self.recipients),
            content=content,
            params=self.params,
            client=Client(
                name=macros.get("client_name", name) or None,
                addr=macros.get("client_addr", addr) or None,
                port=str(port) if port else None,
                helo=helo or None,
                ident=macros.get("i") or None,
                proto="ESMTP",
            ),
            local_addr=local_addr,
            helo=helo,
            peer=addr,
        )


def mail_params(args: list[str]) -> MailParams:
    """BODY= and SMTPUTF8 from the MAIL FROM parameters Postfix passes."""
    upper = [a.upper() for a in args]
    body = next((a[5:] for a in upper if a.startswith("BODY=")), None)
    return MailParams(body=body, smtputf8="SMTPUTF8" in upper)
