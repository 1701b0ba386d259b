"""The `mailfilter` command.

mailfilter [settings flags]              run the filter (foreground)
mailfilter --selftest [--quick] [--json] check everything, exit 0 if fine
mailfilter check-config | show-config [--example]
mailfilter release MAIL_ID [--to RCPT]   reinject a quarantined message
mailfilter scan FILE.eml                 verdict for one file, no delivery
mailfilter availability ... | probe ... | lmtp-deliver ...
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from mailfilter import config as configmod

if TYPE_CHECKING:
    from collections.abc import Callable

_SUBCOMMANDS = ("check-config", "show-config", "release", "scan")


def _delegate(name: str) -> Callable[[list[str]], int]:
    """Commands that own their argument parsing."""
    if name == "availability":
        from mailfilter.ops.availability_report import main as availability

        return availability
    if name == "probe":
        from mailfilter.ops.probe_cli import main as probe

        return probe
    from mailfilter.delivery.cli import main as lmtp

    return lmtp


def parser() -> argparse.ArgumentParser:
    """Flags shared by the service, the selftest and the subcommands."""
    p = argparse.ArgumentParser(
        prog="mailfilter",
        description="amavis-compatible after-queue content filter",
    )
    configmod.add_arguments(p)
    p.add_argument(
        "--selftest",
        action="store_true",
        help="check settings, scanners, 10025 and the pipeline",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="with --selftest: only what a health check needs",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="with --selftest: machine-readable output",
    )
    p.add_argument(
        "--example",
        action="store_true",
        help="with show-config: the commented example file",
    )
    p.add_argument(
        "--to",
        action="append",
        help="with release: send to these recipients instead",
    )
    p.add_argument("command", nargs="?", choices=_SUBCOMMANDS)
    p.add_argument("argument", nargs="?", help="MAIL_ID or FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ("availability", "probe", "lmtp-deliver"):
        return _delegate(args_list[0])(args_list[1:])
    args = parser().parse_args(args_list)
    overrides = {s.name: getattr(args, s.name) for s in configmod.SETTINGS}
    if args.command == "show-config" and args.example:
        print(configmod.example())
        return 0
    try:
        config = configmod.load(args.config, overrides)
    except configmod.ConfigError as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2
    if args.selftest:
        from mailfilter.ops.selftest import run

        return asyncio.run(run(config, quick=args.quick, as_json=args.json))
    handler = _COMMANDS.get(args.command or "serve")
    assert handler is not None
    return handler(config, args, overrides)


def _serve(
    config: configmod.Config, args: Any, overrides: dict[str, Any]
) -> int:
    from mailfilter import logsetup
    from mailfilter.app import Service
    from mailfilter.loop import run as run_loop

    logsetup.setup(
        to=config.log_to, ident=config.log_ident, level=config.log_level
    )

    async def run() -> None:
        service = Service(config, args.config, overrides)
        await service.run()

    try:
        run_loop(run())
    except Exception as exc:  # start-up failure: say it plainly
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 1
    return 0


def _check_config(
    config: configmod.Config, _args: Any, _: dict[str, Any]
) -> int:
    from pathlib import Path

    from mailfilter.decision.policy import PolicyError
    from mailfilter.decision.policyfile import load_policy

    try:
        load_policy(Path(config.policy))
    except (PolicyError, OSError) as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2
    print(
        f"mailfilter: settings ({config.source}) and policy "
        f"({config.policy}) are valid"
    )
    return 0


def _show_config(
    config: configmod.Config, _args: Any, _: dict[str, Any]
) -> int:
    print(configmod.show(config))
    return 0


def _release(config: configmod.Config, args: Any, _: dict[str, Any]) -> int:
    from mailfilter.store.release import release

    if not args.argument:
        print("mailfilter: release needs a MAIL_ID", file=sys.stderr)
        return 2
    return asyncio.run(release(config, args.argument, args.to))


def _scan(config: configmod.Config, args: Any, _: dict[str, Any]) -> int:
    from mailfilter.decision.policy import PolicyError
    from mailfilter.ops.scanfile import scan_file

    if not args.argument:
        print("mailfilter: scan needs a FILE", file=sys.stderr)
        return 2
    try:
        return asyncio.run(scan_file(config, args.argument))
    except (PolicyError, OSError) as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2


_COMMANDS = {
    "serve": _serve,
    "check-config": _check_config,
    "show-config": _show_config,
    "release": _release,
    "scan": _scan,
}
