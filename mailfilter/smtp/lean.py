"""aiosmtpd's SMTP protocol without its per-connection introspection.

aiosmtpd builds one protocol object per connection, and its __init__
finds the command methods, AUTH mechanisms and handler hooks by name with
`inspect.getmembers(self)`, `inspect.getmembers(handler)` and `dir()`:
every one of ~150 attributes is read, about 0.1 ms per connection, a
tenth of the filter's CPU when Postfix sends one message per connection.
Those names are fixed per class, so `LeanSMTP` answers `dir()` from a
list made once per class, and stands in a hook-less handler for None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# The prefixes of what aiosmtpd's __init__ looks up by name.
_LOOKED_UP = ("smtp_", "auth_", "handle_")
_names: dict[type, list[str]] = {}


class _NoHandler:
    """The handler slot when every command is a method of the protocol.

    With None, aiosmtpd would still read all of None's attributes; this
    object has none, so every `hasattr(handler, ...)` is False, as for None.
    """

    __slots__ = ()

    def __dir__(self) -> Iterable[str]:
        return ()


_NO_HANDLER = _NoHandler()


class LeanSMTP(SMTP):
    """SMTP whose construction reads only the names aiosmtpd looks up."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(
            _NO_HANDLER if handler is None else handler, **kwargs
        )

    def __dir__(self) -> Iterable[str]:
        """The command methods and AUTH mechanisms of this class only."""
        cls = type(self)
        names = _names.get(cls)
        if names is None:
            names = [n for n in dir(cls) if n.startswith(_LOOKED_UP)]
            _names[cls] = names
        return names
