"""The use lock: every open store holds it shared; ``restore`` takes it exclusive.

A restore swaps the database file. A process that opened the old file just before the
swap would go on writing into the file moved aside, and its work would be lost without an
error. So each :class:`~runtime.store.SQLiteStore` holds a shared ``flock`` on a sidecar
file (``<db>.lock``) from opening to closing, and a restore holds it exclusively from its
"is anyone using it?" check until the swapped file is confirmed: the check and the swap
are one step, and a store opening meanwhile waits (up to its busy timeout) or fails with
:class:`~runtime.StoreBusy`. The sidecar is never deleted (deleting a lock file lets two
processes lock two different files).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from runtime._errors import StoreBusy, StoreUnavailable

__all__ = ["exclusive_use", "lock_path", "shared_use"]

# Paths this thread holds exclusively: a restore confirms the new file by opening a store
# on it, which must not wait for the restore's own lock (other threads still do).
_local = threading.local()
_POLL_S = 0.02


def _held() -> set[Path]:
    held: set[Path] | None = getattr(_local, "held", None)
    if held is None:
        held = _local.held = set()
    return held


def lock_path(db: Path) -> Path:
    """The sidecar file locked for ``db``."""
    return db.with_name(db.name + ".lock")


def _open(db: Path) -> int:
    # Read-only is enough for flock, so every user who may read the database can take
    # the lock; a new sidecar gets the database's owner and group bits (a group the
    # operator chose), never read access for everyone else, and is never a link.
    try:
        mode = db.stat().st_mode & 0o660
    except OSError:
        mode = 0o600
    flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(lock_path(db), flags, mode)
    except OSError as exc:
        raise StoreUnavailable(f"cannot open {lock_path(db)}: {exc.strerror}") from exc


def shared_use(
    db: Path,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int | None:
    """Hold ``db``'s use lock shared; return the descriptor to close to let go.

    Waits up to ``timeout_s`` (by ``clock``) while a restore holds it. None when this
    thread itself holds it exclusively (the restore's own check of the file it put in
    place).

    Raises:
        StoreBusy: a restore held it for longer than ``timeout_s``.
        StoreUnavailable: the sidecar cannot be created (a read-only folder).
    """
    if db.resolve() in _held():
        return None
    fd = _open(db)
    deadline = clock() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if clock() >= deadline:
                os.close(fd)
                raise StoreBusy(
                    f"{db} is being restored (garrison restore holds {lock_path(db).name}); "
                    "open it again when the restore is done"
                ) from None
            sleep(_POLL_S)


@contextmanager
def exclusive_use(db: Path) -> Iterator[bool]:
    """Hold ``db``'s use lock exclusively inside the block; yields False, holding nothing,
    when an open store (in any process) holds it shared."""
    fd = _open(db)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        key = db.resolve()
        _held().add(key)
        try:
            yield True
        finally:
            _held().discard(key)
    finally:
        os.close(fd)
