"""The queue demo: a worker under injected faults, then a reconciliation of every item.

Items carry their fault in the payload so each outcome is predictable: ``flaky`` fails
its first attempt and then succeeds, ``poison`` raises a terminal error, ``hang`` never
finishes within the handler timeout. Whatever happens, every enqueued item must end
succeeded or dead-lettered; anything else is reported as unaccounted.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import msgspec

from policies import RetryPolicy
from runtime.store import ItemState, NewItem, Store, StoreConfig, WorkItem, open_store
from runtime.worker import TerminalError, Worker, WorkerConfig

FAULTS = (("flaky", 0.06), ("poison", 0.01), ("hang", 0.005))


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
    unaccounted: int
    dead_letters_by_reason: dict[str, int]
    faults_injected: dict[str, int]
    retries: int
    elapsed_s: float
    items_per_s: float
    drained: bool

    @property
    def ok(self) -> bool:
        """Every item is accounted for."""
        return self.unaccounted == 0 and self.enqueued == self.succeeded + self.dead_lettered


class DemoProgress(msgspec.Struct):
    """A live snapshot for the progress view."""

    elapsed_s: float
    enqueued: int
    succeeded: int
    failed: int
    in_flight: int
    depth: dict[str, int]


_decoder = msgspec.json.Decoder(DemoPayload)


class FaultyHandler:
    """The demo's handler: honest work with faults on schedule."""

    def __init__(self, hang_s: float) -> None:
        self.hang_s = hang_s

    async def __call__(self, item: WorkItem) -> None:
        payload = _decoder.decode(item.payload)
        if payload.fault == "poison":
            raise TerminalError(f"item {payload.n} is poison: payload cannot be processed")
        if payload.fault == "flaky" and item.attempt == 1:
            raise ConnectionError(f"item {payload.n}: upstream reset the connection")
        if payload.fault == "hang":
            await anyio.sleep(self.hang_s)
        await anyio.lowlevel.checkpoint()


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


async def _settled(store: Store) -> bool:
    depth = (await store.metrics(since_s=1.0)).depth
    return depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0


async def run_demo(
    db: Path,
    *,
    items: int = 3000,
    duration_s: float = 20.0,
    seed: int = 7,
    concurrency: int = 32,
    on_progress: Callable[[DemoProgress], None] | None = None,
) -> DemoReport:
    """Enqueue ``items`` over the first part of ``duration_s``, work them, reconcile."""
    config = StoreConfig(retry=RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0))
    payloads = plan(items, seed)
    handler_timeout = 0.25
    worker_config = WorkerConfig(
        concurrency=concurrency,
        lease_s=5.0,
        lease_batch=64,
        poll_interval_s=0.05,
        handler_timeout_s=handler_timeout,
        shutdown_timeout_s=2.0,
    )
    ids: list[str] = []
    started = anyio.current_time()
    async with open_store(db, config) as store:
        worker = Worker(store, FaultyHandler(hang_s=handler_timeout * 4), worker_config)

        async def produce() -> None:
            chunk, spread = 100, max(duration_s * 0.4, 0.1)
            pause = spread / max(1, len(payloads) // chunk)
            for start in range(0, len(payloads), chunk):
                batch = [
                    NewItem(topic=f"demo.{p.fault}", payload=msgspec.json.encode(p), key=str(p.n))
                    for p in payloads[start : start + chunk]
                ]
                ids.extend(r.id for r in await store.enqueue_many(batch))
                await anyio.sleep(pause)

        async def watch() -> None:
            while True:
                stats = worker.statistics()
                depth = (await store.metrics(since_s=max(duration_s, 1.0))).depth
                if on_progress is not None:
                    on_progress(
                        DemoProgress(
                            elapsed_s=anyio.current_time() - started,
                            enqueued=len(ids),
                            succeeded=stats.succeeded,
                            failed=stats.failed,
                            in_flight=stats.in_flight,
                            depth=depth,
                        )
                    )
                await anyio.sleep(0.25)

        drained = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as work:
                await work.start(worker.run)
                with anyio.move_on_after(duration_s + 5.0):
                    await produce()
                    # Other processes may hold items too, so only the database can tell.
                    while not await _settled(store):  # noqa: ASYNC110
                        await anyio.sleep(0.1)
                    drained = True
                worker.stop()
            tg.cancel_scope.cancel()

        states: Counter[str] = Counter()
        for item_id in ids:
            states[(await store.get(item_id)).state.value] += 1
        reasons: Counter[str] = Counter()
        window = anyio.current_time() - started + 60
        mine = set(ids)
        for letter in await store.dead_letters(since=store.now() - window, limit=items):
            if letter.item_id in mine:
                reasons[letter.reason.value] += 1
        retries = (await store.metrics(since_s=window)).retries
    elapsed = anyio.current_time() - started
    succeeded = states[ItemState.SUCCEEDED.value]
    dead = states[ItemState.DEAD_LETTERED.value]
    return DemoReport(
        db=str(db),
        enqueued=len(ids),
        succeeded=succeeded,
        dead_lettered=dead,
        unaccounted=len(ids) - succeeded - dead,
        dead_letters_by_reason=dict(sorted(reasons.items())),
        faults_injected=dict(sorted(Counter(p.fault for p in payloads).items())),
        retries=retries,
        elapsed_s=round(elapsed, 3),
        items_per_s=round(len(ids) / elapsed, 1) if elapsed > 0 else 0.0,
        drained=drained,
    )
