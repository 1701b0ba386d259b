"""`--listen` names the front door: milter:, proxy:, or none."""

from __future__ import annotations

import pytest

from mailfilter import config as configmod
from mailfilter.addresses import Endpoint, parse_endpoint


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:10024", Endpoint("smtp", "127.0.0.1", 10024)),
        (
            "milter:127.0.0.1:10026",
            Endpoint("smtp", "127.0.0.1", 10026, door="milter"),
        ),
        (
            "milter:unix:/run/mf/milter.sock",
            Endpoint("unix", path="/run/mf/milter.sock", door="milter"),
        ),
        ("proxy:[::1]:10024", Endpoint("smtp", "::1", 10024, door="proxy")),
    ],
)
def test_doors_parse_and_print_back(text, want):
    assert parse_endpoint(text) == want
    assert str(want) == text


@pytest.mark.parametrize(
    "text",
    ["proxy:unix:/x.sock", "milter:lmtp:127.0.0.1:1", "milter:x", "smtp:x"],
)
def test_bad_doors_refused(text):
    with pytest.raises(ValueError, match=r"unix socket|LMTP|HOST:PORT"):
        parse_endpoint(text)


def test_settings_accept_door_listeners():
    config = configmod.load(
        None, {"listen": ["milter:unix:/run/m.sock", "proxy:127.0.0.1:1"]}
    )
    assert config.listen == ("milter:unix:/run/m.sock", "proxy:127.0.0.1:1")
