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
from functools import partial
from typing import Any, NamedTuple

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from runtime._loop import receive_within
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
from supervisors import ChildSpec, PartitionSupervisor, heartbeat


class Handled(NamedTuple):
    """An item whose handler succeeded, on its way to the sinks and the settler."""

    item: WorkItem
    result: bytes | None
    queue_latency_s: float
    began: float


Delivered = Callable[[Handled, list[str]], Awaitable[None]]
Undelivered = Callable[[Handled, SinkFailed], Awaitable[object]]


class Outbound:
    """``outbound_partitions`` supervised delivery actors keyed by item key.

    Each delivers a result to every sink in order, under ``sink_timeout_s`` per try and the
    ``sink_retry`` policy, passing the effect's idempotency key; effects already in the
    store's ledger are skipped. Success goes to ``delivered`` with the effect keys to
    record; a sink that keeps failing goes to ``undelivered`` (the item's attempt fails).
    """

    def __init__(
        self,
        store: Store,
        sinks: Sequence[Sink],
        config: PipelineConfig,
        *,
        delivered: Delivered,
        undelivered: Undelivered,
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
        self._rng = rng
        self.effects_skipped = 0
        self.partitions: PartitionSupervisor[Handled] = PartitionSupervisor(
            config.outbound_partitions,
            self._partition,
            inbox_size=config.outbound_inbox_size,
            policy=config.worker_restarts,
            name=f"{name}.outbound",
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )

    async def send(self, handled: Handled) -> None:
        """Queue ``handled`` for delivery, waiting while its partition's inbox is full."""
        key = handled.item.key or handled.item.id
        try:
            self.partitions.send_nowait(key, handled)
        except anyio.WouldBlock:
            await self.partitions.send(key, handled)

    def close(self) -> None:
        """Close the inboxes (after the pipeline stopped)."""
        self.partitions.close()

    def _partition(self, index: int, inbox: MemoryObjectReceiveStream[Handled]) -> ChildSpec:
        return ChildSpec(
            id=f"outbound-{index}",
            start=partial(self._run, inbox),
            heartbeat_timeout=self._config.heartbeat_timeout_s,
            shutdown_timeout=1.0,
        )

    async def _run(
        self, inbox: MemoryObjectReceiveStream[Handled], *, task_status: TaskStatus[Any]
    ) -> None:
        task_status.started()
        hb = self._config.heartbeat_timeout_s
        idle = math.inf if hb is None else hb / 2
        async with inbox:
            while True:
                heartbeat()
                try:
                    # Wake up now and then while idle, so an idle actor is not taken for hung.
                    handled = await receive_within(inbox, idle)
                except anyio.EndOfStream:
                    return
                if handled is None:
                    continue
                try:
                    keys = await self.deliver_all(handled.item, handled.result)
                except SinkFailed as exc:
                    await self._undelivered(handled, exc)
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
