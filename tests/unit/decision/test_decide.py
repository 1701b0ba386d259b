"""decide(): verdict precedence, destinies, overrides and scanner failures."""

from __future__ import annotations

import pathlib

import pytest

from mailfilter.decision.decide import (
    decide,
    recipient_settings,
    spam_check_needed,
)
from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import Action, ScanResult, SpamReport, Verdict

DEFAULT = (
    pathlib.Path(__file__).resolve().parents[3] / "policy" / "default.toml"
)
OVERRIDES = """
[[recipient]]
match = "boss@corp.example"
spam_lover = false

[[recipient]]
match = "@corp.example"
spam_lover = true
kill_level = 10.0

[[recipient]]
match = "lab@virus.example"
virus_lover = true

[[recipient]]
match = "nospam@x.example"
bypass_spam_checks = true

[[recipient]]
match = "noav@x.example"
bypass_virus_checks = true

[[recipient]]
match = "nobanned@x.example"
bypass_banned_checks = true

[[recipient]]
match = "crypto@x.example"
unchecked_lover = true
"""
EXE = "application/octet-stream,.exe,.exe-ms,invoice.exe"


# The table runs on the default policy with spam discarded (the seed's
# choice), so that the lover and level overrides change an outcome.
SPAM_PASS = "[destiny.SPAM]\n"
SPAM_DISCARD_RULE = ('action = "pass"', 'action = "discard"')


def _spam_discarded(text):
    head, sep, tail = text.partition(SPAM_PASS)
    assert sep, "the default policy has a [destiny.SPAM] table"
    return head + sep + tail.replace(*SPAM_DISCARD_RULE, 1)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("p") / "policy.toml"
    path.write_text(_spam_discarded(DEFAULT.read_text()) + OVERRIDES)
    return load_policy(path)


def test_default_policy_delivers_spam_tagged_like_debian():
    """Debian's amavis passes spam (D_PASS), flagged, tagged, quarantined.

    A false positive must never be lost by the shipped policy; the seed's
    discard lives in policy/seed.toml.
    """
    decision = decide([clam(), sa(9.0), ban()], load_policy(DEFAULT), "u@x")
    assert decision.verdict is Verdict.SPAM
    assert decision.action is Action.PASS
    assert decision.spam_flag
    assert decision.subject_tag == "***SPAM*** "
    assert decision.quarantine
    seed = load_policy(DEFAULT.parent / "seed.toml")
    assert (
        decide([clam(), sa(9.0), ban()], seed, "u@x").action is Action.DISCARD
    )


def clam(*viruses, ok=True, error=""):
    return ScanResult("clamav", ok=ok, error=error, viruses=viruses)


def sa(score=0.0, ok=True, error="", skipped=False):
    report = None if skipped or not ok else SpamReport(score, 6.31)
    return ScanResult(
        "spamassassin", ok=ok, error=error, spam=report, skipped=skipped
    )


def ban(*banned, unchecked=(), ok=True, error=""):
    return ScanResult(
        "banned", ok=ok, error=error, banned=banned, unchecked=unchecked
    )


