"""Settings of mail authentication and policy banks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mailfilter import config
from mailfilter.cli import parser

if TYPE_CHECKING:
    from pathlib import Path


def test_switches_are_booleans_in_files_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("inbound_verify = false\noriginating_sign = true\n")
    loaded = config.load(str(path))
    assert loaded.inbound_verify is False
    assert loaded.originating_sign is True
    args = parser().parse_args(["--inbound-verify", "no"])
    assert args.inbound_verify is False
    assert config.load(None, {"inbound_verify": False}).inbound_verify is False


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('inbound_verify = "no"', "expected true or false"),
        ("inbound_verify = 0", "expected true or false"),
        ('inbound_dmarc_reject = "bounce"', "one of none, tag"),
        ('originating_scanners = ["clamd"]', "unknown scanner"),
        ("dns_budget = 0", "must be positive"),
        ('listen_originating = ["127.0.0.1:10024"]', "also an INBOUND"),
        ('listen_originating = ["nowhere"]', "expected HOST:PORT"),
    ],
)
def test_bad_values_are_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(text + "\n")
    with pytest.raises(config.ConfigError, match=problem):
        config.load(str(path))


def test_defaults_follow_amavis_originating_bank() -> None:
    loaded = config.load(None)
    assert loaded.listen_originating == ("127.0.0.1:10026",)
    assert loaded.inbound_verify
    assert not loaded.inbound_sign
    assert loaded.originating_sign
    assert not loaded.originating_verify
    assert loaded.inbound_dmarc_reject == "quarantine"
    # Never the resolver of resolv.conf by surprise: a local one.
    assert loaded.dns_servers == ("127.0.0.1",)
