"""Snapshots of mailboxes and actors, as ``statistics()`` returns them."""

from __future__ import annotations

import msgspec

from policies import PressureLevel

__all__ = ["ActorStatistics", "MailboxStatistics"]


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`Mailbox`.

    Attributes:
        name: the channel's name.
        depth: items buffered now (never more than ``capacity``).
        capacity: the bound.
        max_depth_seen: the highest depth ever reached.
        level: the pressure level now.
        degraded: whether ``degrade`` is in force.
        closed: whether :meth:`Mailbox.close` was called.
        transitions: level changes so far.
        sent: items accepted into the buffer.
        received: items taken out by receivers.
        shed: items dropped by the ``shed`` action (buffered or incoming).
        rejected: sends refused with ``PressureRejected``.
        throttled: times a sender had to wait for (or, without waiting, was refused) a
            throttle token.
        waiting_senders: senders blocked for room now.
        waiting_receivers: receivers blocked for an item now.
    """

    name: str
    depth: int
    capacity: int
    max_depth_seen: int
    level: PressureLevel
    degraded: bool
    closed: bool
    transitions: int
    sent: int
    received: int
    shed: int
    rejected: int
    throttled: int
    waiting_senders: int
    waiting_receivers: int


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of an :class:`Actor`.

    Attributes:
        name: the actor's name.
        running: whether an incarnation is running now.
        incarnations: how many times it was started (restarts = ``incarnations - 1``).
        handled: messages handled successfully (casts and calls).
        failed: messages whose handler raised or timed out.
        calls: ``call`` requests made.
        call_timeouts: calls that got no reply in time.
        skipped: requests not handled because their caller had already given up.
        mailbox: the mailbox's statistics.
        resumed: failed messages after which the actor went on (``Directive.RESUME``).
        down: why the actor is down for good now (a ``DownReason`` value), or ``None``.
        watches: live watches (see :meth:`Actor.watch`).
    """

    name: str
    running: bool
    incarnations: int
    handled: int
    failed: int
    calls: int
    call_timeouts: int
    skipped: int
    mailbox: MailboxStatistics
    resumed: int = 0
    down: str | None = None
    watches: int = 0
