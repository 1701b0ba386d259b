"""Policy banks: local domains and what a DMARC p=reject failure does."""

from __future__ import annotations

import pytest

from mailfilter.auth.authresults import Results
from mailfilter.auth.bank import DMARC_TAG, Bank, for_recipient
from mailfilter.auth.dmarc import Result
from mailfilter.decision.verdict import Action, Decision, Verdict

SPAMMY = Decision(
    Verdict.SPAMMY,
    Action.PASS,
    spam_headers=True,
    spam_flag=True,
    subject_tag="***Spam*** ",
)
CLEAN = Decision(Verdict.CLEAN, Action.PASS)


def failed(policy: str) -> Results:
    return Results(dmarc=Result("fail", policy, "strict.test"))


def test_spam_fields_and_tags_only_for_local_recipients() -> None:
    bank = Bank("INBOUND", local_domains=("ours.test",))
    local = for_recipient(bank, SPAMMY, None, "u@mail.ours.test")
    remote = for_recipient(bank, SPAMMY, None, "u@theirs.test")
    lookalike = for_recipient(bank, SPAMMY, None, "u@notours.test")
    assert local == SPAMMY
    for decision in (remote, lookalike):
        assert not decision.spam_headers
        assert not decision.spam_flag
        assert decision.subject_tag == ""


def test_no_local_domains_means_everyone_is_local() -> None:
    assert for_recipient(Bank("INBOUND"), SPAMMY, None, "u@x.test") == SPAMMY


@pytest.mark.parametrize(
    ("setting", "action"),
    [("quarantine", Action.DISCARD), ("reject", Action.REJECT)],
)
def test_dmarc_reject_blocks_with_a_quarantine_copy(
    setting: str, action: Action
) -> None:
    bank = Bank("INBOUND", dmarc_reject=setting)
    decision = for_recipient(bank, CLEAN, failed("reject"), "u@x.test")
    assert decision.action is action
    assert decision.quarantine
    assert "strict.test" in decision.reason


def test_dmarc_tag_and_none() -> None:
    tagged = for_recipient(
        Bank("INBOUND", dmarc_reject="tag"), CLEAN, failed("reject"), "u@x"
    )
    assert tagged.action is Action.PASS
    assert tagged.subject_tag == DMARC_TAG
    none = for_recipient(
        Bank("INBOUND", dmarc_reject="none"), CLEAN, failed("reject"), "u@x"
    )
    assert none == CLEAN


@pytest.mark.parametrize("policy", ["none", "quarantine"])
def test_only_p_reject_is_acted_on(policy: str) -> None:
    bank = Bank("INBOUND", dmarc_reject="reject")
    assert for_recipient(bank, CLEAN, failed(policy), "u@x") == CLEAN


def test_temperror_never_blocks() -> None:
    bank = Bank("INBOUND", dmarc_reject="reject")
    results = Results(dmarc=Result("temperror", "reject", "strict.test"))
    assert for_recipient(bank, CLEAN, results, "u@x") == CLEAN


def test_a_block_already_decided_wins() -> None:
    virus = Decision(Verdict.INFECTED, Action.DISCARD, quarantine=True)
    bank = Bank("INBOUND", dmarc_reject="reject")
    assert for_recipient(bank, virus, failed("reject"), "u@x") == virus


def test_a_recipient_entry_overrides_the_banks_dmarc_action() -> None:
    """Per recipient: a [[recipient]] dmarc_reject wins over the bank's."""
    bank = Bank("INBOUND", dmarc_reject="quarantine")
    relaxed = for_recipient(bank, CLEAN, failed("reject"), "u@x", "none")
    assert relaxed == CLEAN
    strict = for_recipient(bank, CLEAN, failed("reject"), "u@x", "reject")
    assert strict.action is Action.REJECT
    unset = for_recipient(bank, CLEAN, failed("reject"), "u@x", None)
    assert unset.action is Action.DISCARD
