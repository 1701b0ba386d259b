"""The milter wire format (Sendmail libmilter, protocol version 6).

Every packet is a 4-byte big-endian length, a one-byte command and the
payload; strings are NUL-terminated. This module only turns bytes into
`Packet`s and replies into bytes: no sockets, no state.

Written here rather than taken from a library: the format is a few dozen
lines, and owning it lets the reader work on asyncio streams with our own
size limit and our own error (README.md, "Dependencies, and why").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

VERSION: Final = 6

# Commands from the MTA (SMFIC_*).
ABORT: Final = b"A"
BODY: Final = b"B"
CONNECT: Final = b"C"
MACRO: Final = b"D"
BODYEOB: Final = b"E"
HELO: Final = b"H"
QUIT_NC: Final = b"K"
HEADER: Final = b"L"
MAIL: Final = b"M"
EOH: Final = b"N"
OPTNEG: Final = b"O"
QUIT: Final = b"Q"
RCPT: Final = b"R"
DATA: Final = b"T"
UNKNOWN: Final = b"U"

# Replies to the MTA (SMFIR_*).
ACCEPT: Final = b"a"
CONTINUE: Final = b"c"
DISCARD: Final = b"d"
ADDHEADER: Final = b"h"
INSHEADER: Final = b"i"
CHGHEADER: Final = b"m"
PROGRESS: Final = b"p"
QUARANTINE: Final = b"q"
REJECT: Final = b"r"
TEMPFAIL: Final = b"t"
REPLYCODE: Final = b"y"
DELRCPT: Final = b"-"

# Actions a filter may take (SMFIF_*): we ask only for those we use.
ACT_ADDHDRS: Final = 0x01
ACT_DELRCPT: Final = 0x08
ACT_CHGHDRS: Final = 0x10
ACT_QUARANTINE: Final = 0x20

# Protocol steps the MTA may leave out or not wait for (SMFIP_*).
P_NOCONNECT: Final = 0x01
P_NOHELO: Final = 0x02
P_NOUNKNOWN: Final = 0x100
P_NODATA: Final = 0x200
P_NR_HDR: Final = 0x80
P_NR_BODY: Final = 0x80000
P_HDR_LEADSPC: Final = 0x100000

# A packet larger than this is a broken or hostile peer: body chunks are
# at most 64 KiB (1 MiB with SMFIP_MDS_1M, which we never ask for).
MAX_PACKET: Final = 256 * 1024
HEAD: Final = struct.Struct("!IB")


class MilterProtocolError(ValueError):
    """The peer sent something that is not milter protocol."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One command from the MTA."""

    command: bytes
    payload: bytes = b""

    def strings(self) -> list[bytes]:
        """The payload as NUL-terminated strings (MAIL, RCPT, HELO...)."""
        if not self.payload.endswith(b"\0"):
            raise MilterProtocolError(
                f"{self.command!r}: string not NUL-terminated"
            )
        return self.payload[:-1].split(b"\0")


def packet_length(head: bytes) -> int:
    """Length of the command byte plus payload, from the 4-byte prefix."""
    (length,) = struct.unpack("!I", head)
    if not 1 <= length <= MAX_PACKET:
        raise MilterProtocolError(f"bad packet length {length}")
    return int(length)


def encode(command: bytes, payload: bytes = b"") -> bytes:
    """One packet on the wire."""
    return struct.pack("!I", len(payload) + 1) + command + payload


def optneg(version: int, actions: int, protocol: int) -> bytes:
    """The SMFIC_OPTNEG reply."""
    return encode(OPTNEG, struct.pack("!III", version, actions, protocol))


def parse_optneg(packet: Packet) -> tuple[int, int, int]:
    """(version, actions, protocol) offered by the MTA."""
    if len(packet.payload) < 12:
        raise MilterProtocolError("short OPTNEG")
    version, actions, protocol = struct.unpack("!III", packet.payload[:12])
    return int(version), int(actions), int(protocol)


def parse_macros(packet: Packet) -> tuple[bytes, dict[str, str]]:
    """(the command they belong to, {name: value}) of an SMFIC_MACRO."""
    if not packet.payload:
        raise MilterProtocolError("empty MACRO")
    stage = packet.payload[:1]
    rest = packet.payload[1:]
    items = rest[:-1].split(b"\0") if rest else []
    if rest and not rest.endswith(b"\0"):
        raise MilterProtocolError("MACRO not NUL-terminated")
    macros = {}
    for name, value in zip(items[::2], items[1::2], strict=False):
        key = name.decode("utf-8", "surrogateescape").strip("{}")
        macros[key] = value.decode("utf-8", "surrogateescape")
    return stage, macros


def parse_connect(packet: Packet) -> tuple[str, str, int]:
    """(host name, address, port) of an SMFIC_CONNECT."""
    name, sep, rest = packet.payload.partition(b"\0")
    if not sep or not rest:
        raise MilterProtocolError("bad CONNECT")
    family = rest[:1]
    if family in (b"4", b"6") and len(rest) >= 3:
        (port,) = struct.unpack("!H", rest[1:3])
        addr = rest[3:].rstrip(b"\0").decode("ascii", "replace")
        return name.decode("utf-8", "replace"), addr, int(port)
    return name.decode("utf-8", "replace"), "", 0


def header(name: str, value: str) -> bytes:
    """SMFIR_ADDHEADER payload."""
    return _nul(name) + _nul(value)


def insert_header(index: int, name: str, value: str) -> bytes:
    """SMFIR_INSHEADER payload."""
    return struct.pack("!I", index) + _nul(name) + _nul(value)


def change_header(index: int, name: str, value: str) -> bytes:
    """SMFIR_CHGHEADER payload: the index-th `name` field ("" deletes)."""
    return struct.pack("!I", index) + _nul(name) + _nul(value)


def reply_code(text: str) -> bytes:
    """SMFIR_REPLYCODE payload: "554 5.7.0 text"."""
    return _nul(text)


def _nul(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise MilterProtocolError("NUL inside a milter string")
    return data + b"\0"
