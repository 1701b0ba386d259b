"""DATA reading: the end marker, dot-unstuffing, the size limit, leftovers."""

from __future__ import annotations

import asyncio

import pytest

from mailfilter.smtp.datareader import CHUNK, read_data


def reader_with(*pieces: bytes, eof: bool = False) -> asyncio.StreamReader:
    """A StreamReader already holding `pieces` (no socket)."""
    reader = asyncio.StreamReader(limit=CHUNK)
    for piece in pieces:
        reader.feed_data(piece)
    if eof:
        reader.feed_eof()
    return reader


async def test_lone_dot_first_line_is_an_empty_message():
    """'.' as the very first line ends the data: empty content."""
    data = await read_data(reader_with(b".\r\n"), 1000)
    assert b"" == data.content


async def test_unstuffing_and_dot_flag():
    """A leading dot is removed from each line; the flag says there were some."""
    data = await read_data(reader_with(b"..a\r\nb\r\n..\r\n.\r\n"), 1000)
    assert b".a\r\nb\r\n.\r\n" == data.content
    assert data.dot_lines
    plain = await read_data(reader_with(b"a\r\nb.\r\n.\r\n"), 1000)
    assert b"a\r\nb.\r\n" == plain.content
    assert not plain.dot_lines


async def test_bare_lf_dot_does_not_end_data():
    """LF.LF inside the data is content (no smuggling), only CRLF.CRLF ends."""
    data = await read_data(reader_with(b"a\n.\nMAIL FROM:<x>\r\n.\r\n"), 1000)
    assert b"a\n.\nMAIL FROM:<x>\r\n" == data.content


async def test_end_marker_split_across_reads():
    """A terminator split over two arrivals is still found."""
    reader = asyncio.StreamReader(limit=CHUNK)
    task = asyncio.ensure_future(read_data(reader, 1000))
    for piece in (b"hello\r", b"\n.", b"\r", b"\n"):
        reader.feed_data(piece)
        await asyncio.sleep(0)
    assert b"hello\r\n" == (await task).content


async def test_over_the_limit_reads_to_the_end_and_keeps_nothing():
    """Past the limit the content is dropped, the size counted, the end still found."""
    data = await read_data(reader_with(b"x" * 5000 + b"\r\n.\r\n"), 1000)
    assert data.content is None
    assert data.size >= 5000


async def test_pipelined_bytes_after_the_dot_go_back_to_the_reader():
    """QUIT sent right after the final dot is still there for the next command."""
    reader = reader_with(b"body\r\n.\r\nQUIT\r\n")
    assert b"body\r\n" == (await read_data(reader, 1000)).content
    assert b"QUIT\r\n" == await reader.readline()


async def test_connection_lost_mid_data():
    """EOF before the end marker is a lost connection, not a message."""
    with pytest.raises(ConnectionResetError):
        await read_data(reader_with(b"half a mess", eof=True), 1000)
