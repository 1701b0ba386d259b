"""The banned engine against Python's `email` package and `7z l`.

Hypothesis builds MIME trees (multiparts, attached messages, names in
every encoding and place a client reads them from, odd separators) and
zip archives (stored and deflated members, junk in front, two archives
back to back, local names that differ from the central directory,
Unicode Path fields). Each is given to the engine and to a reference
reader on the same bytes: `email` with policy.default and compat32 for
messages, `7z l -slt` and `zipfile` for archives. The property: any
executable-looking name a reference reader exposes, the engine reports
as BANNED, or the message is UNCHECKED. And the engine itself never
fails on these bytes ("unparseable").

Short mode: SHORT_EXAMPLES examples per target, derandomized. Long mode
(RELIABILITY_LONG=1): 10**6 MIME trees, and ZIP_LONG_EXAMPLES archives
(each costs a `7z` run, about 20 ms).
"""

from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import io
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import time
import unicodedata
import urllib.parse
import zipfile
import zlib
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailfilter.decision.policyfile import load_policy
from mailfilter.scan.banned import check
from tests.reliability.conftest import write_record
from tests.support import corpus

SUITE = "differential"
pytestmark = pytest.mark.reliability

LONG = os.environ.get("RELIABILITY_LONG") == "1"
SHORT_EXAMPLES = 200
MIME_LONG_EXAMPLES = 10**6
ZIP_LONG_EXAMPLES = 20_000
settings.register_profile(
    "walker-differential-short",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=SHORT_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "walker-differential-long",
    database=None,
    deadline=None,
    max_examples=MIME_LONG_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(
    "walker-differential-long" if LONG else "walker-differential-short"
)
ZIP_EXAMPLES = ZIP_LONG_EXAMPLES if LONG else SHORT_EXAMPLES // 4
POLICY = load_policy(
    pathlib.Path(__file__).resolve().parents[2] / "policy/default.toml"
).banned

# What "executable-looking" means here, independent of the policy file:
# the extensions every block list (amavis, Defender, Gmail) shares.
EXECUTABLE = ("exe", "scr", "com", "bat", "cmd", "pif", "js", "vbs", "lnk")
HARMLESS = ("pdf", "txt", "docx", "png", "csv", "ics", "html")
STEMS = ("invoice", "report 2026", "Rechnung", "résumé", "a", "scan_0042")


def looks_executable(name: str) -> bool:
    """Whether a reader shows `name` as a program (invisible chars dropped)."""
    shown = "".join(
        c
        for c in unicodedata.normalize("NFKC", name)
        if unicodedata.category(c) not in {"Cf", "Cc"}
    )
    shown = shown.casefold().strip().rstrip(". \t")
    return any(shown.endswith("." + ext) for ext in EXECUTABLE)


# --- names in every encoding ---------------------------------------------


def _encode(name: str, style: str, key: str) -> str:
    """`key=value` for `name` written in one of the forms clients read."""
    if style == "quoted":
        return f'{key}="{name}"'
    if style == "token":
        return f"{key}={name}"
    if style == "rfc2231":
        return f"{key}*=utf-8''{urllib.parse.quote(name)}"
    if style == "continued":
        half = len(name) // 2
        return f'{key}*0="{name[:half]}"; {key}*1="{name[half:]}"'
    if style == "b":
        word = base64.b64encode(name.encode()).decode()
        return f'{key}="=?utf-8?B?{word}?="'
    encoded = "".join(
        c if c.isalnum() and c.isascii() else f"={b:02X}"
        for c in name
        for b in c.encode()
    )
    return f'{key}="=?utf-8?Q?{encoded}?="'


STYLES = ("quoted", "token", "rfc2231", "continued", "b", "q")
SEPARATORS = ("; ", ";\r\n\t", ";\r\n ", ";\x0c ", ";\x0b ", ";")


@st.composite
def file_names(draw: st.DrawFn) -> str:
    stem = draw(st.sampled_from(STEMS))
    ext = draw(st.sampled_from(EXECUTABLE + HARMLESS))
    name = f"{stem}.{ext}"
    if draw(st.booleans()):
        name = name.upper()
    return name + draw(st.sampled_from(("", ".", " ", ". .")))


@st.composite
def leaves(draw: st.DrawFn) -> bytes:
    name = draw(file_names())
    where = draw(st.sampled_from(("ct", "cd", "both", "none")))
    sep = draw(st.sampled_from(SEPARATORS))
    ctype = draw(
        st.sampled_from(
            ("application/octet-stream", "text/plain", "image/png")
        )
    )
    ct, cd = ctype, draw(st.sampled_from(("attachment", "inline")))
    if where in {"ct", "both"}:
        ct += sep + _encode(name, draw(st.sampled_from(STYLES)), "name")
    if where in {"cd", "both"}:
        cd += sep + _encode(name, draw(st.sampled_from(STYLES)), "filename")
    data = corpus.TEXT
    cte = draw(st.sampled_from(("base64", "7bit", "quoted-printable")))
    body = data
    if cte == "base64":
        body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    head_ct = draw(
        st.sampled_from(("Content-Type", "content-type", "CONTENT-TYPE"))
    )
    head = (
        f"{head_ct}: {ct}\r\nContent-Disposition: {cd}\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("utf-8") + body


def trees(depth: int = 3) -> st.SearchStrategy[bytes]:
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.tuples(
                st.lists(children, min_size=1, max_size=4),
                st.sampled_from(("mixed", "alternative", "related")),
                st.integers(0, 10**6),
            ).map(lambda t: corpus.multipart_part(t[0], t[1], f"b{t[2]}")),
            children.map(_attached_message),
        ),
        max_leaves=8,
    ).filter(lambda tree: tree.count(b"multipart/") <= 2 * depth + 4)


