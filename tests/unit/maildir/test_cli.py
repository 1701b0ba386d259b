"""`maildir-deliver` command line: --maildir DIR and the positional form."""

from __future__ import annotations

import io
import sys

import pytest

from maildir import cli, errors


def _deliver(monkeypatch, argv: list[str], message: bytes) -> int:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(message)))
    return cli.main(argv)


@pytest.mark.parametrize(
    "form",
    [
        lambda d: ["--maildir", d],
        lambda d: [f"--maildir={d}"],
        lambda d: [d],
        lambda d: ["--folder", "Work", d],
        lambda d: ["--", d],
    ],
    ids=["option", "option=", "positional", "options-then-dir", "dashdash"],
)
def test_both_forms_deliver_to_the_same_place(tmp_path, monkeypatch, form):
    """procmail/maildrop write `maildir-deliver MAILDIR`: same result."""
    box = tmp_path / "Maildir"
    rc = _deliver(monkeypatch, form(str(box)), b"Subject: x\n\nbody\n")
    assert rc == errors.EX_OK
    delivered = list(box.rglob("new/*"))
    assert len(delivered) == 1


@pytest.mark.parametrize(
    "argv",
    [["a", "b"], ["--maildir", "a", "b"], ["a", "--folder", "x"]],
    ids=["two-dirs", "option-and-dir", "option-after-dir"],
)
def test_ambiguous_command_lines_are_usage_errors(
    tmp_path, monkeypatch, argv, capsys
):
    """Two Maildirs, or options after the Maildir: EX_USAGE, nothing stored."""
    monkeypatch.chdir(tmp_path)
    assert _deliver(monkeypatch, argv, b"Subject: x\n\n") == errors.EX_USAGE
    assert "usage: maildir-deliver" in capsys.readouterr().err
    assert not list(tmp_path.rglob("new/*"))
