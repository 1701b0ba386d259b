"""Policy files load, and every kind of mistake names the file and key."""

from __future__ import annotations

import pathlib
import re

import pytest

from mailfilter.decision.policy import PolicyError
from mailfilter.decision.policyfile import load_policy
from mailfilter.decision.verdict import Action, Verdict

POLICY_DIR = pathlib.Path(__file__).resolve().parents[3] / "policy"
POLICY_FILES = sorted(POLICY_DIR.glob("*.toml"))
DEFAULT = POLICY_DIR / "default.toml"


def test_policy_dir_has_files():
    """The shipped policy directory holds default.toml and seed.toml."""
    assert {"default.toml", "seed.toml"} <= {p.name for p in POLICY_FILES}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_every_policy_file_loads(path):
    """Each file in policy/ loads and has a destiny for every verdict."""
    policy = load_policy(path)
    assert set(Verdict) - {Verdict.CLEAN} == set(policy.destinies)
    assert {"clamav", "spamassassin", "banned"} == set(policy.scanner_failure)
    assert policy.banned.rules


def test_default_values_are_debians():
    """default.toml carries Debian's amavis levels, limits and destinies."""
    policy = load_policy(DEFAULT)
    assert (2.0, 6.31, 6.31) == (
        policy.spam.tag_level,
        policy.spam.tag2_level,
        policy.spam.kill_level,
    )
    limits = policy.banned.limits
    assert (14, 1500) == (limits.max_depth, limits.max_files)
    assert Action.DISCARD == policy.destinies[Verdict.INFECTED].action
    assert policy.destinies[Verdict.BANNED].quarantine
    # Fail closed: what the engine could not see is kept, not delivered.
    assert Action.DISCARD == policy.destinies[Verdict.UNCHECKED].action
    assert policy.destinies[Verdict.UNCHECKED].quarantine
    assert Action.TEMPFAIL == policy.scanner_failure["clamav"]
    assert Action.PASS == policy.scanner_failure["spamassassin"]
    assert policy.spam.max_size > 0


def test_quota_follows_amavis_formula():
    """The expansion quota is max(min, S*5, min(max, S*500))."""
    limits = load_policy(DEFAULT).banned.limits
    assert 102400 == limits.quota(100)
    assert 4096 * 500 == limits.quota(4096)
    assert 300 * 1024 * 1024 == limits.quota(10**7)


def test_seed_bans_shell_scripts_by_name():
    """seed.toml has a rule for .sh names that default.toml does not."""

    def bans(path, name):
        return any(
            r.pattern.search(name) for r in load_policy(path).banned.rules
        )

    assert bans(POLICY_DIR / "seed.toml", "install.sh")
    assert not bans(DEFAULT, "install.sh")


def test_recipient_entries_load(tmp_path):
    """[[recipient]] entries load lower-cased with unset keys as None."""
    path = tmp_path / "p.toml"
    path.write_text(
        DEFAULT.read_text()
        + '\n[[recipient]]\nmatch = "@Example.ORG"\nspam_lover = true\n'
        + "kill_level = 10\n"
    )
    (entry,) = load_policy(path).recipients
    assert ("@example.org", True, 10.0, None) == (
        entry.match,
        entry.spam_lover,
        entry.kill_level,
        entry.virus_lover,
    )


def _edit(old, new, count=1):
    def apply(text):
        assert old in text, old
        return text.replace(old, new, count)

    return apply


def _nth_pattern(index, new):
    def apply(text):
        lines = text.splitlines(keepends=True)
        hits = [
            i for i, line in enumerate(lines) if line.startswith("pattern")
        ]
        lines[hits[index]] = f"pattern = {new}\n"
        return "".join(lines)

    return apply


