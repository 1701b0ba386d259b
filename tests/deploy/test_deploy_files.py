"""The files under deploy/ parse with the tools that will read them.

Each test feeds one file (copied into a temp dir when a path must change)
to its real checker: keepalived --config-test, systemd-analyze verify,
haproxy -c, postconf -c, clamconf -c. A test is skipped with the reason
when its tool is not installed. ldirectord.cf and the sysctl file have no
checker installed here, so a small parser checks what the daemons need.
Cross-file rules (docs/engineering-rules.md, "The concurrency chain") are
checked too.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MAILFILTER_BIN = "/opt/mailfilter/venv/bin/mailfilter"
SEED_REAL_SERVERS = 4


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a checker, capturing text output."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def need(tool: str) -> str:
    """The tool's path, or skip the test saying which tool is missing."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def header_comment(path: Path) -> str:
    """The leading comment block of a deploy file."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


MY_FILES = [
    "systemd/mailfilter.service",
    "systemd/mailfilter-quarantine-clean.service",
    "systemd/mailfilter-quarantine-clean.timer",
    "clamav/clamd.conf.snippet",
    "spamassassin/spamd.default",
    "keepalived/keepalived.conf",
    "ldirectord/ldirectord.cf",
    "lvs/realserver.sysctl.conf",
    "haproxy/haproxy.cfg",
]


@pytest.mark.parametrize("name", MY_FILES)
def test_file_starts_with_where_and_site_specific(name: str) -> None:
    """Every deploy file opens with a comment saying where it goes and what to edit."""
    head = header_comment(DEPLOY / name)
    assert "Where:" in head
    assert "Site-specific" in head


@pytest.mark.parametrize("name", MY_FILES)
def test_file_never_says_localhost(name: str) -> None:
    """Deploy files write 127.0.0.1, never localhost (Postfix consults DNS, not /etc/hosts)."""
    assert "localhost" not in (DEPLOY / name).read_text()


# --- keepalived ---------------------------------------------------------


def test_keepalived_config_test_passes(tmp_path: Path) -> None:
    """keepalived --config-test accepts keepalived.conf without a message."""
    keepalived = need("keepalived")
    out = run(
        keepalived,
        "--config-test",
        "-f",
        DEPLOY / "keepalived/keepalived.conf",
    )
    assert (0, "") == (out.returncode, out.stderr.strip())


def test_keepalived_misc_check_variant_parses(tmp_path: Path) -> None:
    """The commented MISC_CHECK variant, uncommented, is valid keepalived syntax."""
    keepalived = need("keepalived")
    text = (DEPLOY / "keepalived/keepalived.conf").read_text()
    start = text.index("    #   real_server")
    end = text.index("\n    #\n", start)
    block = "\n".join(
        line.replace("    #   ", "    ", 1)
        for line in text[start:end].splitlines()
    ).replace("198.51.100.11", "198.51.100.15")
    # The test machine has no keepalived_script user; root is enough to
    # check the syntax.
    text = text[:start] + block + text[end:]
    text = text.replace(
        "enable_script_security\n",
        "enable_script_security\n    script_user root\n",
    )
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    out = run(keepalived, "--config-test", "-f", conf)
    assert f"{MAILFILTER_BIN} --selftest --quick" in text
    assert (0, "") == (out.returncode, out.stderr.strip())


def test_keepalived_matches_seed_virtual_service() -> None:
    """VIP:25 uses wlc, persistence 120, IPIP tunnelling and an SMTP check per real server."""
    text = (DEPLOY / "keepalived/keepalived.conf").read_text()
    body = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    )
    assert re.search(r"virtual_server \S+ 25 \{", body)
    assert re.search(r"lb_algo wlc\b", body)
    assert re.search(r"lb_kind TUN\b", body)
    assert re.search(r"persistence_timeout 120\b", body)
    assert re.search(r"delay_loop 2\b", body)
    assert SEED_REAL_SERVERS == len(
        re.findall(r"real_server \S+ 25 \{\s*weight 1\s*SMTP_CHECK", body)
    )
    assert "vrrp_instance" in body


# --- ldirectord ---------------------------------------------------------


def parse_ldirectord(
    text: str,
) -> tuple[dict[str, str], list[dict[str, object]]]:
    """Global options and virtual services of an ldirectord.cf."""
    globals_: dict[str, str] = {}
    virtuals: list[dict[str, object]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        key, sep, value = line.strip().partition("=")
        assert sep, f"line {lineno}: no '=' in {raw!r}"
        if not raw[0].isspace():
            if key == "virtual":
                virtuals.append({"address": value, "real": []})
            else:
                assert not virtuals, (
                    f"line {lineno}: global {key} after a virtual"
                )
                globals_[key] = value
            continue
        assert virtuals, f"line {lineno}: indented line outside a virtual"
        if key == "real":
            virtuals[-1]["real"].append(value.split())  # type: ignore[union-attr]
        else:
            virtuals[-1][key] = value
    return globals_, virtuals


def test_ldirectord_has_the_seed_settings() -> None:
    """ldirectord.cf parses and carries the seed's timings, scheduler and SMTP check."""
    globals_, virtuals = parse_ldirectord(
        (DEPLOY / "ldirectord/ldirectord.cf").read_text()
    )
    assert ("10", "2", "no") == (
        globals_["checktimeout"],
        globals_["checkinterval"],
        globals_["quiescent"],
    )
    (smtp,) = virtuals
    assert str(smtp["address"]).endswith(":25")
    assert ("smtp", "negotiate", "wlc", "120", "tcp") == tuple(
        smtp[k]
        for k in (
            "service",
            "checktype",
            "scheduler",
            "persistent",
            "protocol",
        )
    )
    reals = smtp["real"]
    assert SEED_REAL_SERVERS == len(reals)  # type: ignore[arg-type]
    assert all(r[0].endswith(":25") and r[1] == "ipip" for r in reals)  # type: ignore[union-attr]


