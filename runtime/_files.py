"""Files and folders Garrison creates: private to their owner, never through a planted link.

Everything Garrison writes holds payloads, errors or configuration, so a file it creates is
mode 0600 and a folder 0700 (the umask can only narrow that). A new file is opened with
``O_CREAT | O_EXCL | O_NOFOLLOW``: if anything already sits at the path (a file, or a
symbolic link another local user planted to make Garrison overwrite its target), the open
fails instead of writing through it. Temporary files get unpredictable names in the
destination folder and are renamed over the final name, which replaces a link rather than
following it.

Private to the runtime: every subpackage may import it; it is not part of the public API.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging.handlers
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o600
DIR_MODE = 0o700
_NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_private(path: str | os.PathLike[str], *, flags: int = os.O_WRONLY) -> int:
    """Create ``path`` as a new file of mode 0600 and return a descriptor open on it.

    Raises:
        FileExistsError: something (a file, a folder, a symbolic link, even a dangling
            one) is already at ``path``; nothing was written through it.
        OSError: the folder is missing or not writable.
    """
    return os.open(path, flags | _NEW, FILE_MODE)


def ensure_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 if nothing is there; True when it was created.

    For files another program then opens by name (SQLite's database, a lock file): call
    this first, so the file exists with the right mode before that program creates it
    with its own (SQLite uses 0644 less the umask). An existing file is left as it is,
    whatever it is: an operator may have linked the database elsewhere on purpose. A
    dangling symbolic link is not followed: that raises ``FileExistsError``.

    Raises:
        FileExistsError: ``path`` is a dangling symbolic link.
        OSError: the folder is missing or not writable.
    """
    if os.path.exists(path):
        return False
    try:
        os.close(create_private(path))
    except FileExistsError:
        if os.path.exists(path):  # created meanwhile by another process: fine
            return False
        raise
    return True


def ensure_private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` and any missing parents with mode 0700; existing folders are left as
    they are.

    Raises:
        FileExistsError: ``path`` or a parent exists and is not a folder.
        OSError: a parent is not writable.
    """
    folder = Path(path)
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:  # pragma: no cover - the root always exists
            break
        folder = folder.parent
    for item in reversed(missing):
        try:
            os.mkdir(item, DIR_MODE)
        except FileExistsError:
            if not item.is_dir():
                raise


def make_private(path: str | os.PathLike[str]) -> None:
    """Set an existing file Garrison wrote to mode 0600, without following a link.

    Raises:
        OSError: ``path`` is missing or is a symbolic link (``ELOOP``).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def open_private_append(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` open for appending: created 0600 if it is missing, never through a link.

    For log files. An existing regular file keeps its mode (the operator may have chosen
    a group-readable one); a symbolic link at ``path`` is refused.

    Raises:
        OSError: ``path`` is a symbolic link (``ELOOP``), is not a regular file, or
            cannot be opened.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "ab")


@contextlib.contextmanager
def private_temp_dir(folder: str | os.PathLike[str], prefix: str) -> Iterator[Path]:
    """A new folder of mode 0700 with an unpredictable name inside ``folder``, removed with
    everything in it at the end.

    For a program that creates files by name (SQLite writing a backup and its journal):
    nobody else can place anything inside it.

    Raises:
        OSError: ``folder`` is missing or not writable.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=folder))
    try:
        yield path
    finally:
        for child in path.iterdir():
            with contextlib.suppress(FileNotFoundError):
                child.unlink()
        with contextlib.suppress(OSError):
            path.rmdir()


@contextlib.contextmanager
def atomic_private_file(final: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Write a file of mode 0600 that appears at ``final`` whole or not at all.

    The data goes to a new file with an unpredictable name next to ``final`` (created
    ``O_EXCL``, so a planted link there is never followed), is flushed to disk, then renamed
    over ``final``: a link at ``final`` is replaced, not written through. On an error the
    temporary file is removed and ``final`` is untouched.

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    target = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file, or a folder's entries (a rename into it), to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A size-rotated log file created with mode 0600 and never opened through a link.

    Log lines carry item ids, topics and handler errors; the standard handler creates its
    files with mode 0644 (less the umask) and follows a link at the path. Rotation renames
    files (their mode goes with them) and opens the new one through here.
    """

    def _open(self) -> io.TextIOWrapper:
        return io.TextIOWrapper(
            open_private_append(self.baseFilename),
            encoding=self.encoding or "utf-8",
            errors=self.errors,
            write_through=True,
        )
