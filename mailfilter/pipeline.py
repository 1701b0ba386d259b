"""One message from Postfix to its outcome: scan, decide, act, answer.

Scanners run concurrently, each under its own deadline inside one total
budget. `decide()` (pure) gives each recipient a `Decision`; recipients
that share one are handled together, as amavis's header clustering does
(docs/amavis-compat.md, "One reply for all recipients"). The answer is given
only after the outcome is durable: passed mail accepted by 10025, blocked mail
quarantined. Anything that is not a verdict on the message - a scanner down,
10025 down, our own bug - ends in a 4xx, so Postfix keeps the mail and retries
(docs/engineering-rules.md, Rule 1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from mailfilter.decision import amavislog, answers, doors, headers, mailid
from mailfilter.decision.decide import decide
from mailfilter.decision.outcome import Job, Outcome, added_fields, log_outcome
from mailfilter.decision.verdict import (
    Action,
    Decision,
    ScanResult,
)
from mailfilter.downstream import dsn
from mailfilter.downstream.reinject import DownstreamError, Reply
from mailfilter.smtp import replies
from mailfilter.smtp.envelope import Recipient
from mailfilter.smtp.wire import has_bare_line_ends, normalise_line_ends

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailfilter.decision.policy import Policy
    from mailfilter.downstream.reinject import Downstream
    from mailfilter.ops.metrics import MetricsSink
    from mailfilter.scan import Scanner
    from mailfilter.smtp.envelope import Envelope
    from mailfilter.store.quarantine import Quarantine

log = logging.getLogger("mailfilter.verdict")


@dataclass
class Context:
    """What `Pipeline` needs besides the message; swapped on SIGHUP."""

    policy: Policy
    scanners: Sequence[Scanner]
    downstream: Downstream
    quarantine: Quarantine
    metrics: MetricsSink
    myhostname: str
    virus_scanned: str
    scan_timeout: float
    forward_timeout: float


class Pipeline:
    """Turns an `Envelope` into the SMTP reply (or LMTP replies)."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def process(
        self,
        envelope: Envelope,
        door: str = doors.CONTENT_FILTER,
        downstream: Downstream | None = None,
    ) -> list[str]:
        """Never raises: our own failure is a tempfail, logged.

        `door` selects the policy bank; the milter door passes its own
        `downstream` (Postfix keeps the message) and gets one answer per
        recipient (docs/milter.md).
        """
        log_id = mailid.log_id()
        ctx = self.context  # one snapshot per message, even across SIGHUP
        policy = doors.for_door(ctx.policy, door)
        if policy is not ctx.policy or downstream is not None:
            ctx = replace(
                ctx, policy=policy, downstream=downstream or ctx.downstream
            )
        with ctx.metrics.in_flight():
            try:
                return await self._process(
                    ctx, envelope, log_id, door == doors.MILTER
                )
            except Exception as exc:
                log.exception("(%s) (!!)TROUBLE in check_mail", log_id)
                reply = replies.TEMPFAIL_INTERNAL.format(
                    log_id=log_id,
                    section="check_mail",
                    error=type(exc).__name__,
                )
                return [reply] * (
                    len(envelope.recipients) if envelope.lmtp else 1
                )

    async def _process(
        self, ctx: Context, envelope: Envelope, log_id: str, each_rcpt: bool
    ) -> list[str]:
        start = time.monotonic()
        mail_id = mailid.mail_id()
        content = envelope.content
        dot_lines = envelope.dot_lines
        if has_bare_line_ends(content):
            # Never emit a bare CR or LF downstream
            # (docs/performance-and-reliability.md, "SMTP smuggling").
            content = normalise_line_ends(content)
            dot_lines = True  # new line starts: search again when stuffing
        results = await self._scan(ctx, content)
        decisions = [
            decide(results, ctx.policy, r.address) for r in envelope.recipients
        ]
        groups: dict[Decision, list[int]] = {}
        for index, decision in enumerate(decisions):
            groups.setdefault(decision, []).append(index)
        quarantine = await self._quarantine(ctx, envelope, decisions, mail_id)
        outcome = Outcome()
        spam = next((r.spam for r in results if r.spam is not None), None)
        job = Job(
            envelope, content, log_id, mail_id, quarantine, spam, dot_lines
        )
        for decision, indexes in groups.items():
            await self._act(ctx, job, decision, indexes, outcome)
        elapsed = int((time.monotonic() - start) * 1000)
        log_outcome(job, results, outcome, elapsed)
        per_rcpt = [
            outcome.replies[i] for i in range(len(envelope.recipients))
        ]
        if envelope.lmtp or each_rcpt:
            return per_rcpt
        reply = answers.one_response_for_all(per_rcpt, log_id)
        if reply.startswith("2"):
            await self._bounce(ctx, job, per_rcpt)
        return [reply]

    async def _bounce(
        self, ctx: Context, job: Job, per_rcpt: list[str]
    ) -> None:
        """Mixed outcome under SMTP: report refused recipients ourselves."""
        envelope = job.envelope
        failed = [
            (rcpt, Reply(int(text[:3]), text[4:]))
            for rcpt, text in zip(envelope.recipients, per_rcpt, strict=True)
            if text.startswith("5") and dsn.wanted(envelope, rcpt)
        ]
        if not failed:
            return
        notice = dsn.build(
            envelope, failed, reporting_mta=ctx.myhostname, mail_id=job.mail_id
        )
        try:
            async with asyncio.timeout(ctx.forward_timeout):
                await ctx.downstream.deliver(
                    "", (Recipient(envelope.sender),), notice
                )
        except (DownstreamError, TimeoutError) as exc:
            # The others are delivered already: a 4xx now would duplicate
            # them. Say it loudly instead.
            log.error(  # noqa: TRY400 - a known failure, no traceback
                "(%s) (!!)DSN to <%s> failed: %s",
                job.log_id,
                envelope.sender,
                exc,
            )
            return
        log.info(
            "(%s) DSN sent to <%s> for %d refused recipient(s)",
            job.log_id,
            envelope.sender,
            len(failed),
        )

    async def _scan(self, ctx: Context, content: bytes) -> list[ScanResult]:
        async def one(scanner: Scanner) -> ScanResult:
            began = time.monotonic()
            try:
                result = await scanner.scan(content)
            except Exception as exc:  # a scanner bug is not a verdict
                log.exception("(!)%s scanner failed", scanner.name)
                result = ScanResult(
                    scanner.name, ok=False, error=type(exc).__name__
                )
            ctx.metrics.observe_scan(
                scanner.name, time.monotonic() - began, result.ok
            )
            return result

        tasks = [asyncio.ensure_future(one(s)) for s in ctx.scanners]
        done, pending = await asyncio.wait(tasks, timeout=ctx.scan_timeout)
        for task in pending:
            task.cancel()
        results = []
        for scanner, task in zip(ctx.scanners, tasks, strict=True):
            if task in done:
                results.append(task.result())
            else:
                results.append(
                    ScanResult(scanner.name, ok=False, error="timed out")
                )
        return results

    async def _quarantine(
        self,
        ctx: Context,
        envelope: Envelope,
        decisions: list[Decision],
        mail_id: str,
    ) -> str:
        wanted = [d for d in decisions if d.quarantine]
        if not wanted:
            return ""
        worst = max(wanted, key=lambda d: d.verdict.rank)
        added = headers.fold("X-Quarantine-ID", f"<{mail_id}>")
        # An OSError here propagates: no quarantine copy, no discard.
        return await ctx.quarantine.astore(
            envelope, worst.verdict, mail_id, added
        )

    async def _act(
        self,
        ctx: Context,
        job: Job,
        decision: Decision,
        indexes: list[int],
        outcome: Outcome,
    ) -> None:
        action = decision.action
        log_id = job.log_id
        if action is Action.PASS:
            await self._forward(ctx, job, decision, indexes, outcome)
            return
        reply = answers.blocked(decision, log_id)
        for i in indexes:
            outcome.replies[i] = reply
        outcome.blocked.append((decision, indexes, action.value))
        ctx.metrics.count_message(decision.verdict.value, action.value)

    async def _forward(
        self,
        ctx: Context,
        job: Job,
        decision: Decision,
        indexes: list[int],
        outcome: Outcome,
    ) -> None:
        envelope, log_id = job.envelope, job.log_id
        rcpts = tuple(envelope.recipients[i] for i in indexes)
        prefix = added_fields(
            job,
            decision,
            rcpts,
            virus_scanned=ctx.virus_scanned,
            myhostname=ctx.myhostname,
        )
        body = headers.edit(
            job.content,
            # amavis $remove_existing_spam_headers: whenever spam was
            # checked for this recipient, not only when we add our own.
            strip_spam=decision.tag_level is not None,
            subject_tag=decision.subject_tag,
        )
        began = time.monotonic()
        try:
            async with asyncio.timeout(ctx.forward_timeout):
                finals = await ctx.downstream.deliver(
                    envelope.sender,
                    rcpts,
                    body,
                    prefix=prefix,
                    params=envelope.params,
                    client=envelope.client,
                    smtp_input=not envelope.lmtp,
                    dot_lines=job.dot_lines,
                )
        except (DownstreamError, TimeoutError) as exc:
            reply = answers.downstream_failure(
                exc, log_id, ctx.downstream.label
            )
            for i in indexes:
                outcome.replies[i] = reply
            outcome.blocked.append((decision, indexes, "mta"))
            ctx.metrics.count_message("MTA-BLOCKED", "tempfail")
            log.warning("(%s) (!)FWD failed: %s", log_id, reply)
            return
        ctx.metrics.observe_reinject(time.monotonic() - began)
        queued: list[str] = []
        for i, answer in zip(indexes, finals, strict=True):
            outcome.replies[i] = answers.relayed(
                answer, log_id, ctx.downstream.label
            )
            if answer.code < 300:
                queued.append(amavislog.queued_as(str(answer)))
        outcome.passed.append((decision, indexes, queued))
        ctx.metrics.count_message(decision.verdict.value, "pass")
