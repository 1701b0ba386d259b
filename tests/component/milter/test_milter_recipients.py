"""Per-recipient decisions behind a milter: after DATA the message is
answered as a whole, so the strictest decision wins (docs/milter.md)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import miltertest as mt

from tests.component.conftest import REPO, make_stack
from tests.component.fakes import FakeMTA
from tests.component.milter.mta import MTA
from tests.component.milter.test_milter_protocol import banned_message

if TYPE_CHECKING:
    from pathlib import Path

LOVER = '[[recipient]]\nmatch = "lover@example.com"\nbanned_lover = true\n'
REJECT = '[door.milter.destiny.BANNED]\naction = "reject"'
DISCARD = REJECT.replace("reject", "discard")


async def deliver(
    tmp_path: Path,
    extra: str,
    rcpts: list[str],
    *,
    discard: bool = False,
    **settings: Any,
) -> Any:
    text = (REPO / "policy/default.toml").read_text()
    assert REJECT in text
    if discard:
        text = text.replace(REJECT, DISCARD)
    policy = tmp_path / "policy.toml"
    policy.write_text(text + "\n" + extra)
    mta = FakeMTA()
    s = await make_stack(
        tmp_path, mta, listen_proto="milter:", policy=str(policy), **settings
    )

    def script() -> Any:
        client = MTA(s.port)
        try:
            client.connect()
            return client.message(banned_message(), rcpts)
        finally:
            client.close()

    try:
        return await asyncio.to_thread(script)
    finally:
        await s.service.shutdown()
        await mta.stop()


async def test_one_reject_rejects_the_message_for_everyone(tmp_path):
    # lover@ would accept the .exe; u@ rejects it: the sender is told.
    result = await deliver(tmp_path, LOVER, ["lover@example.com", "u@example.com"])
    cmd, data = result[-1]
    assert cmd == mt.SMFIR_REPLYCODE
    assert data["smtpcode"] == "554"
    assert "BANNED" in data["text"]


async def test_discarded_recipients_are_deleted_the_others_get_it(tmp_path):
    result = await deliver(
        tmp_path,
        LOVER,
        ["lover@example.com", "u@example.com"],
        discard=True,
    )
    assert [c for c, _ in result if c == mt.SMFIR_DELRCPT] == ["-"]
    assert ("-", {"rcpt": "<u@example.com>"}) in result
    assert result[-1][0] == mt.SMFIR_ACCEPT
    # The passed copy carries the alert the lover's copy gets after queue.
    added = {d["name"] for c, d in result if c == mt.SMFIR_INSHEADER}
    assert "X-Amavis-Alert" in added


async def test_all_discarded_is_a_milter_discard(tmp_path):
    result = await deliver(
        tmp_path, "", ["u@example.com", "v@example.com"], discard=True
    )
    assert [c for c, _ in result] == [mt.SMFIR_DISCARD]


async def test_all_discarded_goes_to_the_hold_queue_when_configured(tmp_path):
    result = await deliver(
        tmp_path,
        "",
        ["u@example.com"],
        discard=True,
        milter_discard="hold",
    )
    assert [c for c, _ in result] == [mt.SMFIR_QUARANTINE, mt.SMFIR_ACCEPT]
    assert "BANNED" in result[0][1]["reason"]
