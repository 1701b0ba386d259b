"""Finding spamd's children and -L: /proc text, command lines, and the
walk from the socket to the spamd master on a /proc laid out in a
directory (the real spamd is in tests/component/ops/test_spamdproc.py)."""

from __future__ import annotations

import ipaddress

import pytest

from mailfilter.ops import spamdproc
from mailfilter.ops.spamdproc import SpamdOptions, UnknownError

LOOP4 = spamdproc.loopback("127.0.0.1")
LOOP6 = spamdproc.loopback("::1")

# Real /proc/net/tcp lines: spamd listening on 127.0.0.1:34065 (0x8511),
# an accepted and a connecting socket on the same port, and a wildcard
# listener on 2024 (0x07E8).
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8511 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 11417753 2 0000000049ade578 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1681 1 000000001688a4b2 100 0 0 10 0
 564: 0100007F:8511 0100007F:C642 08 00000000:00000001 00:00000000 00000000     0        0 0 1 00000000332ac600 20 4 0 10 -1
 711: 0100007F:C642 0100007F:8511 05 00000000:00000000 03:0000176F 00000000     0        0 0 3 0000000061a02e0a
   2: 0500000A:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 000000001688a4b2 100 0 0 10 0
"""
# Real /proc/net/tcp6 lines: ::ffff:127.0.0.1 on 50765, ::1 on 53145.
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:C64D 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11429938 1 000000000964b418 100 0 0 10 0
   1: 00000000000000000000000001000000:CF99 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11429937 1 00000000a332cf5f 100 0 0 10 0
"""


def test_listen_socket_on_the_port():
    assert spamdproc.listen_inodes(TCP, 34065, LOOP4, "little") == [11417753]


def test_only_listen_sockets_on_that_port_and_address():
    """Connected sockets on the port, other ports, and a listener on
    10.0.0.5:3306 do not count."""
    assert spamdproc.listen_inodes(TCP, 0xC642, LOOP4, "little") == []
    assert spamdproc.listen_inodes(TCP, 3306, LOOP4, "little") == []
    ten = frozenset({ipaddress.ip_address("10.0.0.5")})
    assert spamdproc.listen_inodes(TCP, 3306, ten, "little") == [4242]


def test_wildcard_listener_takes_loopback():
    assert spamdproc.listen_inodes(TCP, 2024, LOOP4, "little") == [1681]


def test_ipv6_loopback_and_mapped():
    assert spamdproc.listen_inodes(TCP6, 53145, LOOP6, "little") == [11429937]
    assert spamdproc.listen_inodes(TCP6, 53145, LOOP4, "little") == []
    assert spamdproc.listen_inodes(TCP6, 50765, LOOP4, "little") == [11429938]


def test_big_endian_hosts_print_the_address_as_is():
    line = (
        TCP.splitlines()[0]
        + "\n"
        + TCP.splitlines()[1].replace("0100007F", "7F000001")
    )
    assert spamdproc.listen_inodes(line, 34065, LOOP4, "big") == [11417753]
    assert spamdproc.listen_inodes(line, 34065, LOOP4, "little") == []


def test_loopback():
    assert spamdproc.loopback("localhost") == LOOP4 | LOOP6
    assert spamdproc.loopback("127.0.0.2")
    assert spamdproc.loopback("10.0.0.1") == frozenset()
    assert spamdproc.loopback("spamd.example.org") == frozenset()


