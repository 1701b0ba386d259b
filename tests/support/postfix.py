"""A throwaway Postfix instance: own config, queue and Maildir in a temp dir.

The shipped snippets `deploy/postfix/*.snippet` are rendered with free
ports (10024 -> the filter's port, 10025 -> a free port) so the tests
exercise the very recipe admins install. Mail for example.com is delivered
by virtual(8) into one Maildir; the log goes to a file (maillog_file).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
_SERVICES = """\
{smtp} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class PostfixInstance:
    """A running instance; `port` is its public smtpd."""

    root: Path
    port: int
    filter_port: int
    reinject_port: int
    submission_port: int = 0  # with originating_port: the submission entry

    @property
    def maildir(self) -> Path:
        """Where virtual(8) delivers every example.com recipient."""
        return self.root / "mail" / "Maildir"

    @property
    def config_dir(self) -> Path:
        """config_directory (for postconf -c)."""
        return self.root / "etc"

    def log(self) -> str:
        """The Postfix log so far."""
        path = self.root / "postfix.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `postfix -c DIR args`."""
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def set_scan_maxproc(self, maxproc: int) -> None:
        """Set the `scan` transport's maxproc and reload Postfix."""
        subprocess.run(
            ["postconf", "-c", str(self.config_dir), "-F",
             f"scan/unix/process_limit={maxproc}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.postfix("reload")

    def wait_log(self, text: str, timeout: float = 30) -> str:
        """Wait until `text` appears in the Postfix log; the log."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{text!r} not logged:\n{self.log()[-2000:]}"
                )
            time.sleep(0.2)
        return self.log()

    def flush(self) -> None:
        """Retry deferred mail now (`postqueue -f`)."""
        subprocess.run(
            ["postqueue", "-c", str(self.config_dir), "-f"],
            capture_output=True,
            timeout=30,
        )

    def queue_empty(self) -> bool:
        """Whether nothing is left in the queue."""
        out = subprocess.run(
            ["postqueue", "-c", str(self.config_dir), "-p"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return "Mail queue is empty" in out.stdout

    def delivered(self) -> list[Path]:
        """Files delivered so far."""
        found = []
        for sub in ("new", "cur"):
            d = self.maildir / sub
            if d.exists():
                found += sorted(d.iterdir())
        return found

    def wait_delivered(self, count: int, timeout: float = 60) -> list[Path]:
        """Wait until `count` messages are in the Maildir."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = self.delivered()
            if len(files) >= count:
                return files
            time.sleep(0.1)
        raise TimeoutError(
            f"{len(self.delivered())} of {count} delivered;\n"
            + self.log()[-3000:]
        )

    def stop(self) -> None:
        """postfix stop."""
        self.postfix("stop")


def render_snippets(filter_port: int, reinject_port: int) -> tuple[str, str]:
    """The shipped snippets with test ports."""
    main = (REPO / "deploy/postfix/main.cf.snippet").read_text()
    master = (REPO / "deploy/postfix/master.cf.snippet").read_text()
    main = main.replace("10024", str(filter_port))
    master = re.sub(r"\b10025\b", str(reinject_port), master)
    return main, master


def render_submission(submission_port: int, originating_port: int) -> str:
    """The shipped submission entry on a test port, as if the client had
    authenticated: TLS and SASL settings are left out (no certificates
    here), the content_filter line is the shipped one."""
    text = (REPO / "deploy/postfix/submission.cf.snippet").read_text()
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith("#")
        and not re.search(r"tls_|sasl|_restrictions=", line)
    ]
    entry = "\n".join(lines).replace("10026", str(originating_port))
    return re.sub(
        r"^submission inet n\s+-\s+y",
        f"127.0.0.1:{submission_port} inet n - n",
        entry,
    ) + "\n"


def start_postfix(
    root: Path,
    filter_port: int,
    *,
    extra_main: str = "",
    content_filter: bool = True,
    originating_port: int | None = None,
) -> PostfixInstance:
    """Create and start an instance whose content_filter is filter_port.

    `content_filter=False` leaves that line out, for the before-queue
    doors whose snippets go in `extra_main` instead.
    """
    etc, spool, data, mail = (
        root / "etc",
        root / "spool",
        root / "data",
        root / "mail",
    )
    for d in (etc, spool, data, mail):
        d.mkdir(parents=True, exist_ok=True)
    # Postfix's own users must be able to reach their directories.
    for d in (root, *root.parents):
        if d == Path("/"):
            break
        d.chmod(d.stat().st_mode | 0o711)
    nobody = pwd.getpwnam("nobody")
    os.chown(mail, nobody.pw_uid, nobody.pw_gid)
    owner = pwd.getpwnam("postfix")
    os.chown(data, owner.pw_uid, owner.pw_gid)
    port, reinject = free_port(), free_port()
    main_snippet, master_snippet = render_snippets(filter_port, reinject)
    if not content_filter:
        main_snippet = re.sub(r"(?m)^content_filter =.*\n", "", main_snippet)
    (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test.invalid
mydomain = test.invalid
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtp_dns_support_level = disabled
disable_dns_lookups = yes
virtual_mailbox_domains = example.com
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:Maildir/
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
virtual_minimum_uid = 1
maillog_file = {root / "postfix.log"}
maillog_file_prefixes = {root}
smtputf8_enable = yes
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
smtp_connect_timeout = 5s
{main_snippet}
{extra_main}
""")
    submission = ""
    if originating_port is not None:
        submission_port = free_port()
        submission = render_submission(submission_port, originating_port)
    (etc / "master.cf").write_text(
        _SERVICES.format(smtp=f"127.0.0.1:{port}") + master_snippet + submission
    )
    instance = PostfixInstance(root, port, filter_port, reinject)
    if originating_port is not None:
        instance.submission_port = submission_port
    for args in (("check",), ("start",)):
        done = instance.postfix(*args)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {args[0]}: {done.stderr}")
    wait_port(port)
    wait_port(reinject)
    return instance
