"""Service settings: each defined once, with its default, flag and comment.

The table `SETTINGS` is the only place a setting exists
(docs/engineering-rules.md, Rule 8; Postfix's mail_params.h does the
same). The TOML file, the command-line flags, the
shipped example `deploy/mailfilter.toml` and `mailfilter show-config` are
all derived from it. Loading gives a frozen `Config`; a bad file stops
start-up with `file: key: problem`.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


class ConfigError(ValueError):
    """The configuration is invalid; the message names file and key."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: name, default and the comment shown to admins."""

    name: str
    default: Any
    help: str

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. --max-connections."""
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen",
        ["127.0.0.1:10024"],
        "Where Postfix hands mail over: HOST:PORT (SMTP) or lmtp:HOST:PORT "
        "(after-queue content_filter), milter:HOST:PORT or "
        "milter:unix:/path (smtpd_milters), proxy:HOST:PORT "
        "(smtpd_proxy_filter). Repeat for several listeners. Keep it on "
        "loopback.",
    ),
    Setting(
        "forward",
        "127.0.0.1:10025",
        "The Postfix listener that takes mail back (HOST:PORT or "
        "lmtp:HOST:PORT). Its maxproc must be >= max_connections.",
    ),
    Setting(
        "clamd",
        "unix:/var/run/clamav/clamd.ctl",
        "clamd address: unix:/path, HOST:PORT, or off (no virus scan; the "
        "policy's scanner-failure rule then decides).",
    ),
    Setting(
        "spamd",
        "127.0.0.1:783",
        "spamd address HOST:PORT, or off.",
    ),
    Setting(
        "policy",
        "/etc/mailfilter/policy.toml",
        "The policy file. When it is absent and not set, the default that "
        "ships in the package is used (`mailfilter show-policy` prints it).",
    ),
    Setting(
        "quarantine",
        "/var/lib/mailfilter/quarantine",
        "Quarantine root: one Maildir per kind (virus, banned, spam, ...).",
    ),
    Setting(
        "hostname",
        "",
        "Our host name in Received and X-Virus-Scanned; empty means the "
        "system's fully qualified name, looked up once at start.",
    ),
    Setting(
        "virus_scanned_header",
        "mailfilter at {domain}",
        "Value of X-Virus-Scanned; {domain} is the hostname's domain.",
    ),
    Setting(
        "log_ident",
        "amavis",
        "Syslog ident. 'amavis' keeps mailgraph and amavis-logwatch "
        "working unchanged; they select lines by this name.",
    ),
    Setting(
        "log_to",
        "syslog",
        "Where the per-message lines go: syslog (facility mail) or stderr.",
    ),
    Setting(
        "log_level",
        "info",
        "debug, info, warning or error.",
    ),
    Setting(
        "max_connections",
        20,
        "Concurrent SMTP sessions accepted (more get 421 4.3.2), and messages "
        "in progress, counting those whose client has gone: a DATA beyond "
        "it waits for a slot, then gets 451 4.3.2. Size the chain: Postfix "
        "maxproc <= this <= clamd MaxThreads, spamd children.",
    ),
    Setting(
        "max_recipients",
        1100,
        "Recipients per message; the next RCPT gets 452 4.5.3 (amavis).",
    ),
    Setting(
        "message_size_limit",
        52428800,
        "Bytes. Must exceed Postfix's message_size_limit plus our headers, "
        "or mail Postfix already accepted would bounce.",
    ),
    Setting(
        "scan_timeout",
        240.0,
        "Seconds for all scanners of one message together.",
    ),
    Setting(
        "clamd_timeout",
        120.0,
        "Seconds for one clamd INSTREAM.",
    ),
    Setting(
        "spamd_timeout",
        120.0,
        "Seconds for one spamd check.",
    ),
    Setting(
        "spam_cache_ttl",
        300.0,
        "Seconds a spam result is reused for the same message (bulk mail in "
        "separate transactions is scored once); 0 turns the cache off. The "
        "key ignores only our own Received line's id, recipient and time.",
    ),
    Setting(
        "spam_cache_size",
        2000,
        "Most spam results kept (about 5 KiB each with 30 rules).",
    ),
    Setting(
        "forward_timeout",
        300.0,
        "Seconds for the whole reinjection of one message. scan_timeout + "
        "forward_timeout must stay below Postfix's smtp_data_done_timeout "
        "(600 s by default), or Postfix retries a message we delivered.",
    ),
    Setting(
        "idle_timeout",
        480.0,
        "Seconds an idle Postfix connection is kept (amavis smtpd_timeout).",
    ),
    Setting(
        "shutdown_timeout",
        60.0,
        "On SIGTERM, seconds in-flight messages get to finish; the rest get "
        "421 and Postfix retries them.",
    ),
    Setting(
        "milter_discard",
        "drop",
        "Milter door only: a message every recipient's policy discards is "
        "dropped (drop), or kept in Postfix's hold queue (hold; `postsuper "
        "-H` releases it). Our quarantine copy is kept either way when the "
        "policy says so.",
    ),
    Setting(
        "metrics",
        "",
        "Prometheus endpoint HOST:PORT; empty turns it off. Keep it on "
        "loopback.",
    ),
    # Mail authentication and policy banks (mailfilter/auth/).
    Setting(
        "listen_originating",
        ["127.0.0.1:10026"],
        "Listeners of the ORIGINATING bank: mail our own users send "
        "(submission, mynetworks), as amavis's $policy_bank{'ORIGINATING'}. "
        "Every `listen` endpoint is the INBOUND bank. Empty: none.",
    ),
    Setting(
        "originating_policy",
        "",
        "Policy file of the ORIGINATING bank; empty means `policy`.",
    ),
    Setting(
        "originating_scanners",
        ["banned", "clamav", "spamassassin"],
        "Scanners of the ORIGINATING bank, among those configured "
        "(banned, clamav, spamassassin).",
    ),
    Setting(
        "inbound_verify",
        True,
        "INBOUND bank: check DKIM, ARC, SPF and DMARC and add one "
        "Authentication-Results field.",
    ),
    Setting(
        "inbound_sign",
        False,
        "INBOUND bank: DKIM-sign what passes (normally off).",
    ),
    Setting(
        "originating_verify",
        False,
        "ORIGINATING bank: check DKIM, ARC, SPF and DMARC (normally off).",
    ),
    Setting(
        "originating_sign",
        True,
        "ORIGINATING bank: DKIM-sign with every key of the From domain "
        "(or its nearest parent with keys); without a key the message "
        "passes unsigned and the log says so.",
    ),
    Setting(
        "inbound_dmarc_reject",
        "quarantine",
        "INBOUND bank: what a DMARC failure under the sender's p=reject "
        "does: none (header only), tag (subject tag), quarantine "
        "(discard with a quarantine copy) or reject (554, with a copy).",
    ),
    Setting(
        "originating_dmarc_reject",
        "none",
        "ORIGINATING bank: the same, when originating_verify is on.",
    ),
    Setting(
        "dkim_keys",
        "/etc/mailfilter/dkim",
        "DKIM private keys: DIR/DOMAIN/SELECTOR.key, mode 0600, written by "
        "`mailfilter dkim genkey`. Read at start and on SIGHUP.",
    ),
    Setting(
        "authserv_id",
        "",
        "authserv-id of our Authentication-Results field; empty means the "
        "hostname. Fields carrying it that arrive with a message are "
        "removed, so they cannot be forged.",
    ),
    Setting(
        "dns_servers",
        ["127.0.0.1"],
        "DNS servers for the checks, HOST or HOST:PORT: a local caching "
        "resolver (unbound) by default, as mail servers need one; empty "
        "means those of /etc/resolv.conf.",
    ),
    Setting(
        "dns_timeout",
        2.0,
        "Seconds one DNS server gets for one query before the next try.",
    ),
    Setting(
        "dns_budget",
        8.0,
        "Seconds all DNS lookups of one message may take together; past "
        "it the checks say temperror and the mail goes on.",
    ),
    Setting(
        "dns_lookups",
        40,
        "DNS lookups one message may make (SPF alone allows 10 terms).",
    ),
    Setting(
        "local_domains",
        [],
        "Our domains (amavis @local_domains_maps): spam header fields and "
        "subject tags go to recipients in these (and their subdomains) "
        "only. Empty: every recipient counts as local.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}

# The default policy, shipped as package data (policy/default.toml in the
# source tree is a link to it).
# List settings of mail authentication, kept as tuples in Config.
_AUTH_LISTS = (
    "listen_originating",
    "originating_scanners",
    "dns_servers",
    "local_domains",
)
BUILTIN_POLICY = Path(__file__).parent / "data" / "default-policy.toml"


@dataclass(frozen=True, slots=True)
class Config:
    """The effective settings (see SETTINGS for what each one means)."""

    listen: tuple[str, ...]
    forward: str
    clamd: str
    spamd: str
    policy: str
    quarantine: str
    hostname: str
    virus_scanned_header: str
    log_ident: str
    log_to: str
    log_level: str
    max_connections: int
    max_recipients: int
    message_size_limit: int
    scan_timeout: float
    clamd_timeout: float
    spamd_timeout: float
    spam_cache_ttl: float
    spam_cache_size: int
    forward_timeout: float
    idle_timeout: float
    shutdown_timeout: float
    milter_discard: str
    metrics: str
    listen_originating: tuple[str, ...]
    originating_policy: str
    originating_scanners: tuple[str, ...]
    inbound_verify: bool
    inbound_sign: bool
    originating_verify: bool
    originating_sign: bool
    inbound_dmarc_reject: str
    originating_dmarc_reject: str
    dkim_keys: str
    authserv_id: str
    dns_servers: tuple[str, ...]
    dns_timeout: float
    dns_budget: float
    dns_lookups: int
    local_domains: tuple[str, ...]
    source: str = "defaults"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags leave the file's value alone."""
    parser.add_argument("--config", help="TOML settings file")
    for setting in SETTINGS:
        kwargs: dict[str, Any] = {"default": None, "help": setting.help}
        if isinstance(setting.default, list):
            kwargs["action"] = "append"
        elif isinstance(setting.default, bool):
            kwargs["type"] = _flag_bool
        elif isinstance(setting.default, (int, float)):
            kwargs["type"] = type(setting.default)
        parser.add_argument(setting.flag, dest=setting.name, **kwargs)


