"""DKIM private keys on disk: DIR/DOMAIN/SELECTOR.key, mode 0600.

A PEM file is an RSA key (rsa-sha256); a one-line base64 file is an
Ed25519 seed (ed25519-sha256), as dkimpy reads them. Every key of a domain
signs, so an RSA and an Ed25519 selector sign the same message side by
side (RFC 8463 §3: verifiers that lack Ed25519 still find the RSA one).
Keys are read once, at start and on SIGHUP, never per message.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SELECTOR = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{1,63}$"
)


class KeyFileError(ValueError):
    """A key file or a name is not usable; the message says which."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One selector of one domain."""

    domain: str
    selector: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes


def key_path(root: Path, domain: str, selector: str) -> Path:
    """Where the key of `selector` for `domain` lives (names checked)."""
    if not _DOMAIN.match(domain):
        raise KeyFileError(f"{domain!r}: not a domain name")
    if not _SELECTOR.match(selector):
        raise KeyFileError(
            f"{selector!r}: not a selector (letters, digits, -)"
        )
    return root / domain.lower() / f"{selector}.key"


def read_key(path: Path, domain: str) -> SigningKey:
    """One key file; KeyFileError names the file when it is not a key."""
    data = path.read_bytes()
    if data.startswith(b"-----BEGIN"):
        algorithm = b"rsa-sha256"
    else:
        try:
            seed = base64.b64decode(data.strip(), validate=True)
        except ValueError as exc:
            raise KeyFileError(f"{path}: neither PEM nor base64") from exc
        if len(seed) != 32:
            raise KeyFileError(f"{path}: an Ed25519 seed has 32 bytes")
        algorithm = b"ed25519-sha256"
    return SigningKey(domain, path.stem, algorithm, data)


def load(root: str) -> dict[str, list[SigningKey]]:
    """All keys under `root`, by lower-case domain ('' = signing off)."""
    keys: dict[str, list[SigningKey]] = {}
    if not root:
        return keys
    base = Path(root)
    if not base.is_dir():
        return keys
    for domain_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        domain = domain_dir.name.lower()
        for path in sorted(domain_dir.glob("*.key")):
            keys.setdefault(domain, []).append(read_key(path, domain))
    return keys


def generate(root: Path, domain: str, selector: str, *, ed25519: bool) -> str:
    """Write a new key with mode 0600; return its DNS TXT record text."""
    path = key_path(root, domain, selector)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if ed25519:
        import nacl.encoding
        import nacl.signing

        secret = nacl.signing.SigningKey(os.urandom(32))
        data = secret.encode(encoder=nacl.encoding.Base64Encoder) + b"\n"
    else:
        # dkimpy reads PKCS#1 ("BEGIN RSA PRIVATE KEY"), hence -traditional.
        data = subprocess.run(
            ["openssl", "genrsa", "-traditional", "2048"],
            check=True,
            capture_output=True,
        ).stdout
    # O_EXCL: never overwrite a key that DNS may already publish.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return public_record(read_key(path, domain))


def public_record(key: SigningKey) -> str:
    """The TXT record text that publishes `key`."""
    if key.algorithm == b"ed25519-sha256":
        import nacl.encoding
        import nacl.signing

        secret = nacl.signing.SigningKey(
            key.private.strip(), encoder=nacl.encoding.Base64Encoder
        )
        public = secret.verify_key.encode(
            encoder=nacl.encoding.Base64Encoder
        ).decode()
        return f"v=DKIM1; k=ed25519; p={public}"
    der = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"],
        input=key.private,
        check=True,
        capture_output=True,
    ).stdout
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
