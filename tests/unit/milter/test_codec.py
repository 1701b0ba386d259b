"""The milter wire format, checked against miltertest's independent codec."""

from __future__ import annotations

import struct

import miltertest.codec as ref
import pytest

from mailfilter.milter import codec


def test_packets_decode_with_the_reference_codec():
    cmd, data, rest = ref.decode_msg(
        codec.encode(codec.CHGHEADER, codec.change_header(2, "X-A", " v"))
    )
    assert (cmd, data["index"], data["name"], data["value"], rest) == (
        "m",
        2,
        "X-A",
        " v",
        b"",
    )
    cmd, data, _ = ref.decode_msg(
        codec.encode(codec.INSHEADER, codec.insert_header(0, "X-B", "w"))
    )
    assert (cmd, data["index"], data["name"], data["value"]) == (
        "i",
        0,
        "X-B",
        "w",
    )
    cmd, data, _ = ref.decode_msg(codec.optneg(6, 0x39, 0x100380))
    assert (data["version"], data["actions"], data["protocol"]) == (
        6,
        0x39,
        0x100380,
    )


def test_reference_commands_parse():
    raw = ref.encode_msg("D", cmdcode="M", nameval=["i", "4AB", "{auth}", ""])
    packet = codec.Packet(raw[4:5], raw[5:])
    assert codec.parse_macros(packet) == (b"M", {"i": "4AB", "auth": ""})
    raw = ref.encode_msg(
        "C", hostname="h.example", family="4", port=2525, address="192.0.2.1"
    )
    assert codec.parse_connect(codec.Packet(raw[4:5], raw[5:])) == (
        "h.example",
        "192.0.2.1",
        2525,
    )
    raw = ref.encode_msg("M", args=["<a@b>", "BODY=8BITMIME"])
    assert codec.Packet(raw[4:5], raw[5:]).strings() == [
        b"<a@b>",
        b"BODY=8BITMIME",
    ]


def test_unix_client_has_no_address():
    payload = b"localhost\0L/var/run/x\0"
    assert codec.parse_connect(codec.Packet(b"C", payload)) == (
        "localhost",
        "",
        0,
    )


@pytest.mark.parametrize("length", [0, codec.MAX_PACKET + 1, 2**32 - 1])
def test_packet_length_bounds(length):
    with pytest.raises(codec.MilterProtocolError):
        codec.packet_length(struct.pack("!I", length))


def test_strings_must_be_terminated():
    with pytest.raises(codec.MilterProtocolError):
        codec.Packet(codec.MAIL, b"<a@b>").strings()


def test_nul_cannot_be_smuggled_into_a_reply():
    with pytest.raises(codec.MilterProtocolError):
        codec.reply_code("554 5.7.0 x\0y")
