"""DKIM keys, signing and verification with dkimpy (keys from a table).

The DNS side is in tests/integration/test_auth_dns.py; here the key table
is filled by hand, so signing and verifying are tested on their own.
"""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from mailfilter.auth import dkimverify, keystore, sign
from mailfilter.auth.keys import UNREACHABLE, KeyTable

if TYPE_CHECKING:
    from pathlib import Path

MESSAGE = (
    b"From: Alice <alice@good.test>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: hello\r\n"
    b"Date: Tue, 01 Dec 2026 04:00:00 +0000\r\n"
    b"Message-ID: <1@good.test>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    root = tmp_path_factory.mktemp("keys")
    keystore.generate(root, "good.test", "r2048", ed25519=False)
    keystore.generate(root, "good.test", "ed", ed25519=True)
    return keystore.load(str(root))


def table(keys: dict[str, list]) -> KeyTable:
    t = KeyTable()
    for key in keys["good.test"]:
        name = f"{key.selector}._domainkey.good.test"
        t.records[name] = keystore.public_record(key)
    return t


def signed(keys: dict[str, list], message: bytes = MESSAGE) -> bytes:
    return sign.sign(message, keys["good.test"]) + message


def test_genkey_writes_mode_0600_and_never_overwrites(tmp_path: Path) -> None:
    record = keystore.generate(tmp_path, "new.test", "s1", ed25519=True)
    path = tmp_path / "new.test" / "s1.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keystore.generate(tmp_path, "new.test", "s1", ed25519=True)
    assert path.read_bytes() == before


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x..y"])
def test_key_names_cannot_leave_the_directory(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(keystore.KeyFileError):
        keystore.key_path(tmp_path, bad, "s")
    with pytest.raises(keystore.KeyFileError):
        keystore.key_path(tmp_path, "good.test", bad)


def test_both_algorithms_sign_and_verify(keys: dict[str, list]) -> None:
    results = dkimverify.verify_all(signed(keys), table(keys))
    assert sorted(r.algorithm for r in results) == [
        "ed25519-sha256",
        "rsa-sha256",
    ]
    assert [r.result for r in results] == ["pass", "pass"]
    assert {r.domain for r in results} == {"good.test"}


def test_relaxed_relaxed_and_the_recommended_fields(
    keys: dict[str, list],
) -> None:
    field = sign.sign(MESSAGE, keys["good.test"][:1]).decode()
    assert "c=relaxed/relaxed" in field
    h = field.split("h=")[1].split(";")[0].replace("\r\n", "")
    names = [n.strip() for n in h.split(":")]
    assert names.count("from") == 2  # over-signed
    for name in ("to", "subject", "date", "message-id"):
        assert name in names


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Hello Bob.", b"Hello Bob!"),
        (b"Subject: hello", b"Subject: hellO"),
        (b"To: bob@example.com", b"To: eve@example.com"),
    ],
)
def test_tampering_fails(
    keys: dict[str, list], old: bytes, new: bytes
) -> None:
    tampered = signed(keys).replace(old, new)
    results = dkimverify.verify_all(tampered, table(keys))
    assert [r.result for r in results] == ["fail", "fail"]


def test_a_second_from_added_later_fails(keys: dict[str, list]) -> None:
    message = signed(keys)
    end = message.index(b"\r\n\r\n") + 2
    added = message[:end] + b"From: ceo@good.test\r\n" + message[end:]
    results = dkimverify.verify_all(added, table(keys))
    assert [r.result for r in results] == ["fail", "fail"]


def test_relaxed_survives_refolding(keys: dict[str, list]) -> None:
    refolded = signed(keys).replace(b"Subject: hello", b"Subject:  \r\n hello")
    assert {
        r.result for r in dkimverify.verify_all(refolded, table(keys))
    } == {"pass"}


def test_eight_bit_and_utf8_headers(keys: dict[str, list]) -> None:
    message = (
        "From: Zoë <zoe@good.test>\r\nTo: bob@example.com\r\n"
        "Subject: café ☕\r\n\r\nGrüße\r\n"
    ).encode()
    results = dkimverify.verify_all(signed(keys, message), table(keys))
    assert [r.result for r in results] == ["pass", "pass"]


def test_missing_and_unreachable_keys(keys: dict[str, list]) -> None:
    message = signed(keys)
    assert {r.result for r in dkimverify.verify_all(message, KeyTable())} == {
        "permerror"
    }
    down = KeyTable()
    for name in dkimverify.signature_keys(message):
        down.records[name] = UNREACHABLE
    assert {r.result for r in dkimverify.verify_all(message, down)} == {
        "temperror"
    }


def test_a_wrong_key_fails(tmp_path: Path, keys: dict[str, list]) -> None:
    other = keystore.generate(tmp_path, "good.test", "r2048", ed25519=False)
    wrong = KeyTable()
    wrong.records["r2048._domainkey.good.test"] = other
    message = sign.sign(MESSAGE, keys["good.test"][1:]) + MESSAGE
    [result] = dkimverify.verify_all(message, wrong)
    assert result.result == "fail"


def test_signing_domain_is_from_or_nearest_parent(
    keys: dict[str, list],
) -> None:
    assert sign.signing_domain(MESSAGE, keys) == "good.test"
    sub = MESSAGE.replace(b"alice@good.test", b"alice@eu.mail.good.test")
    assert sign.signing_domain(sub, keys) == "good.test"
    other = MESSAGE.replace(b"alice@good.test", b"alice@goodtest.test")
    assert sign.signing_domain(other, keys) == ""


@pytest.mark.parametrize(
    "broken",
    [
        # A header line dkimpy cannot parse (MessageFormatError).
        b"no colon here\r\n",
        # A continuation line with nothing to continue (IndexError).
        b" leading continuation\r\n",
        # Signatures that are not signatures.
        (
            b"DKIM-Signature: v=1; d=good.test; s=r2048; h=; bh=x; b=abc;"
            b" a=rsa-sha256\r\n"
        ),
        b"DKIM-Signature: d=good.test; s=r2048; junk\r\n",
    ],
)
def test_malformed_input_gets_a_result_never_an_exception(
    keys: dict[str, list], broken: bytes
) -> None:
    from mailfilter.auth import arc

    message = broken + signed(keys)
    results = dkimverify.verify_all(message, table(keys))
    assert len(results) == message.count(b"DKIM-Signature:")
    assert {r.result for r in results} <= {"pass", "fail", "permerror"}
    assert arc.validate(message, table(keys), []) in ("none", "fail")
    arc_message = b"ARC-Seal: i=1; d=good.test; s=r2048\r\n" + message
    assert arc.validate(arc_message, table(keys), []) == "fail"
