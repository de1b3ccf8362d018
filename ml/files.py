"""Listing a data set's folders safely: one bad entry becomes a reject with a reason, never an abort.

The symlink policy, in one place: a link is followed only when its target resolves inside the data
set root (``realpath``, so ``..`` and chains of links are judged by where they end). A link out of
the root (``x.wav -> /etc/passwd``, a class folder linked from elsewhere, ``-> /dev/zero``) is
rejected as ``outside_root`` without opening its target, so no byte from outside the root is read
or stored. A link loop or a dangling link is ``unreadable``. Reject details never quote file bytes.

Only names are listed here; nothing is decoded. Entries whose type the directory already reports
(regular file, folder) cost no extra system call, so listing 100k clips stays fast.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# Why an entry of a data set folder is rejected before decoding (beside ml.audio's decode reasons).
WALK_REASONS = {
    "outside_root": "a link that points outside the data set folder (not followed)",
    "not_a_file": "named like audio but not a regular file (a folder, a pipe, a device)",
    "bad_name": "the name is not valid UTF-8, so it cannot be stored or served",
    "unreadable": "the entry cannot be opened (a link loop, a dangling link, no permission)",
}


@dataclass
class Listing:
    """What one folder holds: usable file and folder names, the count of other files, and rejects."""

    files: list[str] = field(default_factory=list)  # regular files with a wanted extension, sorted
    folders: list[str] = field(default_factory=list)  # sub-folders (links inside the root included), sorted
    ignored: int = 0  # other regular files
    rejects: list[tuple[str, str, str]] = field(default_factory=list)  # (path, reason, detail)


def printable(name: str) -> str:
    """A file name as valid text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(root_real: str, target: str) -> bool:
    return target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def list_folder(folder: Path, root: Path, prefix: str, extensions: tuple[str, ...]) -> Listing:
    """List ``folder`` (``prefix`` is its path relative to ``root``, '' for the root itself).

    Hidden entries are skipped. Files named with one of ``extensions`` that cannot be used, and
    folders that cannot be, come back as ``(path, reason, detail)`` rejects (reasons: ``WALK_REASONS``).
    Raises ``OSError`` when ``folder`` itself cannot be listed.
    """
    root_real = os.path.realpath(root)
    out = Listing()
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda de: de.name)
    for de in entries:
        if de.name.startswith("."):
            continue
        rel = f"{prefix}/{printable(de.name)}" if prefix else printable(de.name)
        wanted = de.name.lower().endswith(extensions)
        try:
            if de.is_symlink():
                target = os.path.realpath(de.path, strict=True)  # OSError on a loop or a dangling link
                if not _inside(root_real, target):
                    out.rejects.append((rel, "outside_root", "the link points outside the data set folder; "
                                        "links are followed only inside it"))
                    continue
                mode = os.stat(target).st_mode
            elif de.is_file(follow_symlinks=False):
                mode = stat.S_IFREG
            elif de.is_dir(follow_symlinks=False):
                mode = stat.S_IFDIR
            else:
                mode = de.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            out.rejects.append((rel, "unreadable", f"cannot open it: {exc.strerror or type(exc).__name__}"))
            continue
        if stat.S_ISDIR(mode) and not wanted:
            if _valid_utf8(de.name):
                out.folders.append(de.name)
            else:
                out.rejects.append((rel, "bad_name", "the folder name is not valid UTF-8"))
        elif stat.S_ISDIR(mode):
            out.rejects.append((rel, "not_a_file", "a folder named like an audio file"))
        elif not wanted:
            out.ignored += stat.S_ISREG(mode)
        elif not stat.S_ISREG(mode):
            out.rejects.append((rel, "not_a_file", f"{_kind(mode)}, not a regular file"))
        elif not _valid_utf8(de.name):
            out.rejects.append((rel, "bad_name", "the file name is not valid UTF-8"))
        else:
            out.files.append(de.name)
    return out


def inside_root(path: Path | str, root: Path | str) -> bool:
    """True when ``path`` lies inside ``root``, both with every link resolved."""
    return _inside(os.path.realpath(root), os.path.realpath(path))
