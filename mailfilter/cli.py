"""The `mailfilter` command: the filter itself and its subcommands.

`mailfilter --help` lists every subcommand (`COMMANDS` below is the one
list); `mailfilter SUBCOMMAND --help` explains one. `availability`,
`probe` and `lmtp-deliver` parse their own arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

from mailfilter import config as configmod

if TYPE_CHECKING:
    from collections.abc import Callable

# name -> (usage, one line). The order is the order of `--help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": (
        "mailfilter [--config FILE] check-config",
        "check the settings and the policy file (exit 0: both valid)",
    ),
    "show-config": (
        "mailfilter [--config FILE] show-config [--example]",
        "print the effective settings (--example: the commented file)",
    ),
    "show-policy": (
        "mailfilter [--config FILE] show-policy",
        "print the policy in force, to copy to /etc/mailfilter/",
    ),
    "release": (
        "mailfilter release MAIL_ID [--to RCPT ...]",
        "reinject a quarantined message, like amavisd-release",
    ),
    "scan": (
        "mailfilter scan FILE.eml",
        "the verdict for one message file, without delivery",
    ),
    "availability": (
        "mailfilter availability [FILE] [--mtfo-from CSV --layer NAME]",
        "the cluster availability model, with measured failover times",
    ),
    "probe": (
        "mailfilter probe --smtp HOST:PORT --imap HOST:PORT ...",
        "measure failovers as a user sees them (SMTP in, IMAP out)",
    ),
    "lmtp-deliver": (
        "mailfilter lmtp-deliver --listen HOST:PORT --root-template T",
        "LMTP server delivering into Maildirs on shared storage",
    ),
    "dkim": (
        "mailfilter dkim genkey|check DOMAIN SELECTOR [--ed25519]",
        "make a DKIM signing key and its DNS record, or check the record",
    ),
}
# These parse their own arguments (and answer their own --help).
_DELEGATED = ("availability", "probe", "lmtp-deliver", "dkim")
_SUBCOMMANDS = tuple(c for c in COMMANDS if c not in _DELEGATED)


def _epilog() -> str:
    lines = ["subcommands (mailfilter SUBCOMMAND --help for each):"]
    lines += [f"  {name:<14}{line}" for name, (_, line) in COMMANDS.items()]
    lines += [
        "",
        "Without a subcommand mailfilter runs the filter in the foreground;",
        "--selftest checks this node instead (exit 0 when all works).",
    ]
    return "\n".join(lines)


def _subcommand_help(name: str) -> int:
    usage, line = COMMANDS[name]
    print(f"usage: {usage}\n\n{line}.\n")
    print("Every settings flag of `mailfilter --help` is accepted too.")
    return 0


def _delegate(name: str) -> Callable[[list[str]], int]:
    """Commands that own their argument parsing."""
    if name == "availability":
        from mailfilter.ops.availability_report import main as availability

        return availability
    if name == "probe":
        from mailfilter.ops.probe_cli import main as probe

        return probe
    if name == "dkim":
        from mailfilter.ops.dkimcli import main as dkim

        return dkim
    from mailfilter.delivery.cli import main as lmtp

    return lmtp


def parser() -> argparse.ArgumentParser:
    """Flags shared by the service, the selftest and the subcommands."""
    p = argparse.ArgumentParser(
        prog="mailfilter",
        description="amavis-compatible after-queue content filter",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument(
        "command", nargs="?", choices=_SUBCOMMANDS, help=argparse.SUPPRESS
    )
    p.add_argument("argument", nargs="?", help="MAIL_ID or FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in _DELEGATED:
        return _delegate(args_list[0])(args_list[1:])
    named = [a for a in args_list if a in _SUBCOMMANDS]
    if named and ("-h" in args_list or "--help" in args_list):
        return _subcommand_help(named[0])
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


def _show_policy(
    config: configmod.Config, _args: Any, _: dict[str, Any]
) -> int:
    from pathlib import Path

    try:
        text = Path(config.policy).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def _release(config: configmod.Config, args: Any, _: dict[str, Any]) -> int:
    from mailfilter import logsetup
    from mailfilter.store.release import release

    if not args.argument:
        print("mailfilter: release needs a MAIL_ID", file=sys.stderr)
        return 2
    # The release line goes where the service's lines go (same ident), so
    # log parsers and admins see releases next to the blocks they undo.
    logsetup.setup(
        to=config.log_to, ident=config.log_ident, level=config.log_level
    )
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
    "show-policy": _show_policy,
    "release": _release,
    "scan": _scan,
}
