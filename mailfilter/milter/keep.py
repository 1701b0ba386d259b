"""The milter door's "reinjection": nothing is sent, Postfix keeps the mail.

The pipeline passes each recipient group's copy to a `Downstream`. Behind a
milter the message already sits in Postfix's queue file, so this stand-in
records what the pipeline would have sent - our header fields and the edited
copy - and answers 250 for every recipient. `actions.plan()` turns the record
into header edits for Postfix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.addresses import Endpoint
from mailfilter.downstream.reinject import Downstream, Reply

if TYPE_CHECKING:
    from mailfilter.smtp.envelope import Client, MailParams, Recipient


@dataclass(frozen=True, slots=True)
class Kept:
    """One recipient group's copy as the pipeline would have passed it."""

    recipients: tuple[str, ...]
    prefix: bytes  # our header fields, folded, CRLF
    content: bytes  # the message after our edits (Subject tag, X-Spam-*)


class KeepAtMTA(Downstream):
    """A `Downstream` for one message that records instead of sending."""

    def __init__(self, queue_id: str) -> None:
        super().__init__(Endpoint("milter", "postfix", 0))
        self.queue_id = queue_id
        self.kept: list[Kept] = []

    @property
    def label(self) -> str:
        """Shown in log lines where the reinjection target would be."""
        return "milter:[postfix]:0"

    async def deliver(
        self,
        sender: str,  # noqa: ARG002 - Postfix has the envelope
        recipients: tuple[Recipient, ...],
        content: bytes,
        *,
        prefix: bytes = b"",
        params: MailParams | None = None,  # noqa: ARG002
        client: Client | None = None,  # noqa: ARG002
        smtp_input: bool = True,  # noqa: ARG002
        dot_lines: bool = True,  # noqa: ARG002
    ) -> list[Reply]:
        """Record the copy; 250 for each recipient, with Postfix's id."""
        self.kept.append(
            Kept(tuple(r.address for r in recipients), prefix, content)
        )
        text = f"2.0.0 Ok: queued as {self.queue_id or 'unknown'}"
        return [Reply(250, text) for _ in recipients]

    async def aclose(self) -> None:
        """Nothing to close."""
