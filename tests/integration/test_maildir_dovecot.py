"""Dovecot reads what maildir.deliver writes, while deliveries go on.

Covers docs/maildir-on-shared-storage.md, "How it is tested" #15.

A private Dovecot (own config, no system files, free loopback port) serves
the Maildir under test; four delivering processes run as the mail user
while an IMAP client lists, fetches and flags (new/ -> cur/ renames) in
parallel. Afterwards every message is present exactly once, in the right
folder, with RFC822.SIZE equal to its CRLF size and the flags we set.
Courier-IMAP has its own test (test_maildir_courier.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import maildir
from tests.integration.maildir_support import (
    PASSWORD,
    check_maildir,
    demote_to_mail_user,
    give_to_mail_user,
    have_dovecot,
    message,
    start_dovecot,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not have_dovecot(), reason="dovecot-imapd not installed"
    ),
]
imapclient = pytest.importorskip("imapclient")
REPO = Path(__file__).resolve().parents[2]
WRITERS, PER_WRITER = 4, 60
# The writers run as the mail user, who cannot enter root's pyenv: use the
# system interpreter (stdlib only is all maildir needs).
SYSTEM_PYTHON = (
    "/usr/bin/python3"
    if os.access("/usr/bin/python3", os.X_OK)
    else sys.executable
)
CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import maildir
from tests.integration.maildir_support import message
w = sys.argv[3]
for i in range(int(sys.argv[4])):
    maildir.deliver(sys.argv[2], message(f"w{w}m{i}"), folder="Junk" if i % 4 == 0 else None)
"""


@pytest.fixture
def workdir():
    # Not tmp_path: its parents are 0700 root, and the mail user must reach it.
    path = Path(tempfile.mkdtemp(prefix="maildir-dovecot-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def fetch_all(client, folder):
    client.select_folder(folder)
    uids = client.search("ALL")
    data = client.fetch(
        uids, ["RFC822.SIZE", "FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
    )
    out = {}
    for uid, item in data.items():
        subject = (
            item[b"BODY[HEADER.FIELDS (SUBJECT)]"]
            .decode()
            .split(":", 1)[1]
            .strip()
        )
        out[subject] = (uid, item[b"RFC822.SIZE"], item[b"FLAGS"])
    assert len(uids) == len(set(uids)) == len(out)
    return out


def test_dovecot_reads_during_deliveries(workdir):
    """Every delivered message is seen once, right size, folder and flags."""
    root = maildir.create(workdir / "Maildir")
    maildir.deliver(root, message("hostile"), hostname="a/b:c,S=1")
    give_to_mail_user(workdir)
    dovecot = start_dovecot(workdir, root)
    writers = []
    try:
        client = imapclient.IMAPClient(
            "127.0.0.1", port=dovecot.port, ssl=False, timeout=30
        )
        client.login("user", PASSWORD)
        writers = [
            subprocess.Popen(
                [
                    SYSTEM_PYTHON,
                    "-c",
                    CHILD,
                    str(REPO),
                    str(root),
                    str(w),
                    str(PER_WRITER),
                ],
                preexec_fn=demote_to_mail_user,
                cwd="/",
            )
            for w in range(WRITERS)
        ]
        flagged = set()
        while any(p.poll() is None for p in writers):
            seen = fetch_all(client, "INBOX")
            some = [
                uid for subj, (uid, _, _) in seen.items() if subj.endswith("1")
            ]
            if some:
                client.add_flags(some, [imapclient.SEEN])
                flagged |= {
                    s for s, (uid, _, _) in seen.items() if uid in some
                }
            time.sleep(0.05)
        assert [0] * WRITERS == [p.wait() for p in writers]
        inbox, junk = fetch_all(client, "INBOX"), fetch_all(client, "Junk")
        client.logout()
    finally:
        for p in writers:
            if p.poll() is None:
                p.kill()
        dovecot.stop()
    expected = {
        f"w{w}m{i}": message(f"w{w}m{i}")
        for w in range(WRITERS)
        for i in range(PER_WRITER)
    }
    expected_junk = {
        k: v for k, v in expected.items() if int(k.split("m")[1]) % 4 == 0
    }
    expected_inbox = {
        k: v for k, v in expected.items() if k not in expected_junk
    }
    expected_inbox["hostile"] = message("hostile")
    assert set(expected_inbox) == set(inbox)
    assert set(expected_junk) == set(junk)
    for subject, (_, size, flags) in {**inbox, **junk}.items():
        assert (
            len(expected_inbox.get(subject) or expected_junk[subject]) == size
        )
        assert (subject in flagged) == (imapclient.SEEN in flags)
    check_maildir(root, expected_inbox)
    check_maildir(root / ".Junk", expected_junk)
    assert "Error" not in dovecot.log.read_text().replace("dsn=Error", "")
