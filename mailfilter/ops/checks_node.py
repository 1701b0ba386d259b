"""Selftest checks of the node around the filter: our listener, the 10025
listener, writable directories, logging, and the Postfix recipe.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mailfilter.addresses import parse_endpoint
from mailfilter.ops.check import Check, scanner_of
from mailfilter.scan.clamav import ClamAV

if TYPE_CHECKING:

    from mailfilter.addresses import Endpoint
    from mailfilter.config import Config
    from mailfilter.pipeline import Context


async def check_listener(config: Config) -> list[Check]:
    out = []
    for text in config.listen:
        ep = parse_endpoint(text)
        if ep.door == "milter":
            out.append(await _check_milter(text, ep))
            continue
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(ep.host, ep.port), 3
            )
            greeting = (await asyncio.wait_for(reader.readline(), 3)).decode()
            writer.write(b"QUIT\r\n")
            writer.close()
            good = greeting.startswith("220 ")
            out.append(
                Check(
                    f"listener {text}",
                    good,
                    greeting.strip()[:60],
                    "is `mailfilter` running with these settings?",
                )
            )
        except (OSError, TimeoutError) as exc:
            out.append(
                Check(
                    f"listener {text}",
                    False,
                    str(exc)[:80],
                    "start mailfilter (systemctl start mailfilter)",
                )
            )
    return out


async def _check_milter(text: str, ep: Endpoint) -> Check:
    from mailfilter.milter.probe import negotiate

    try:
        detail = await negotiate(ep)
    except (OSError, TimeoutError, ValueError) as exc:
        return Check(
            f"listener {text}",
            False,
            str(exc)[:80],
            "start mailfilter (systemctl start mailfilter)",
        )
    return Check(f"listener {text}", True, detail)


async def check_downstream(config: Config) -> list[Check]:
    from mailfilter.downstream.reinject import Downstream

    downstream = Downstream(parse_endpoint(config.forward))
    try:
        caps = await asyncio.wait_for(downstream.capabilities(), 5)
    except Exception as exc:
        return [
            Check(
                f"reinjection {config.forward}",
                False,
                str(exc)[:100],
                "add the 127.0.0.1:10025 smtpd from "
                "deploy/postfix/master.cf.snippet and `postfix reload`",
            )
        ]
    finally:
        await downstream.aclose()
    wanted = ("XFORWARD", "DSN", "SMTPUTF8", "8BITMIME", "PIPELINING")
    missing = [w for w in wanted if w not in caps]
    offered = " ".join(w for w in wanted if w in caps)
    return [
        Check(
            f"reinjection {config.forward}",
            not missing,
            f"offers {offered}"
            + (f"; missing {' '.join(missing)}" if missing else ""),
            "set smtpd_authorized_xforward_hosts=127.0.0.0/8 on 10025",
        )
    ]


async def check_writable(config: Config) -> list[Check]:
    out = []
    root = Path(config.quarantine)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
        out.append(Check("quarantine writable", True, str(root)))
    except OSError as exc:
        out.append(
            Check(
                "quarantine writable",
                False,
                str(exc)[:100],
                f"mkdir -p {root} && chown mailfilter {root}",
            )
        )
    if config.log_to == "syslog":
        # The service falls back to stderr without /dev/log (containers,
        # minimal VMs; logsetup.py), so a missing socket is a warning: mail
        # still flows, only the log goes elsewhere.
        good = Path("/dev/log").exists()
        out.append(
            Check(
                "syslog socket",
                True,
                "/dev/log" if good else "no /dev/log: logging to stderr",
                'start rsyslog/journald, or set log_to = "stderr"',
                warn=not good,
            )
        )
    return out


async def check_postfix(
    config: Config, context: Context | None
) -> list[Check]:
    from mailfilter.ops import postfixcheck

    try:
        main, master, overrides = await asyncio.to_thread(
            postfixcheck.read, os.environ.get("MAIL_CONFIG")
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return [
            Check("postfix recipe", True, f"not readable ({exc}); skipped")
        ]
    plain = [t for t in config.listen if not parse_endpoint(t).door]
    if not plain:
        return [Check("postfix recipe", True, "no content_filter listener")]
    port = int(plain[0].rsplit(":", 1)[-1])
    forward_port = int(config.forward.rsplit(":", 1)[-1])
    r = postfixcheck.recipe(main, master, overrides, forward_port)
    budget = config.scan_timeout + config.forward_timeout
    feed = r.transport.maxproc if r.transport else 0
    checks = [
        Check(
            "postfix content_filter",
            r.content_filter.endswith(f":{port}"),
            r.content_filter or "(unset)",
            f"content_filter = scan:[127.0.0.1]:{port} (main.cf.snippet)",
        ),
        Check(
            "postfix 10025 listener",
            r.listener is not None,
            r.listener.name if r.listener else "missing",
            "add deploy/postfix/master.cf.snippet and `postfix reload`",
        ),
        Check(
            "data_done_timeout",
            r.data_done_timeout > budget,
            f"{r.data_done_timeout}s vs our budget {budget:.0f}s",
            "raise smtp_data_done_timeout or lower scan/forward timeouts",
        ),
        Check(
            "maxproc vs max_connections",
            0 < feed <= config.max_connections,
            f"{feed} <= {config.max_connections}",
            "lower the scan transport's maxproc or raise max_connections",
        ),
    ]
    if r.listener is not None:
        checks.append(
            Check(
                "10025 maxproc",
                r.listener.maxproc >= feed,
                f"{r.listener.maxproc} >= {feed}",
                "raise the 10025 listener's maxproc in master.cf",
            )
        )
    if config.listen_originating:
        orig_port = int(config.listen_originating[0].rsplit(":", 1)[-1])
        feeder = postfixcheck.originating(master, overrides, orig_port)
        checks.append(
            Check(
                "postfix ORIGINATING",
                bool(feeder),
                feeder or "nothing feeds the ORIGINATING listener",
                "add deploy/postfix/submission.cf.snippet (scan-orig) and "
                "`postfix reload`",
            )
        )
    clamav = scanner_of(context, ClamAV)
    threads = await clamav.threads() if clamav is not None else None
    if threads is not None:
        checks.append(
            Check(
                "clamd MaxThreads",
                threads >= feed,
                f"{threads} >= {feed}",
                "raise MaxThreads in clamd.conf",
            )
        )
    return checks
