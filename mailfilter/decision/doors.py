"""Which front door a message came through, as a policy-bank key.

The same policy serves three doors: the after-queue content filter, the
milter and the before-queue proxy. A policy file may give a door its own
destinies (`[door.milter.destiny.INFECTED] action = "reject"`); for mail
through that door they replace the `[destiny]` ones. Pure.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mailfilter.decision.policyfile import frozen_map

if TYPE_CHECKING:
    from mailfilter.decision.policy import Policy

CONTENT_FILTER = "content_filter"
MILTER = "milter"
PROXY = "proxy"


def for_door(policy: Policy, door: str) -> Policy:
    """`policy` as it applies to mail through `door`."""
    own = (policy.doors or {}).get(door)
    if not own:
        return policy
    return replace(policy, destinies=frozen_map({**policy.destinies, **own}))
