"""Test domains for mail authentication, with keys made at run time.

good.test     RSA and Ed25519 keys, SPF (ip4 + include + mx), DMARC p=reject
badkey.test   publishes the wrong RSA key; SPF by redirect; p=quarantine
nokey.test    publishes nothing
strict.test   SPF -all, DMARC p=reject aspf=s, and SPF records that break
              the limits (include loop, void lookups) or use macros
broken.test   every query REFUSED (the resolver's SERVFAIL path: temperror)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailfilter.auth import keystore
from tests.support.dns import DnsServer, start_dns, txt

if TYPE_CHECKING:
    from pathlib import Path

GOOD_IP = "192.0.2.10"  # in good.test's and strict.test's SPF
RELAY_IP = "192.0.2.30"  # good.test's SPF by include: a:relay
MX_IP = "192.0.2.20"  # good.test's MX, also its HELO name's address
STRANGER_IP = "198.51.100.7"


@dataclass
class AuthDns:
    """The running server and where the signing keys are."""

    server: DnsServer
    keys: Path

    @property
    def address(self) -> str:
        """dns_servers entry."""
        return self.server.address


def start_auth_dns(workdir: Path) -> AuthDns:
    """Make keys for good.test (and a stray one), then serve the zones."""
    keys = workdir / "dkim"
    rsa = keystore.generate(keys, "good.test", "r2048", ed25519=False)
    ed = keystore.generate(keys, "good.test", "ed", ed25519=True)
    wrong = keystore.generate(
        workdir / "stray", "badkey.test", "r2048", ed25519=False
    )
    zones = {
        "good.test": [
            txt("r2048._domainkey.good.test", rsa),
            txt("ed._domainkey.good.test", ed),
            txt(
                "good.test",
                f"v=spf1 ip4:{GOOD_IP} include:_spf.good.test mx -all",
            ),
            txt("_spf.good.test", "v=spf1 a:relay.good.test ~all"),
            f"relay.good.test. 300 IN A {RELAY_IP}",
            "good.test. 300 IN MX 10 mx.good.test.",
            f"mx.good.test. 300 IN A {MX_IP}",
            txt("mx.good.test", "v=spf1 a -all"),
            txt("_dmarc.good.test", "v=DMARC1; p=reject; sp=quarantine"),
        ],
        "badkey.test": [
            txt("r2048._domainkey.badkey.test", wrong),
            txt("badkey.test", "v=spf1 redirect=good.test"),
            txt("_dmarc.badkey.test", "v=DMARC1; p=quarantine"),
        ],
        "nokey.test": [],
        "strict.test": [
            txt("strict.test", f"v=spf1 ip4:{GOOD_IP} -all"),
            txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s"),
            txt("loop.strict.test", "v=spf1 include:loop.strict.test -all"),
            txt(
                "void.strict.test",
                "v=spf1 a:n1.strict.test a:n2.strict.test "
                "a:n3.strict.test -all",
            ),
            txt("macro.strict.test", "v=spf1 exists:%{ir}._ip.%{d} -all"),
            "10.2.0.192._ip.macro.strict.test. 300 IN A 127.0.0.2",
            txt("two.strict.test", "v=spf1 -all"),
            txt("two.strict.test", "v=spf1 +all"),
        ],
    }
    server = start_dns(workdir / "dns", zones, refused=("broken.test",))
    return AuthDns(server, keys)