def test_ldirectord_parser_rejects_a_line_without_equals() -> None:
    """The small parser is strict: a line without '=' fails."""
    with pytest.raises(AssertionError):
        parse_ldirectord("checktimeout 10\n")


# --- LVS real-server sysctl -----------------------------------------------


def test_realserver_sysctl_syntax_and_arp_settings() -> None:
    """Every line is `[-]key = value` under net.ipv4.conf, with ARP settings for all and the VIP interfaces."""
    settings = {}
    for raw in (
        (DEPLOY / "lvs/realserver.sysctl.conf").read_text().splitlines()
    ):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = re.fullmatch(
            r"(-?)(net\.ipv4\.conf\.[a-z0-9]+\.[a-z_]+) = (\S+)", line
        )
        assert m, f"bad sysctl line: {raw!r}"
        settings[m.group(2)] = m.group(3)
    assert "1" == settings["net.ipv4.conf.all.arp_ignore"]
    assert "2" == settings["net.ipv4.conf.all.arp_announce"]
    assert "0" == settings["net.ipv4.conf.tunl0.rp_filter"]
    for key in settings:
        # Keys must exist on a Linux with the ipip module (all/lo/eth0 style).
        assert Path("/proc/sys", *key.split(".")[:3]).exists()


# --- haproxy ------------------------------------------------------------


def test_haproxy_config_is_valid() -> None:
    """haproxy -c accepts haproxy.cfg, which uses option smtpchk."""
    haproxy = need("haproxy")
    cfg = DEPLOY / "haproxy/haproxy.cfg"
    out = run(haproxy, "-c", "-f", cfg)
    assert 0 == out.returncode, out.stdout + out.stderr
    assert "option smtpchk" in cfg.read_text()


# --- systemd ------------------------------------------------------------