R = "user@example.org"
CASES = [
    (
        "clean",
        [clam(), sa(1.0), ban()],
        R,
        {
            "verdict": Verdict.CLEAN,
            "action": Action.PASS,
            "virus_scanned": True,
            "spam_headers": False,
            "spam_flag": False,
            "tag_level": 2.0,
            "tag2_level": 6.31,
            "reason": "",
            "quarantine": False,
        },
    ),
    (
        "virus",
        [clam("Eicar-Signature"), sa(1.0), ban()],
        R,
        {
            "verdict": Verdict.INFECTED,
            "action": Action.DISCARD,
            "quarantine": True,
            "reason": "INFECTED: Eicar-Signature",
            "detail": "Eicar-Signature",
            "subject_tag": "",
        },
    ),
    (
        "two viruses",
        [clam("A", "B"), sa(), ban()],
        R,
        {"detail": "A, B", "reason": "INFECTED: A, B"},
    ),
    (
        "banned",
        [clam(), sa(), ban(EXE)],
        R,
        {
            "verdict": Verdict.BANNED,
            "action": Action.DISCARD,
            "quarantine": True,
            "reason": f"BANNED: {EXE}",
            "detail": EXE,
        },
    ),
    (
        "virus outranks banned",
        [clam("X"), sa(9.0), ban(EXE)],
        R,
        {"verdict": Verdict.INFECTED, "action": Action.DISCARD},
    ),
    (
        "spam at kill level",
        [clam(), sa(6.31), ban()],
        R,
        {
            "verdict": Verdict.SPAM,
            "action": Action.DISCARD,
            "quarantine": True,
            "reason": "spam",
            "detail": "",
            "spam_flag": True,
            "spam_headers": True,
        },
    ),
    (
        "tag level reached, below tag2",
        [clam(), sa(2.0), ban()],
        R,
        {
            "verdict": Verdict.CLEAN,
            "spam_headers": True,
            "spam_flag": False,
            "subject_tag": "",
        },
    ),
    (
        "encrypted is quarantined, not delivered",
        [clam(), sa(), ban(unchecked=("encrypted",))],
        R,
        {
            "verdict": Verdict.UNCHECKED,
            "action": Action.DISCARD,
            "quarantine": True,
            "subject_tag": "",
            "reason": "UNCHECKED: encrypted",
            "detail": "encrypted",
        },
    ),
    (
        "not decoded is quarantined, not delivered",
        [clam(), sa(), ban(unchecked=("not decoded: 7z: empty listing",))],
        R,
        {
            "verdict": Verdict.UNCHECKED,
            "action": Action.DISCARD,
            "quarantine": True,
            "detail": "not decoded: 7z: empty listing",
        },
    ),
    (
        "over limits outranks encrypted",
        [
            ban(
                unchecked=(
                    "encrypted",
                    "over limits: Maximum number of files (1500) exceeded",
                )
            )
        ],
        R,
        {"reason": "UNCHECKED: over limits"},
    ),
    (
        "ambiguous outranks over limits",
        [ban(unchecked=("over limits: x", "ambiguous content"))],
        R,
        {"reason": "UNCHECKED: ambiguous content"},
    ),
    (
        "unparseable",
        [ban(unchecked=("unparseable: RecursionError",))],
        R,
        {"reason": "UNCHECKED", "detail": "unparseable: RecursionError"},
    ),
    (
        "clamd failed tempfails",
        [clam(ok=False, error="connection refused"), sa(), ban()],
        R,
        {
            "verdict": Verdict.UNCHECKED,
            "action": Action.TEMPFAIL,
            "reason": "virus_scan FAILED: connection refused",
            "virus_scanned": False,
            "notes": ("clamav failed: connection refused",),
        },
    ),
    (
        "clamd result missing",
        [sa(), ban()],
        R,
        {
            "verdict": Verdict.CLEAN,
            "action": Action.PASS,
            "virus_scanned": False,
        },
    ),
    (
        "spamd failed passes with note",
        [clam(), sa(ok=False, error="timed out"), ban()],
        R,
        {
            "verdict": Verdict.CLEAN,
            "action": Action.PASS,
            "spam_headers": False,
            "tag_level": None,
            "notes": ("spam checks skipped: timed out",),
        },
    ),
    (
        "spamd failed keeps the virus verdict",
        [clam("X"), sa(ok=False, error="t"), ban()],
        R,
        {"verdict": Verdict.INFECTED, "action": Action.DISCARD},
    ),
    (
        "definite banned beats clamd tempfail",
        [clam(ok=False, error="down"), sa(), ban(EXE)],
        R,
        {"verdict": Verdict.BANNED, "action": Action.DISCARD},
    ),
    (
        "clamd failed and unchecked that would pass still tempfails",
        [clam(ok=False, error="down"), ban(unchecked=("encrypted",))],
        "crypto@x.example",
        {"action": Action.TEMPFAIL},
    ),
    (
        "clamd failed and unchecked: the definite discard stands",
        [clam(ok=False, error="down"), ban(unchecked=("encrypted",))],
        R,
        {"verdict": Verdict.UNCHECKED, "action": Action.DISCARD},
    ),
    (
        "banned scanner failure tempfails",
        [clam(), ban(ok=False, error="bug")],
        R,
        {"action": Action.TEMPFAIL, "reason": "banned FAILED: bug"},
    ),
    (
        "unknown scanner failure fails closed",
        [clam(), ScanResult("dkim", ok=False, error="x")],
        R,
        {"action": Action.TEMPFAIL},
    ),
    (
        "spam size skip",
        [clam(), sa(skipped=True), ban()],
        R,
        {"verdict": Verdict.CLEAN, "spam_headers": False, "tag_level": None},
    ),
    (
        "bad header passes",
        [
            clam(),
            ScanResult(
                "headers", bad_header=("duplicate header field MIME-Version",)
            ),
        ],
        R,
        {
            "verdict": Verdict.BAD_HEADER,
            "action": Action.PASS,
            "reason": "BAD HEADER: duplicate header field MIME-Version",
        },
    ),
    (
        "no results",
        [],
        R,
        {
            "verdict": Verdict.CLEAN,
            "action": Action.PASS,
            "virus_scanned": False,
        },
    ),
    (
        "virus lover gets it tagged and quarantined",
        [clam("X"), sa(1.0), ban()],
        "lab@virus.example",
        {
            "verdict": Verdict.INFECTED,
            "action": Action.PASS,
            "quarantine": True,
            "subject_tag": "***INFECTED*** ",
            "reason": "INFECTED: X",
        },
    ),
    (
        "virus lover still loses spam",
        [clam("X"), sa(9.0), ban()],
        "lab@virus.example",
        {"verdict": Verdict.SPAM, "action": Action.DISCARD},
    ),
    (
        "spam lover by domain with its kill level",
        [clam(), sa(12.0), ban()],
        "Anyone@CORP.example",
        {
            "verdict": Verdict.SPAM,
            "action": Action.PASS,
            "subject_tag": "***SPAM*** ",
            "spam_flag": True,
        },
    ),
    (
        "first entry wins per setting",
        [clam(), sa(12.0), ban()],
        "boss@corp.example",
        {"verdict": Verdict.SPAM, "action": Action.DISCARD},
    ),
    (
        "domain kill level makes spammy",
        [clam(), sa(7.0), ban()],
        "boss+lists@corp.example",
        {
            "verdict": Verdict.SPAMMY,
            "action": Action.PASS,
            "reason": "spammy",
            "subject_tag": "***SPAM*** ",
            "spam_flag": True,
            "quarantine": False,
        },
    ),
    (
        "bypass spam checks",
        [clam(), sa(20.0), ban()],
        "nospam@x.example",
        {"verdict": Verdict.CLEAN, "spam_headers": False, "tag_level": None},
    ),
    (
        "bypass virus checks ignores virus",
        [clam("X"), sa(), ban()],
        "NoAV@x.example",
        {"verdict": Verdict.CLEAN, "virus_scanned": False},
    ),
    (
        "bypass virus checks ignores clamd failure",
        [clam(ok=False, error="down"), sa(), ban()],
        "noav@x.example",
        {"action": Action.PASS, "virus_scanned": False},
    ),
    (
        "bypass banned checks",
        [clam(), sa(), ban(EXE, unchecked=("encrypted",))],
        "nobanned@x.example",
        {"verdict": Verdict.CLEAN, "action": Action.PASS},
    ),
    (
        "unchecked lover",
        [clam(), ban(unchecked=("encrypted",))],
        "crypto@x.example",
        {"verdict": Verdict.UNCHECKED, "action": Action.PASS},
    ),
]


