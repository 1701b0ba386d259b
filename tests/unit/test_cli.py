"""The `mailfilter` command: one help that lists everything, a built-in
policy when none is installed, and `show-policy`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfilter import cli, config

REPO = Path(__file__).resolve().parents[2]


def test_help_lists_every_subcommand_with_one_line(capsys):
    """`mailfilter --help` names each subcommand, delegated ones too."""
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in (
        "check-config", "show-config", "show-policy", "release", "scan",
        "availability", "probe", "lmtp-deliver",
    ):
        assert f"\n  {name} " in out, name
    assert set(cli.COMMANDS) >= {"availability", "probe", "lmtp-deliver"}


@pytest.mark.parametrize("name", ["check-config", "show-config",
                                  "show-policy", "release", "scan"])
def test_each_subcommand_has_its_own_help(name, capsys):
    """`mailfilter NAME --help` explains that subcommand, not the service."""
    assert cli.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {cli.COMMANDS[name][0]}")
    assert name in out.splitlines()[0]


@pytest.mark.parametrize("name", ["availability", "probe", "lmtp-deliver"])
def test_delegated_subcommands_answer_help(name, capsys):
    """The subcommands that parse their own arguments answer --help too."""
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    assert f"mailfilter {name}" in capsys.readouterr().out


def test_builtin_policy_when_none_is_installed(tmp_path, monkeypatch):
    """No policy setting and no /etc file: the packaged default is used."""
    default = config._BY_NAME["policy"].default
    if Path(default).exists():
        pytest.skip(f"{default} exists on this machine")
    loaded = config.load(None)
    assert loaded.policy == str(config.BUILTIN_POLICY)
    assert config.BUILTIN_POLICY.is_file()
    # policy/default.toml in the source tree is that same file.
    assert (REPO / "policy/default.toml").resolve() == (
        config.BUILTIN_POLICY.resolve()
    )


def test_a_named_policy_that_is_missing_stays_an_error(tmp_path):
    """Only the unset default falls back; a typo in a path is not hidden."""
    missing = tmp_path / "nope.toml"
    loaded = config.load(None, {"policy": str(missing)})
    assert loaded.policy == str(missing)
    assert cli.main(["--policy", str(missing), "check-config"]) == 2


def test_show_policy_prints_the_policy_in_force(tmp_path, capsys):
    """show-policy prints the file in force, ready to redirect to /etc."""
    mine = tmp_path / "p.toml"
    mine.write_text((REPO / "policy/seed.toml").read_text())
    assert cli.main(["--policy", str(mine), "show-policy"]) == 0
    assert capsys.readouterr().out == mine.read_text()