def systemd_copy(tmp_path: Path) -> Path:
    """The units in a temp dir, the mailfilter binary path made real.

    systemd-analyze verify insists that ExecStart binaries exist; the
    virtualenv path is site-specific, so it points at a stub here. Every
    other line is verified as shipped.
    """
    stub = tmp_path / "bin" / "mailfilter"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    for unit in (DEPLOY / "systemd").iterdir():
        (units / unit.name).write_text(
            unit.read_text().replace(MAILFILTER_BIN, str(stub))
        )
    return units


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify reports nothing for the three units."""
    analyze = need("systemd-analyze")
    units = systemd_copy(tmp_path)
    names = [
        "mailfilter.service",
        "mailfilter-quarantine-clean.service",
        "mailfilter-quarantine-clean.timer",
    ]
    out = run(analyze, "verify", *(units / n for n in names))
    assert (0, "") == (out.returncode, out.stderr.strip())


def unit_values(name: str, key: str) -> list[str]:
    """All values of one key in a unit file."""
    prefix = key + "="
    return [
        line[len(prefix) :]
        for line in (DEPLOY / "systemd" / name).read_text().splitlines()
        if line.startswith(prefix)
    ]


def test_mailfilter_unit_is_hardened() -> None:
    """The service runs unprivileged, read-only except its state dir, with the required sandboxing."""
    want = {
        "Type": "exec",
        "User": "mailfilter",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/mailfilter",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "MemoryDenyWriteExecute": "yes",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    got = {key: unit_values("mailfilter.service", key)[0] for key in want}
    assert want == got
    assert "@system-service" in unit_values(
        "mailfilter.service", "SystemCallFilter"
    )
    (pre,) = unit_values("mailfilter.service", "ExecStartPre")
    assert f"{MAILFILTER_BIN} check-config" in pre


def test_mailfilter_unit_matches_the_filter_settings() -> None:
    """SyslogIdentifier equals log_ident, and TimeoutStopSec exceeds the drain deadline."""
    config = pytest.importorskip("mailfilter.config")
    settings = config.load(shipped_toml())
    (ident,) = unit_values("mailfilter.service", "SyslogIdentifier")
    (stop,) = unit_values("mailfilter.service", "TimeoutStopSec")
    assert settings.log_ident == ident
    assert int(stop.removesuffix("s")) > settings.shutdown_timeout


def test_quarantine_clean_commands_expire_only_old_mail(
    tmp_path: Path,
) -> None:
    """The timer's find commands delete old cur/new files and stale tmp files, nothing else."""
    need("find")
    q = tmp_path / "quarantine"
    old, fresh, stale, pending = (
        q / "virus/cur/old",
        q / "spam/new/fresh",
        q / "virus/tmp/stale",
        q / "virus/tmp/pending",
    )
    for f in (old, fresh, stale, pending):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    subprocess.run(["touch", "-d", "40 days ago", old], check=True)
    subprocess.run(["touch", "-d", "2 days ago", stale], check=True)
    commands = unit_values("mailfilter-quarantine-clean.service", "ExecStart")
    assert 2 == len(commands)
    for command in commands:
        command = command.replace("/var/lib/mailfilter/quarantine", str(q))
        assert 0 == run(*shlex.split(command)).returncode
    assert (False, True, False, True) == tuple(
        f.exists() for f in (old, fresh, stale, pending)
    )


# --- clamd and spamd ------------------------------------------------------


def clamd_options() -> dict[str, str]:
    """Option -> value of the clamd snippet."""
    out = {}
    for line in (
        (DEPLOY / "clamav/clamd.conf.snippet").read_text().splitlines()
    ):
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def test_clamd_snippet_parses(tmp_path: Path) -> None:
    """clamconf reads the snippet as a clamd.conf without an error."""
    clamconf = need("clamconf")
    shutil.copy(DEPLOY / "clamav/clamd.conf.snippet", tmp_path / "clamd.conf")
    (tmp_path / "freshclam.conf").write_text("")
    out = run(clamconf, "-c", tmp_path)
    assert 0 == out.returncode
    assert "ERROR" not in out.stdout + out.stderr
    assert 'StreamMaxLength = "57671680"' in out.stdout


def spamd_options() -> list[str]:
    """The OPTIONS of spamd.default, as the shell would split them."""
    sh = need("sh")
    out = run(
        sh,
        "-c",
        f'. "{DEPLOY / "spamassassin/spamd.default"}" && printf %s "$OPTIONS"',
    )
    assert 0 == out.returncode, out.stderr
    return shlex.split(out.stdout)


def test_spamd_options_are_known_to_spamd() -> None:
    """Every long option in spamd.default is one spamd --help lists, and it listens on loopback."""
    spamd = need("spamd")
    known = run(spamd, "--help").stdout + run(spamd, "--help").stderr
    options = spamd_options()
    for opt in options:
        if opt.startswith("--"):
            assert opt.split("=")[0] in known
    assert "--listen=127.0.0.1:783" in options
    assert "--allowed-ips=127.0.0.1" in options


