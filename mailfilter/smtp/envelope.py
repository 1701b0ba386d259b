"""The SMTP envelope of one message, as received from Postfix.

Frozen once DATA ends, so the pipeline, the policy and the logger all see
the same facts. The null sender is the empty string here (aiosmtpd keeps
it as "<>"; docs/engineering-rules.md, "Library traps"); `sender_display`
gives the log form.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Recipient:
    """One RCPT TO with its DSN parameters (RFC 3461)."""

    address: str
    notify: str | None = None  # "NEVER" or a comma list, as received
    orcpt: str | None = None  # "rfc822;addr", still xtext-encoded


@dataclass(frozen=True, slots=True)
class Client:
    """What Postfix told us with XFORWARD (XFORWARD_README)."""

    name: str | None = None
    addr: str | None = None
    port: str | None = None
    proto: str | None = None
    helo: str | None = None
    ident: str | None = None  # Postfix queue ID
    source: str | None = None

    def as_items(self) -> list[tuple[str, str]]:
        """Attributes in amavis's output order (Out/SMTP.pm:265-305)."""
        order = ("ADDR", "NAME", "PORT", "PROTO", "HELO", "SOURCE", "IDENT")
        items = []
        for key in order:
            value = getattr(self, key.lower())
            if value is not None:
                items.append((key, value))
        return items


@dataclass(frozen=True, slots=True)
class MailParams:
    """MAIL FROM parameters worth passing on."""

    size: int | None = None
    body: str | None = None  # "7BIT" or "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" or "HDRS"
    envid: str | None = None  # xtext, kept encoded


@dataclass(frozen=True, slots=True)
class Envelope:
    """Sender, recipients, client and the message bytes (CRLF, unstuffed)."""

    sender: str
    recipients: tuple[Recipient, ...]
    content: bytes
    params: MailParams = field(default_factory=MailParams)
    client: Client = field(default_factory=Client)
    lmtp: bool = False
    # The listener that took the message ("127.0.0.1", 10024).
    local_addr: tuple[str, int] = ("127.0.0.1", 10024)
    helo: str = ""
    # The connecting client (Postfix), for the log when XFORWARD is off.
    peer: str = ""
    # Whether a line of `content` starts with a dot (known from unstuffing,
    # so reinjection need not search 20 MB again to re-stuff it).
    dot_lines: bool = True

    @property
    def sender_display(self) -> str:
        """The sender in angle brackets, "<>" for the null sender."""
        return f"<{self.sender}>"
