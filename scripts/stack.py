"""A local stack on loopback: clamd, spamd, a throwaway Postfix with the
amavis recipe from deploy/postfix, and mailfilter between them.

    python scripts/stack.py up      start everything, print the ports
    python scripts/stack.py down    stop everything it started
    python scripts/stack.py env     shell variables for the running stack

State lives in .stack/ (git-ignored). Mail to anything@example.com sent to
the Postfix port is scanned and lands in .stack/postfix/mail/Maildir.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import contextlib

from tests.support import daemons
from tests.support.filter import start_sandwich
from tests.support.postfix import PostfixInstance

STATE = REPO / ".stack"


def up() -> int:
    """Start the stack (stopping an old one first)."""
    down()
    STATE.mkdir(exist_ok=True)
    clamd = daemons.start_clamd(STATE / "clamd")
    # spamd -L is pure CPU: one child a core, and no more scan sessions
    # than children (deploy/spamassassin/README.md).
    cores = len(os.sched_getaffinity(0))
    spamd = daemons.start_spamd(STATE / "spamd", children=cores)
    postfix, flt = start_sandwich(
        STATE, clamd=clamd.address, spamd=spamd.address
    )
    postfix.set_scan_maxproc(cores)
    fport = int(flt.args[flt.args.index("--listen") + 1].rsplit(":", 1)[1])
    state = {
        "pids": [clamd.proc.pid, spamd.proc.pid, flt.proc.pid],
        "postfix_config": str(postfix.config_dir),
        "smtp_port": postfix.port,
        "args": flt.args[3:],
        "maildir": str(postfix.maildir),
    }
    (STATE / "state.json").write_text(json.dumps(state, indent=2))
    print(
        f"Postfix listens on 127.0.0.1:{postfix.port} (mail for @example.com)"
    )
    print(
        f"mailfilter listens on 127.0.0.1:{fport}, reinjects to "
        f"127.0.0.1:{postfix.reinject_port}"
    )
    print(f"clamd {clamd.address}, spamd {spamd.address}")
    print(f"delivered mail: {postfix.maildir}; filter log: {flt.logfile}")
    return 0


def down() -> int:
    """Stop what `up` started, by PID."""
    path = STATE / "state.json"
    if not path.exists():
        return 0
    state = json.loads(path.read_text())
    for pid in state["pids"]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    PostfixInstance(Path(state["postfix_config"]).parent, 0, 0, 0).stop()
    path.unlink()
    return 0


def env() -> int:
    """MAIL_CONFIG and MAILFILTER_ARGS for the running stack."""
    state = json.loads((STATE / "state.json").read_text())
    print(f"export MAIL_CONFIG={state['postfix_config']}")
    print(f"export MAILFILTER_ARGS='{' '.join(state['args'])}'")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    sys.exit({"up": up, "down": down, "env": env}[command]())
