"""maildir: stdlib-only Maildir/Maildir++ delivery for shared cluster mounts.

Public API: `deliver()` (one message into new/, safe with several hosts on
one Lustre/NFS mount), `create()`, `DeliveryError`, the folder helpers
(`create_folder`, `list_folders`, `remove_folder`, `folder_from_extension`)
and the `quota` module (Maildir++ `maildirsize`). Reading, flag changes
and index files belong to IMAP servers (Dovecot, Courier); this package
only writes complete files into new/ and never touches their state.
"""

from __future__ import annotations

from maildir.delivery import deliver
from maildir.errors import DeliveryError
from maildir.folders import (
    FolderNameError,
    create_folder,
    list_folders,
    remove_folder,
)
from maildir.folders import from_extension as folder_from_extension
from maildir.layout import create

# Not typing.TYPE_CHECKING: importing typing would cost more start-up
# time than the whole library; mypy honours any name TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from maildir import quota
    from maildir.clean import clean_tmp


def __getattr__(name: str) -> object:
    # quota and clean pull in dataclasses/re/shutil; loading them lazily
    # keeps `maildir-deliver` start-up close to the bare interpreter's.
    import importlib

    if name == "quota":
        return importlib.import_module("maildir.quota")
    if name == "clean_tmp":
        return importlib.import_module("maildir.clean").clean_tmp
    raise AttributeError(name)


__all__ = [
    "DeliveryError",
    "FolderNameError",
    "clean_tmp",
    "create",
    "create_folder",
    "deliver",
    "folder_from_extension",
    "list_folders",
    "quota",
    "remove_folder",
]
