"""SPF, DMARC, DKIM and the whole verification step against a real DNS
server (unbound on loopback, tests/support/authzones.py)."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from mailfilter.auth import dmarc, keystore, sign, spf, step
from mailfilter.auth.bank import Bank, Verify
from mailfilter.auth.dns import Budget, Resolver
from mailfilter.smtp.envelope import Client, Envelope, Recipient
from tests.support.authzones import (
    GOOD_IP,
    MX_IP,
    RELAY_IP,
    STRANGER_IP,
    start_auth_dns,
)
from tests.support.dns import silent_udp_port

pytestmark = pytest.mark.integration

MESSAGE = (
    b"From: Alice <alice@good.test>\r\nTo: bob@example.com\r\n"
    b"Subject: hello\r\nMessage-ID: <1@good.test>\r\n\r\nHello Bob.\r\n"
)


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory):
    if not shutil.which("unbound"):
        pytest.skip("unbound is not installed (apt-get install unbound)")
    dns = start_auth_dns(tmp_path_factory.mktemp("authdns"))
    yield dns
    dns.server.stop()


def resolver(zones) -> Resolver:
    return Resolver([zones.address], timeout=1.0)


async def spf_result(zones, ip: str, sender: str, helo: str = "h") -> str:
    identity = spf.Identity(ip, sender, helo)
    return await spf.check(identity, resolver(zones), Budget(5, 40))


@pytest.mark.parametrize(
    ("ip", "sender", "result"),
    [
        (GOOD_IP, "a@good.test", "pass"),  # ip4
        (RELAY_IP, "a@good.test", "pass"),  # include: a:relay
        (MX_IP, "a@good.test", "pass"),  # mx
        (STRANGER_IP, "a@good.test", "fail"),  # -all
        (f"::ffff:{GOOD_IP}", "a@good.test", "pass"),  # v4-mapped
        (GOOD_IP, "a@badkey.test", "pass"),  # redirect=
        (STRANGER_IP, "a@badkey.test", "fail"),
        (GOOD_IP, "a@nokey.test", "none"),
        (GOOD_IP, "a@loop.strict.test", "permerror"),  # include loop
        (STRANGER_IP, "a@void.strict.test", "permerror"),  # 3 void
        (GOOD_IP, "a@macro.strict.test", "pass"),  # exists:%{ir}
        (STRANGER_IP, "a@macro.strict.test", "fail"),
        (GOOD_IP, "a@two.strict.test", "permerror"),  # two records
        (GOOD_IP, "a@x.broken.test", "temperror"),
        ("UNAVAILABLE", "a@good.test", "none"),
    ],
)
async def test_spf(zones, ip: str, sender: str, result: str) -> None:
    assert await spf_result(zones, ip, sender) == result


async def test_spf_helo_identity(zones) -> None:
    ok = spf.Identity(MX_IP, "postmaster@mx.good.test", "mx.good.test")
    bad = spf.Identity(GOOD_IP, "postmaster@mx.good.test", "mx.good.test")
    r = resolver(zones)
    assert await spf.check(ok, r, Budget(5, 40)) == "pass"
    assert await spf.check(bad, r, Budget(5, 40)) == "fail"


@pytest.mark.parametrize(
    ("evidence", "result", "policy"),
    [
        (
            dmarc.Evidence("good.test", "fail", "x.test", ("good.test",)),
            "pass",
            "reject",
        ),
        (
            dmarc.Evidence("good.test", "pass", "good.test", ()),
            "pass",
            "reject",
        ),
        (
            dmarc.Evidence("good.test", "pass", "evil.test", ("evil.test",)),
            "fail",
            "reject",
        ),
        # relaxed alignment: a subdomain of the same organization
        (
            dmarc.Evidence("good.test", "pass", "bounce.good.test", ()),
            "pass",
            "reject",
        ),
        # sp= for a subdomain without its own record
        (
            dmarc.Evidence("eu.good.test", "fail", "x.test", ()),
            "fail",
            "quarantine",
        ),
        # aspf=s: a subdomain does not align
        (
            dmarc.Evidence("strict.test", "pass", "b.strict.test", ()),
            "fail",
            "reject",
        ),
        (dmarc.Evidence("nokey.test", "fail", "x.test", ()), "none", "none"),
        (
            dmarc.Evidence("broken.test", "fail", "x.test", ()),
            "temperror",
            "none",
        ),
    ],
)
async def test_dmarc(zones, evidence, result: str, policy: str) -> None:
    found = await dmarc.check(evidence, resolver(zones), Budget(5, 40))
    assert (found.result, found.policy) == (result, policy)


def bank(zones, servers: list[str] | None = None, seconds: float = 5) -> Bank:
    verify = Verify(
        Resolver(servers or [zones.address], timeout=1.0),
        "mx.ours.test",
        seconds,
        40,
    )
    return Bank("INBOUND", verify=verify)


def envelope(content: bytes, ip: str = GOOD_IP) -> Envelope:
    return Envelope(
        "alice@good.test",
        (Recipient("bob@example.com"),),
        content,
        client=Client(addr=ip, helo="mx.good.test"),
    )


async def test_signed_mail_from_an_allowed_host(zones) -> None:
    keys = keystore.load(str(zones.keys))
    message = sign.sign(MESSAGE, keys["good.test"]) + MESSAGE
    forged = b"Authentication-Results: mx.ours.test; dmarc=pass\r\n"
    done = await step.verify(
        bank(zones), envelope(forged + message), forged + message, "t"
    )
    assert done is not None
    assert done.content == message  # the forged field is gone
    text = done.field.decode().replace("\r\n\t", " ")
    assert text.startswith("Authentication-Results: mx.ours.test;")
    assert text.count("dkim=pass") == 2
    assert "spf=pass smtp.mailfrom=alice@good.test" in text
    assert "spf=fail smtp.helo=mx.good.test" in text  # GOOD_IP is not MX_IP
    assert "dmarc=pass (p=reject) header.from=good.test" in text
    assert "arc=none" in text


async def test_spoofed_from_fails_dmarc_with_p_reject(zones) -> None:
    spoof = MESSAGE.replace(b"alice@good.test", b"ceo@strict.test")
    done = await step.verify(
        bank(zones), envelope(spoof, STRANGER_IP), spoof, "t"
    )
    assert done is not None
    assert done.results.dmarc is not None
    assert (done.results.dmarc.result, done.results.dmarc.policy) == (
        "fail",
        "reject",
    )


async def test_wrong_key_and_missing_key(zones) -> None:
    stray = keystore.load(str(zones.server.workdir.parent / "stray"))
    keys = keystore.load(str(zones.keys))
    bad = MESSAGE.replace(b"alice@good.test", b"alice@badkey.test")
    bad = sign.sign(bad, stray["badkey.test"]) + bad
    done = await step.verify(bank(zones), envelope(bad), bad, "t")
    assert done is not None
    assert [s.result for s in done.results.dkim] == ["pass"]
    # Same key name, other key in DNS: sign with good.test's RSA key as if
    # it were badkey.test's.
    rsa = next(k for k in keys["good.test"] if k.selector == "r2048")
    forged = keystore.SigningKey(
        "badkey.test", "r2048", rsa.algorithm, rsa.private
    )
    wrong = MESSAGE.replace(b"alice@good.test", b"alice@badkey.test")
    wrong = sign.sign(wrong, [forged]) + wrong
    done = await step.verify(bank(zones), envelope(wrong), wrong, "t")
    assert done is not None
    assert [s.result for s in done.results.dkim] == ["fail"]
    missing = keystore.SigningKey(
        "nokey.test", "s1", rsa.algorithm, rsa.private
    )
    nokey = MESSAGE.replace(b"alice@good.test", b"alice@nokey.test")
    nokey = sign.sign(nokey, [missing]) + nokey
    done = await step.verify(bank(zones), envelope(nokey), nokey, "t")
    assert done is not None
    assert [s.result for s in done.results.dkim] == ["permerror"]


async def test_silent_dns_is_temperror_within_the_budget_and_never_blocks(
    zones,
) -> None:
    """A DNS server that never answers: temperror everywhere, the budget
    bounds the wait, and the event loop keeps running meanwhile."""
    keys = keystore.load(str(zones.keys))
    message = sign.sign(MESSAGE, keys["good.test"]) + MESSAGE
    sink = silent_udp_port()
    port = sink.getsockname()[1]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    began = time.monotonic()
    try:
        done = await step.verify(
            bank(zones, [f"127.0.0.1:{port}"], seconds=1.5),
            envelope(message),
            message,
            "t",
        )
    finally:
        task.cancel()
        sink.close()
    elapsed = time.monotonic() - began
    assert done is not None
    results = done.results
    assert [s.result for s in results.dkim] == ["temperror", "temperror"]
    assert results.spf == "temperror"
    assert results.dmarc is not None
    assert results.dmarc.result == "temperror"
    assert elapsed < 10  # generous: the budget is 1.5 s
    assert ticks >= 20  # the loop ran while DNS was waited for


async def test_a_resolver_that_is_down_costs_one_timeout_not_the_budget(
    zones,
) -> None:
    """After one timeout the message's other lookups fail at once, so a
    missing local resolver adds about one `dns_timeout` per message, not
    the whole budget (20 s here, 1 s per try)."""
    keys = keystore.load(str(zones.keys))
    message = sign.sign(MESSAGE, keys["good.test"]) + MESSAGE
    sink = silent_udp_port()
    began = time.monotonic()
    try:
        done = await step.verify(
            bank(zones, [f"127.0.0.1:{sink.getsockname()[1]}"], seconds=20),
            envelope(message),
            message,
            "t",
        )
    finally:
        sink.close()
    elapsed = time.monotonic() - began
    assert done is not None
    assert done.results.spf == "temperror"
    assert elapsed < 10  # the budget would be 20 s


def arc_sealed(zones, message: bytes) -> bytes:
    """One ARC set added by a forwarder at good.test (dkimpy's sealer)."""
    import dkim

    keys = keystore.load(str(zones.keys))
    rsa = next(k for k in keys["good.test"] if k.selector == "r2048")
    results = b"Authentication-Results: fwd.good.test; dkim=none; spf=pass\r\n"
    sealed = results + message
    fields = dkim.arc_sign(
        sealed,
        b"r2048",
        b"good.test",
        rsa.private,
        b"fwd.good.test",
        include_headers=[b"from", b"to", b"subject"],
    )
    return b"".join(fields) + sealed


async def test_arc_chain_pass_and_broken(zones) -> None:
    sealed = arc_sealed(zones, MESSAGE)
    done = await step.verify(bank(zones), envelope(sealed), sealed, "t")
    assert done is not None
    assert done.results.arc == "pass"
    broken = sealed.replace(b"Hello Bob.", b"Hello Eve.")
    done = await step.verify(bank(zones), envelope(broken), broken, "t")
    assert done is not None
    assert done.results.arc == "fail"
    done = await step.verify(bank(zones), envelope(MESSAGE), MESSAGE, "t")
    assert done is not None
    assert done.results.arc == "none"


def test_dkim_check_command(zones, tmp_path, capsys) -> None:
    """`mailfilter dkim check`: 0 when DNS publishes the key, 1 when the
    record is missing or publishes another key."""
    from mailfilter.ops import dkimcli

    common = ["--dns-servers", zones.address]
    ok = dkimcli.main(
        [
            "check",
            "good.test",
            "r2048",
            "--dkim-keys",
            str(zones.keys),
            *common,
        ]
    )
    assert ok == 0
    assert "matches the key (rsa)" in capsys.readouterr().out
    # A key nobody published.
    assert (
        dkimcli.main(
            [
                "genkey",
                "good.test",
                "new",
                "--dkim-keys",
                str(tmp_path),
                "--ed25519",
            ]
        )
        == 0
    )
    assert (
        dkimcli.main(
            [
                "check",
                "good.test",
                "new",
                "--dkim-keys",
                str(tmp_path),
                *common,
            ]
        )
        == 1
    )
    assert "no TXT record" in capsys.readouterr().out
    # Our key file differs from what DNS publishes under that selector.
    (tmp_path / "good.test" / "r2048.key").write_bytes(
        (
            zones.server.workdir.parent / "stray" / "badkey.test" / "r2048.key"
        ).read_bytes()
    )
    assert (
        dkimcli.main(
            [
                "check",
                "good.test",
                "r2048",
                "--dkim-keys",
                str(tmp_path),
                *common,
            ]
        )
        == 1
    )
    assert "does NOT match" in capsys.readouterr().out
