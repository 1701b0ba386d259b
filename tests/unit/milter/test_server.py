"""Packets taken off a byte stream however the reads split them."""

from __future__ import annotations

from mailfilter.milter import codec
from mailfilter.milter.server import _complete_packets

STREAM = (
    codec.encode(codec.MAIL, b"<a@b>\0")
    + codec.encode(codec.HEADER, b"Subject\0 x\0")
    + codec.encode(codec.BODY, b"y" * 70000)
    + codec.encode(codec.BODYEOB)
)


def test_every_split_gives_the_same_packets():
    whole = _complete_packets(bytearray(STREAM))
    assert [p.command for p in whole] == [b"M", b"L", b"B", b"E"]
    for size in (1, 3, 4, 5, 1000, 65536):
        buffer, got = bytearray(), []
        for start in range(0, len(STREAM), size):
            buffer += STREAM[start : start + size]
            got += _complete_packets(buffer)
        assert got == whole
        assert buffer == bytearray()


def test_incomplete_packet_stays_in_the_buffer():
    buffer = bytearray(STREAM[:-3])
    packets = _complete_packets(buffer)
    assert [p.command for p in packets] == [b"M", b"L", b"B"]
    assert bytes(buffer) == STREAM[-5:-3]
