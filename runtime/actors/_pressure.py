"""Pressure levels of a bounded channel: the level, its actions, and the depths where it moves.

:class:`_Levels` is the part of :class:`~runtime.actors.Mailbox` that follows the pure
:class:`~policies.PressurePolicy`: it keeps the current level and the two depths at which
the level changes, so the send and receive paths compare one integer instead of calling
into the policy, and it reports every change (telemetry and the ``on_transition`` hook).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

from policies import PressureAction, PressureLevel, PressurePolicy
from runtime import telemetry

__all__ = ["PressureTransition", "ShedHook", "TransitionHook"]

T = TypeVar("T")


class PressureTransition(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a channel's pressure level, as given to ``on_transition``.

    Attributes:
        channel: the channel's name.
        from_level: the level before.
        to_level: the level after.
        depth: items buffered when the level changed.
        capacity: the channel's bound.
        actions: the actions in force at ``to_level``.
    """

    channel: str
    from_level: PressureLevel
    to_level: PressureLevel
    depth: int
    capacity: int
    actions: tuple[PressureAction, ...]


TransitionHook = Callable[[PressureTransition], object]
"""Called with every level change, synchronously, at the moment it happens."""

ShedHook = Callable[[T, int], object]
"""Called with ``(item, priority)`` for every item the ``shed`` action drops."""


class _Levels:
    """Level bookkeeping of a channel of ``_capacity`` items under ``_policy``."""

    __slots__ = (
        "_actions",
        "_capacity",
        "_degrade",
        "_fall_below",
        "_level",
        "_name",
        "_on_transition",
        "_policy",
        "_reject",
        "_rise_at",
        "_shed",
        "_throttle",
        "_transitions",
    )

    def _init_levels(
        self,
        capacity: int,
        name: str,
        policy: PressurePolicy | None,
        on_transition: TransitionHook | None,
    ) -> None:
        self._capacity = capacity
        self._name = name
        self._policy = policy
        self._on_transition = on_transition
        self._level = PressureLevel.NORMAL
        self._actions: tuple[PressureAction, ...] = ()
        self._throttle = self._degrade = self._shed = self._reject = False
        # Without a policy the level never moves: no depth reaches either cut point.
        self._rise_at = capacity + 1
        self._fall_below = 0
        self._transitions = 0
        if policy is not None:
            self._enter(policy.next_level(PressureLevel.NORMAL, 0, capacity))

    def _relevel(self, depth: int) -> None:
        policy = self._policy
        assert policy is not None
        old = self._level
        new = policy.next_level(old, depth, self._capacity)
        if new is old:  # pragma: no cover - thresholds are exact; kept for safety
            return
        self._enter(new)
        self._transitions += 1
        actions = self._actions
        telemetry.pressure_transition(
            channel=self._name,
            from_level=old.value,
            to_level=new.value,
            depth=depth,
            actions=[a.value for a in actions],
        )
        if self._on_transition is not None:
            self._on_transition(
                PressureTransition(
                    channel=self._name,
                    from_level=old,
                    to_level=new,
                    depth=depth,
                    capacity=self._capacity,
                    actions=actions,
                )
            )

    def _enter(self, level: PressureLevel) -> None:
        """Make ``level`` current: its actions, and the depths at which it is left."""
        policy = self._policy
        assert policy is not None
        self._level = level
        self._actions = actions = tuple(policy.actions_for(level))
        self._throttle = PressureAction.THROTTLE in actions
        self._degrade = PressureAction.DEGRADE in actions
        self._shed = PressureAction.SHED in actions
        self._reject = PressureAction.REJECT in actions
        rank = _RANK[level]
        capacity = self._capacity
        # next_level is monotone in depth, so the depths where the level changes are two
        # cut points, found by bisection: below ``fall_below`` it falls, from ``rise_at``
        # it rises. Between them no call into the policy is needed.
        self._rise_at = _first(
            lambda d: _RANK[policy.next_level(level, d, capacity)] > rank, capacity
        )
        self._fall_below = _first(
            lambda d: _RANK[policy.next_level(level, d, capacity)] >= rank, capacity
        )


_RANK = {PressureLevel.NORMAL: 0, PressureLevel.ELEVATED: 1, PressureLevel.CRITICAL: 2}


def _first(pred: Callable[[int], bool], capacity: int) -> int:
    """The least depth in ``[0, capacity]`` where the monotone ``pred`` holds, else
    ``capacity + 1``."""
    lo, hi = 0, capacity + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
