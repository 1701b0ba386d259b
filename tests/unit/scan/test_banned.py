"""The banned scanner on the run-time corpus: evasions, ordinary, hostile."""

from __future__ import annotations

import pathlib
import time

import pytest

from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import ScanResult, Verdict
from mailfilter.scan import banned as banned_module
from mailfilter.scan.banned import BannedScanner, check
from tests.support import corpus

POLICY_DIR = pathlib.Path(__file__).resolve().parents[3] / "policy"


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICY_DIR / "default.toml").banned


def verdict_of(found):
    if found.banned:
        return Verdict.BANNED
    return Verdict.UNCHECKED if found.unchecked else Verdict.CLEAN


def _params(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


@_params(corpus.evasion_cases())
def test_evasion_is_caught(policy, case):
    """Every evasion trick in the corpus comes out BANNED."""
    assert case.expected == verdict_of(check(case.data, policy))


@_params(corpus.ordinary_cases())
def test_ordinary_mail_is_clean(policy, case):
    """Ordinary mail gives no banned part and nothing unchecked."""
    found = check(case.data, policy)
    assert ([], []) == (found.banned, found.unchecked)


@_params(corpus.hostile_cases())
def test_hostile_input_ends_fast_in_a_verdict(policy, case):
    """Hostile input gives its expected verdict within 2 s of CPU."""
    start = time.process_time()
    found = check(case.data, policy)
    used = time.process_time() - start
    assert case.expected == verdict_of(found)
    assert used < 2.0, f"{used:.2f}s CPU"


def test_percent_f_is_amavis_form(policy):
    """A banned PE attachment is reported as M,.T...,N like amavis %F."""
    found = check(
        corpus.with_attachment(corpus.pe_exe(), "invoice.exe"), policy
    )
    assert [
        "application/octet-stream,.exe,.exe-ms,invoice.exe"
    ] == found.banned


def test_rule_comment_is_prefixed(policy):
    """A rule with a comment prefixes "<comment>:" to %F."""
    found = check(corpus.with_attachment(corpus.elf(), "tool"), policy)
    assert [
        "executable content:application/octet-stream,.exe,.exe-unix,.elf,tool"
    ] == found.banned


def test_encrypted_member_is_unchecked_and_name_checked(policy):
    """An encrypted zip gives "encrypted"; a banned name inside also BANNED."""
    harmless = corpus.encrypted_zip({"minutes.txt": corpus.TEXT})
    found = check(
        corpus.with_attachment(harmless, "m.zip", "application/zip"), policy
    )
    assert ([], ["encrypted"]) == (found.banned, found.unchecked)


def test_allow_rule_first_match_wins(tmp_path):
    """An allow rule for .zip placed first lets a zipped exe through."""
    text = (POLICY_DIR / "default.toml").read_text()
    rule = "[[banned.rules]]\npattern = '^\\.zip$'\nallow = true\n\n"
    marker = "# --- Debian's defaults"
    path = tmp_path / "allow.toml"
    path.write_text(text.replace(marker, rule + marker, 1))
    policy = load_policy(path).banned
    zipped = corpus.with_attachment(
        corpus.zip_of({"a.exe": corpus.pe_exe()}), "a.zip", "application/zip"
    )
    assert [] == check(zipped, policy).banned
    assert check(
        corpus.with_attachment(corpus.pe_exe(), "a.exe"), policy
    ).banned


def test_seed_policy_bans_shell_scripts():
    """seed.toml bans a .sh attachment that default.toml lets through."""
    message = corpus.with_attachment(
        b"echo hello\n", "install.sh", "text/plain"
    )
    seed = load_policy(POLICY_DIR / "seed.toml").banned
    default = load_policy(POLICY_DIR / "default.toml").banned
    assert (Verdict.BANNED, Verdict.CLEAN) == (
        verdict_of(check(message, seed)),
        verdict_of(check(message, default)),
    )


async def test_scanner_returns_scan_result(policy):
    """BannedScanner.scan returns a ScanResult named "banned" with %F."""
    scanner = BannedScanner(policy)
    result = await scanner.scan(
        corpus.with_attachment(corpus.pe_exe(), "invoice.exe")
    )
    await scanner.aclose()
    assert (
        "banned",
        True,
        ("application/octet-stream,.exe,.exe-ms,invoice.exe",),
    ) == (result.scanner, result.ok, result.banned)
    assert isinstance(result, ScanResult)


async def test_poison_message_gets_unparseable(policy, monkeypatch):
    """A bug triggered by a message's bytes becomes unchecked, not a raise."""

    def boom(content, policy):
        raise RecursionError("deep")

    # Mocked: no input is known to make check() raise; this is the net.
    monkeypatch.setattr(banned_module, "check", boom)
    result = await BannedScanner(policy).scan(b"anything")
    assert ("unparseable: RecursionError",) == result.unchecked
    assert result.ok