# --- Postfix ------------------------------------------------------------


def shipped_toml() -> str | None:
    """deploy/mailfilter.toml when the lead has added it."""
    path = DEPLOY / "mailfilter.toml"
    return str(path) if path.exists() else None


def postfix_dir(tmp_path: Path) -> Path:
    """A Postfix config dir: Debian's master.cf.dist + the snippets."""
    snippets = [
        DEPLOY / "postfix/main.cf.snippet",
        DEPLOY / "postfix/master.cf.snippet",
    ]
    missing = [str(p.relative_to(ROOT)) for p in snippets if not p.exists()]
    if missing:
        pytest.skip(f"not written yet: {', '.join(missing)}")
    need("postconf")
    dist = Path("/usr/share/postfix/master.cf.dist")
    if not dist.exists():
        pytest.skip(f"{dist} missing (Debian postfix package)")
    (tmp_path / "main.cf").write_text(
        "compatibility_level = 3.6\n" + snippets[0].read_text()
    )
    (tmp_path / "master.cf").write_text(
        dist.read_text() + snippets[1].read_text()
    )
    return tmp_path


def test_postconf_accepts_the_snippets(tmp_path: Path) -> None:
    """postconf -n and -P parse main.cf and master.cf built from the snippets without warnings."""
    conf = postfix_dir(tmp_path)
    for flag in ("-n", "-P", "-M"):
        out = run("postconf", "-c", conf, flag)
        assert (0, "") == (out.returncode, out.stderr.strip())


def master_services(conf: Path) -> dict[str, list[str]]:
    """service/type -> the master.cf fields, from postconf -M."""
    out = run("postconf", "-c", conf, "-M")
    services = {}
    for line in out.stdout.splitlines():
        fields = line.split()
        services[f"{fields[0]}/{fields[1]}"] = fields
    return services


def test_postfix_filter_chain(tmp_path: Path) -> None:
    """content_filter points at [127.0.0.1]:10024 and the 10025 listener is on 127.0.0.1 with no filter."""
    conf = postfix_dir(tmp_path)
    content_filter = run(
        "postconf", "-c", conf, "-h", "content_filter"
    ).stdout.strip()
    transport = content_filter.split(":", 1)[0]
    assert f"{transport}:[127.0.0.1]:10024" == content_filter
    services = master_services(conf)
    assert f"{transport}/unix" in services
    assert "127.0.0.1:10025/inet" in services
    params = run("postconf", "-c", conf, "-P").stdout.splitlines()
    assert "127.0.0.1:10025/inet/content_filter =" in params
    assert "127.0.0.1:10025/inet/mynetworks = 127.0.0.0/8" in params


def test_concurrency_chain(tmp_path: Path) -> None:
    """scan maxproc <= mailfilter max_connections <= clamd MaxThreads; spamd children and 10025 maxproc >= scan maxproc."""
    conf = postfix_dir(tmp_path)
    config = pytest.importorskip("mailfilter.config")
    settings = config.load(shipped_toml())
    services = master_services(conf)
    transport = run(
        "postconf", "-c", conf, "-h", "content_filter"
    ).stdout.split(":")[0]
    scan = int(services[f"{transport}/unix"][6])
    back = int(services["127.0.0.1:10025/inet"][6])
    children = next(
        int(o.split("=")[1])
        for o in spamd_options()
        if o.startswith("--max-children=")
    )
    assert (
        scan <= settings.max_connections <= int(clamd_options()["MaxThreads"])
    )
    assert scan <= children
    assert scan <= back


def test_clamd_stream_limit_covers_the_filter_size_limit() -> None:
    """clamd's StreamMaxLength is at least mailfilter's message_size_limit."""
    config = pytest.importorskip("mailfilter.config")
    settings = config.load(shipped_toml())
    value = clamd_options()["StreamMaxLength"]
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    limit = (
        int(value[:-1]) * units[value[-1]]
        if value[-1] in units
        else int(value)
    )
    assert settings.message_size_limit <= limit
