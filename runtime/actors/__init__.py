"""Actors: supervised tasks with bounded, pressure-aware mailboxes.

* :class:`Mailbox` — a bounded FIFO channel acting on a :class:`policies.PressurePolicy`
  (throttle, degrade, shed lowest priority first, reject with
  :class:`runtime.PressureRejected`), with ``statistics()`` and transition/shed hooks.
* :class:`Actor` — a :class:`Behaviour` run under a supervisor (:meth:`Actor.child_spec`)
  with a mailbox that outlives restarts, ``cast``, ``call`` with a timeout, hang detection
  by heartbeat, handler timeouts, and state checkpoints restored after a restart.
* Lifecycle: ``started``/``pre_restart``/``stopped`` hooks and a :class:`Directive` per
  handler exception (``Behaviour.on_error``: resume, restart, stop, escalate).
* Death watch: callers of an actor that is down for good fail at once with
  :class:`ActorGone`; :meth:`Actor.watch` / :meth:`Actor.wait_down` say when and why.
* :class:`Registry` — names to running actors, passed explicitly.

See ``docs/actors.md``.
"""

from runtime.actors._actor import Actor
from runtime.actors._behaviour import (
    ActorContext,
    Behaviour,
    CheckpointStore,
    Directive,
    StopReason,
    from_handler,
)
from runtime.actors._errors import (
    ActorError,
    ActorGone,
    CallFailed,
    CallingSelf,
    CallTimeout,
    Escalated,
    HandlerTimeout,
    NameTaken,
    NotRegistered,
    RegistryFull,
    TooManyWatchers,
)
from runtime.actors._mailbox import Mailbox
from runtime.actors._pressure import PressureTransition, ShedHook, TransitionHook
from runtime.actors._registry import Registry
from runtime.actors._statistics import ActorStatistics, MailboxStatistics
from runtime.actors._watch import Watch

__all__ = [
    "Actor",
    "ActorContext",
    "ActorError",
    "ActorGone",
    "ActorStatistics",
    "Behaviour",
    "CallFailed",
    "CallTimeout",
    "CallingSelf",
    "CheckpointStore",
    "Directive",
    "Escalated",
    "HandlerTimeout",
    "Mailbox",
    "MailboxStatistics",
    "NameTaken",
    "NotRegistered",
    "PressureTransition",
    "Registry",
    "RegistryFull",
    "ShedHook",
    "StopReason",
    "TooManyWatchers",
    "TransitionHook",
    "Watch",
    "from_handler",
]