ERRORS = [
    ("unknown", lambda t: t + "\n[extra]\nx = 1\n", r"extra: unknown key"),
    (
        "unknown rule key",
        _edit("allow = false", "allow = false\nregex = 'x'"),
        r"banned\.rules\[0\]\.regex: unknown key",
    ),
    (
        "bad regex",
        _nth_pattern(3, "'(unclosed'"),
        r"banned\.rules\[3\]\.pattern: bad regex",
    ),
    (
        "wrong type",
        _edit("tag_level = 2.0", 'tag_level = "2.0"'),
        r"spam\.tag_level: expected a number",
    ),
    (
        "bool for int",
        _edit("max_depth = 14", "max_depth = true"),
        r"decoding\.max_depth: expected an integer",
    ),
    (
        "zero limit",
        _edit("max_files = 1500", "max_files = 0"),
        r"decoding\.max_files: must be >= 1",
    ),
    (
        "missing key",
        _edit("kill_level = 6.31", ""),
        r"spam\.kill_level: missing required key",
    ),
    (
        "missing table",
        _edit("[scanner_failure]", "[scanner_failure_x]"),
        r"scanner_failure_x: unknown key",
    ),
    (
        "bad action",
        _edit('action = "discard"', 'action = "bounce"'),
        r"destiny\.INFECTED\.action: bad action 'bounce'",
    ),
    (
        "failure cannot discard",
        _edit('clamav = "tempfail"', 'clamav = "discard"'),
        r"scanner_failure\.clamav: bad action 'discard'",
    ),
    (
        "missing destiny",
        _edit("[destiny.BAD-HEADER]", "[destiny.BAD_HEADER]"),
        r"destiny\.BAD_HEADER: unknown key",
    ),
    (
        "allow not bool",
        _edit("allow = false", 'allow = "no"'),
        r"banned\.rules\[0\]\.allow: expected true or false",
    ),
    (
        "bad recipient",
        lambda t: t + '\n[[recipient]]\nmatch = "nobody"\n',
        r"recipient\[0\]\.match: expected user@domain or @domain",
    ),
    (
        "recipient key",
        lambda t: t + '\n[[recipient]]\nmatch = "@x.org"\nspam_lovers = 1\n',
        r"recipient\[0\]\.spam_lovers: unknown key",
    ),
    (
        "recipient level type",
        lambda t: t + '\n[[recipient]]\nmatch = "@x.org"\nkill_level = "9"\n',
        r"recipient\[0\]\.kill_level: expected a number",
    ),
    (
        "timeout",
        _edit("tool_timeout = 20.0", "tool_timeout = 0"),
        r"banned\.tool_timeout: must be > 0",
    ),
    ("toml syntax", lambda t: t + "\n= nonsense\n", r"line \d+"),
]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [(e, x) for _, e, x in ERRORS],
    ids=[n for n, _, _ in ERRORS],
)
def test_errors_name_file_and_key(tmp_path, edit, expected):
    """Each invalid policy stops with PolicyError naming the file and key."""
    path = tmp_path / "x.toml"
    path.write_text(edit(DEFAULT.read_text()))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert re.search(expected, message), message


def test_missing_file_is_policy_error(tmp_path):
    """A file that does not exist is a PolicyError naming it."""
    path = tmp_path / "none.toml"
    with pytest.raises(PolicyError, match=re.escape(str(path))):
        load_policy(path)


def test_policy_error_is_value_error():
    """PolicyError subclasses ValueError for callers that catch that."""
    assert issubclass(PolicyError, ValueError)


def test_loaded_policy_is_read_only():
    """The destiny table of a loaded policy cannot be changed."""
    policy = load_policy(DEFAULT)
    with pytest.raises(TypeError):
        policy.destinies[Verdict.SPAM] = policy.destinies[Verdict.BANNED]


def test_recipient_dmarc_action_is_read_and_checked(tmp_path):
    """`dmarc_reject` in a [[recipient]] entry: one of the bank choices."""
    from mailfilter.decision.decide import recipient_settings

    base = DEFAULT.read_text()
    good = tmp_path / "good.toml"
    good.write_text(
        base + '\n[[recipient]]\nmatch = "@lists.test"\ndmarc_reject = "tag"\n'
    )
    policy = load_policy(good)
    assert "tag" == recipient_settings(policy, "a@lists.test").dmarc_reject
    assert recipient_settings(policy, "a@other.test").dmarc_reject is None
    bad = tmp_path / "bad.toml"
    bad.write_text(
        base + '\n[[recipient]]\nmatch = "@lists.test"\ndmarc_reject = "drop"\n'
    )
    with pytest.raises(PolicyError, match="dmarc_reject"):
        load_policy(bad)
