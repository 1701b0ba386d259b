"""The Postfix side of the recipe, read with postconf: is it wired to us?

Pure parsing (`recipe()`) is apart from running postconf (`read()`), so
the rules are unit-tested on text. The chain of concurrency follows
FILTER_README and docs/engineering-rules.md, "The concurrency chain": the
feeding transport's maxproc must not exceed what we accept, and the 10025
listener must take at least as many.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_PROCESS_LIMIT = 100  # Postfix default_process_limit


@dataclass(frozen=True, slots=True)
class Service:
    """One master.cf line."""

    name: str
    type: str
    maxproc: int
    command: str


@dataclass(frozen=True, slots=True)
class Recipe:
    """What postconf says about the content filter set-up."""

    content_filter: str
    transport: Service | None
    listener: Service | None
    data_done_timeout: int  # seconds, for the feeding transport


def _seconds(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        return 0
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(match.group(1)) * scale[match.group(2)]


def services(master: str, default_limit: int) -> list[Service]:
    """master.cf entries from `postconf -M` output."""
    found = []
    for line in master.splitlines():
        cols = line.split()
        if len(cols) < 8 or line.startswith((" ", "#")):
            continue
        maxproc = default_limit if cols[6] == "-" else int(cols[6] or 0)
        found.append(Service(cols[0], cols[1], maxproc, cols[7]))
    return found


def recipe(
    main: dict[str, str], master: str, overrides: str, forward_port: int
) -> Recipe:
    """Interpret `postconf -h`, `-M` and `-P` output."""
    default_limit = int(
        main.get("default_process_limit") or DEFAULT_PROCESS_LIMIT
    )
    table = services(master, default_limit)
    content_filter = main.get("content_filter", "")
    name = content_filter.split(":", 1)[0]
    transport = next(
        (s for s in table if s.name == name and s.type == "unix"), None
    )
    listener = next(
        (
            s
            for s in table
            if s.type == "inet" and s.name.endswith(f":{forward_port}")
        ),
        None,
    )
    timeout = main.get("smtp_data_done_timeout", "600s")
    if transport is not None:
        key = f"{transport.command}_data_done_timeout"
        for line in overrides.splitlines():
            left, _, value = line.partition(" = ")
            if left.strip() == f"{name}/unix/{key}":
                timeout = value
    return Recipe(content_filter, transport, listener, _seconds(timeout))


def originating(master: str, overrides: str, port: int) -> str:
    """The service that feeds our ORIGINATING listener ('' for none).

    amavis's README.postfix recipe: submission gets
    `-o content_filter=scan-orig:[127.0.0.1]:10026`, and scan-orig is a
    unix smtp transport like scan.
    """
    transports = {
        s.name
        for s in services(master, DEFAULT_PROCESS_LIMIT)
        if s.type == "unix"
    }
    for line in overrides.splitlines():
        left, _, value = line.partition(" = ")
        service, _, param = left.strip().rpartition("/")
        target = value.strip()
        if (
            param == "content_filter"
            and target.endswith(f":{port}")
            and target.split(":", 1)[0] in transports
        ):
            return service
    return ""


def read(config_dir: str | None) -> tuple[dict[str, str], str, str]:
    """Run postconf; raises OSError/SubprocessError when it cannot."""
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    base = [postconf] + (["-c", config_dir] if config_dir else [])
    keys = [
        "content_filter",
        "smtp_data_done_timeout",
        "default_process_limit",
    ]
    values = _run([*base, "-h", *keys]).splitlines()
    main = dict(zip(keys, [*values, "", "", ""], strict=False))
    return main, _run([*base, "-M"]), _run([*base, "-P"])


def _run(argv: list[str]) -> str:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout
