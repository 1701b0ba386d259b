"""Read a policy file (`policy/*.toml`) and validate it into a `Policy`.

Every security setting must be written in the file: a missing key is an
error, not a silent default. Any problem stops with `PolicyError` naming
the file and the dotted key, so `check-config` can point at the line to
fix.
"""

from __future__ import annotations

import re
import tomllib
import types
from typing import TYPE_CHECKING, Any

from mailfilter.decision.policy import (
    DMARC_ACTIONS,
    BannedPolicy,
    BannedRule,
    DecodingLimits,
    Destiny,
    Policy,
    PolicyError,
    RecipientOverride,
    SpamPolicy,
)
from mailfilter.decision.verdict import Action, Verdict

# Front doors; the before-queue ones answer while the client is connected.
DOORS = ("content_filter", "milter", "proxy")
BEFORE_QUEUE = ("milter", "proxy")

if TYPE_CHECKING:
    import pathlib
    from collections.abc import Mapping


def load_policy(path: pathlib.Path) -> Policy:
    """Read and validate `path`; raise PolicyError naming file and key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: {exc}") from exc
    top = _Table(str(path), "", data)
    top.only(
        "banned",
        "decoding",
        "spam",
        "destiny",
        "scanner_failure",
        "recipient",
        "door",
    )
    destinies = _destinies(top.table("destiny"))
    return Policy(
        source=str(path),
        banned=_banned(top.table("banned"), top.table("decoding")),
        spam=_spam(top.table("spam")),
        destinies=destinies,
        scanner_failure=_failures(top.table("scanner_failure")),
        recipients=tuple(
            _recipient(t) for t in top.tables("recipient", required=False)
        ),
        doors=_doors(top, destinies),
    )


class _Table:
    """A TOML table that knows its dotted name, for error messages."""

    def __init__(self, file: str, name: str, data: dict[str, Any]) -> None:
        self.file, self.name, self.data = file, name, data

    def key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def fail(self, key: str, problem: str) -> PolicyError:
        return PolicyError(f"{self.file}: {self.key(key)}: {problem}")

    def only(self, *allowed: str) -> None:
        for key in self.data:
            if key not in allowed:
                raise self.fail(key, "unknown key")

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        what: str,
        required: bool = True,
    ) -> Any:
        if key not in self.data:
            if required:
                raise self.fail(key, "missing required key")
            return None
        value = self.data[key]
        # bool is an int in Python; a `true` where a number belongs is a
        # typo, not a 1.
        if not isinstance(value, kind) or (
            isinstance(value, bool) and bool not in _kinds(kind)
        ):
            raise self.fail(key, f"expected {what}, got {value!r}")
        return value

    def table(self, key: str) -> _Table:
        return _Table(self.file, self.key(key), self.get(key, dict, "a table"))

    def tables(self, key: str, required: bool = True) -> list[_Table]:
        items = self.get(key, list, "an array of tables", required) or []
        out = []
        for i, item in enumerate(items):
            name = f"{self.key(key)}[{i}]"
            if not isinstance(item, dict):
                raise PolicyError(f"{self.file}: {name}: expected a table")
            out.append(_Table(self.file, name, item))
        return out

    def number(self, key: str, required: bool = True) -> float | None:
        value = self.get(key, (int, float), "a number", required)
        return None if value is None else float(value)

    def real(self, key: str) -> float:
        return float(self.get(key, (int, float), "a number"))

    def count(self, key: str, minimum: int = 0) -> int:
        value: int = self.get(key, int, "an integer")
        if value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _banned(rules: _Table, limits: _Table) -> BannedPolicy:
    rules.only("rules", "tool_timeout")
    limits.only(*DecodingLimits.__slots__)
    timeout = rules.real("tool_timeout")
    if timeout <= 0:
        raise rules.fail("tool_timeout", "must be > 0")
    return BannedPolicy(
        rules=tuple(_rule(t) for t in rules.tables("rules")),
        limits=DecodingLimits(
            **{k: limits.count(k, 1) for k in DecodingLimits.__slots__}
        ),
        tool_timeout=timeout,
    )


def _rule(table: _Table) -> BannedRule:
    table.only("pattern", "allow", "comment")
    source: str = table.get("pattern", str, "a string")
    try:
        pattern = re.compile(source)
    except re.error as exc:
        raise table.fail("pattern", f"bad regex {source!r}: {exc}") from exc
    return BannedRule(
        pattern=pattern,
        allow=table.get("allow", bool, "true or false"),
        comment=table.get("comment", str, "a string", required=False) or "",
    )


def _spam(table: _Table) -> SpamPolicy:
    table.only("tag_level", "tag2_level", "kill_level", "max_size")
    return SpamPolicy(
        tag_level=table.real("tag_level"),
        tag2_level=table.real("tag2_level"),
        kill_level=table.real("kill_level"),
        max_size=table.count("max_size", 1),
    )


_BLOCKING_VERDICTS = tuple(v for v in Verdict if v is not Verdict.CLEAN)


def _destinies(table: _Table) -> Mapping[Verdict, Destiny]:
    table.only(*(v.value for v in _BLOCKING_VERDICTS))
    out = {}
    for verdict in _BLOCKING_VERDICTS:
        sub = table.table(verdict.value)
        sub.only("action", "quarantine", "subject_tag")
        out[verdict] = Destiny(
            action=_action(sub, "action", tuple(Action)),
            quarantine=sub.get("quarantine", bool, "true or false"),
            subject_tag=sub.get("subject_tag", str, "a string"),
        )
    return frozen_map(out)


def _action(table: _Table, key: str, allowed: tuple[Action, ...]) -> Action:
    value: str = table.get(key, str, "a string")
    if value not in {a.value for a in allowed}:
        names = "|".join(a.value for a in allowed)
        raise table.fail(key, f"bad action {value!r}, expected {names}")
    return Action(value)


def _doors(
    top: _Table, base: Mapping[Verdict, Destiny]
) -> Mapping[str, Mapping[Verdict, Destiny]]:
    """`[door.<name>.destiny.<VERDICT>]`: a destiny per front door.

    Unset keys keep the `[destiny]` value. `reject` means a 5xx at SMTP
    time, so only the before-queue doors (milter, proxy) may choose it.
    """
    if "door" not in top.data:
        return frozen_map({})
    doors = top.table("door")
    doors.only(*DOORS)
    out = {}
    for door in doors.data:
        bank = doors.table(door)
        bank.only("destiny")
        table = bank.table("destiny")
        table.only(*(v.value for v in _BLOCKING_VERDICTS))
        allowed = tuple(
            a for a in Action if door in BEFORE_QUEUE or a is not Action.REJECT
        )
        own = {}
        for name in table.data:
            verdict, sub = Verdict(name), table.table(name)
            sub.only("action", "quarantine", "subject_tag")
            was = base[verdict]
            quarantine = sub.get("quarantine", bool, "true or false", False)
            tag = sub.get("subject_tag", str, "a string", required=False)
            own[verdict] = Destiny(
                action=_action(sub, "action", allowed),
                quarantine=was.quarantine
                if quarantine is None
                else quarantine,
                subject_tag=was.subject_tag if tag is None else tag,
            )
        out[door] = frozen_map(own)
    return frozen_map(out)


SCANNERS = ("clamav", "spamassassin", "banned")


def _failures(table: _Table) -> Mapping[str, Action]:
    table.only(*SCANNERS)
    allowed = (Action.TEMPFAIL, Action.PASS)
    return frozen_map({s: _action(table, s, allowed) for s in SCANNERS})


_FLAGS = tuple(
    f for f in RecipientOverride.__slots__ if f.endswith(("lover", "checks"))
)
_LEVELS = ("tag_level", "tag2_level", "kill_level")


def _recipient(table: _Table) -> RecipientOverride:
    table.only("match", *_FLAGS, *_LEVELS, "dmarc_reject")
    match: str = table.get("match", str, "a string").strip().lower()
    local, at, domain = match.rpartition("@")
    if not at or not domain or "@" in local:
        raise table.fail("match", f"expected user@domain or @domain: {match}")
    flags = {f: table.get(f, bool, "true or false", False) for f in _FLAGS}
    return RecipientOverride(
        match=match,
        **flags,
        tag_level=table.number("tag_level", required=False),
        tag2_level=table.number("tag2_level", required=False),
        kill_level=table.number("kill_level", required=False),
        dmarc_reject=_dmarc_action(table),
    )


def _dmarc_action(table: _Table) -> str | None:
    value: str | None = table.get(
        "dmarc_reject", str, "a string", required=False
    )
    if value is not None and value not in DMARC_ACTIONS:
        raise table.fail(
            "dmarc_reject", f"expected one of {', '.join(DMARC_ACTIONS)}"
        )
    return value


def frozen_map(items: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only view, so a loaded Policy cannot be changed."""
    return types.MappingProxyType(dict(items))
