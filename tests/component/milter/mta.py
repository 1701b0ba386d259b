"""The MTA side of the milter protocol, as Postfix drives it.

Built on `miltertest` (an independent implementation of the protocol), so
our codec is checked against someone else's reading of the format. Runs
blocking in a thread; the service under test runs on the event loop.
"""

from __future__ import annotations

import socket
from typing import Any

import miltertest as mt

# What Postfix 3.x offers in its OPTNEG.
POSTFIX_ACTIONS = 0x1FF
POSTFIX_PROTOCOL = 0x1FFFFF


class MTA:
    """One connection to the milter, speaking as Postfix does."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.conn = mt.MilterConnection(self.sock)
        self.actions, self.protocol = self.conn.optneg_mta(
            POSTFIX_ACTIONS, POSTFIX_PROTOCOL
        )

    def close(self) -> None:
        """SMFIC_QUIT and close."""
        self.conn._send(mt.SMFIC_QUIT)  # noqa: SLF001 - no reply expected
        self.sock.close()

    def connect(self, addr: str = "192.0.2.7", helo: str = "mx.example") -> None:
        """CONNECT and HELO with Postfix's macros."""
        self.conn.send_macro(mt.SMFIC_CONNECT, j="mx.test", _="client")
        self.conn.send(
            mt.SMFIC_CONNECT,
            hostname="client.example",
            family="4",
            port=40000,
            address=addr,
        )
        self.conn.send(mt.SMFIC_HELO, helo=helo)

    def envelope(self, sender: str, rcpts: list[str], queue_id: str) -> None:
        """MAIL and RCPT, with the {i} macro Postfix sends at MAIL."""
        self.conn.send_macro(mt.SMFIC_MAIL, i=queue_id)
        self.conn.send(mt.SMFIC_MAIL, args=[f"<{sender}>"])
        for rcpt in rcpts:
            self.conn.send(mt.SMFIC_RCPT, args=[f"<{rcpt}>"])

    def content(self, message: str) -> None:
        """Header fields and body chunks, without waiting (NR_HDR/NR_BODY)."""
        head, _, body = message.partition("\r\n\r\n")
        for line in head.replace("\r\n ", "\n ").split("\r\n"):
            name, _, value = line.partition(":")
            self.conn._send(mt.SMFIC_HEADER, name=name, value=value)  # noqa: SLF001
        self.conn.send(mt.SMFIC_EOH)
        for start in range(0, len(body), 65535):
            self.conn._send(mt.SMFIC_BODY, buf=body[start : start + 65535])  # noqa: SLF001

    def end(self) -> list[tuple[str, dict[str, Any]]]:
        """End of message: the edits, then the final reply."""
        result = self.conn.send_eom()
        # miltertest stops at QUARANTINE; for Postfix it is not final.
        if result[-1][0] == mt.SMFIR_QUARANTINE:
            result.append(self.conn.recv())
        return result

    def abort(self) -> None:
        """SMFIC_ABORT (client sent RSET or went away)."""
        self.conn._send(mt.SMFIC_ABORT)  # noqa: SLF001

    def message(
        self, message: str, rcpts: list[str], queue_id: str = "4AB12"
    ) -> list[tuple[str, dict[str, Any]]]:
        """One whole transaction on this connection."""
        self.envelope("alice@example.org", rcpts, queue_id)
        self.content(message)
        return self.end()
