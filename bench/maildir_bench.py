"""Maildir delivery throughput: our library, LMTP server and command vs others.

Measures deliveries/s with fsync on, all into Maildirs on the same disk
(one temp dir), one message size, sequentially (one delivery at a time):
  in-process:  maildir.deliver(); our LMTP server over loopback (one
               connection, one recipient per transaction)
  commands:    maildir-deliver, dovecot-lda (mail_fsync=always, run as
               nobody: it refuses root), maildrop, procmail;
               and `python3 -c pass` as the interpreter's bare start-up.
Usage: .venv/bin/python bench/maildir_bench.py [-n 200] [--dir /var/tmp]
Prints a Markdown table for docs/bench-maildir.md.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import maildir  # noqa: E402
from tests.support.ports import free_port, wait_port  # noqa: E402

MESSAGE = (
    b"From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n"
    + b"x" * 70
    + b"\r\n"
) * 1 + b"body line of text that is reasonably long........\r\n" * 60


def rate(n: int, seconds: float) -> float:
    return n / seconds


def bench_library(work: Path, n: int) -> float:
    root = work / "lib"
    maildir.create(root)
    t = time.perf_counter()
    for _ in range(n):
        maildir.deliver(root, MESSAGE)
    return rate(n, time.perf_counter() - t)


def bench_lmtp(work: Path, n: int) -> float:
    port = free_port()
    (work / "lmtp" / "example.org" / "user").mkdir(parents=True)
    maildir.create(work / "lmtp" / "example.org" / "user" / "Maildir")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailfilter.delivery.cli",
            "--listen",
            f"127.0.0.1:{port}",
            "--root-template",
            str(work / "lmtp" / "{domain}" / "{user}" / "Maildir"),
        ],
        cwd=REPO,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        client = smtplib.LMTP("127.0.0.1", port)
        client.ehlo_or_helo_if_needed = lambda: client.ehlo("bench")  # LHLO
        t = time.perf_counter()
        for _ in range(n):
            client.sendmail("a@example.org", ["user@example.org"], MESSAGE)
        elapsed = time.perf_counter() - t
        client.quit()
    finally:
        proc.terminate()
        proc.wait()
    return rate(n, elapsed)


def run_many(argv: list[str], n: int, *, user: str | None = None) -> float:
    preexec = None
    if user:
        pw = pwd.getpwnam(user)

        def preexec() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    t = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            argv,
            input=MESSAGE,
            check=True,
            stdout=subprocess.DEVNULL,
            preexec_fn=preexec,
            cwd="/",
        )
    return rate(n, time.perf_counter() - t)


def commands(work: Path) -> dict[str, tuple[list[str], str | None]]:
    shim = work / "maildir-deliver"
    # What pip's console-script wrapper does, minus the venv install.
    shim.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from maildir.cli import main\nsys.exit(main())\n"
    )
    shim.chmod(0o755)
    (work / "lda").mkdir(mode=0o755)
    lda_conf = work / "lda.conf"
    lda_conf.write_text(
        f"mail_location = maildir:{work}/lda/M\nmail_fsync = always\n"
        "postmaster_address = postmaster@example.org\nlog_path = /dev/null\n"
    )
    shutil.chown(work / "lda", "nobody")
    maildrop_rc = work / "maildroprc"
    maildrop_rc.write_text(f'to "{work}/maildrop/"\n')
    maildrop_rc.chmod(0o600)
    subprocess.run(["maildirmake", str(work / "maildrop")], check=True)
    procmail_rc = work / "procmailrc"
    procmail_rc.write_text(f"DEFAULT={work}/procmail/\n")
    py = (
        "/usr/bin/python3"
        if Path("/usr/bin/python3").exists()
        else sys.executable
    )
    return {
        "maildir-deliver (our command)": (
            [str(shim), "--maildir", str(work / "cmd")],
            None,
        ),
        "dovecot-lda": (
            [
                "/usr/lib/dovecot/dovecot-lda",
                "-c",
                str(lda_conf),
                "-f",
                "a@example.org",
            ],
            "nobody",
        ),
        "maildrop": (["maildrop", str(maildrop_rc)], None),
        "procmail": (["procmail", "-m", str(procmail_rc)], None),
        "python3 -c pass (venv interpreter)": (
            [sys.executable, "-c", "pass"],
            None,
        ),
        "python3 -S -c pass (system, no site)": (
            [py, "-S", "-c", "pass"],
            None,
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maildir-bench-", dir=args.dir))
    work.chmod(0o755)
    rows: list[tuple[str, float]] = []
    try:
        rows.append(
            ("maildir.deliver() in-process", bench_library(work, args.n))
        )
        rows.append(
            (
                "LMTP server (mailfilter.delivery.cli)",
                bench_lmtp(work, args.n),
            )
        )
        for name, (argv, user) in commands(work).items():
            binary = argv[0]
            if not (Path(binary).exists() or shutil.which(binary)):
                print(f"skip {name}: {binary} missing", file=sys.stderr)
                continue
            rows.append((name, run_many(argv, args.n, user=user)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours = dict(rows)["maildir-deliver (our command)"]
    print(
        f"n={args.n} messages of {len(MESSAGE)} bytes, fsync on, dir={work.parent}\n"
    )
    print("| delivery | deliveries/s | ms/delivery | vs maildir-deliver |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r:,.0f} | {1000 / r:.2f} | {r / ours:.2f}x |")


if __name__ == "__main__":
    main()
