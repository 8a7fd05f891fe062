"""Death watch: how a child ended for good (``ChildDown``) and how to wait for it (monitors).

A child is *down* when it ends and its supervisor will not start it again: it returned and
its restart type says so, it crashed and is not restarted, its supervisor stopped it
(``terminate_child``, the supervisor's own stop, the supervisor giving up), or it did not
stop within its shutdown deadline and was abandoned. A crash followed by a restart is not a
down: the child's life goes on. Each life ends with exactly one :class:`ChildDown`, handed
to ``ChildSpec.on_down`` and to every :class:`ChildMonitor` of that life.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import anyio

__all__ = ["ChildDown", "ChildMonitor", "DownReason"]


class DownReason(enum.StrEnum):
    """Why a child's life ended (OTP exit reasons, as far as they apply)."""

    NORMAL = "normal"
    """It returned and is not restarted (transient or temporary; OTP ``normal``)."""
    SHUTDOWN = "shutdown"
    """Its supervisor stopped it: ``terminate_child``, a group restart of a temporary child,
    the supervisor stopping or giving up. Also a child supervisor that gave up on its own
    children and is not restarted (OTP: a supervisor exits with ``shutdown``);
    ``ChildDown.error`` is then its :class:`~supervisors.SupervisorEscalation`."""
    CRASHED = "crashed"
    """It raised (or missed its heartbeat) and is not restarted: temporary, or the failure
    that made its supervisor give up, or a failed start."""
    ABANDONED = "abandoned"
    """Its supervisor asked it to stop and it was still running when the stop deadline
    passed; the supervisor stopped waiting for it. Its task may still be running (see
    ``docs/supervision.md``, "Bounded stop")."""
    NOPROC = "noproc"
    """Only for monitors: the child was not running when the monitor was taken (no such
    child, or it already ended and its last end is unknown); OTP's ``noproc``."""


@dataclass(frozen=True, slots=True)
class ChildDown:
    """The end of one child's life.

    Attributes:
        child_id: the child's id.
        reason: why it ended (:class:`DownReason`).
        error: the exception it ended with (crashed), a ``ChildHung`` for a missed
            heartbeat, the ``SupervisorEscalation`` of a child supervisor that gave up, or
            ``None`` (normal, stopped, abandoned, noproc).
    """

    child_id: str
    reason: DownReason
    error: BaseException | None = None


class _Watch:
    """One child life's down signal, shared by all its monitors (so monitors cost nothing in
    the supervisor: no per-monitor registration to bound or clean up)."""

    __slots__ = ("down", "event")

    def __init__(self) -> None:
        self.down: ChildDown | None = None
        self.event = anyio.Event()

    def fire(self, down: ChildDown) -> None:
        self.down = down
        self.event.set()


class ChildMonitor:
    """A watch on one child's current life, taken with ``monitor(child_id)``.

    :meth:`wait` returns the :class:`ChildDown` that ended the life, immediately if it has
    already ended (or with reason ``noproc`` if no such child was running when the monitor
    was taken). A restart after a crash does not end the life. Monitors hold no supervisor
    resources: dropping one is all "demonitor" takes.
    """

    __slots__ = ("_watch", "child_id")

    def __init__(self, child_id: str, watch: _Watch) -> None:
        self.child_id = child_id
        self._watch = watch

    @property
    def down(self) -> ChildDown | None:
        """The end of the watched life, or ``None`` while the child lives."""
        return self._watch.down

    async def wait(self) -> ChildDown:
        """Wait until the watched life ends and return how it ended.

        Cancellation: unbounded by itself; bound it with the caller's own scope
        (``anyio.fail_after``). Cancelling the wait changes nothing for the child.
        """
        down = self._watch.down
        if down is None:
            await self._watch.event.wait()
            down = self._watch.down
            assert down is not None
        return down


def noproc_monitor(child_id: str) -> ChildMonitor:
    """A monitor that has already fired with ``noproc``."""
    watch = _Watch()
    watch.fire(ChildDown(child_id, DownReason.NOPROC))
    return ChildMonitor(child_id, watch)
