"""Acting on pressure: a gauge per channel turns depth samples into levels (by the pure
policy), reports every transition, and carries out throttling."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from policies import PressureAction, PressureLevel, PressurePolicy
from runtime import telemetry
from runtime.store import Store


class PressureGauge:
    """The pressure level of one channel (``queue`` for the durable queue, ``intake``...).

    Every transition is a span, a counter and a log line (``runtime.telemetry``) and an
    audit row (``pressure_transition``).
    """

    def __init__(self, channel: str, policy: PressurePolicy, store: Store) -> None:
        self.channel = channel
        self.policy = policy
        self.store = store
        self.level = PressureLevel.NORMAL
        self.depth = 0
        self.transitions = 0
        self.actions: tuple[PressureAction, ...] = tuple(policy.actions_for(self.level))
        self._bucket = policy.token_bucket()

    async def update(self, depth: int, capacity: int) -> PressureLevel:
        """Take a depth sample; report a transition if the level changed."""
        self.depth = depth
        new = self.policy.next_level(self.level, depth, capacity)
        if new is not self.level:
            old, self.level = self.level, new
            self.actions = tuple(self.policy.actions_for(new))
            self.transitions += 1
            await self._report(old, new, depth)
        return self.level

    async def _report(self, old: PressureLevel, new: PressureLevel, depth: int) -> None:
        actions: Sequence[str] = [a.value for a in self.actions]
        telemetry.pressure_transition(
            channel=self.channel,
            from_level=old.value,
            to_level=new.value,
            depth=depth,
            actions=actions,
        )
        await self.store.record_event(
            "pressure_transition",
            {
                "channel": self.channel,
                "from": old.value,
                "to": new.value,
                "depth": depth,
                "actions": list(actions),
            },
        )

    async def throttle(self) -> None:
        """Wait for a token of the throttle rate."""
        while True:
            allowed, wait_s, self._bucket = self._bucket.take(anyio.current_time())
            if allowed:
                return
            await anyio.sleep(wait_s)

    def shed_target(self, capacity: int) -> int:
        """The depth shedding brings the channel down to: where critical is left."""
        return self.policy.leave_depth(PressureLevel.CRITICAL, capacity)

    def note_shed(self, count: int, topic: str = "*") -> None:
        """Count shed items in telemetry, with one warning line for the lot."""
        telemetry.items_shed(topic, count, f"{self.channel}_{self.level.value}", log=True)

    def note_rejected(self, topic: str) -> None:
        """Count a rejected submission in telemetry."""
        telemetry.item_rejected(topic, f"pressure_{self.channel}_{self.level.value}")
