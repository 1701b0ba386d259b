"""`maildir-deliver`: Postfix mailbox_command / pipe(8) front end.

Reads one message on stdin and delivers it with `maildir.delivery`.
Exit status follows the Postfix contract (local(8), pipe(8)): 0 delivered,
75 EX_TEMPFAIL for anything that may work later (disk full, I/O error,
missing mount, our own bugs), and a permanent sysexit only for a permanent
cause (77 over quota unless --quota-tempfail, 64 usage). Never 74
EX_IOERR, which Postfix bounces. The one output line starts with the
enhanced status code, which Postfix uses in its DSN.

Imports are kept to the minimum (a 20-line option parser instead of
argparse/getopt, which pull in gettext; no pathlib) so that
start-up stays close to the bare interpreter's: the command runs once per
delivered message.
"""

from __future__ import annotations

import os
import sys

from maildir import delivery, errors, routing

USAGE = """\
usage: maildir-deliver [--folder NAME] [--extension EXT]
                       [--spam-folder NAME] [--create-extension-folders]
                       [--no-create] [--quota-tempfail] [--hostname NAME]
                       [--maildir DIR | DIR]
Reads a message on stdin and delivers it into DIR (default ~/Maildir/),
given as --maildir DIR or as the last argument, the way procmail and
maildrop recipes write it.
Spam routing: --spam-folder or $MAILDIR_SPAM_FOLDER sends messages with
'X-Spam-Flag: YES' to that folder.
"""
_VALUED = {"maildir", "folder", "extension", "spam-folder", "hostname"}
_FLAGS = {"create-extension-folders", "no-create", "quota-tempfail", "help"}


class UsageError(Exception):
    """Bad command line."""


def _options(argv: list[str]) -> dict[str, str]:
    """--name=value, --name value and --flag; -h is --help.

    One argument that is not an option is the Maildir (the positional
    form, `maildir-deliver [options] MAILDIR`); `--` ends the options.
    """
    opts: dict[str, str] = {}
    args = iter(argv)
    for arg in args:
        if arg == "--" or not arg.startswith("-"):
            rest = [arg] if arg != "--" else []
            rest += list(args)
            if len(rest) != 1:
                raise UsageError(f"expected one MAILDIR, got {rest!r}")
            if "maildir" in opts:
                raise UsageError("MAILDIR given twice (--maildir and DIR)")
            opts["maildir"] = rest[0]
            break
        name, eq, value = arg.partition("=")
        name = "help" if name == "-h" else name.removeprefix("--")
        if name not in _VALUED | _FLAGS:
            raise UsageError(f"unknown argument {arg!r}")
        if name in _FLAGS:
            if eq:
                raise UsageError(f"--{name} takes no value")
        elif not eq:
            value = next(args, None)  # type: ignore[assignment]
            if value is None:
                raise UsageError(f"--{name} needs a value")
        opts[name] = value
    return opts


def _run(opts: dict[str, str]) -> str:
    message = routing.strip_from_line(sys.stdin.buffer.read())
    # os.path, not pathlib: start-up time (module docstring).
    maildir = os.path.expanduser(opts.get("maildir", "~/Maildir/"))  # noqa: PTH111
    spam = opts.get("spam-folder") or os.environ.get("MAILDIR_SPAM_FOLDER")
    folder, create_folder = routing.choose(
        message,
        folder=opts.get("folder"),
        extension=opts.get("extension"),
        spam_folder=spam,
        create_extension_folders="create-extension-folders" in opts,
    )
    return delivery.deliver_path(
        maildir.rstrip("/") or "/",
        message,
        folder=folder,
        create="no-create" not in opts,
        create_folder=create_folder,
        hostname=opts.get("hostname"),
        quota_tempfail="quota-tempfail" in opts,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the sysexits(3) status."""
    try:
        opts = _options(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(f"maildir-deliver: {exc}\n{USAGE}")
        return errors.EX_USAGE
    if "help" in opts:
        sys.stdout.write(USAGE)
        return errors.EX_OK
    try:
        _run(opts)
    except errors.DeliveryError as exc:
        print(f"{exc.dsn} maildir delivery failed: {exc}")
        return exc.exit_code
    except Exception as exc:
        # A bug or an unexpected environment must defer, never bounce.
        print(f"4.3.0 maildir delivery failed: {type(exc).__name__}: {exc}")
        return errors.EX_TEMPFAIL
    return errors.EX_OK


if __name__ == "__main__":
    sys.exit(main())
