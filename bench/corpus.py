"""A deterministic corpus of unique test messages.

The benchmark topologies are in docs/performance-and-reliability.md,
"Benchmark topologies".

Mix: 50% ~4 KB plain text, 30% ~20 KB HTML multipart/alternative, 15%
~100 KB with a PDF-like or ZIP attachment, 5% 1-5 MB, and ~1.5% bad ones
(EICAR in a zip, an executable behind a double extension). The *seed*
fixes the kinds and sizes; the *salt* changes every byte that matters to
a cache, so each system under test can get the same shape of corpus
without hitting clamd's clean-result cache or amavis's global cache.

EICAR comes from tests/support/samples.py and is only ever built in
memory (or in a temp dir by the caller). Sending is driver.py's job.
"""

from __future__ import annotations

import base64
import io
import random
import string
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from tests.support.samples import eicar, gtube

if TYPE_CHECKING:
    from collections.abc import Callable

SENDER = "sender@example.org"
RECIPIENT = "user@bench.test"
KINDS = ("text", "html", "attach", "large", "spam", "virus", "exe")
# The SpamAssassin-cost corpus: ham and spam, with a tenth of the mail
# infected or banned (what a filter that checks the cheap things first
# never shows SpamAssassin). Shares of n; plain text takes the rest.
COST_MIX = {
    "html": 0.25,
    "attach": 0.12,
    "large": 0.03,
    "spam": 0.10,
    "virus": 0.05,
    "exe": 0.05,
}
WORDS = [
    "mail",
    "cluster",
    "lustre",
    "storage",
    "director",
    "server",
    "filter",
    "queue",
    "postfix",
    "report",
    "meeting",
    "budget",
    "invoice",
    "schedule",
    "review",
    "update",
    "project",
    "team",
    "network",
    "backup",
    "release",
    "weekly",
    "monthly",
    "customer",
    "order",
    "shipment",
    "data",
]


@dataclass(frozen=True)
class Message:
    """One message, CRLF line ends, ready for DATA (not dot-stuffed)."""

    index: int
    kind: str
    data: bytes
    sender: str = SENDER
    recipient: str = RECIPIENT


def kinds_for(
    n: int, seed: int, mix: dict[str, float] | None = None
) -> list[str]:
    """The kind of each of n messages: exact proportions, shuffled.

    Without `mix`, the filter benchmarks' corpus (module docstring).
    """
    if mix is not None:
        kinds = [
            k for k, share in mix.items() for _ in range(round(n * share))
        ]
        kinds += ["text"] * (n - len(kinds))
        random.Random(seed).shuffle(kinds)
        return kinds
    bad = max(1, round(n * 0.015)) if n >= 20 else 0
    large = round(n * 0.05)
    attach = round(n * 0.15)
    html = round(n * 0.30)
    kinds = ["html"] * html + ["attach"] * attach + ["large"] * large
    kinds += [("virus", "exe")[i % 2] for i in range(bad)]
    kinds += ["text"] * (n - len(kinds))
    random.Random(seed).shuffle(kinds)
    return kinds


def _words(rng: random.Random, nbytes: int) -> str:
    """Plain text of about nbytes, wrapped at 72 columns."""
    out, line, size = [], [], 0
    while size < nbytes:
        word = rng.choice(WORDS)
        if rng.random() < 0.05:  # unique tokens defeat any content cache
            word = "".join(rng.choices(string.ascii_lowercase, k=8))
        line.append(word)
        size += len(word) + 1
        if sum(len(w) + 1 for w in line) > 72:
            out.append(" ".join(line))
            line = []
    out.append(" ".join(line))
    return "\r\n".join(out)


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def _headers(i: int, salt: str, subject: str, ctype: str) -> str:
    date = format_datetime(datetime(2024, 1, 1, tzinfo=UTC))
    return (
        f"From: Bench Sender <{SENDER}>\r\n"
        f"To: <{RECIPIENT}>\r\n"
        f"Subject: {subject} {i}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <bench-{salt}-{i}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\n"
    )


def _multipart(i: int, salt: str, subject: str, parts: list[str]) -> bytes:
    boundary = f"=_bench_{salt}_{i}"
    head = _headers(
        i, salt, subject, f'multipart/mixed; boundary="{boundary}"'
    )
    body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts)
    return f"{head}\r\n{body}--{boundary}--\r\n".encode()


