"""The one engine: handler forms, the sync thread pool, event-driven leasing and waking,
batched lease extension, let-it-crash, restart backoff and strict key order."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from policies import RestartPolicy
from runtime._errors import ValidationFailed
from runtime.pipeline import (
    HandlerContext,
    KeyOrder,
    Outcome,
    Pipeline,
    PipelineConfig,
    ThreadPool,
    adapt_handler,
    takes_context,
)
from runtime.store import ItemState, NewItem, SQLiteStore, WorkItem, open_store
from runtime.telemetry import capture_telemetry
from supervisors import SupervisorEscalation
from tests.runtime.pipeline.test_pipeline import RecordingSink, run_until_settled

Clock = trio.testing.MockClock


def config(**overrides: Any) -> PipelineConfig:
    base: dict[str, Any] = {"partitions": 2, "inbox_size": 2, "intake_size": 4, "lease_s": 30.0}
    base.update(overrides)
    return PipelineConfig(**base)


async def enqueue(store: SQLiteStore, payloads: Sequence[str], key: str | None = None) -> list[str]:
    results = await store.enqueue_many(
        [NewItem(topic="t", payload=p.encode(), key=key) for p in payloads]
    )
    return [r.id for r in results]


# -- handler forms ---------------------------------------------------------------------


def _one(item: WorkItem) -> None: ...
def _two(item: WorkItem, ctx: HandlerContext) -> None: ...
def _default(item: WorkItem, ctx: object = None) -> None: ...
def _star(*args: object) -> None: ...
def _three(item: WorkItem, ctx: HandlerContext, extra: int) -> None: ...
def _none() -> None: ...
def _kw(item: WorkItem, *, must: int) -> None: ...


class _Callable:
    async def __call__(self, item: WorkItem) -> None: ...


@pytest.mark.parametrize(
    ("handler", "context"),
    [(_one, False), (_two, True), (_default, True), (_star, True), (_Callable(), False)],
)
def test_the_signature_says_whether_the_context_is_passed(handler: Any, context: bool) -> None:
    assert takes_context(handler) is context


@pytest.mark.parametrize("handler", [_three, _none, _kw, print])
def test_other_signatures_are_refused(handler: Any) -> None:
    if handler is print:  # a builtin without a readable signature still takes (*args)
        assert takes_context(handler)
        return
    with pytest.raises(ValidationFailed, match="handler") as caught:
        adapt_handler(handler, ThreadPool(1, 0))
    assert caught.value.field == "handler"


async def test_all_four_handler_forms_run(store: SQLiteStore, autojump_clock: Clock) -> None:
    seen: list[tuple[str, bytes, int | None]] = []

    def sync_item(item: WorkItem) -> None:
        seen.append(("sync_item", item.payload, None))

    def sync_ctx(item: WorkItem, ctx: HandlerContext) -> None:
        seen.append(("sync_ctx", item.payload, ctx.partition))

    async def async_item(item: WorkItem) -> None:
        seen.append(("async_item", item.payload, None))

    async def async_ctx(item: WorkItem, ctx: HandlerContext) -> None:
        seen.append(("async_ctx", item.payload, ctx.partition))

    for handler in (sync_item, sync_ctx, async_item, async_ctx):
        await enqueue(store, ["x"])
        await Pipeline(store, handler, config=config(drain=True)).run()
    assert [s[0] for s in seen] == ["sync_item", "sync_ctx", "async_item", "async_ctx"]
    stages = Pipeline(store, async_ctx, config=config(lease_concurrency=2)).stages()
    assert sorted(stages) == ["intake-0", "intake-1", "settler"]
    assert seen[1][2] in (0, 1) and seen[3][2] in (0, 1)


# -- the sync thread pool --------------------------------------------------------------


async def _tick() -> None:
    # Keeps the autojump clock moving in small steps while real threads run, so a quick
    # sync handler is not taken past its timeout by one big jump.
    while True:
        await trio.sleep(0.001)


async def test_a_hung_sync_handler_is_abandoned_and_the_pool_keeps_serving(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    release = threading.Event()
    done: list[bytes] = []

    def handler(item: WorkItem) -> None:
        if item.payload == b"hang" and item.attempt == 1:
            release.wait()
        done.append(item.payload)

    await enqueue(store, ["hang", "a", "b", "c"])
    # One partition, one thread: the items after the hung one can only run if abandoning
    # it gave its slot back.
    cfg = config(partitions=1, threads=1, max_abandoned_threads=2, handler_timeout_s=5.0)
    pipeline = Pipeline(store, handler, config=cfg)
    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_tick)
                await nursery.start(pipeline.run)
                while pipeline.statistics().succeeded < 4:
                    await trio.sleep(0.01)
                pipeline.stop()
                nursery.cancel_scope.cancel()
        threads = pipeline.threads.statistics()
        # One thread: the hung one gave its slot back when it was abandoned.
        assert (threads.threads, threads.abandoned, threads.abandoned_total) == (1, 1, 1)
        assert sorted(done) == [b"a", b"b", b"c", b"hang"]
        assert pipeline.statistics().timeouts == 1
    finally:
        release.set()
    with trio.fail_after(10):
        while pipeline.threads.statistics().abandoned:
            await trio.sleep(0.01)


async def test_a_call_given_up_before_its_thread_began_never_runs(
    autojump_clock: Clock,
) -> None:
    pool = ThreadPool(1, 0)
    gate = threading.Event()
    ran: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pool.run, gate.wait)
        await trio.sleep(0.01)
        with trio.move_on_after(0.01):
            await pool.run(ran.append, "late")  # waits for the only slot, then gives up
        gate.set()
    assert ran == []
    assert pool.statistics().abandoned_total == 0


# -- events, not timers ----------------------------------------------------------------


async def test_an_idle_intake_wakes_at_once_for_an_enqueue_in_this_process(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    handled = trio.Event()

    async def handler(item: WorkItem) -> None:
        handled.set()

    pipeline = Pipeline(store, handler, config=config(poll_interval_s=1000.0))
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        while not pipeline.intake.idle_waits:
            await trio.lowlevel.checkpoint()
        await trio.sleep(1)
        began = trio.current_time()
        await enqueue(store, ["x"])
        with trio.fail_after(1):
            await handled.wait()
        # No poll interval passed: the enqueue itself woke the intake.
        assert trio.current_time() - began < 0.01
        pipeline.stop()


async def test_leasing_resumes_on_a_settle_not_after_a_poll(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, [str(n) for n in range(6)])
    gate = trio.Event()
    started: list[float] = []

    async def handler(item: WorkItem) -> None:
        started.append(trio.current_time())
        if item.payload in (b"0", b"1"):
            await gate.wait()

    cfg = config(max_in_flight=2, lease_batch=2, poll_interval_s=1000.0, lease_concurrency=1)
    pipeline = Pipeline(store, handler, config=cfg)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        while len(started) < 2:
            await trio.lowlevel.checkpoint()
        await trio.sleep(5)
        assert pipeline.statistics().leased == 2  # full: no lease while nothing settles
        opened = trio.current_time()
        gate.set()
        with trio.fail_after(1):
            while pipeline.statistics().succeeded < 6:
                await trio.lowlevel.checkpoint()
        assert max(started) - opened < 0.01
        pipeline.stop()


async def test_the_lease_keeper_extends_every_lease_in_one_write_per_period(
    store: SQLiteStore, autojump_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[float, int]] = []
    heartbeat_many = store.heartbeat_many

    async def counting(leases: Any, lease_s: float = 30.0) -> Any:
        calls.append((trio.current_time(), len(leases)))
        return await heartbeat_many(leases, lease_s)

    async def single(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("one heartbeat per item")

    monkeypatch.setattr(store, "heartbeat_many", counting)
    monkeypatch.setattr(store, "heartbeat", single)
    ids = await enqueue(store, ["a", "b", "c"])

    async def handler(item: WorkItem) -> None:
        await trio.sleep(100)  # ten lease periods of 10 s

    cfg = config(partitions=3, lease_s=30.0, handler_timeout_s=None)
    pipeline = Pipeline(store, handler, config=cfg)
    began = trio.current_time()
    assert await run_until_settled(pipeline)
    periods = [round(t - began, 3) for t, _ in calls]
    assert periods == [10.0 * n for n in range(1, len(periods) + 1)]
    assert 9 <= len(calls) <= 11
    assert all(n == 3 for _, n in calls[:9])
    for item_id in ids:
        item = await store.get(item_id)
        assert (item.state, item.attempt) == (ItemState.SUCCEEDED, 1)


# -- supervision -----------------------------------------------------------------------


async def test_let_it_crash_restarts_the_partition_and_records_the_outcome_once(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    [item_id] = await enqueue(store, ["boom"])
    outcomes: list[tuple[str, int, Outcome]] = []

    async def handler(item: WorkItem) -> None:
        if item.attempt == 1:
            raise ConnectionError("first try fails")

    def settled(item: WorkItem, outcome: Outcome) -> None:
        outcomes.append((item.id, item.attempt, outcome))

    with capture_telemetry() as cap:
        pipeline = Pipeline(
            store,
            handler,
            config=config(let_it_crash=True, drain=True),
            on_settled=settled,
            tracer_provider=cap.tracer_provider,
            meter_provider=cap.meter_provider,
        )
        with trio.fail_after(600):
            await pipeline.run()
        restarts = cap.spans("garrison.supervisor.restart")
    assert outcomes == [
        (item_id, 1, Outcome.RETRY_SCHEDULED),
        (item_id, 2, Outcome.SUCCEEDED),
    ]
    [restart] = restarts
    attributes = dict(restart.attributes or {})
    assert attributes["garrison.supervisor.name"] == "pipeline.workers"
    assert attributes["exception.type"] == "ConnectionError"
    assert pipeline.statistics().worker_restarts == 1
    item = await store.get(item_id)
    assert (item.state, item.attempt) == (ItemState.SUCCEEDED, 2)


async def _burst(store: SQLiteStore, cfg: PipelineConfig) -> Pipeline:
    """Every item fails for the first 10 s (crashing its worker), then all succeed."""
    await store.enqueue_many(
        [NewItem(topic="t", payload=b"x", max_attempts=1000) for _ in range(400)]
    )
    began = trio.current_time()

    async def handler(item: WorkItem) -> None:
        await trio.sleep(0.001)
        if trio.current_time() - began < 10.0:
            raise ConnectionError("the dependency is down")

    pipeline = Pipeline(store, handler, config=cfg)
    with trio.fail_after(3600):
        await pipeline.run()
    return pipeline


async def test_a_burst_of_crashing_items_does_not_escalate_with_default_backoff(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    pipeline = await _burst(store, PipelineConfig(let_it_crash=True, drain=True))
    stats = pipeline.statistics()
    assert stats.worker_restarts > 8
    assert stats.succeeded == 400
    assert pipeline.root.statistics().restarts_total == 0


async def test_without_a_backoff_the_same_burst_escalates(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    no_backoff = RestartPolicy(max_restarts=100, period_s=10.0)
    cfg = PipelineConfig(let_it_crash=True, drain=True, worker_restarts=no_backoff)
    with pytest.raises(SupervisorEscalation):
        await _burst(store, cfg)


# -- strict key order ------------------------------------------------------------------


async def _effects_in_order(store: SQLiteStore, order: KeyOrder) -> list[bytes]:
    """The results one key's items delivered, in delivery order; each effect is in the
    store's effects ledger exactly once."""
    await enqueue(store, ["1", "2", "3"], key="k")
    sink = RecordingSink()

    async def handler(item: WorkItem, ctx: HandlerContext) -> bytes:
        if item.payload == b"1" and item.attempt == 1:
            raise ConnectionError("fails once")
        return item.payload

    cfg = config(key_order=order, poll_interval_s=0.05)
    pipeline = Pipeline(store, handler, sinks=[sink], config=cfg)
    assert await run_until_settled(pipeline)
    assert pipeline.statistics().held == 0
    stages = pipeline.stages()
    assert sum(stages[f"outbound-{n}"].handled for n in range(cfg.outbound_partitions)) == 3
    assert stages["settler"].handled >= 1
    keys = [key for _, _, key in sink.delivered]
    assert len(set(keys)) == len(keys) == 3
    for key in keys:
        assert await store.has_effect(key)
    return [result or b"" for _, result, _ in sink.delivered]


