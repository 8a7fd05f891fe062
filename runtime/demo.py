"""``garrison demo``: a supervised pipeline on the embedded SQLite queue, under faults.

Items carry their fault in the payload so every outcome can be reconciled:

* ``crash``: the handler raises on the first attempt and, with let-it-crash, takes its
  worker down; the partition's supervisor restarts it (restart reason ``exception``) and
  the item is retried.
* ``hang``: the handler stops responding on the first attempt; the worker misses its
  heartbeat and is cancelled and restarted (reason ``hang``); the item's lease expires
  and it runs again.
* ``poison``: a terminal error, dead-lettered at once (``terminal_error``).
* ``sink_flaky``: the sink fails once, then the in-place retry delivers.
* ``sink_timeout``: the sink never answers; every attempt times out and the item is
  dead-lettered with reason ``timeout``.
* a burst of low-priority items pushes the queue into ``critical``: the lowest-priority
  waiting items are shed (dead-lettered as ``shed``) and submissions are rejected.

At the end: enqueued = succeeded + dead-lettered + shed, or the run fails.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec

from policies import Backoff, PressureLevel, PressurePolicy, RestartPolicy, RetryPolicy
from runtime._errors import PressureRejected
from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig, PipelineStatistics
from runtime.store import (
    DeadReason,
    ItemState,
    NewItem,
    Store,
    StoreConfig,
    WorkItem,
    open_store,
)
from runtime.worker import TerminalError
from supervisors import heartbeat

FAULTS = (
    ("crash", 0.02),
    ("hang", 0.004),
    ("poison", 0.01),
    ("sink_flaky", 0.03),
    ("sink_timeout", 0.004),
)


class DemoPayload(msgspec.Struct):
    """The payload of a demo item."""

    n: int
    fault: str


class DemoReport(msgspec.Struct):
    """The reconciliation at the end of a demo run."""

    db: str
    enqueued: int
    succeeded: int
    dead_lettered: int
    shed: int
    unaccounted: int
    rejected_submissions: int
    dead_letters_by_reason: dict[str, int]
    faults_injected: dict[str, int]
    restarts_by_reason: dict[str, int]
    pressure_transitions: list[str]
    max_queue_depth: int
    elapsed_s: float
    items_per_s: float
    drained: bool

    @property
    def ok(self) -> bool:
        """Every item is accounted for."""
        return self.unaccounted == 0 and self.drained


_decoder = msgspec.json.Decoder(DemoPayload)


class CrashFault(RuntimeError):
    """What the crashing handler raises."""


class DemoHandler:
    """Honest work, with faults on schedule.

    Items numbered ``burst_from`` and up (the burst) wait at ``gate`` until the demo has
    seen the queue's pressure rise (or ``gate_timeout_s`` passes): the burst then fills
    the queue on any machine, however fast its workers, instead of racing them. A waiting
    handler heartbeats, so it is not taken for a hung one.
    """

    def __init__(
        self,
        gate: anyio.Event | None = None,
        *,
        burst_from: int = 0,
        gate_timeout_s: float = 10.0,
    ) -> None:
        self.gate = gate
        self.burst_from = burst_from
        self.gate_timeout_s = gate_timeout_s

    async def _wait_for_gate(self, gate: anyio.Event) -> None:
        with anyio.move_on_after(self.gate_timeout_s):
            while not gate.is_set():
                heartbeat()
                with anyio.move_on_after(0.1):
                    await gate.wait()
        # Opened for every waiter at once: the bound is one wait, not one per item.
        gate.set()

    async def __call__(self, item: WorkItem, ctx: HandlerContext) -> bytes:
        payload = _decoder.decode(item.payload)
        if self.gate is not None and payload.n >= self.burst_from and not self.gate.is_set():
            await self._wait_for_gate(self.gate)
        first = item.attempt == 1
        if payload.fault == "poison":
            raise TerminalError(f"item {payload.n} is poison: payload cannot be processed")
        if payload.fault == "crash" and first:
            raise CrashFault(f"item {payload.n}: handler bug on first attempt")
        if payload.fault == "hang" and first:
            await anyio.sleep_forever()
        if not ctx.degraded:
            await anyio.lowlevel.checkpoint()  # optional enrichment, skipped when degraded
        return item.payload


class DemoSink:
    """An outbound sink that fails and times out on schedule."""

    name = "demo-sink"

    def __init__(self) -> None:
        self.delivered: set[str] = set()
        self._failed_once: set[str] = set()

    async def deliver(self, item: WorkItem, result: bytes | None, idempotency_key: str) -> None:
        payload = _decoder.decode(item.payload)
        if payload.fault == "sink_timeout":
            await anyio.sleep_forever()
        if payload.fault == "sink_flaky" and idempotency_key not in self._failed_once:
            self._failed_once.add(idempotency_key)
            raise ConnectionError("sink: 503 Service Unavailable")
        self.delivered.add(idempotency_key)


def plan(items: int, seed: int) -> list[DemoPayload]:
    """Which items get which fault (deterministic for a seed)."""
    rng = random.Random(seed)
    out = []
    for n in range(items):
        roll, fault = rng.random(), "none"
        for name, share in FAULTS:
            if roll < share:
                fault = name
                break
            roll -= share
        out.append(DemoPayload(n=n, fault=fault))
    return out


def demo_config(items: int) -> PipelineConfig:
    """Bounds sized so the burst reaches ``critical`` and faults resolve within seconds."""
    capacity = max(50, items // 4)
    return PipelineConfig(
        partitions=8,
        inbox_size=8,
        intake_size=32,
        lease_s=2.0,
        lease_batch=32,
        poll_interval_s=0.05,
        handler_timeout_s=5.0,
        heartbeat_timeout_s=0.6,
        sink_timeout_s=0.05,
        sink_retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05),
        let_it_crash=True,
        drain_timeout_s=5.0,
        queue_capacity=capacity,
        pressure=PressurePolicy(),
        pressure_interval_s=0.1,
        # Crashes here are scheduled faults among healthy items, not a storm: a short
        # backoff that starts over after a second up (the default's 0.1 s doubling to 5 s
        # would idle a partition for seconds after its third crash).
        worker_restarts=RestartPolicy(
            max_restarts=200,
            period_s=10.0,
            backoff=Backoff(min_s=0.01, max_s=0.2, multiplier=2.0, jitter=0.1, reset_after_s=1.0),
        ),
    )


async def run_demo(
    db: Path,
    *,
    items: int = 3000,
    duration_s: float = 20.0,
    seed: int = 7,
    on_progress: Callable[[PipelineStatistics, float], None] | None = None,
) -> DemoReport:
    """Submit ``items`` (and a burst) through a supervised pipeline, then reconcile."""
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0)
    config = demo_config(items)
    payloads = plan(items, seed)
    # More than the queue and the pipeline's memory hold together, so the queue reaches
    # its bound while the burst waits at the gate.
    burst_size = config.queue_capacity * 3 // 2 + config.capacity
    burst = [DemoPayload(n=items + i, fault="none") for i in range(burst_size)]
    gate = anyio.Event()
    ids: list[str] = []
    rejected = 0
    max_depth = 0
    started = anyio.current_time()
    async with open_store(db, StoreConfig(retry=retry)) as store:
        handler = DemoHandler(gate, burst_from=items)
        pipeline = Pipeline(store, handler, sinks=[DemoSink()], config=config, seed=seed)

        async def submit(batch: list[DemoPayload], priority: int) -> None:
            nonlocal rejected
            for p in batch:
                item = NewItem(
                    topic=f"demo.{p.fault}",
                    payload=msgspec.json.encode(p),
                    key=f"k{p.n % 97}",
                    priority=priority,
                )
                try:
                    ids.append((await pipeline.submit(item)).id)
                except PressureRejected:
                    rejected += 1

        async def flood() -> None:
            # Burst items wait at the gate, so the queue fills whatever the machine's
            # speed; a submission refused while it is full is tried again. Once the level
            # is critical (the gate opens), what was not submitted is left out.
            pending = list(reversed(burst))
            with anyio.move_on_after(handler.gate_timeout_s):
                while pending and not gate.is_set():
                    before = rejected
                    await submit([pending[-1]], 0)
                    if rejected == before:
                        pending.pop()
                    else:
                        await anyio.sleep(0.02)
            gate.set()

        async def produce() -> None:
            spread = max(duration_s * 0.4, 0.1)
            chunk = 50
            pause = spread / max(1, len(payloads) // chunk)
            for start in range(0, len(payloads), chunk):
                await submit(payloads[start : start + chunk], priority=5)
                if start == len(payloads) // 2 // chunk * chunk:
                    await flood()
                await anyio.sleep(pause)

        async def watch() -> None:
            nonlocal max_depth
            while True:
                max_depth = max(max_depth, pipeline.queue_pressure.depth)
                if pipeline.queue_pressure.level is PressureLevel.CRITICAL:
                    gate.set()
                if on_progress is not None:
                    on_progress(pipeline.statistics(), anyio.current_time() - started)
                await anyio.sleep(0.1)

        drained = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as work:
                await work.start(pipeline.run)
                with anyio.move_on_after(duration_s + 10.0):
                    await produce()
                    while not await _settled(store):  # noqa: ASYNC110 - the database decides
                        await anyio.sleep(0.1)
                    drained = True
                pipeline.stop()
            tg.cancel_scope.cancel()

        states: Counter[str] = Counter()
        for item_id in ids:
            states[(await store.get(item_id)).state.value] += 1
        window = anyio.current_time() - started + 1.0
        reasons = Counter((await store.metrics(since_s=window)).dead_letters_by_reason)
        transitions = [
            f"{t['channel']}: {t['from']} -> {t['to']} at {t['depth']}"
            for e in await store.events(kind="pressure_transition", since=store.now() - 3600)
            for t in [msgspec.json.decode(e.detail or "{}")]
        ]
        stats = pipeline.statistics()
    elapsed = anyio.current_time() - started
    succeeded = states[ItemState.SUCCEEDED.value]
    dead_total = states[ItemState.DEAD_LETTERED.value]
    shed = reasons.get(DeadReason.SHED.value, 0)
    hangs = stats.worker_hangs
    return DemoReport(
        db=str(db),
        enqueued=len(ids),
        succeeded=succeeded,
        dead_lettered=dead_total - shed,
        shed=shed,
        unaccounted=len(ids) - succeeded - dead_total,
        rejected_submissions=rejected,
        dead_letters_by_reason=dict(sorted(reasons.items())),
        faults_injected=dict(sorted(Counter(p.fault for p in payloads).items())),
        restarts_by_reason={"exception": stats.worker_restarts - hangs, "hang": hangs},
        pressure_transitions=transitions,
        max_queue_depth=max_depth,
        elapsed_s=round(elapsed, 3),
        items_per_s=round(len(ids) / elapsed, 1) if elapsed > 0 else 0.0,
        drained=drained and pipeline.drained,
    )


async def _settled(store: Store) -> bool:
    depth = await store.depth()
    return depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0
