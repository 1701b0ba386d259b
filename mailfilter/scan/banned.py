"""The banned-file scanner: amavis's $banned_filename_re check.

Every leaf of the message (a MIME part, or a member of an archive inside
one, at any depth) has a path of nodes from the top of the message; each
node gives keys (declared MIME type, dotted content types, names). The
ordered rules of `policy.banned` are tried one by one against all keys of
the path, and the first rule that matches decides: banned, or allowed if
it is an exception (amavis Lookup/RE; docs/amavis-compat.md, "How a part is
judged"). A banned leaf is reported in amavis %F form, e.g.
"application/octet-stream,.exe,.exe-ms,invoice.exe".

Files uuencoded in text parts and the attachments of TNEF (winmail.dat)
are checked like archive members.

Content the walk cannot check becomes `unchecked`: "encrypted",
"over limits: <amavis hold reason>", "ambiguous content",
"not decoded: <why>", or "unparseable: <exception>" if our own code
fails on these bytes, so a poison message gets a verdict instead of a
retry loop (docs/engineering-rules.md, Rule 2). Nothing the walk could
not see is ever reported clean (docs/banned-files.md). What the verdicts
mean for each recipient is `decide`'s job.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailfilter.decision.verdict import ScanResult
from mailfilter.scan import archives, filetype, uudecode
from mailfilter.scan.budget import Budget, Member, OverLimits, Undecodable
from mailfilter.scan.filenames import name_keys
from mailfilter.scan.mimewalk import Leaf, MimeWalk, Node

if TYPE_CHECKING:
    from mailfilter.decision.policy import BannedPolicy

# Enough to show what was found without flooding a log line.
MAX_REPORTED = 20


@dataclass(slots=True)
class Findings:
    """What one check found; lists keep first-seen order without repeats."""

    banned: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    def add(self, kind: list[str], text: str) -> None:
        if text not in kind and len(kind) < MAX_REPORTED:
            kind.append(text)


def check(content: bytes, policy: BannedPolicy) -> Findings:
    """Walk `content` and match every leaf path against the rules.

    Fails closed: an exception anywhere in the walk ends it with
    "unparseable: <exception>" among the unchecked reasons, and what was
    found before it stays found.
    """
    run = _Check(policy, Budget(policy.limits, len(content)))
    walk = MimeWalk(content, run.budget)
    try:
        for leaf in walk.leaves():
            run.inspect(_typed(leaf), leaf, leaf.depth)
    except OverLimits as exc:
        run.found.add(run.found.unchecked, f"over limits: {exc}")
    except Exception as exc:  # any bug of ours: UNCHECKED
        run.found.add(run.found.unchecked, _unparseable(exc))
    for reason in walk.unchecked:
        run.found.add(run.found.unchecked, reason)
    return run.found


def _unparseable(exc: BaseException) -> str:
    return f"unparseable: {type(exc).__name__}"


def _typed(leaf: Leaf) -> tuple[Node, ...]:
    """The leaf's path with the leaf's content types filled in."""
    node = leaf.path[-1]
    types = filetype.short_types(leaf.head)
    return (*leaf.path[:-1], Node(node.mime_type, node.names, types))


@dataclass(slots=True)
class _Check:
    """The state of one message's check."""

    policy: BannedPolicy
    budget: Budget
    found: Findings = field(default_factory=Findings)

    def inspect(
        self, path: tuple[Node, ...], part: Leaf | Member, depth: int
    ) -> None:
        """Check one leaf path; descend into it if it is an archive."""
        verdict = match(path, self.policy)
        if verdict is not None:
            self.found.add(self.found.banned, verdict)
        node = path[-1]
        if node.encrypted:
            self.found.add(self.found.unchecked, "encrypted")
            return
        try:
            if filetype.is_container(node.types):
                self._descend(path, part, depth)
            elif _is_text(path) and uudecode.has_uuencoded(part.data):
                self._uudecoded(path, part, depth)
        except Undecodable as exc:
            self.found.add(self.found.unchecked, f"not decoded: {exc}")
        except OverLimits:
            raise
        except Exception as exc:
            # One member broke our code: the message is UNCHECKED, and
            # the other parts are still checked (a ban still shows).
            self.found.add(self.found.unchecked, _unparseable(exc))

    def _descend(
        self, path: tuple[Node, ...], part: Leaf | Member, depth: int
    ) -> None:
        """Check each member of an archive (or TNEF) part."""
        kind = next(t for t in path[-1].types if t in filetype.CONTAINERS)
        self.budget.enter(depth + 1)
        timeout = self.policy.tool_timeout
        members = archives.members(part.data, kind, self.budget, timeout)
        for member in members:
            self.inspect((*path, _member_node(member)), member, depth + 1)

    def _uudecoded(
        self, path: tuple[Node, ...], part: Leaf | Member, depth: int
    ) -> None:
        """Check the files uuencoded in a text part, as amavis does."""
        self.budget.enter(depth + 1)
        for name, data in uudecode.uu_files(part.data, self.budget.left):
            self.budget.file()
            self.budget.charge(len(data))
            member = Member(name, data)
            self.inspect((*path, _member_node(member)), member, depth + 1)


def _member_node(member: Member) -> Node:
    """An archive member as a path node: its name and content types."""
    types = () if member.encrypted else filetype.short_types(member.data)
    return Node("", name_keys(member.name), types, member.encrypted)


def _is_text(path: tuple[Node, ...]) -> bool:
    """A part read as text, where a uuencoded file may hide."""
    node = path[-1]
    return ".asc" in node.types or node.mime_type.startswith("text/")


def match(path: tuple[Node, ...], policy: BannedPolicy) -> str | None:
    """%F of the leaf if the first matching rule bans it, else None."""
    keys = [key for node in path for key in node.rule_keys()]
    for rule in policy.rules:
        if any(rule.pattern.search(key) for key in keys):
            if rule.allow:
                return None
            leaf = ",".join(
                k for k in path[-1].rule_keys() if k != "UNDECIPHERABLE"
            )
            return f"{rule.comment}:{leaf}" if rule.comment else leaf
    return None


class BannedScanner:
    """Scanner protocol adapter; the CPU work runs in a worker thread."""

    name = "banned"

    def __init__(self, policy: BannedPolicy) -> None:
        self._policy = policy

    async def scan(self, content: bytes) -> ScanResult:
        """Check one message; never raises for anything in its bytes."""
        start = time.monotonic()
        try:
            if _cheap(content):
                # A thread hand-off costs more than checking a small
                # single text part (~25 µs), and nothing here can block.
                found = check(content, self._policy)
            else:
                found = await asyncio.to_thread(check, content, self._policy)
        except Exception as exc:
            # A bug of ours triggered by these bytes: retrying would loop,
            # so the message gets a verdict (docs/engineering-rules.md,
            # Rule 2).
            found = Findings(unchecked=[f"unparseable: {type(exc).__name__}"])
        return ScanResult(
            scanner=self.name,
            banned=tuple(found.banned),
            unchecked=tuple(found.unchecked),
            elapsed=time.monotonic() - start,
        )

    async def aclose(self) -> None:
        """Nothing to release: the thread pool belongs to the loop."""


_INLINE_LIMIT = 65536
_TOP_TYPE = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*([^;\s]*)")


def _cheap(content: bytes) -> bool:
    """Small, and one text part: no archive, no unpacker subprocess."""
    if len(content) > _INLINE_LIMIT:
        return False
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[:end]
    types = _TOP_TYPE.findall(head)
    return all(t.lower().startswith(b"text/") for t in types)