@pytest.mark.parametrize(
    ("results", "recipient", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide_table(policy, results, recipient, expected):
    """Each row of the table gets the decision fields it lists."""
    decision = decide(results, policy, recipient)
    assert expected == {k: getattr(decision, k) for k in expected}


def _variant(tmp_path, old, new):
    path = tmp_path / "v.toml"
    text = DEFAULT.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return load_policy(path)


def test_clamd_failure_pass_setting_gives_unchecked(tmp_path):
    """With clamav failure set to pass, the copy is UNCHECKED: quarantined."""
    policy = _variant(tmp_path, 'clamav = "tempfail"', 'clamav = "pass"')
    decision = decide([clam(ok=False, error="down"), sa()], policy, R)
    assert (Verdict.UNCHECKED, Action.DISCARD, True, False) == (
        decision.verdict,
        decision.action,
        decision.quarantine,
        decision.virus_scanned,
    )
    assert "UNCHECKED" == decision.reason
    path = tmp_path / "lover.toml"
    path.write_text((tmp_path / "v.toml").read_text() + OVERRIDES)
    lover = decide(
        [clam(ok=False, error="down"), sa()],
        load_policy(path),
        "crypto@x.example",
    )
    assert (Action.PASS, "***UNCHECKED*** ") == (
        lover.action,
        lover.subject_tag,
    )


def test_spamd_failure_tempfail_setting(tmp_path):
    """With spamassassin failure set to tempfail, a spamd error tempfails."""
    policy = _variant(
        tmp_path, 'spamassassin = "pass"', 'spamassassin = "tempfail"'
    )
    decision = decide([clam(), sa(ok=False, error="refused")], policy, R)
    assert Action.TEMPFAIL == decision.action
    assert "spam_scan FAILED: refused" == decision.reason


def test_unchecked_pass_destiny(tmp_path):
    """A site that relaxes UNCHECKED to pass delivers it tagged, quarantined."""
    policy = _variant(
        tmp_path,
        'action = "discard"\nquarantine = true\nsubject_tag = "***UNCHECKED*** "',
        'action = "pass"\nquarantine = true\nsubject_tag = "***UNCHECKED*** "',
    )
    decision = decide([ban(unchecked=("ambiguous content",))], policy, R)
    assert (Action.PASS, "***UNCHECKED*** ", True) == (
        decision.action,
        decision.subject_tag,
        decision.quarantine,
    )


def test_decide_is_deterministic(policy):
    """The same inputs give equal decisions (no hidden state)."""
    results = [clam("X"), sa(9.0), ban(EXE)]
    assert decide(results, policy, R) == decide(results, policy, R)


def test_recipient_settings_merge(policy):
    """Settings merge per key: the address entry first, then the domain."""
    merged = recipient_settings(policy, "<Boss@Corp.Example>")
    assert (False, 10.0, None) == (
        merged.spam_lover,
        merged.kill_level,
        merged.virus_lover,
    )


@pytest.mark.parametrize(
    ("results", "recipient", "needed"),
    [
        ([clam(), ban()], R, True),
        ([clam("Eicar"), ban()], R, False),
        ([clam(), ban("invoice.exe")], R, False),
        ([clam(), ban(unchecked=("encrypted",))], R, False),
        # A virus lover still gets the copy: its X-Spam fields matter.
        ([clam("Eicar"), ban()], "lab@virus.example", True),
        ([clam(), ban()], "nospam@x.example", False),
        # clamd down and scanner_failure.clamav = tempfail: retried anyway.
        ([clam(ok=False, error="down"), ban()], R, False),
    ],
    ids=[
        "clean so far",
        "infected",
        "banned",
        "unchecked",
        "virus lover",
        "bypass spam checks",
        "tempfail",
    ],
)
def test_spam_check_only_where_it_decides_something(
    policy, results, recipient, needed
):
    """spamd is asked only when the cheap results still deliver the copy."""
    assert needed is spam_check_needed(results, policy, recipient)