def _text(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    head = _headers(i, salt, "Weekly report", "text/plain; charset=utf-8")
    body = _words(rng, size - len(head) - 2)
    return f"{head}\r\n{body}\r\n".encode()


def _html(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    boundary = f"=_alt_{salt}_{i}"
    head = _headers(
        i, salt, "Newsletter", f'multipart/alternative; boundary="{boundary}"'
    )
    text = _words(rng, size // 3)
    paras = "".join(
        f"<p>{_words(rng, 400)}</p>\r\n" for _ in range(size // 600)
    )
    html = f"<html><body>\r\n<h1>News {i}</h1>\r\n{paras}</body></html>"
    return (
        f"{head}\r\n--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n--{boundary}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n\r\n"
        f"{html}\r\n--{boundary}--\r\n"
    ).encode()


def _attachment(name: str, ctype: str, data: bytes) -> str:
    return (
        f'Content-Type: {ctype}; name="{name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{name}"\r\n\r\n'
        f"{_b64(data)}"
    )


def _text_part(rng: random.Random, size: int = 1500) -> str:
    return (
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{_words(rng, size)}"
    )


def _pdfish(rng: random.Random, size: int) -> bytes:
    """Something that starts like a PDF, with incompressible streams."""
    return (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(size) + b"\n%%EOF\n"
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _attach(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    if i % 2:
        part = _attachment(
            f"report-{i}.pdf", "application/pdf", _pdfish(rng, size)
        )
    else:
        data = _zip({f"data-{i}.csv": rng.randbytes(size)})
        part = _attachment(f"data-{i}.zip", "application/zip", data)
    return _multipart(i, salt, "Documents", [_text_part(rng), part])


def _large(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    part = _attachment(f"scan-{i}.pdf", "application/pdf", _pdfish(rng, size))
    return _multipart(i, salt, "Scans", [_text_part(rng), part])


def _spam(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    # An HTML newsletter with GTUBE in its text part: SpamAssassin scores
    # it as spam offline (no Bayes, no network tests).
    body = _html(i, rng, salt, size)
    return body.replace(
        b"charset=utf-8\r\n\r\n",
        f"charset=utf-8\r\n\r\n{gtube()}\r\n".encode(),
        1,
    )


def _virus(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    del size
    data = _zip({"readme.txt": salt.encode(), f"tool-{i}.com": eicar()})
    part = _attachment(f"tools-{i}.zip", "application/zip", data)
    return _multipart(i, salt, "Tools", [_text_part(rng), part])


def _exe(i: int, rng: random.Random, salt: str, size: int) -> bytes:
    # An MZ header and a PE signature: enough for file(1)/libmagic to say
    # "MS-DOS executable" whatever the name claims.
    pe = b"MZ" + b"\x90" * 58 + b"\x80\x00\x00\x00" + b"\0" * 64 + b"PE\0\0"
    data = pe + rng.randbytes(size)
    part = _attachment(
        f"invoice-{i}.pdf.exe", "application/octet-stream", data
    )
    return _multipart(i, salt, "Invoice", [_text_part(rng), part])


MAKERS: dict[str, Callable[[int, random.Random, str, int], bytes]] = {
    "text": _text,
    "html": _html,
    "attach": _attach,
    "large": _large,
    "spam": _spam,
    "virus": _virus,
    "exe": _exe,
}


# Size ranges per kind (raw bytes before base64 for attachments).
SIZES = {
    "text": (3500, 4700),
    "html": (16_000, 24_000),
    "attach": (60_000, 80_000),  # ~100 KB once base64-encoded
    "large": (750_000, 3_750_000),  # 1-5 MB once base64-encoded
    "spam": (16_000, 24_000),
    "virus": (0, 0),
    "exe": (2048, 8192),
}


def generate(
    n: int,
    seed: int = 1,
    salt: str = "a",
    mix: dict[str, float] | None = None,
) -> list[Message]:
    """n unique messages; same seed gives the same kinds and sizes."""
    shape = random.Random(seed)
    out = []
    for i, kind in enumerate(kinds_for(n, seed, mix)):
        size = shape.randint(*SIZES[kind])
        # Content comes from its own salted RNG, so two salts share the
        # sizes and kinds but no part is byte-identical.
        rng = random.Random(f"{seed}:{i}:{salt}")
        out.append(
            Message(i, kind, MAKERS[kind](i, rng, f"{salt}{seed}", size))
        )
    return out


def with_repeats(
    messages: list[Message], every: int = 3, seed: int = 1
) -> list[Message]:
    """Every `every`-th message replaced by a copy of an earlier one.

    Bulk mail: the same bytes again, to another recipient in its own
    transaction, within minutes (the copy comes from the last 30).
    """
    rng = random.Random(seed)
    out: list[Message] = []
    for m in messages:
        if out and (m.index + 1) % every == 0:
            orig = rng.choice(out[-30:])
            m = Message(
                m.index, orig.kind, orig.data,
                recipient=f"user{m.index}@bench.test",
            )  # fmt: skip
        out.append(m)
    return out


def text_messages(n: int, size: int = 4096, salt: str = "t") -> list[Message]:
    """n plain-text messages of about size bytes (the 4 KB corpus)."""
    return [
        Message(i, "text", _text(i, random.Random(f"{salt}:{i}"), salt, size))
        for i in range(n)
    ]


def big_message(size: int, salt: str = "big") -> Message:
    """One message of about size bytes: a base64 attachment."""
    rng = random.Random(salt)
    raw = size * 3 // 4 - 2048
    part = _attachment(
        "big.bin", "application/octet-stream", rng.randbytes(raw)
    )
    return Message(
        0, "large", _multipart(0, salt, "Big", [_text_part(rng), part])
    )


def summary(messages: list[Message]) -> str:
    """A one-line description: count, bytes and kinds."""
    total = sum(len(m.data) for m in messages)
    counts: dict[str, int] = {}
    for m in messages:
        counts[m.kind] = counts.get(m.kind, 0) + 1
    kinds = ", ".join(f"{k} {counts[k]}" for k in KINDS if k in counts)
    return f"{len(messages)} messages, {total / 1e6:.1f} MB ({kinds})"


def main() -> None:
    """Write a corpus to a directory as .eml files (for smtp-source -F)."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--salt", default="a")
    parser.add_argument(
        "--lf", action="store_true", help="LF line ends (for smtp-source -F)"
    )
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    messages = generate(args.n, args.seed, args.salt)
    for m in messages:
        data = m.data.replace(b"\r\n", b"\n") if args.lf else m.data
        (args.outdir / f"{m.index:05d}-{m.kind}.eml").write_bytes(data)
    print(summary(messages))


if __name__ == "__main__":
    main()
