"""Settings: one definition each; the shipped example is generated from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mailfilter import config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_example_is_generated_from_the_table():
    """deploy/mailfilter.toml is exactly `mailfilter show-config --example`."""
    assert (
        config.example() + "\n"
        == (REPO / "deploy/mailfilter.toml").read_text()
    )


def test_shipped_example_loads_to_the_defaults():
    """Loading the example gives the same values as no file at all."""
    from_file = config.load(str(REPO / "deploy/mailfilter.toml"))
    defaults = config.load(None)
    assert (
        config.show(defaults).splitlines()[1:]
        == config.show(from_file).splitlines()[1:]
    )


def test_every_setting_has_a_flag_and_a_field():
    """Each SETTINGS entry is a Config field with a --flag."""
    fields = set(config.Config.__dataclass_fields__) - {"source"}
    assert {s.name for s in config.SETTINGS} == fields
    assert all(s.flag.startswith("--") and s.help for s in config.SETTINGS)


def test_flags_override_the_file(tmp_path):
    """A flag beats the file, which beats the default."""
    path = tmp_path / "mf.toml"
    path.write_text('forward = "127.0.0.1:2525"\nmax_connections = 5\n')
    loaded = config.load(str(path), {"max_connections": 7, "forward": None})
    assert "127.0.0.1:2525" == loaded.forward
    assert 7 == loaded.max_connections


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "colour: unknown setting"),
        (
            'max_connections = "ten"\n',
            "max_connections: expected int, got str",
        ),
        ('forward = "nowhere"\n', "forward: 'nowhere': expected HOST:PORT"),
        ('listen = ["127.0.0.1:10024", "x"]\n', "listen[1]:"),
        ('clamd = "unix:relative"\n', "clamd:"),
        ('log_to = "file"\n', "log_to: must be syslog or stderr"),
        (
            "scan_timeout = 400\nforward_timeout = 300\n",
            "smtp_data_done_timeout",
        ),
        ("max_connections = [\n", "mf.toml"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, text, message):
    """An invalid file stops start-up with file and key named."""
    path = tmp_path / "mf.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_no_module_imports_the_data_folders():
    """policy/ and deploy/ are data: no code imports them.

    See docs/engineering-rules.md, "Policy is data".
    """
    for package in ("mailfilter", "maildir"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in ("policy", "deploy"), path
                    if package == "maildir":
                        assert name.split(".")[0] != "mailfilter", path
