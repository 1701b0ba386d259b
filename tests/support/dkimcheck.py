"""Verify delivered mail downstream, as a receiving site would: with
dkimpy, and with Perl's Mail::DKIM (libmail-dkim-perl), an implementation
independent of ours. Both ask the test DNS server for keys."""

from __future__ import annotations

import shutil
import subprocess

import dkim
import dns.nameserver
import dns.resolver

PERL_VERIFIER = r"""
use strict;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;
my $resolver = Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $ARGV[0],
    udp_timeout => 5, tcp_timeout => 5, retry => 1);
Mail::DKIM::DNS::resolver($resolver);
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (<STDIN>) { s/\r?\n\z/\r\n/; $dkim->PRINT($_); }
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    print $sig->algorithm, " ", $sig->result_detail, "\n";
}
"""


def crlf(message: bytes) -> bytes:
    """Maildir files have LF line ends; DKIM is defined over CRLF."""
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def dkimpy_results(message: bytes, dns_port: int) -> list[bool]:
    """One result per DKIM-Signature field, top first."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [
        dns.nameserver.Do53Nameserver("127.0.0.1", dns_port)
    ]

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            answer = resolver.resolve(
                name.decode().rstrip("."), "TXT", lifetime=timeout
            )
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(answer[0].strings)

    message = crlf(message)
    checker = dkim.DKIM(message)
    count = sum(
        1 for n, _ in checker.headers if n.lower() == b"dkim-signature"
    )
    results = []
    for index in range(count):
        try:
            results.append(bool(checker.verify(index, dnsfunc=dnsfunc)))
        except dkim.DKIMException:
            results.append(False)
    return results


def have_mail_dkim() -> bool:
    """Whether perl and Mail::DKIM are installed."""
    if not shutil.which("perl"):
        return False
    return (
        subprocess.run(
            ["perl", "-MMail::DKIM::Verifier", "-e", "1"]
        ).returncode
        == 0
    )


# Debian 12's Mail::DKIM (1.20230212) predates its Ed25519 support.
ED25519_UNSUPPORTED = "invalid (unsupported algorithm ed25519-sha256)"


def independent_pass(results: dict[str, str]) -> bool:
    """Mail::DKIM passed every signature it can check, RSA at least."""
    ed25519 = results.get("ed25519-sha256", "pass")
    return results.get("rsa-sha256") == "pass" and ed25519 in (
        "pass",
        ED25519_UNSUPPORTED,
    )


def mail_dkim_results(message: bytes, dns_port: int) -> dict[str, str]:
    """algorithm -> Mail::DKIM's result with detail ("pass", "fail (...)")."""
    done = subprocess.run(
        ["perl", "-e", PERL_VERIFIER, str(dns_port)],
        input=crlf(message),
        capture_output=True,
        check=True,
        timeout=60,
    )
    out = {}
    for line in done.stdout.decode().splitlines():
        algorithm, _, result = line.partition(" ")
        out[algorithm] = result
    return out
