"""A recount of maildirsize raced by deliveries keeps the limit.

The limit lives only in line 1 of maildirsize, so a recount must never
leave the Maildir without that file. The deterministic tests deliver a
real message in the middle of the recount's directory scan (the moment a
concurrent delivery would land); the threaded test runs real deliveries
against repeated recounts.
"""

from __future__ import annotations

import itertools
import os
import threading

import maildir
from maildir import quota

LIMIT = quota.Quota(10_000_000, 10_000)


def on_disk(root):
    """(bytes, messages) actually in the Maildir, outside Trash."""
    size = count = 0
    for sub in ("new", "cur"):
        for path in (root / sub).iterdir():
            size += path.stat().st_size
            count += 1
    return size, count


def deliver_during_scans(monkeypatch, root, races):
    """Deliver one message each time a recount lists new/, `races` times.

    The directory's mtime is then set to a fresh value, so the recount
    sees the change even where the clock is coarser than the scan.
    """
    real = os.listdir
    left = iter(range(races))
    stamps = itertools.count(10**18, 10**9)

    def listdir(path="."):
        if str(path).endswith("new") and next(left, None) is not None:
            maildir.deliver(root, b"Subject: race\n\nx" * 10)
            stamp = next(stamps)
            os.utime(root / "new", ns=(stamp, stamp))
        return real(path)

    monkeypatch.setattr(quota.os, "listdir", listdir)


def test_a_raced_recount_keeps_the_limit_and_counts_again(
    tmp_path, monkeypatch
):
    """One delivery during the scan: the file stays, line 1 is the limit,
    and the totals include the message that raced."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, LIMIT)
    for _ in range(3):
        maildir.deliver(root, b"Subject: before\n\nbody\n")
    deliver_during_scans(monkeypatch, root, races=1)
    quota.recalculate(root, LIMIT)
    monkeypatch.undo()
    lines = (root / "maildirsize").read_text().splitlines()
    assert LIMIT.definition() == lines[0]
    assert 4 == on_disk(root)[1]
    assert on_disk(root) == quota.totals(root)


def test_a_recount_that_keeps_racing_still_keeps_the_limit(
    tmp_path, monkeypatch
):
    """Every attempt raced: the limit and the last totals stay, with a
    second usage line so that an "over" verdict is recounted, not
    trusted for 15 minutes."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, quota.Quota(1000))
    # More races than any number of attempts: the last one races too.
    deliver_during_scans(monkeypatch, root, races=50)
    quota.recalculate(root, quota.Quota(1000))
    monkeypatch.undo()
    usage = quota.read(root)
    assert usage is not None
    assert quota.Quota(1000) == usage.quota
    assert usage.lines > 1
    assert on_disk(root) == quota.totals(root)
    # The limit is still enforced.
    assert not quota.check(root, 1000)
    assert quota.check(root, 10)


def test_definition_only_file_is_counted(tmp_path):
    """A file holding only the limit (as `maildirmake -q` writes it) is
    recounted, not read as an empty mailbox."""
    root = maildir.create(tmp_path / "M")
    maildir.deliver(root, b"x" * 500)
    (root / "maildirsize").write_text("100S\n")
    assert not quota.check(root, 10)
    assert (500, 1) == quota.totals(root)


def test_recounts_racing_real_deliveries(tmp_path):
    """Threads deliver while another recounts in a loop: the limit is
    never lost, and a final recount matches the disk."""
    root = maildir.create(tmp_path / "M")
    quota.set_quota(root, LIMIT)
    done = threading.Event()
    lost = []

    def deliverer():
        for _ in range(60):
            maildir.deliver(root, b"Subject: t\n\nbody\n" * 20)

    def recounter():
        while not done.is_set():
            quota.recalculate(root, LIMIT)
            usage = quota.read(root)
            if usage is None or usage.quota != LIMIT:
                lost.append(usage)

    workers = [threading.Thread(target=deliverer) for _ in range(4)]
    counter = threading.Thread(target=recounter)
    counter.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    counter.join()
    assert [] == lost
    assert 240 == on_disk(root)[1]
    quota.recalculate(root, LIMIT)
    assert on_disk(root) == quota.totals(root)
    assert (
        LIMIT.definition()
        == ((root / "maildirsize").read_text().splitlines()[0])
    )
