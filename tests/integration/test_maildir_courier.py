"""Courier-IMAP reads what maildir.deliver writes, while deliveries go on.

Courier's imapd comes from Debian's packages, unpacked by
scripts/courier.sh (it cannot be installed beside dovecot-imapd). It runs
pre-authenticated (AUTHENTICATED set, as courier's login chain leaves it)
on each connection of a small loopback listener, over the Maildir under
test. Every delivered message must be listed once, in its folder, with
RFC822.SIZE equal to its CRLF size.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import maildir
from tests.integration.maildir_support import message

pytestmark = pytest.mark.integration
imapclient = pytest.importorskip("imapclient")
ROOT = Path(__file__).resolve().parents[2] / ".cache" / "courier" / "root"
IMAPD = ROOT / "usr" / "bin" / "imapd"


class CourierServer:
    """Accepts loopback connections and hands each to a courier imapd."""

    def __init__(self, mail: Path) -> None:
        self.mail = mail
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        env = {
            "AUTHENTICATED": "tester",
            "MAILDIR": str(self.mail),
            "LD_LIBRARY_PATH": f"{ROOT}/usr/lib/x86_64-linux-gnu:{ROOT}/usr/lib",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # libgamin looks for its server here instead of /usr/libexec.
            "GAMIN_DEBUG_SERVER": str(ROOT / "usr" / "libexec" / "gam_server"),
        }
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.procs.append(
                    subprocess.Popen(
                        [str(IMAPD), str(self.mail)],
                        stdin=conn.fileno(),
                        stdout=conn.fileno(),
                        stderr=subprocess.DEVNULL,
                        env=env,
                    )
                )

    def close(self) -> None:
        """Stop listening and end every imapd."""
        self.sock.close()
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def courier(tmp_path):
    """A Maildir and a Courier IMAP server reading it."""
    if not IMAPD.exists():
        pytest.skip("Courier-IMAP not unpacked (run scripts/courier.sh)")
    mail = tmp_path / "Maildir"
    maildir.create(mail)
    server = CourierServer(mail)
    yield mail, server
    server.close()
    # gam_server outlives imapd for a while; it is ours, stop it.
    subprocess.run(
        ["pkill", "-f", str(ROOT / "usr/libexec/gam_server")], check=False
    )


def sizes(client, folder: str) -> dict[str, int]:
    """Subject -> RFC822.SIZE for every message of a folder."""
    client.select_folder(folder, readonly=True)
    ids = client.search("ALL")
    data = client.fetch(
        ids, ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]
    )
    out = {}
    for item in data.values():
        header = next(v for k, v in item.items() if k.startswith(b"BODY["))
        subject = header.decode().split(":", 1)[1].strip()
        out[subject] = item[b"RFC822.SIZE"]
    return out


def test_courier_sees_every_message_once_with_its_size_and_folder(courier):
    """INBOX and the Junk Maildir++ folder, delivered while Courier reads."""
    mail, server = courier
    expected: dict[str, tuple[str, int]] = {}

    def deliver(start: int) -> None:
        for i in range(start, start + 40):
            data = message(f"m{i}", size=200 + i)
            folder = "Junk" if i % 3 == 0 else None
            maildir.deliver(mail, data, folder=folder)
            expected[f"m{i}"] = (
                "INBOX.Junk" if folder else "INBOX",
                len(data),
            )

    writer = threading.Thread(target=deliver, args=(0,))
    writer.start()
    client = imapclient.IMAPClient(
        "127.0.0.1", port=server.port, ssl=False, timeout=10
    )
    for _ in range(5):  # read while the writer writes
        client.select_folder("INBOX", readonly=True)
        client.search("ALL")
    writer.join()
    deliver(1000)
    seen = {
        **{s: ("INBOX", n) for s, n in sizes(client, "INBOX").items()},
        **{
            s: ("INBOX.Junk", n)
            for s, n in sizes(client, "INBOX.Junk").items()
        },
    }
    folders = {name for _, _, name in client.list_folders()}
    client.logout()
    assert {"INBOX", "INBOX.Junk"} <= folders
    assert expected == seen