def _attached_message(inner: bytes) -> bytes:
    message = corpus.headers("Inner") + inner
    return (
        b"Content-Type: message/rfc822\r\n"
        b"Content-Disposition: attachment\r\n\r\n" + message
    )


def _as_message(tree: bytes) -> bytes:
    return corpus.headers("Fuzz") + tree


# --- reference readers -------------------------------------------------------


def _email_names(raw: bytes) -> set[str]:
    """Every file name Python's email package shows, with both policies."""
    names: set[str] = set()
    for policy in (email.policy.default, email.policy.compat32):
        try:
            message = email.message_from_bytes(raw, policy=policy)
            parts = list(message.walk())
        except Exception:  # noqa: BLE001 - a reader that fails shows nothing
            continue
        for part in parts:
            for getter in (
                part.get_filename,
                lambda p=part: p.get_param("name"),
            ):
                try:
                    value = getter()
                except Exception:  # noqa: BLE001
                    continue
                if isinstance(value, tuple):
                    value = email.utils.collapse_rfc2231_value(value)
                if isinstance(value, str):
                    names.add(
                        str(
                            email.header.make_header(
                                email.header.decode_header(value)
                            )
                        )
                        if "=?" in value
                        else value
                    )
    return names


def _sevenzip_names(data: bytes) -> set[str]:
    """Names `7z l -slt` lists for an archive."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "a.zip"
        path.write_bytes(data)
        done = subprocess.run(
            ["7z", "l", "-slt", "--", str(path)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    text = done.stdout.decode("utf-8", "replace")
    _, _, body = text.partition("\n----------\n")
    return {
        line[len("Path = ") :]
        for line in body.split("\n")
        if line.startswith("Path = ")
    }


def _zipfile_names(data: bytes) -> set[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return set(archive.namelist())
    except Exception:  # noqa: BLE001
        return set()


# --- results ----------------------------------------------------------------


def _record(case: str, runs: int, verdicts: Counter[str], cpu: float) -> None:
    """One line of the results table (conftest.write_record)."""
    write_record(
        SUITE,
        case,
        runs=runs,
        verdicts=verdicts,
        cpu_max_s=round(cpu, 4),
    )


def _judge(raw: bytes, exposed: set[str], tally: Counter[str]) -> float:
    """Check `raw`; assert the property; count the verdict; CPU used."""
    start = time.process_time()
    found = check(raw, POLICY)
    used = time.process_time() - start
    assert not [u for u in found.unchecked if "unparseable" in u], found
    risky = sorted(n for n in exposed if looks_executable(n))
    verdict = (
        "BANNED"
        if found.banned
        else "UNCHECKED"
        if found.unchecked
        else "CLEAN"
    )
    tally[verdict] += 1
    tally["exposed executable"] += bool(risky)
    assert not risky or verdict != "CLEAN", (risky, found)
    return used


# --- the properties ---------------------------------------------------------


def test_engine_sees_every_name_the_email_package_sees():
    """MIME trees: an exe name email shows is BANNED or UNCHECKED."""
    tally: Counter[str] = Counter()
    worst = [0.0]

    @PROFILE
    @given(trees())
    def run(tree: bytes) -> None:
        raw = _as_message(tree)
        worst[0] = max(worst[0], _judge(raw, _email_names(raw), tally))

    run()
    runs = tally["BANNED"] + tally["UNCHECKED"] + tally["CLEAN"]
    _record("MIME trees vs email (default, compat32)", runs, tally, worst[0])
    assert tally["exposed executable"] > 0, "the generator never tested a ban"


def _zip_with(members: list[tuple[str, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, method in members:
            archive.writestr(name, corpus.TEXT, compress_type=method)
    return buffer.getvalue()


def _mutate(data: bytes, how: str, extra_name: str) -> bytes:
    if how == "junk":
        return b"MZ-not-really\r\n" * 8 + data
    if how == "concatenated":
        return _zip_with([(extra_name, zipfile.ZIP_STORED)]) + data
    if how == "local-name":
        pos = data.find(b"PK\x03\x04")
        (size,) = struct.unpack_from("<H", data, pos + 26)
        new = extra_name.encode()[:size].ljust(size, b"_")
        return data[: pos + 30] + new + data[pos + 30 + size :]
    if how == "unicode-path":
        raw = extra_name.encode()
        field = struct.pack("<HHB", 0x7075, 5 + len(raw), 1)
        field += struct.pack("<I", zlib.crc32(b"x")) + raw
        info = zipfile.ZipInfo("harmless.txt")
        info.extra = field
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(info, corpus.TEXT)
        return buffer.getvalue()
    return data


@pytest.mark.skipif(shutil.which("7z") is None, reason="7z not installed")
def test_engine_sees_every_name_7z_lists():
    """Zip archives: an exe name `7z l` or zipfile lists is caught."""
    tally: Counter[str] = Counter()
    worst = [0.0]
    member = st.tuples(
        file_names().map(lambda n: n.strip(" .") or "a.txt"),
        st.sampled_from((zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)),
    )

    @settings(PROFILE, max_examples=ZIP_EXAMPLES)
    @given(
        st.lists(member, min_size=1, max_size=5, unique_by=lambda m: m[0]),
        st.sampled_from(
            ("none", "junk", "concatenated", "local-name", "unicode-path")
        ),
        file_names().map(lambda n: n.strip(" .") or "a.exe"),
    )
    def run(members: list[tuple[str, int]], how: str, extra: str) -> None:
        data = _mutate(_zip_with(members), how, extra)
        exposed = _sevenzip_names(data) | _zipfile_names(data)
        raw = corpus.with_attachment(data, "files.zip", "application/zip")
        worst[0] = max(worst[0], _judge(raw, exposed, tally))

    run()
    runs = tally["BANNED"] + tally["UNCHECKED"] + tally["CLEAN"]
    _record("zip archives vs 7z l and zipfile", runs, tally, worst[0])
    assert tally["exposed executable"] > 0