PERL = ["/usr/bin/perl", "-T -w", "/usr/sbin/spamd"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], SpamdOptions(5, local=False)),
        (["--max-children=12"], SpamdOptions(12, local=False)),
        (["--max-children", "12", "-L"], SpamdOptions(12, local=True)),
        (["-m", "7", "--local"], SpamdOptions(7, local=True)),
        (["-m7"], SpamdOptions(7, local=False)),
        (["-xLm3"], SpamdOptions(3, local=True)),
        (["-Lm", "3"], SpamdOptions(3, local=True)),
        (["--max-ch=9", "--loc"], SpamdOptions(9, local=True)),
        (["-L", "--no-local"], SpamdOptions(5, local=False)),
        (["--max-children=0"], SpamdOptions(5, local=False)),
        (["-m4", "-m", "6"], SpamdOptions(6, local=False)),
        # Values of other options are not flags: -s takes "mail",
        # -u the bundle's rest "Lm9".
        (["-s", "-L", "-uLm9"], SpamdOptions(5, local=False)),
        (["--min-children=8", "--max-spare=6"], SpamdOptions(5, local=False)),
        (["--", "-m", "9"], SpamdOptions(5, local=False)),
    ],
)
def test_parse_options(args, expected):
    assert spamdproc.parse_options([*PERL, *args]) == expected


def test_parse_options_direct_exec():
    """Started as /usr/sbin/spamd (no interpreter in argv)."""
    argv = ["/usr/sbin/spamd", "--max-children=3", "-L"]
    assert spamdproc.parse_options(argv) == SpamdOptions(3, local=True)


def test_renamed_master_hides_its_options():
    """spamd -d renames itself to a bare "spamd": not the default 5."""
    with pytest.raises(UnknownError, match="-d"):
        spamdproc.parse_options(spamdproc.argv_of(b"spamd\0"))


def test_is_spamd():
    assert spamdproc.is_spamd(PERL)
    assert spamdproc.is_spamd(["spamd child"])
    assert spamdproc.is_spamd(["spamd"])
    assert not spamdproc.is_spamd(["/usr/bin/perl", "/usr/sbin/amavisd"])
    assert not spamdproc.is_spamd(["/usr/bin/python3", "-m", "spamd"])
    assert not spamdproc.is_spamd(["sshd: root"])
    assert not spamdproc.is_spamd([])


def test_ppid_of_a_name_with_parentheses():
    assert spamdproc.ppid_of("201 (spamd child) S 200 201 7 0 -1") == 200
    assert spamdproc.ppid_of("9 (a) b) R 8 9 9 0 -1") == 8


def _process(proc, pid, argv, ppid, sockets=()):
    d = proc / str(pid)
    (d / "fd").mkdir(parents=True)
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    (d / "stat").write_text(f"{pid} (x) S {ppid} {pid} {pid} 0 -1\n")
    for n, inode in enumerate(sockets):
        (d / "fd" / str(n + 3)).symlink_to(f"socket:[{inode}]")


@pytest.fixture
def proc(tmp_path):
    """A /proc with spamd's master (200) and a child (201) holding the
    listening socket, under a shell (100)."""
    root = tmp_path / "proc"
    (root / "net").mkdir(parents=True)
    (root / "net" / "tcp").write_text(TCP)
    _process(root, 100, ["/bin/sh"], 1)
    _process(root, 200, [*PERL, "-L", "--max-children=7"], 100)
    _process(root, 201, ["spamd child"], 200, sockets=[11417753])
    return root


def test_find_walks_from_the_child_to_the_master(proc):
    found = spamdproc.find("127.0.0.1", 34065, proc)
    assert found == spamdproc.Found(200, SpamdOptions(7, local=True))


def test_find_not_spamd(proc):
    _process(proc, 300, ["/usr/bin/python3", "fake.py"], 1, [1681])
    with pytest.raises(UnknownError, match="python3 holds"):
        spamdproc.find("127.0.0.1", 2024, proc)


def test_find_nothing_listening(proc):
    with pytest.raises(UnknownError, match="nothing listens"):
        spamdproc.find("127.0.0.1", 783, proc)


def test_find_no_holder(proc):
    """A listening socket no process shows: not root, or gone."""
    with pytest.raises(UnknownError, match="no process holds"):
        spamdproc.find("127.0.0.1", 2024, proc)


def test_find_not_loopback(proc):
    with pytest.raises(UnknownError, match="not on loopback"):
        spamdproc.find("192.0.2.7", 34065, proc)
