"""Policy banks per front door: which door the mail came through decides
which destinies apply; reject only before the queue."""

from __future__ import annotations

import pathlib

import pytest

from mailfilter.decision.decide import decide
from mailfilter.decision.doors import for_door
from mailfilter.decision.policy import PolicyError
from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import Action, ScanResult, Verdict

DEFAULT = pathlib.Path(__file__).parents[3] / "policy" / "default.toml"
BANNED = [ScanResult("banned", banned=("application/x-msdownload,.exe,a",))]


def write(tmp_path: pathlib.Path, extra: str) -> pathlib.Path:
    path = tmp_path / "p.toml"
    path.write_text(DEFAULT.read_text() + "\n" + extra)
    return path


def test_the_default_rejects_viruses_and_banned_files_before_the_queue():
    policy = load_policy(DEFAULT)
    for door in ("milter", "proxy"):
        bank = for_door(policy, door)
        for verdict in (Verdict.INFECTED, Verdict.BANNED):
            assert bank.destinies[verdict].action is Action.REJECT
            assert bank.destinies[verdict].quarantine  # kept from [destiny]
    # After the queue nothing changes: discard, as before.
    after = for_door(policy, "content_filter")
    assert after.destinies[Verdict.BANNED].action is Action.DISCARD


def test_the_door_decides_the_same_message_differently():
    policy = load_policy(DEFAULT)
    rcpt = "u@example.com"
    assert decide(BANNED, for_door(policy, "milter"), rcpt).action is (
        Action.REJECT
    )
    assert decide(BANNED, for_door(policy, "content_filter"), rcpt).action is (
        Action.DISCARD
    )


def test_unset_keys_keep_the_base_destiny(tmp_path):
    policy = load_policy(
        write(tmp_path, '[door.proxy.destiny.SPAM]\naction = "reject"\n')
    )
    spam = for_door(policy, "proxy").destinies[Verdict.SPAM]
    assert spam.action is Action.REJECT
    assert spam.quarantine == policy.destinies[Verdict.SPAM].quarantine
    assert spam.subject_tag == policy.destinies[Verdict.SPAM].subject_tag


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            '[door.content_filter.destiny.SPAM]\naction = "reject"\n',
            "door.content_filter.destiny.SPAM.action: bad action 'reject'",
        ),
        ("[door.smtp.destiny.SPAM]\naction = 'pass'\n", "door.smtp: unknown"),
        (
            "[door.milter.destiny.CLEAN]\naction = 'pass'\n",
            "door.milter.destiny.CLEAN: unknown",
        ),
        (
            "[door.milter.destiny.SPAM]\nquarantine = true\n",
            "door.milter.destiny.SPAM.action: missing",
        ),
    ],
)
def test_bad_banks_refused_with_the_key(tmp_path, extra, problem):
    with pytest.raises(PolicyError, match=problem):
        load_policy(write(tmp_path, extra))
