"""Supervisor-level settings and snapshots: strategies, restart records, statistics."""

from __future__ import annotations

import enum

import msgspec

from supervisors._child import RestartReason

__all__ = ["AutoShutdown", "ChildCounts", "RestartRecord", "Strategy", "SupervisorStatistics"]


class Strategy(enum.StrEnum):
    """Which children are restarted when one of them has to be (OTP restart strategies)."""

    ONE_FOR_ONE = "one_for_one"
    """Only the child that ended."""
    ONE_FOR_ALL = "one_for_all"
    """All children: the others are stopped in reverse start order, then all started in
    order."""
    REST_FOR_ONE = "rest_for_one"
    """The child and the ones started after it: those are stopped in reverse order, then
    all are started again in order."""


class AutoShutdown(enum.StrEnum):
    """Whether significant children ending shuts the supervisor down (OTP ``auto_shutdown``)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


class RestartRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One restart, as kept (bounded) by ``restart_history()``.

    Attributes:
        child_id: the child whose end caused the restart.
        reason: why it ended.
        at: supervisor clock time of the restart decision.
        error_type: qualified name of the exception's type, if any.
        restarted: how many children were started again (more than 1 for group strategies).
    """

    child_id: str
    reason: RestartReason
    at: float
    error_type: str | None
    restarted: int


class SupervisorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a supervisor, as returned by ``statistics()``.

    Attributes:
        name: the supervisor's name.
        strategy: its restart strategy.
        running: whether ``run()`` is active.
        children: children it currently knows about.
        children_running: of those, how many are initialised and running.
        max_children: the bound on ``children`` (``None`` for a static supervisor, whose
            children are fixed at construction).
        restarts_total: restarts since construction.
        hangs_total: children cancelled for missing their heartbeat, since construction.
        escalations_total: times this supervisor gave up, since construction.
        history_size: entries in ``restart_history()``.
        history_cap: the bound on ``history_size``.
        abandoned_total: children abandoned since construction: still running when their
            stop deadline passed (see ``docs/supervision.md``, "Bounded stop").
        abandoned: ids of the children the latest stop of all children abandoned, in
            the order they were given up on (at most one entry per child).
    """

    name: str
    strategy: Strategy
    running: bool
    children: int
    children_running: int
    max_children: int | None
    restarts_total: int
    hangs_total: int
    escalations_total: int
    history_size: int
    history_cap: int
    abandoned_total: int = 0
    abandoned: tuple[str, ...] = ()


class ChildCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What ``count_children()`` returns (OTP ``supervisor:count_children``).

    Attributes:
        specs: children the supervisor lists, running or not.
        active: of those, how many have a running incarnation (starting, restarting after a
            backoff, running or stopping).
    """

    specs: int
    active: int
