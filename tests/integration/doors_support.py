"""Postfix with the milter or the before-queue proxy door, for real.

The shipped `deploy/postfix/{milter,proxy}.cf.snippet` replace the
content_filter line, rendered with free ports, as an admin would add them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests.support.filter import REPO, FilterProcess, start_filter
from tests.support.ports import free_port, wait_port
from tests.support.postfix import PostfixInstance, start_postfix

if TYPE_CHECKING:
    from pathlib import Path

# A 20 MB message must fit (Postfix's default limit is 10 MB).
_SIZE = "message_size_limit = 41943040\n"


def door_policy(
    root: Path, extra: str = "", edit: tuple[str, str] = ("", "")
) -> Path:
    """The default policy, plus: spam is rejected at the two doors."""
    path = root / "policy.toml"
    text = (REPO / "policy/default.toml").read_text()
    if edit[0]:
        assert edit[0] in text
        text = text.replace(*edit)
    path.write_text(
        text
        + '\n[door.milter.destiny.SPAM]\naction = "reject"\n'
        + '\n[door.proxy.destiny.SPAM]\naction = "reject"\n'
        + extra
    )
    return path


def start_door(
    root: Path,
    door: str,
    *,
    clamd: str = "off",
    spamd: str = "off",
    policy_extra: str = "",
    policy_edit: tuple[str, str] = ("", ""),
) -> tuple[PostfixInstance, FilterProcess, list[str]]:
    """Postfix using `door` in front of a mailfilter process."""
    root.mkdir(parents=True, exist_ok=True)
    door_port, plain_port = free_port(), free_port()
    snippet = (REPO / f"deploy/postfix/{door}.cf.snippet").read_text()
    snippet = re.sub(r"\b1002[47]\b", str(door_port), snippet)
    postfix = start_postfix(
        root / "pf",
        plain_port,
        extra_main=f"{snippet}\n{_SIZE}",
        content_filter=False,
    )
    args = ["--listen", f"{door}:127.0.0.1:{door_port}"]
    try:
        flt = start_filter(
            root / "f",
            plain_port,
            postfix.reinject_port,
            clamd=clamd,
            spamd=spamd,
            policy=door_policy(root, policy_extra, policy_edit),
            extra=args,
        )
    except BaseException:
        postfix.stop()
        raise
    try:
        # start_filter waited for the first listener only.
        wait_port(door_port)
    except BaseException:
        flt.stop()
        postfix.stop()
        raise
    return postfix, flt, args
