"""amavis-format log lines for tests: one Summary per kind of outcome.

Shared by the golden-file test and the mailgraph test, so both check the
lines our formatter really makes.
"""

from __future__ import annotations

from dataclasses import replace

from mailfilter.decision import amavislog

BASE = amavislog.Summary(
    log_id="01234-01",
    passed=True,
    category="CLEAN",
    actions=["RelayedInbound"],
    client_addr="198.51.100.7",
    client_port="40112",
    sender="a@example.org",
    recipients=["u@example.com"],
    queue_id="4ABCD123",
    message_id="<m1@example.org>",
    mail_id="tz4Zh_sTWo5N",
    hits=0.1,
    size=1234,
    elapsed_ms=321,
    queued_as=["5DEF01"],
)
CASES = {
    "clean": BASE,
    "virus": replace(
        BASE,
        passed=False,
        category="INFECTED (Eicar-Test-Signature.UNOFFICIAL)",
        actions=["DiscardedInbound", "Quarantined"],
        quarantine="virus/new/1.M2P3",
        hits=None,
        queued_as=[],
    ),
    "banned": replace(
        BASE,
        passed=False,
        category="BANNED (application/x-msdownload,.exe,.exe-ms,a.exe)",
        actions=["DiscardedInbound", "Quarantined"],
        queued_as=[],
    ),
    "spam": replace(
        BASE,
        passed=False,
        category="SPAM",
        hits=1000.0,
        actions=["DiscardedInbound", "Quarantined"],
        queued_as=[],
    ),
    "mta-blocked": replace(
        BASE,
        passed=False,
        category="MTA-BLOCKED",
        actions=["TempFailedInbound"],
        queued_as=[],
        client_addr=None,
    ),
    "null-sender-many": replace(
        BASE,
        sender="",
        recipients=["a@x", "b@x", "c@x"],
        queue_id=None,
        message_id="",
    ),
    "hostile": replace(
        BASE,
        sender="evil\r\nInjected: yes@x",
        message_id="<" + "m" * 300 + ">",
    ),
}


SPAMMY = replace(
    BASE, category="SPAMMY", hits=6.2, actions=["RelayedTaggedInbound"]
)
