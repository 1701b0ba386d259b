"""Helpers for the Maildir integration tests: Dovecot sandbox, checks.

Not a test module. Starts a private Dovecot (own config, base_dir, log and
port in a temp dir; no system config) that serves one static user whose
mail_location is the Maildir under test, and offers `check_maildir`, the
"exactly once, right size, tmp/ empty" assertion used by several tests.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port, wait_port

DOVECOT = "/usr/sbin/dovecot"
MAIL_USER = "nobody"
PASSWORD = "secret"
_SIZES = re.compile(r",S=(\d+),W=(\d+)")


@dataclass
class Dovecot:
    """A running private Dovecot IMAP server."""

    proc: subprocess.Popen[bytes]
    port: int
    config: Path
    log: Path

    def stop(self) -> None:
        subprocess.run(
            [DOVECOT, "-c", str(self.config), "stop"],
            check=False,
            capture_output=True,
        )
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def have_dovecot() -> bool:
    """Dovecot and its imap binary are installed."""
    return Path(DOVECOT).exists() and Path("/usr/lib/dovecot/imap").exists()


def start_dovecot(workdir: Path, maildir: Path, *, extra: str = "") -> Dovecot:
    """Start Dovecot on a free loopback port serving `maildir` as INBOX."""
    port = free_port()
    base = workdir / "run"
    base.mkdir(mode=0o755)
    pw = pwd.getpwnam(MAIL_USER)
    log = workdir / "dovecot.log"
    config = workdir / "dovecot.conf"
    config.write_text(
        f"""
protocols = imap
listen = 127.0.0.1
base_dir = {base}
state_dir = {workdir}/state
log_path = {log}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:{maildir}:INDEX=MEMORY
mail_fsync = always
mmap_disable = yes
mail_nfs_storage = yes
mailbox_list_index = no
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={pw.pw_uid} gid={pw.pw_gid} home={workdir}/home
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
{extra}
"""
    )
    (workdir / "state").mkdir()
    proc = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, timeout=20)
    except TimeoutError:
        proc.kill()
        out = proc.communicate()[0].decode(errors="replace")
        proc.stdout.close()  # type: ignore[union-attr]
        logtext = log.read_text() if log.exists() else ""
        raise RuntimeError(
            f"dovecot did not start: {out}\n{logtext}"
        ) from None
    return Dovecot(proc, port, config, log)


def give_to_mail_user(path: Path) -> None:
    """chown -R the tree to the IMAP user (Dovecot refuses uid 0)."""
    pw = pwd.getpwnam(MAIL_USER)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for name in dirnames + filenames:
            os.chown(
                os.path.join(dirpath, name),
                pw.pw_uid,
                pw.pw_gid,
                follow_symlinks=False,
            )


def demote_to_mail_user() -> None:
    """preexec_fn for delivering children: run as the mail user."""
    pw = pwd.getpwnam(MAIL_USER)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def message(tag: str, size: int = 300) -> bytes:
    """A CRLF message whose body identifies it by `tag`."""
    body = (f"{tag} " * (size // (len(tag) + 1) + 1))[:size]
    return (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: {tag}\r\n"
        f"Message-ID: <{tag}@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def check_maildir(box: Path, expected: dict[str, bytes]) -> None:
    """Every expected message in new/ or cur/ exactly once, sizes right."""
    files = [p for sub in ("new", "cur") for p in (box / sub).iterdir()]
    assert [] == [p.name for p in files if p.name.startswith(".")]
    bases = [p.name.split(",")[0].split(":")[0] for p in files]
    assert len(bases) == len(set(bases))
    seen: dict[str, int] = {}
    for path in files:
        data = path.read_bytes()
        sizes = _SIZES.search(path.name)
        assert sizes is not None, path.name
        assert int(sizes.group(1)) == len(data)
        assert int(sizes.group(2)) == len(data) + data.count(b"\n")
        subject = re.search(rb"Subject: (\S+)", data)
        assert subject is not None
        seen[subject.group(1).decode()] = (
            seen.get(subject.group(1).decode(), 0) + 1
        )
        want = expected[subject.group(1).decode()].replace(b"\r\n", b"\n")
        assert hashlib.sha256(want).digest() == hashlib.sha256(data).digest()
    assert dict.fromkeys(expected, 1) == seen
    assert [] == list((box / "tmp").iterdir())


def have(binary: str) -> bool:
    """The binary is on PATH."""
    return shutil.which(binary) is not None


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll predicate until true or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
