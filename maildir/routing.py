"""Which folder a message goes to: spam flag, explicit folder, extension.

Shared by the `maildir-deliver` command and the LMTP server so that both
route alike. Order: a message flagged `X-Spam-Flag: YES` goes to the spam
folder when one is configured; else an explicit folder; else the recipient
extension (`user+folder`), sanitised by `folders.from_extension` (anything
unsafe means INBOX). Folders named by the sender side (extensions) are not
created unless the operator allows it, so strangers cannot make a user's
folder list grow; the spam and explicit folders are created on demand.
"""

from __future__ import annotations

from maildir import folders

_SPAM_HEADER = b"x-spam-flag"


def header_block(message: bytes) -> bytes:
    """The header section (up to the first empty line, LF or CRLF)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = message.find(sep)
        if end >= 0:
            return message[:end]
    return message


def is_spam(message: bytes) -> bool:
    """True if any X-Spam-Flag header says YES (SpamAssassin/amavis)."""
    unfolded = header_block(message).replace(b"\r\n", b"\n")
    unfolded = unfolded.replace(b"\n ", b" ").replace(b"\n\t", b" ")
    for line in unfolded.split(b"\n"):
        name, sep, value = line.partition(b":")
        if (
            sep
            and name.strip().lower() == _SPAM_HEADER
            and value.strip().upper() == b"YES"
        ):
            return True
    return False


def choose(
    message: bytes,
    *,
    folder: str | None = None,
    extension: str | bytes | None = None,
    spam_folder: str | None = None,
    create_extension_folders: bool = False,
) -> tuple[str | None, bool]:
    """(logical folder or None for INBOX, whether to create it if missing)."""
    if spam_folder and is_spam(message):
        return folders.from_extension(spam_folder), True
    if folder:
        return folders.from_extension(folder), True
    return folders.from_extension(extension), create_extension_folders


def strip_from_line(message: bytes) -> bytes:
    """Drop a leading mbox `From ` envelope line (Postfix local adds one)."""
    if message.startswith(b"From "):
        end = message.find(b"\n")
        return b"" if end < 0 else message[end + 1 :]
    return message