def load(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the file, then flags (values that are not None)."""
    values = {s.name: s.default for s in SETTINGS}
    source = "defaults"
    if path:
        source = path
        values.update(_read_file(Path(path)))
    for name, value in (overrides or {}).items():
        if name in _BY_NAME and value is not None:
            values[name] = _check(source, name, value)
    for name in ("listen", *_AUTH_LISTS):
        values[name] = tuple(values[name])
    # No policy installed and none named: the default that ships inside
    # the package, so a fresh `pip install` runs. The path is shown by
    # show-config and logged at start-up, so it is never a surprise.
    if (
        values["policy"] == _BY_NAME["policy"].default
        and not Path(values["policy"]).exists()
    ):
        values["policy"] = str(BUILTIN_POLICY)
    _validate(source, values)
    return Config(**values, source=source)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return {key: _check(str(path), key, value) for key, value in data.items()}


def _check(source: str, key: str, value: Any) -> Any:
    setting = _BY_NAME.get(key)
    if setting is None:
        raise ConfigError(f"{source}: {key}: unknown setting")
    want = type(setting.default)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(
                f"{source}: {key}: expected true or false, "
                f"got {type(value).__name__}"
            )
        return value
    if (
        want is float
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        value = float(value)
    if not isinstance(value, want) or isinstance(value, bool):
        raise ConfigError(
            f"{source}: {key}: expected {want.__name__}, "
            f"got {type(value).__name__}"
        )
    if want is list and not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {key}: expected a list of strings")
    return value


def _validate(source: str, values: dict[str, Any]) -> None:
    from mailfilter.addresses import parse_endpoint

    endpoints = [("forward", values["forward"], False)]
    endpoints += [
        (f"listen[{i}]", text, False)
        for i, text in enumerate(values["listen"])
    ]
    endpoints += [
        (key, values[key], key == "clamd")
        for key in ("clamd", "spamd")
        if values[key] != "off"
    ]
    if values["metrics"]:
        endpoints.append(("metrics", values["metrics"], False))
    endpoints += [
        (f"listen_originating[{i}]", text, False)
        for i, text in enumerate(values["listen_originating"])
    ]
    for key, text, unix_ok in endpoints:
        try:
            parse_endpoint(text, unix_ok=unix_ok)
        except ValueError as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from exc
    if values["milter_discard"] not in ("drop", "hold"):
        raise ConfigError(f"{source}: milter_discard: must be drop or hold")
    _validate_auth(source, values)
    if values["log_to"] not in ("syslog", "stderr"):
        raise ConfigError(f"{source}: log_to: must be syslog or stderr")
    positive = ("max_connections", "max_recipients", "message_size_limit")
    for key in (*positive, "spam_cache_size"):
        if values[key] < 1:
            raise ConfigError(f"{source}: {key}: must be positive")
    if values["spam_cache_ttl"] < 0:
        raise ConfigError(f"{source}: spam_cache_ttl: must be 0 or more")
    if values["scan_timeout"] + values["forward_timeout"] >= 600:
        raise ConfigError(
            f"{source}: scan_timeout + forward_timeout must stay below "
            "Postfix's smtp_data_done_timeout (600 s)"
        )


def _validate_auth(source: str, values: dict[str, Any]) -> None:
    from mailfilter.decision.policy import DMARC_ACTIONS

    for key in ("inbound_dmarc_reject", "originating_dmarc_reject"):
        if values[key] not in DMARC_ACTIONS:
            raise ConfigError(
                f"{source}: {key}: one of {', '.join(DMARC_ACTIONS)}"
            )
    for name in values["originating_scanners"]:
        if name not in ("banned", "clamav", "spamassassin"):
            raise ConfigError(
                f"{source}: originating_scanners: unknown scanner {name!r}"
            )
    both = set(values["listen"]) & set(values["listen_originating"])
    if both:
        raise ConfigError(
            f"{source}: listen_originating: {min(both)} is also an "
            "INBOUND listener"
        )
    for key in ("dns_timeout", "dns_budget", "dns_lookups"):
        if values[key] <= 0:
            raise ConfigError(f"{source}: {key}: must be positive")


def example() -> str:
    """The commented example file, generated from SETTINGS."""
    import textwrap

    lines = [
        "# mailfilter settings (TOML). Generated by `mailfilter show-config",
        "# --example`; every key is optional and shows its default.",
        "",
    ]
    for setting in SETTINGS:
        lines.extend(f"# {text}" for text in textwrap.wrap(setting.help, 76))
        lines.append(f"# flag: {setting.flag}")
        lines.append(f"{setting.name} = {_toml(setting.default)}")
        lines.append("")
    return "\n".join(lines)


def show(config: Config) -> str:
    """Effective values, like `postconf -n`."""
    out = [f"# from {config.source}"]
    for field in dataclasses.fields(Config):
        if field.name != "source":
            value = getattr(config, field.name)
            out.append(f"{field.name} = {_toml(value)}")
    return "\n".join(out)


def _flag_bool(text: str) -> bool:
    """--flag yes|no|true|false (argparse's bool() takes "no" as true)."""
    word = text.lower()
    if word not in ("yes", "no", "true", "false"):
        raise ValueError(text)
    return word in ("yes", "true")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
