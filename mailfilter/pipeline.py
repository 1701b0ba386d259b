"""One message from Postfix to its outcome: scan, decide, act, answer.

Scanners run concurrently, each under its own deadline inside one total
budget. `decide()` (pure) gives each recipient a `Decision`; recipients
that share one are handled together, as amavis's header clustering does
(docs/amavis-compat.md, "One reply for all recipients"). The answer is given
only after the outcome is durable: passed mail accepted by 10025, blocked mail
quarantined. Anything that is not a verdict on the message - a scanner down,
10025 down, our own bug - ends in a 4xx, so Postfix keeps the mail and retries
(docs/engineering-rules.md, Rule 1).

With SMTP input one reply covers every recipient, and a 4xx makes Postfix
send the whole message again. So a 4xx is given only while nothing has been
delivered: every group is decided before any is reinjected, nothing is
reinjected when a group must tempfail, forwarding stops at the first failed
group, and once a copy is delivered no later failure (another group, the
DSN, our own bug) turns into a 4xx; the recipients it cost are reported to
the sender instead (`answers.settle_after_delivery`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from mailfilter.auth import bank as authbank
from mailfilter.auth import step as authstep
from mailfilter.decision import amavislog, answers, doors, headers, mailid
from mailfilter.decision.decide import (
    decide,
    recipient_settings,
    spam_check_needed,
)
from mailfilter.decision.outcome import Job, Outcome, added_fields, log_outcome
from mailfilter.decision.verdict import (
    Action,
    Decision,
    ScanResult,
)
from mailfilter.downstream import dsn
from mailfilter.downstream.reinject import DownstreamError
from mailfilter.scan import SPAM_SCANNER
from mailfilter.smtp.wire import has_bare_line_ends, normalise_line_ends

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailfilter.decision.policy import Policy, RecipientOverride
    from mailfilter.downstream.reinject import Downstream
    from mailfilter.ops.metrics import MetricsSink
    from mailfilter.scan import Scanner
    from mailfilter.smtp.envelope import Envelope, Recipient
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
    # Policy banks (mailfilter/auth/bank.py): this context's bank, and the
    # contexts of the other banks by listener address.
    bank: authbank.Bank = field(default_factory=lambda: authbank.Bank("-"))
    banks: dict[tuple[str, int], Context] = field(default_factory=dict)


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

        Unless a copy was delivered already: then the delivered
        recipients keep their 2xx (a 4xx would duplicate them).

        `door` selects the policy bank; the milter door passes its own
        `downstream` (Postfix keeps the message) and gets one answer per
        recipient (docs/milter.md).
        """
        log_id = mailid.log_id()
        ctx = self.context  # one snapshot per message, even across SIGHUP
        ctx = ctx.banks.get(envelope.local_addr, ctx)
        policy = doors.for_door(ctx.policy, door)
        if policy is not ctx.policy or downstream is not None:
            ctx = replace(
                ctx, policy=policy, downstream=downstream or ctx.downstream
            )
        outcome = Outcome()
        with ctx.metrics.in_flight():
            try:
                return await self._process(
                    ctx, envelope, log_id, outcome, door == doors.MILTER
                )
            except Exception as exc:
                log.exception("(%s) (!!)TROUBLE in check_mail", log_id)
                if outcome.delivered and not envelope.lmtp:
                    log.error(  # noqa: TRY400 - the traceback is above
                        "(%s) (!!)answering 2xx: copies were delivered, a 4xx "
                        "would duplicate them; recipients without a final "
                        "outcome: %s",
                        log_id,
                        [
                            r.address
                            for i, r in enumerate(envelope.recipients)
                            if i not in outcome.delivered
                        ],
                    )
                return answers.after_trouble(
                    outcome.replies,
                    outcome.delivered,
                    len(envelope.recipients),
                    lmtp=envelope.lmtp,
                    log_id=log_id,
                    error=type(exc).__name__,
                )

    async def _process(
        self,
        ctx: Context,
        envelope: Envelope,
        log_id: str,
        outcome: Outcome,
        each_rcpt: bool = False,
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
        verified = await authstep.verify(ctx.bank, envelope, content, log_id)
        if verified is not None:
            content = verified.content  # forged Authentication-Results gone
        # Each recipient's overrides, merged once for every decision below.
        settings = [
            recipient_settings(ctx.policy, r.address)
            for r in envelope.recipients
        ]
        results = await self._scan(ctx, content, envelope.recipients, settings)
        decisions = [
            authbank.for_recipient(
                ctx.bank,
                decide(results, ctx.policy, r.address, rcpt),
                verified.results if verified else None,
                r.address,
                rcpt.dmarc_reject,
            )
            for r, rcpt in zip(envelope.recipients, settings, strict=True)
        ]
        groups: dict[Decision, list[int]] = {}
        for index, decision in enumerate(decisions):
            groups.setdefault(decision, []).append(index)
        spam = next((r.spam for r in results if r.spam is not None), None)
        if not envelope.lmtp and any(
            d.action is Action.TEMPFAIL for d in groups
        ):
            # One group must be retried, so all are: nothing reinjected or
            # quarantined now, or each retry would add another copy.
            job = Job(envelope, content, log_id, mail_id, "", spam, dot_lines)
            return self._tempfail_all(ctx, job, groups, results, start)
        quarantine = await self._quarantine(ctx, envelope, decisions, mail_id)
        job = Job(
            envelope, content, log_id, mail_id, quarantine, spam, dot_lines,
            verified.field if verified else b"",
        )
        # Blocked groups first (no I/O), then the ones to reinject.
        for decision, indexes in sorted(
            groups.items(), key=lambda g: g[0].action is Action.PASS
        ):
            if outcome.failed and not (outcome.delivered or envelope.lmtp):
                # A 4xx is coming for everyone: deliver nothing more.
                self._not_tried(ctx, decision, indexes, outcome)
                continue
            await self._act(ctx, job, decision, indexes, outcome)
        elapsed = int((time.monotonic() - start) * 1000)
        log_outcome(job, results, outcome, elapsed)
        per_rcpt = [
            outcome.replies[i] for i in range(len(envelope.recipients))
        ]
        if envelope.lmtp or each_rcpt:
            return per_rcpt
        settled = answers.settle_after_delivery(
            per_rcpt, outcome.delivered, log_id
        )
        if settled != per_rcpt:
            log.error(
                "(%s) (!!)not retried, others delivered; reported to the "
                "sender: %s",
                log_id,
                [
                    r.address
                    for r, old, new in zip(
                        envelope.recipients, per_rcpt, settled, strict=True
                    )
                    if old != new
                ],
            )
        per_rcpt = settled
        reply = answers.one_response_for_all(per_rcpt, log_id)
        if reply.startswith("2"):
            await dsn.report_refused(
                ctx.downstream,
                envelope,
                per_rcpt,
                myhostname=ctx.myhostname,
                mail_id=mail_id,
                log_id=log_id,
                seconds=ctx.forward_timeout,
            )
        return [reply]

    def _tempfail_all(
        self,
        ctx: Context,
        job: Job,
        groups: dict[Decision, list[int]],
        results: list[ScanResult],
        start: float,
    ) -> list[str]:
        """SMTP input with a group to tempfail: one 4xx, nothing done."""
        outcome = Outcome()
        first = next(d for d in groups if d.action is Action.TEMPFAIL)
        reply = answers.blocked(first, job.log_id)
        for decision, indexes in groups.items():
            for i in indexes:
                outcome.replies[i] = reply
            outcome.blocked.append((decision, indexes, "tempfail"))
            ctx.metrics.count_message(decision.verdict.value, "tempfail")
        elapsed = int((time.monotonic() - start) * 1000)
        log_outcome(job, results, outcome, elapsed)
        return [reply]

    def _not_tried(
        self,
        ctx: Context,
        decision: Decision,
        indexes: list[int],
        outcome: Outcome,
    ) -> None:
        """A group left alone because an earlier one failed (SMTP input)."""
        reply = outcome.replies[outcome.failed[0]]
        for i in indexes:
            outcome.replies[i] = reply
        outcome.blocked.append((decision, indexes, "mta"))
        ctx.metrics.count_message("MTA-BLOCKED", "tempfail")

    async def _scan(
        self,
        ctx: Context,
        content: bytes,
        recipients: Sequence[Recipient],
        settings: Sequence[RecipientOverride],
    ) -> list[ScanResult]:
        """Cheap checks first; SpamAssassin only where it decides something.

        clamd and the banned-file check take milliseconds; spamd takes
        100-150 ms of CPU. It is asked only when, after the cheap results,
        some recipient's copy would still be delivered (`decide.
        spam_check_needed`), within what is left of the scan deadline.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ctx.scan_timeout
        cheap = [s for s in ctx.scanners if s.name != SPAM_SCANNER]
        costly = [s for s in ctx.scanners if s.name == SPAM_SCANNER]
        results = await self._run_scanners(ctx, cheap, content, deadline)
        if costly and any(
            spam_check_needed(results, ctx.policy, r.address, rcpt)
            for r, rcpt in zip(recipients, settings, strict=True)
        ):
            results += await self._run_scanners(
                ctx, costly, content, deadline
            )
        return results

    async def _run_scanners(
        self,
        ctx: Context,
        scanners: Sequence[Scanner],
        content: bytes,
        deadline: float,
    ) -> list[ScanResult]:
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

        if not scanners:
            return []  # a bank with no scanners (asyncio.wait needs one)
        tasks = [asyncio.ensure_future(one(s)) for s in scanners]
        left = max(0.0, deadline - asyncio.get_running_loop().time())
        done, pending = await asyncio.wait(tasks, timeout=left)
        for task in pending:
            task.cancel()
        results = []
        for scanner, task in zip(scanners, tasks, strict=True):
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
        # Signed last, over exactly the bytes reinjected.
        prefix = await authstep.signed(
            ctx.bank, job.auth_field + prefix, body, log_id
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
            outcome.failed.extend(indexes)
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
                outcome.delivered.append(i)
                queued.append(amavislog.queued_as(str(answer)))
            elif answer.code < 500:
                outcome.failed.append(i)
        outcome.passed.append((decision, indexes, queued))
        ctx.metrics.count_message(decision.verdict.value, "pass")