async def test_strict_key_order_keeps_effects_in_enqueue_order_across_a_retry(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    assert await _effects_in_order(store, KeyOrder.STRICT) == [b"1", b"2", b"3"]


async def test_relaxed_key_order_handles_the_retry_after_later_items(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    assert await _effects_in_order(store, KeyOrder.RELAXED) == [b"2", b"3", b"1"]


async def test_strict_order_lets_parked_items_go_on_stop(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, ["1", "2"], key="k")

    async def handler(item: WorkItem) -> None:
        if item.payload == b"1":
            raise ConnectionError("retry later")

    pipeline = Pipeline(
        store, handler, config=config(key_order=KeyOrder.STRICT, drain_timeout_s=5.0)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.run)
        while pipeline.statistics().held < 1:
            await trio.sleep(0.01)
        pipeline.stop()
    assert pipeline.drained
    assert pipeline.statistics().held == 0


async def test_past_the_abandoned_bound_a_hung_thread_costs_a_slot(autojump_clock: Clock) -> None:
    pool = ThreadPool(1, 0)
    release = threading.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_tick)
            with trio.move_on_after(1):
                await pool.run(release.wait)
            assert pool.statistics().abandoned == 1
            ran: list[str] = []
            with trio.move_on_after(5):
                ran.append(await pool.run(str, "ran"))
            assert ran == []  # no thread left: the abandoned one holds the last
            release.set()
            with trio.fail_after(60):
                assert await pool.run(str, "ran") == "ran"
            nursery.cancel_scope.cancel()
    finally:
        release.set()
    assert pool.statistics().abandoned == 0


async def test_strict_order_never_parks_more_than_max_held(
    store: SQLiteStore, autojump_clock: Clock
) -> None:
    await enqueue(store, ["first"] + [str(n) for n in range(12)], key="k")
    most = 0

    async def handler(item: WorkItem) -> None:
        nonlocal most
        most = max(most, pipeline.statistics().held)
        if item.payload == b"first" and item.attempt == 1:
            raise ConnectionError("retry later")

    cfg = config(
        key_order=KeyOrder.STRICT, max_held=3, lease_batch=2, poll_interval_s=0.05, lease_s=5.0
    )
    pipeline = Pipeline(store, handler, config=cfg)
    assert await run_until_settled(pipeline)
    assert 1 <= most <= 3
    assert pipeline._workers.let_go > 0  # past the bound: let go of, leased again later
    assert pipeline.statistics().succeeded == 13


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("partitions", 0),
        ("threads", 0),
        ("threads", 5000),
        ("max_abandoned_threads", -1),
        ("max_held", 0),
        ("max_in_flight", 0),
        ("lease_s", 0.0),
        ("poll_interval_s", -1.0),
        ("handler_timeout_s", 0.0),
        ("drain_timeout_s", -1.0),
        ("lease_concurrency", 100),
    ],
)
def test_pipeline_config_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        PipelineConfig(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field


# -- loop watch --------------------------------------------------------------------------


async def test_a_loop_watch_in_the_tree_reports_a_handler_that_blocks_the_loop(
    tmp_path: Path,
) -> None:
    # Real time: a blocked loop is one that stops a real clock (no autojump here; every
    # wait below is bounded).
    from supervisors import LoopWatchConfig

    watch = LoopWatchConfig(threshold_s=0.2, interval_s=0.05)
    pipeline: Pipeline | None = None

    async def blocking(item: WorkItem) -> None:
        # A sync wait inside an async handler stops the event loop; the watch's thread sees
        # it, and its report is what ends the wait (bounded, so a failure cannot hang).
        assert pipeline is not None and pipeline.loop_watch is not None
        deadline = time.monotonic() + 30
        while not pipeline.loop_watch.statistics().blocked and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 - blocking the loop is the point

    async with open_store(tmp_path / "w.db") as store:
        pipeline = Pipeline(store, blocking, config=config(loop_watch=watch))
        ids: list[str] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(pipeline.run)
                ids = [c.id for c in pipeline.root.which_children()]
                # The item only once the watch's thread runs: the tree starts it last.
                while not pipeline.loop_watch.statistics().checks:
                    await trio.sleep(0.01)
                await enqueue(store, ["x"])  # type: ignore[arg-type]
                while pipeline.statistics().succeeded < 1:
                    await trio.sleep(0.01)
                pipeline.stop()
    assert "loop-watch" in ids
    assert pipeline.loop_watch is not None
    assert pipeline.loop_watch.statistics().blockages >= 1
