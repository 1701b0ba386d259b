"""The ORIGINATING part of the Postfix recipe parses and is found by the
selftest's reading of postconf."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mailfilter.ops import postfixcheck

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def conf_dir(tmp_path: Path, *, submission: bool) -> Path:
    if not shutil.which("postconf", path="/usr/sbin:/usr/bin"):
        pytest.skip("postconf is not installed")
    dist = Path("/usr/share/postfix/master.cf.dist")
    if not dist.exists():
        pytest.skip(f"{dist} missing (Debian postfix package)")
    (tmp_path / "main.cf").write_text(
        "compatibility_level = 3.6\n"
        + (DEPLOY / "postfix/main.cf.snippet").read_text()
    )
    master = (
        dist.read_text() + (DEPLOY / "postfix/master.cf.snippet").read_text()
    )
    if submission:
        master += (DEPLOY / "postfix/submission.cf.snippet").read_text()
    (tmp_path / "master.cf").write_text(master)
    return tmp_path


def postconf(conf: Path, flag: str) -> str:
    out = subprocess.run(
        ["postconf", "-c", str(conf), flag], capture_output=True, text=True
    )
    assert (out.returncode, out.stderr.strip()) == (0, "")
    return out.stdout


def test_submission_feeds_the_originating_listener(tmp_path: Path) -> None:
    conf = conf_dir(tmp_path, submission=True)
    master, overrides = postconf(conf, "-M"), postconf(conf, "-P")
    assert postfixcheck.originating(master, overrides, 10026) == (
        "submission/inet"
    )
    assert postfixcheck.originating(master, overrides, 10027) == ""


def test_without_the_submission_snippet_nothing_feeds_it(
    tmp_path: Path,
) -> None:
    conf = conf_dir(tmp_path, submission=False)
    master, overrides = postconf(conf, "-M"), postconf(conf, "-P")
    assert postfixcheck.originating(master, overrides, 10026) == ""


def test_a_filter_to_a_transport_that_does_not_exist_is_not_enough() -> None:
    master = "submission inet n - y - - smtpd\n"
    overrides = (
        "submission/inet/content_filter = scan-orig:[127.0.0.1]:10026\n"
    )
    assert postfixcheck.originating(master, overrides, 10026) == ""
