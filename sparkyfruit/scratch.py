"""The driver's scratch folders: staged weights and models, driver logs. One folder per user under the
temporary folder ($TMPDIR, else /tmp), mode 0700, so that no other user of the machine can plant a file the
workers would load, or read a log. The name is predictable (a driver log's path is printed, and staged files
are reused across runs); what makes it safe is the check that the folder is ours and private before use.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sparkyfruit.errors import ConfigError

PRIVATE = 0o700


def root() -> Path:
    """This user's scratch folder: $TMPDIR/sparkyfruit-<uid>."""
    return Path(tempfile.gettempdir()) / f"sparkyfruit-{os.getuid()}"


def folder(name: str) -> Path:
    """`root()/name`, made if missing, each level checked: a real folder (not a link), owned by this user,
    and not open to others (a folder of ours that is, from an older release, is closed). Raises ConfigError
    for a folder someone else owns or a link, which may have been planted."""
    path = root() / name
    for level in (root(), path):
        try:
            level.mkdir(mode=PRIVATE)
        except FileExistsError:
            pass
        _check_private(level)
    return path


def _check_private(path: Path) -> None:
    found = os.lstat(path)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        what = "is not a folder" if not stat.S_ISDIR(found.st_mode) else f"belongs to user id {found.st_uid}"
        raise ConfigError(
            f"the scratch folder {path} {what}; sparkyfruit keeps staged models and logs only in a private "
            "folder of its own user, so it did not use it.",
            "Remove it if it is yours, or set TMPDIR to a folder of your own.",
        )
    if stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(path, PRIVATE)
