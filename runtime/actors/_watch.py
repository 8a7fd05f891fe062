"""Death watch on an actor (Akka ``watch`` -> ``Terminated``, OTP ``monitor`` -> ``'DOWN'``).

An actor is *down* when its life ends for good: its supervisor will not restart it
(``ChildSpec.on_down``), or it ran unsupervised and its ``run`` ended. A :class:`Watch`
fires once, with the :class:`supervisors.ChildDown` of that end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from supervisors import ChildDown

if TYPE_CHECKING:
    from runtime.actors._actor import Actor

__all__ = ["Watch"]

_log = logging.getLogger("garrison.actors")


class Watch:
    """One watch on an actor, from :meth:`Actor.watch`: fires once, at the actor's next
    down (at once if it is down already).

    Attributes:
        actor: the watched actor's name.
    """

    __slots__ = ("_actor", "_callback", "_down", "_event", "actor")

    def __init__(
        self, actor: Actor[Any, Any], callback: Callable[[ChildDown], object] | None
    ) -> None:
        self._actor = actor
        self.actor = actor.name
        self._callback = callback
        self._down: ChildDown | None = None
        # Created only when someone waits: most watches are callbacks or are polled.
        self._event: anyio.Event | None = None

    @property
    def down(self) -> ChildDown | None:
        """How the actor went down, or ``None`` while it has not (since the watch began)."""
        return self._down

    async def wait(self) -> ChildDown:
        """Wait for the actor to go down and return how (its :class:`~supervisors.ChildDown`;
        ``child_id`` is the child id given to :meth:`Actor.child_spec`).

        Cancellation: unbounded by itself; bound it with your own scope. Cancelling the
        wait leaves the watch in place (see :meth:`cancel`).
        """
        if self._down is None:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        assert self._down is not None
        return self._down

    def cancel(self) -> None:
        """Stop watching (OTP ``demonitor``): the callback is not called, :meth:`wait`
        keeps waiting. Frees the watch's slot in the actor's ``max_watchers``. Idempotent."""
        self._actor._watches.pop(self, None)

    def _fire(self, down: ChildDown) -> None:
        self._down = down
        if self._event is not None:
            self._event.set()
        if self._callback is not None:
            try:
                self._callback(down)
            except Exception:
                # The down is reported from the supervisor's control path: a watcher's
                # bug must not break it, nor keep the other watchers from their turn.
                _log.exception("actor %s: a watch callback raised", self.actor)
