"""Spans and metrics of the store and the worker, end to end through the durable queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from opentelemetry.trace import SpanKind, StatusCode

from policies import RetryPolicy
from runtime._errors import ValidationFailed
from runtime.store import (
    DeadReason,
    Failure,
    NewItem,
    SQLiteStore,
    StoreConfig,
    WorkItem,
    open_store,
)
from runtime.telemetry import (
    CapturedTelemetry,
    capture_telemetry,
    extract_context,
    process_span,
)
from runtime.worker import TerminalError, Worker, WorkerConfig

BASE = 1_800_000_000.0


@asynccontextmanager
async def opened(path: Path, **config: object) -> AsyncIterator[SQLiteStore]:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    async with open_store(
        path,
        StoreConfig(**config),  # type: ignore[arg-type]
        clock=lambda: BASE + clock.current_time(),
        rand=lambda: 0.5,
    ) as store:
        yield store


async def drain(store: SQLiteStore, handler: Callable[[WorkItem], object]) -> Worker:
    worker = Worker(store, handler, WorkerConfig(concurrency=2, drain=True, poll_interval_s=0.05))  # type: ignore[arg-type]
    await worker.run()
    return worker


def process_spans(cap: CapturedTelemetry) -> list:  # type: ignore[type-arg]
    return [s for s in cap.spans() if s.name.startswith("process ")]


async def test_process_span_links_to_enqueue_across_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with capture_telemetry() as cap:
        async with opened(tmp_path / "q.db") as store:
            result = await store.enqueue(NewItem(topic="mail", payload=b"x", key="k", priority=3))
        send = cap.span("send mail")
        assert send.kind is SpanKind.PRODUCER
        # A new store handle (a restarted process) handles the item.
        async with opened(tmp_path / "q.db") as store:
            await drain(store, lambda item: None)
        [span] = process_spans(cap)
        assert span.name == "process mail" and span.kind is SpanKind.CONSUMER
        attributes = dict(span.attributes or {})
        assert attributes["messaging.system"] == "garrison"
        assert attributes["messaging.destination.name"] == "mail"
        assert attributes["messaging.message.id"] == result.id
        assert attributes["garrison.attempt"] == 1
        assert attributes["garrison.max_attempts"] == 5
        assert attributes["garrison.key"] == "k"
        assert attributes["garrison.priority"] == 3
        assert attributes["garrison.outcome"] == "succeeded"
        [link] = span.links
        assert link.context.span_id == send.context.span_id
        assert link.context.trace_id == send.context.trace_id
        assert cap.value("garrison.items.succeeded", garrison_topic="mail") == 1
        assert cap.value("garrison.process.duration", garrison_outcome="succeeded") == 1
        assert cap.value("garrison.queue.latency", garrison_topic="mail") == 1


async def test_failures_retries_dead_letters_and_replay(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    def handler(item: WorkItem) -> None:
        if item.payload == b"terminal":
            raise TerminalError("no")
        if item.payload == b"flaky" and item.attempt == 1:
            raise ValueError("once")

    with capture_telemetry() as cap:
        async with opened(tmp_path / "q.db") as store:
            await store.enqueue_many(
                [
                    NewItem(topic="t", payload=b"terminal", correlation_id="c1"),
                    NewItem(topic="t", payload=b"flaky"),
                ]
            )
            await drain(store, handler)
            dead = cap.span("garrison.dead_letter.write")
            attributes = dict(dead.attributes or {})
            assert attributes["garrison.dead_letter.reason"] == "terminal_error"
            assert attributes["messaging.destination.name"] == "t"
            assert attributes["error.type"] == "TerminalError"
            dead_id = str(attributes["messaging.message.id"])
            # The dead letter span is a child of the process span that failed.
            failed = [s for s in process_spans(cap) if s.status.status_code is StatusCode.ERROR]
            assert dead.parent is not None
            assert dead.parent.span_id in {s.context.span_id for s in failed}
            assert cap.value("garrison.items.retried", garrison_reason="error") == 1
            assert cap.value("garrison.items.dead_lettered", garrison_reason="terminal_error") == 1
            assert cap.value("garrison.items.processed", garrison_outcome="retry_scheduled") == 1

            new_id = await store.replay(dead_id)
            replay = cap.span("garrison.replay")
            replay_attributes = dict(replay.attributes or {})
            assert replay_attributes["garrison.dead_letter.id"] == dead_id
            assert replay_attributes["garrison.replay.new_item_id"] == new_id
            assert replay_attributes["garrison.outcome"] == "replayed"
            send = cap.span("send t")
            assert [link.context.span_id for link in replay.links] == [send.context.span_id]

            cap.clear()
            await drain(store, lambda item: None)
            [span] = process_spans(cap)
            links = {
                dict(link.attributes or {}).get("garrison.link", "enqueue"): link.context
                for link in span.links
            }
            assert links["enqueue"].span_id == send.context.span_id
            assert links["replay"].span_id == replay.context.span_id
            assert dict(span.attributes or {})["garrison.replay_of"] == dead_id

            with pytest.raises(Exception, match="already replayed"):
                await store.replay(dead_id)
            assert cap.value("garrison.replays", garrison_outcome="ReplayRefused") == 1
            with pytest.raises(Exception, match="no dead letter"):
                await store.replay("nope")

            figures = await store.metrics(3600)
            assert cap.value("garrison.items.enqueued") == figures.enqueued == 3
            assert cap.value("garrison.items.succeeded") == figures.succeeded == 2
            assert cap.value("garrison.items.retried") == figures.retries == 1
            assert cap.value("garrison.items.dead_lettered") == figures.dead_letters == 1
            assert cap.value("garrison.queue.depth", garrison_state="succeeded") == 2


async def test_dead_letter_shed_and_reclaim_report_dead_letters(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with capture_telemetry() as cap:
        async with opened(tmp_path / "q.db", retry=RetryPolicy(max_attempts=1)) as store:
            ids = [
                r.id
                for r in await store.enqueue_many(
                    [NewItem(topic="t", payload=str(n).encode(), priority=n) for n in range(4)]
                )
            ]
            await store.dead_letter(ids[3], DeadReason.VALIDATION, "bad")
            assert await store.shed(1) == [ids[0]]
            assert await store.shed(0) == []
            [leased] = await store.lease("w", 1, lease_s=1.0)
            await trio.sleep(5)
            assert await store.reclaim_expired() == 1
            reasons = [
                dict(s.attributes or {})["garrison.dead_letter.reason"]
                for s in cap.spans("garrison.dead_letter.write")
            ]
            assert reasons == ["validation", "shed", "lease_expired"]
            assert cap.value("garrison.items.dead_lettered", garrison_reason="lease_expired") == 1
            [other] = await store.lease("w", 1)
            outcome = await store.fail(other.id, other.lease_token or "", Failure(error="e"))
            assert outcome.reason is DeadReason.RETRIES_EXHAUSTED
            assert leased.id != other.id


async def test_refused_enqueue_counts_a_rejection(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with capture_telemetry() as cap:
        async with opened(tmp_path / "q.db") as store:
            with pytest.raises(ValidationFailed):
                await store.enqueue_many(
                    [NewItem(topic="ok", payload=b""), NewItem(topic="bad topic!", payload=b"")]
                )
            assert await store.enqueue_many([]) == []
            assert cap.value("garrison.items.rejected", garrison_topic="bad topic!") == 1
            assert cap.value("garrison.items.enqueued") == 0


async def test_caller_trace_context_is_kept(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    mine = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    with capture_telemetry() as cap:
        async with opened(tmp_path / "q.db") as store:
            result = await store.enqueue(NewItem(topic="t", payload=b"", trace_context=mine))
            assert (await store.get(result.id)).trace_context == mine
            await drain(store, lambda item: None)
        [span] = process_spans(cap)
        context = extract_context(mine)
        assert context is not None and span.links[0].context.span_id == context.span_id


async def test_settles_are_recorded_on_the_process_span_and_batches_get_a_span(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with capture_telemetry() as cap:
        async with opened(tmp_path / "s.db", retry=RetryPolicy(max_attempts=1)) as store:
            await store.enqueue(NewItem(topic="t", payload=b"ok"))
            bad = await store.enqueue(NewItem(topic="t", payload=b"bad"))

            def handler(item: WorkItem) -> None:
                if item.payload == b"bad":
                    raise TerminalError("no")

            await drain(store, handler)
            # A single settle inside an item's process span is an event on that span.
            single = await store.enqueue(NewItem(topic="t", payload=b"one"))
            (leased_one,) = await store.lease("w", 1)
            with process_span(leased_one):
                await store.ack(single.id, leased_one.lease_token or "")
            leased = await store.enqueue_many([NewItem(topic="t", payload=b"b") for _ in range(3)])
            batch = await store.lease("w", 3)
            await store.ack_many([(i.id, i.lease_token or "") for i in batch])
        by_id = {
            dict(s.attributes or {}).get("messaging.message.id"): s for s in process_spans(cap)
        }
        # A failure is settled by its worker inside the process span: an event on it.
        [nack_event] = [e for e in by_id[bad.id].events if e.name == "nack"]
        [ack_event] = [e for e in by_id[single.id].events if e.name == "ack"]
        for event in (ack_event, nack_event):
            assert dict(event.attributes or {})["messaging.operation.type"] == "settle"
        assert dict(ack_event.attributes or {})["messaging.message.id"] == single.id
        acks = [s for s in cap.spans() if s.name == "ack"]
        assert acks and all(s.kind is SpanKind.CLIENT for s in acks)
        # The engine's settler acknowledges successes in batches, each a span of its own
        # linked to the enqueues of the items it settles.
        sends = {s.context.span_id for s in cap.spans() if s.name == "send t"}
        [engine_ack] = [s for s in acks if s.links]
        assert {link.context.span_id for link in engine_ack.links} <= sends
        # A batch acknowledged without contexts is a span with no links.
        [batch_span] = [s for s in acks if not s.links]
        attributes = dict(batch_span.attributes or {})
        assert attributes["messaging.batch.message_count"] == len(leased)
        assert attributes["messaging.operation.type"] == "settle"
