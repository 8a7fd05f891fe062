"""The outbound actors: deliver handlers' results to the sinks, apart from the workers.

A worker hands a finished item to the outbound partition of its key and takes its next
item at once, so a slow sink holds up deliveries, not handling. Outbound partitions are
keyed like the workers, so the effects of one key are delivered in handling order; each is
a supervised child with a bounded inbox that outlives it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

import anyio
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from runtime.actors import Actor, ActorContext, from_handler
from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._sinks import (
    Sink,
    SinkFailed,
    deliver,
    effect_key,
    may_have_effects,
    origin_id,
)
from runtime.store import Store, WorkItem
from supervisors import ChildSpec, Restart, Supervisor, heartbeat, partition_for


class Handled(NamedTuple):
    """An item whose handler succeeded, on its way to the sinks and the settler."""

    item: WorkItem
    result: bytes | None
    queue_latency_s: float
    began: float
    handled_at: float = 0.0


Delivered = Callable[[Handled, list[str]], Awaitable[None]]
Undelivered = Callable[[Handled, SinkFailed], Awaitable[object]]


class Outbound:
    """``outbound_partitions`` supervised delivery actors keyed by item key.

    Each is an :class:`runtime.actors.Actor` (``outbound-<n>``) with a bounded mailbox
    that outlives its restarts, under a one-for-one supervisor with the workers' restart
    policy. An actor delivers a result to every sink in order, under ``sink_timeout_s``
    per try and the ``sink_retry`` policy, passing the effect's idempotency key; effects
    already in the store's ledger are skipped. Success goes to ``delivered`` with the
    effect keys to record; a sink that keeps failing goes to ``undelivered`` (the item's
    attempt fails).
    """

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        config: PipelineConfig,
        *,
        delivered: Delivered,
        undelivered: Undelivered,
        released: Callable[[WorkItem], None],
        rng: random.Random,
        name: str,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._store = store
        self._sinks = tuple(sinks)
        self._config = config
        self._delivered = delivered
        self._undelivered = undelivered
        self._released = released
        self._rng = rng
        self.effects_skipped = 0
        self.actors: list[Actor[Handled, None]] = [
            Actor(
                f"outbound-{index}",
                from_handler(self._deliver),
                capacity=config.outbound_inbox_size,
                # Sinks have their own timeouts and retries; a hang is the heartbeat's.
                handler_timeout=None,
                heartbeat_timeout=config.heartbeat_timeout_s,
            )
            for index in range(config.outbound_partitions)
        ]
        self.supervisor = Supervisor(
            [a.child_spec(restart=Restart.PERMANENT, shutdown_timeout=1.0) for a in self.actors],
            policy=config.restarts,
            name=f"{name}.outbound",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    def child_spec(self, id: str = "outbound") -> ChildSpec:
        """The outbound supervisor's spec under the pipeline's root supervisor."""
        return ChildSpec(id=id, start=self.supervisor.run, shutdown_timeout=math.inf)

    async def send(self, handled: Handled) -> None:
        """Queue ``handled`` for delivery, waiting while its actor's mailbox is full."""
        item = handled.item
        actor = self.actors[partition_for(item.key or item.id, len(self.actors))]
        try:
            actor.cast_nowait(handled)
        except anyio.WouldBlock:
            await actor.cast(handled)

    def close(self) -> None:
        """Close the mailboxes (after the pipeline stopped)."""
        for actor in self.actors:
            actor.close()

    async def _deliver(self, ctx: ActorContext, handled: Handled) -> None:
        try:
            keys = await self.deliver_all(handled.item, handled.result)
        except SinkFailed as exc:
            await self._undelivered(handled, exc)
        except BaseException:
            # The actor crashes (or is stopped) with this item in hand: let go of it, so
            # its lease expires and it runs again rather than being held for ever.
            self._released(handled.item)
            raise
        else:
            await self._delivered(handled, keys)

    async def deliver_all(self, item: WorkItem, result: bytes | None) -> list[str]:
        """Deliver ``result`` to every sink; return the keys of the effects delivered.

        Raises:
            SinkFailed: a sink failed every try. The effects delivered before it are
                recorded in the ledger first, so the item's retry skips them.
        """
        cfg = self._config
        check = may_have_effects(item)
        origin = await origin_id(self._store, item) if item.replay_of else item.id
        delivered: list[str] = []
        for sink in self._sinks:
            heartbeat()  # each finished delivery is progress, not a hang
            key = effect_key(sink, item, origin)
            if check and await self._store.has_effect(key):
                self.effects_skipped += 1
                continue
            try:
                await deliver(
                    sink,
                    item,
                    result,
                    key,
                    timeout_s=cfg.sink_timeout_s,
                    policy=cfg.sink_retry,
                    rng=self._rng,
                )
            except SinkFailed:
                for done in delivered:
                    await self._store.record_effect(done, item.id)
                raise
            delivered.append(key)
        return delivered
