"""Actors: supervised tasks with bounded, pressure-aware mailboxes.

* :class:`Mailbox` — a bounded FIFO channel acting on a :class:`policies.PressurePolicy`
  (throttle, degrade, shed lowest priority first, reject with
  :class:`runtime.PressureRejected`), with ``statistics()`` and transition/shed hooks.
* :class:`Actor` — a :class:`Behaviour` run under a supervisor (:meth:`Actor.child_spec`)
  with a mailbox that outlives restarts, ``cast``, ``call`` with a timeout, hang detection
  by heartbeat, handler timeouts, and state checkpoints restored after a restart.
"""

from runtime.actors._actor import (
    Actor,
    ActorContext,
    ActorStatistics,
    Behaviour,
    CheckpointStore,
    from_handler,
)
from runtime.actors._errors import ActorError, CallFailed, CallTimeout, HandlerTimeout
from runtime.actors._mailbox import (
    Mailbox,
    MailboxStatistics,
    PressureTransition,
    ShedHook,
    TransitionHook,
)

__all__ = [
    "Actor",
    "ActorContext",
    "ActorError",
    "ActorStatistics",
    "Behaviour",
    "CallFailed",
    "CallTimeout",
    "CheckpointStore",
    "HandlerTimeout",
    "Mailbox",
    "MailboxStatistics",
    "PressureTransition",
    "ShedHook",
    "TransitionHook",
    "from_handler",
]
