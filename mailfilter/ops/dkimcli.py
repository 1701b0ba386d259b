"""`mailfilter dkim genkey|check DOMAIN SELECTOR`: DKIM keys for signing.

genkey writes DIR/DOMAIN/SELECTOR.key (mode 0600, never over an existing
key) and prints the TXT record to publish at
SELECTOR._domainkey.DOMAIN. check looks that record up with the
configured DNS servers and says whether it publishes our key: exit 0 when
it does, 1 when it does not or is missing, 2 for a usage or DNS problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from mailfilter import config as configmod
from mailfilter.auth import keystore
from mailfilter.auth.dns import Budget, Resolver, TempError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mailfilter dkim",
        description="DKIM signing keys: generate, or check the DNS record.",
    )
    p.add_argument("action", choices=("genkey", "check"))
    p.add_argument("domain")
    p.add_argument("selector")
    p.add_argument(
        "--ed25519",
        action="store_true",
        help="genkey: an Ed25519 key instead of RSA 2048",
    )
    p.add_argument("--config", help="TOML settings file")
    p.add_argument("--dkim-keys", help="key directory (setting dkim_keys)")
    p.add_argument(
        "--dns-servers",
        action="append",
        help="check: DNS server HOST[:PORT] (setting dns_servers)",
    )
    return p


def main(argv: list[str]) -> int:
    """Run the dkim subcommand; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        config = configmod.load(
            args.config,
            {"dkim_keys": args.dkim_keys, "dns_servers": args.dns_servers},
        )
    except configmod.ConfigError as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2
    root = Path(config.dkim_keys)
    try:
        path = keystore.key_path(root, args.domain, args.selector)
        if args.action == "genkey":
            record = keystore.generate(
                root, args.domain, args.selector, ed25519=args.ed25519
            )
            print(f"; key written to {path} (mode 0600)")
            print(_zone_line(args.selector, args.domain, record))
            return 0
        key = keystore.read_key(path, args.domain.lower())
    except FileExistsError:
        print(f"mailfilter: {path} exists; not replaced", file=sys.stderr)
        return 2
    except (OSError, keystore.KeyFileError) as exc:
        print(f"mailfilter: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_check(config, key))


async def _check(config: configmod.Config, key: keystore.SigningKey) -> int:
    name = f"{key.selector}._domainkey.{key.domain}"
    want = _tags(keystore.public_record(key))
    resolver = Resolver(list(config.dns_servers), config.dns_timeout)
    try:
        texts = await resolver.txt(name, Budget(config.dns_budget, 2))
    except TempError as exc:
        print(f"mailfilter: {name}: DNS did not answer: {exc}")
        return 2
    if not texts:
        print(f"{name}: no TXT record; publish:")
        print(
            _zone_line(key.selector, key.domain, keystore.public_record(key))
        )
        return 1
    found = _tags(texts[0])
    if found.get("p") == want["p"] and found.get("k", "rsa") == want["k"]:
        print(f"{name}: the record matches the key ({want['k']})")
        return 0
    print(f"{name}: the record does NOT match the key; it should be:")
    print(_zone_line(key.selector, key.domain, keystore.public_record(key)))
    return 1


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def _zone_line(selector: str, domain: str, record: str) -> str:
    """The record as a zone-file line (strings of at most 255 bytes)."""
    chunks = [record[i : i + 250] for i in range(0, len(record), 250)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain}. IN TXT ( {quoted} )"
