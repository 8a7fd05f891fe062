"""Sampling keeps a fraction of traces but every required span, through the configured SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags, TraceState

from policies import PressureLevel, PressurePolicy, RestartPolicy
from runtime._errors import ValidationFailed
from runtime.actors import Mailbox
from runtime.store import NewItem, SQLiteStore, StoreConfig, WorkItem, open_store
from runtime.telemetry import (
    DEAD_LETTER_SPAN,
    ESCALATION_SPAN,
    PRESSURE_SPAN,
    REPLAY_SPAN,
    REQUIRED_SPANS,
    RESTART_SPAN,
    KeepRequiredSampler,
    TelemetryConfig,
    TelemetryHandle,
    _setup,
    capture_telemetry,
    configure_telemetry,
    process_span,
    replay_span,
    reset_logging,
)
from runtime.worker import TerminalError, Worker, WorkerConfig
from supervisors import ChildSpec, Supervisor, SupervisorEscalation
from supervisors._telemetry import ESCALATION_SPAN as SUPERVISOR_ESCALATION_SPAN
from supervisors._telemetry import RESTART_SPAN as SUPERVISOR_RESTART_SPAN
from tests.runtime.cli.conftest import Garrison
from tests.runtime.telemetry.test_messaging import leased

BASE = 1_800_000_000.0
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
STATE = TraceState([("vendor", "kept")])


@contextmanager
def sdk(ratio: float) -> Iterator[TelemetryHandle]:
    """The SDK as a command sets it up, spans kept in memory, never the process globals."""
    handle = configure_telemetry(
        TelemetryConfig(exporter="memory", set_global=False, sample_ratio=ratio)
    )
    try:
        yield handle
    finally:
        handle.shutdown()


def finished(handle: TelemetryHandle) -> list[ReadableSpan]:
    assert handle.span_exporter is not None
    return list(handle.span_exporter.get_finished_spans())


def names(handle: TelemetryHandle) -> list[str]:
    return [s.name for s in finished(handle)]


def clear(handle: TelemetryHandle) -> None:
    assert handle.span_exporter is not None
    handle.span_exporter.clear()


def one(handle: TelemetryHandle, name: str) -> ReadableSpan:
    [span] = [s for s in finished(handle) if s.name == name]
    return span


@asynccontextmanager
async def opened(path: Path) -> AsyncIterator[SQLiteStore]:
    clock = trio.lowlevel.current_clock()
    assert isinstance(clock, trio.testing.MockClock), "request autojump_clock in the test"
    async with open_store(
        path, StoreConfig(), clock=lambda: BASE + clock.current_time(), rand=lambda: 0.5
    ) as store:
        yield store


async def drain(store: SQLiteStore, handler: object) -> None:
    config = WorkerConfig(concurrency=2, drain=True, poll_interval_s=0.05)
    await Worker(store, handler, config).run()  # type: ignore[arg-type]


def terminal(item: WorkItem) -> None:
    raise TerminalError("cannot be done")


def parent(*, sampled: bool, remote: bool = False) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(TRACE_ID, 0x00F067AA0BA902B7, remote, flags, STATE)
    return trace.set_span_in_context(NonRecordingSpan(context))


# -- through the configured SDK ----------------------------------------------------------


async def test_a_dead_letter_and_its_replay_are_kept_at_ratio_0(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with sdk(0.0) as handle:
        async with opened(tmp_path / "q.db") as store:
            await store.enqueue(NewItem(topic="t", payload=b"x"))
            await drain(store, terminal)
            # The item's process span (a root) was sampled out; its dead letter was not.
            assert names(handle) == [DEAD_LETTER_SPAN]
            dead = one(handle, DEAD_LETTER_SPAN)
            assert dead.context.trace_flags.sampled
            # Its parent is the item's send span (sampled out too), whose context stood in
            # for the process span the sampler would have dropped.
            assert dead.parent is not None and dead.parent.is_remote
            attributes = dict(dead.attributes or {})
            assert attributes["garrison.dead_letter.reason"] == "terminal_error"
            assert attributes["error.type"] == "TerminalError"
            dead_id = str(attributes["messaging.message.id"])

            clear(handle)
            new_id = await store.replay(dead_id)
            assert names(handle) == [REPLAY_SPAN]
            replay = one(handle, REPLAY_SPAN)
            assert dict(replay.attributes or {})["garrison.replay.new_item_id"] == new_id

            # The replayed item's process span is a root of its own, linked to the replay,
            # and follows that link: a replayed item is always traced.
            clear(handle)
            await drain(store, lambda item: None)
            process = one(handle, "process t")
            assert process.context.trace_flags.sampled
            linked = {link.context.span_id: dict(link.attributes or {}) for link in process.links}
            assert linked[replay.context.span_id] == {"garrison.link": "replay"}


def test_spans_under_a_kept_required_span_are_kept() -> None:
    with sdk(0.0) as handle:
        tracer = handle.tracer_provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("command"), replay_span("dead") as recorder:
            with tracer.start_as_current_span("enqueue again"):
                pass
            recorder.replayed("new")
        replay, child = one(handle, REPLAY_SPAN), one(handle, "enqueue again")
        assert child.parent is not None and child.parent.span_id == replay.context.span_id
        assert "command" not in names(handle)


@pytest.mark.parametrize(("ratio", "kept"), [(0.0, False), (1.0, True)])
async def test_ordinary_spans_follow_the_ratio(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, ratio: float, kept: bool
) -> None:
    with sdk(ratio) as handle:
        async with opened(tmp_path / "q.db") as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(3)])
            await drain(store, lambda item: None)
        # The engine acknowledges in batches: an ``ack`` span per batch, linked to the
        # enqueues of the items it settles, so it is kept or dropped with their journeys.
        journey = [name for name in names(handle) if name != "ack"]
        expected = ["send t", "process t", "process t", "process t"] if kept else []
        assert sorted(journey, reverse=True) == expected
        acks = [s for s in finished(handle) if s.name == "ack"]
        assert sum(
            dict(s.attributes or {}).get("messaging.batch.message_count", 1) for s in acks
        ) == (3 if kept else 0)
        if kept:
            [send] = [s for s in finished(handle) if s.name == "send t"]
            for ack in acks:
                assert [link.context.span_id for link in ack.links] == [send.context.span_id]


async def test_a_dead_letter_stays_under_its_process_span_at_ratio_1(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    with sdk(1.0) as handle:
        async with opened(tmp_path / "q.db") as store:
            await store.enqueue(NewItem(topic="t", payload=b"x"))
            await drain(store, terminal)
        dead, process = one(handle, DEAD_LETTER_SPAN), one(handle, "process t")
        assert dead.parent is not None and dead.parent.span_id == process.context.span_id


async def test_pressure_transitions_are_kept_at_ratio_0() -> None:
    policy = PressurePolicy(elevated=(), critical=())
    with sdk(0.0) as handle:
        box: Mailbox[int] = Mailbox(10, name="intake", policy=policy)
        tracer = handle.tracer_provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("handler"):
            for i in range(6):  # 60 %: elevated
                box.send_nowait(i)
        assert box.level is PressureLevel.ELEVATED
        while len(box):  # back to normal, outside any span
            box.receive_nowait()
        assert names(handle) == [PRESSURE_SPAN, PRESSURE_SPAN]
        levels = [
            (s.attributes or {})["garrison.pressure.to"]
            for s in finished(handle)  # in the order they ended
        ]
        assert levels == ["elevated", "normal"]


async def test_supervisor_restarts_are_kept_at_ratio_0(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def crashes(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1.0)
        raise RuntimeError("kaput")

    with sdk(0.0) as handle:
        sup = Supervisor(
            [ChildSpec(id="db", start=crashes)],
            policy=RestartPolicy(2, 100.0),
            name="root",
            tracer_provider=handle.tracer_provider,
            meter_provider=handle.meter_provider,
        )
        tracer = handle.tracer_provider.get_tracer("test")  # type: ignore[union-attr]
        with tracer.start_as_current_span("app"), pytest.raises(SupervisorEscalation):
            await sup.run()
        restarts = [s for s in finished(handle) if s.name == RESTART_SPAN]
        assert [(s.attributes or {})["garrison.child.restarts"] for s in restarts] == [1, 2]
        assert "garrison.supervisor.escalation" in names(handle)
        assert "app" not in names(handle)


def test_the_configured_provider_uses_the_sampler() -> None:
    with sdk(0.25) as handle:
        sampler = handle.tracer_provider.sampler  # type: ignore[union-attr]
        assert isinstance(sampler, KeepRequiredSampler)
        assert sampler.ratio == 0.25 and sampler.required == REQUIRED_SPANS


# -- the Sampler API ---------------------------------------------------------------------


def test_the_required_spans_are_those_operators_rely_on() -> None:
    # Telemetry names the supervisors' spans without importing their private module.
    assert SUPERVISOR_RESTART_SPAN == RESTART_SPAN
    assert SUPERVISOR_ESCALATION_SPAN == ESCALATION_SPAN
    assert sorted(REQUIRED_SPANS) == [
        "garrison.dead_letter.write",
        "garrison.pressure.transition",
        "garrison.replay",
        "garrison.supervisor.escalation",
        "garrison.supervisor.restart",
    ]


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("remote", [False, True])
def test_a_child_of_an_unsampled_parent(ratio: float, remote: bool) -> None:
    sampler = KeepRequiredSampler(ratio)
    context = parent(sampled=False, remote=remote)
    for name in sorted(REQUIRED_SPANS):
        result = sampler.should_sample(context, TRACE_ID, name, attributes={"a": 1})
        assert result.decision is Decision.RECORD_AND_SAMPLE, name
        assert result.trace_state == STATE
        assert dict(result.attributes) == {"a": 1}  # they become the span's attributes
    dropped = sampler.should_sample(context, TRACE_ID, "process t", attributes={"a": 1})
    assert dropped.decision is Decision.DROP
    assert dropped.trace_state == STATE


@pytest.mark.parametrize("ratio", [0.0, 0.5, 1.0])
def test_a_child_of_a_sampled_parent_is_sampled(ratio: float) -> None:
    sampler = KeepRequiredSampler(ratio)
    result = sampler.should_sample(parent(sampled=True), TRACE_ID, "send t")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state == STATE


def test_root_spans_follow_the_ratio() -> None:
    # TraceIdRatioBased keeps a trace when the low 64 bits of its id are under ratio*2**64.
    low, high = 1, 2**64 - 1
    for ratio, kept in ((0.0, ()), (0.5, (low,)), (1.0, (low, high))):
        sampler = KeepRequiredSampler(ratio)
        for trace_id in (low, high):
            decision = sampler.should_sample(None, trace_id, "send t").decision
            expected = Decision.RECORD_AND_SAMPLE if trace_id in kept else Decision.DROP
            assert decision is expected, (ratio, trace_id)
            required = sampler.should_sample(None, trace_id, REPLAY_SPAN).decision
            assert required is Decision.RECORD_AND_SAMPLE


@given(
    ratio=st.floats(min_value=0.0, max_value=1.0),
    trace_id=st.integers(min_value=1, max_value=2**128 - 1),
    parent_state=st.sampled_from(["none", "sampled", "unsampled"]),
    remote=st.booleans(),
    name=st.sampled_from(["send t", "process t", "app"]),
)
def test_without_links_it_decides_as_parent_based_ratio_sampling(
    ratio: float, trace_id: int, parent_state: str, remote: bool, name: str
) -> None:
    context = (
        None if parent_state == "none" else parent(sampled=parent_state == "sampled", remote=remote)
    )
    ours = KeepRequiredSampler(ratio).should_sample(context, trace_id, name, attributes={"a": 1})
    sdk_sampler = ParentBased(TraceIdRatioBased(ratio))
    theirs = sdk_sampler.should_sample(context, trace_id, name, attributes={"a": 1})
    assert ours.decision is theirs.decision
    assert ours.trace_state == theirs.trace_state
    assert dict(ours.attributes) == dict(theirs.attributes)


def link(*, sampled: bool) -> Link:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return Link(SpanContext(TRACE_ID, 0x00F067AA0BA902B7, True, flags))


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_root_with_links_follows_them(ratio: float) -> None:
    sampler = KeepRequiredSampler(ratio)

    def decide(*links: Link) -> Decision:
        return sampler.should_sample(None, 2**64 - 1, "process t", links=links).decision

    assert decide(link(sampled=True)) is Decision.RECORD_AND_SAMPLE
    assert decide(link(sampled=False)) is Decision.DROP
    # The enqueue was sampled out but the replay (always kept) was not.
    assert decide(link(sampled=False), link(sampled=True)) is Decision.RECORD_AND_SAMPLE
    # Links to nothing valid decide nothing: the ratio does.
    invalid = Link(trace.INVALID_SPAN_CONTEXT)
    expected = Decision.RECORD_AND_SAMPLE if ratio == 1.0 else Decision.DROP
    assert decide(invalid) is expected
    # A parent outranks links.
    result = sampler.should_sample(
        parent(sampled=False), 1, "process t", links=[link(sampled=True)]
    )
    assert result.decision is Decision.DROP


@pytest.mark.parametrize(("enqueue_sampled", "ratio"), [(True, 0.0), (False, 1.0)])
async def test_the_enqueue_decides_for_the_whole_journey(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, enqueue_sampled: bool, ratio: float
) -> None:
    # Whatever the ratio, items enqueued in a kept trace are processed in kept spans and
    # items enqueued in a dropped one are not: journeys stay whole across the queue.
    with sdk(ratio) as handle:
        async with opened(tmp_path / "q.db") as store:
            token = otel_context.attach(parent(sampled=enqueue_sampled, remote=True))
            try:
                await store.enqueue_many([NewItem(topic="t", payload=b"x") for _ in range(3)])
            finally:
                otel_context.detach(token)
            await drain(store, lambda item: None)
        processed = [s for s in finished(handle) if s.name == "process t"]
        # The batches' ack spans too: they follow the journeys they settle.
        if not enqueue_sampled:
            assert finished(handle) == []
            return
        [send] = [s for s in finished(handle) if s.name == "send t"]
        assert len(processed) == 3
        for span in processed:
            [enqueue_link] = span.links
            assert enqueue_link.context.span_id == send.context.span_id


async def test_a_dead_letter_of_a_dropped_journey_is_kept_in_the_enqueue_trace(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # The process span is skipped without asking the SDK; the enqueue's context stands in.
    with sdk(1.0) as handle:
        async with opened(tmp_path / "q.db") as store:
            token = otel_context.attach(parent(sampled=False, remote=True))
            try:
                await store.enqueue(NewItem(topic="t", payload=b"x"))
            finally:
                otel_context.detach(token)
            await drain(store, terminal)
        assert names(handle) == [DEAD_LETTER_SPAN]
        dead = one(handle, DEAD_LETTER_SPAN)
        assert dead.context.trace_id == TRACE_ID
        assert dead.parent is not None and dead.parent.is_remote


def test_with_another_sampler_the_sdk_decides(tmp_path: Path) -> None:
    # capture_telemetry's provider samples every root (ParentBased(ALWAYS_ON)) and ignores
    # links: an item from a sampled-out enqueue still gets a recorded process span.
    unsampled = {"traceparent": f"00-{TRACE_ID:032x}-00f067aa0ba902b7-00"}
    with capture_telemetry() as cap:
        with process_span(leased("t", trace_context=unsampled)):
            pass
        [span] = cap.spans("process t")
        assert span.links[0].context.trace_id == TRACE_ID


def test_description_names_the_rule_and_the_delegate() -> None:
    described = KeepRequiredSampler(0.5).get_description()
    assert described.startswith("KeepRequiredSampler{required:[")
    assert all(name in described for name in REQUIRED_SPANS)
    assert "links:sampled if a linked span is" in described
    assert "ParentBased{root:TraceIdRatioBased{0.5}" in described
    custom = KeepRequiredSampler(0.0, required=["mine"]).get_description()
    assert "required:[mine]" in custom


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_a_ratio_outside_0_1_is_refused(ratio: float) -> None:
    with pytest.raises(ValidationFailed) as refused:
        KeepRequiredSampler(ratio)
    assert refused.value.field == "ratio"


# -- the CLI option ----------------------------------------------------------------------


@pytest.fixture
def garrison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Garrison]:
    # The commands install the OpenTelemetry globals, which a process can set only once.
    monkeypatch.setattr(_setup, "_set_globals", lambda tracer, meter: None)
    yield Garrison(tmp_path / "cli.db")
    reset_logging()


@pytest.mark.parametrize("value", ["1.5", "-0.5", "half"])
def test_work_refuses_a_bad_sample_ratio(garrison: Garrison, value: str) -> None:
    code, _, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:ok",
        "--drain",
        "--otel-sample-ratio",
        value,
    )
    assert code == 2 and "--otel-sample-ratio" in err


def test_work_keeps_the_dead_letter_at_sample_ratio_0(garrison: Garrison) -> None:
    code, _, err = garrison("enqueue", "--topic", "t", "--payload", "1")
    assert code == 0, err
    code, out, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:terminal",
        "--drain",
        "--poll-interval",
        "0.01",
        "--otel-exporter",
        "console",
        "--otel-sample-ratio",
        "0",
        "--log-format",
        "human",
    )
    assert code == 0, err
    # The console exporter prints the spans kept: the dead letter, not its process span.
    assert DEAD_LETTER_SPAN in out and "process t" not in out


@pytest.mark.parametrize("command", ["work", "run", "demo"])
def test_every_telemetry_command_takes_the_option(garrison: Garrison, command: str) -> None:
    code, out, _ = garrison(command, "--help", db=False)
    assert code == 0 and "--otel-sample-ratio" in out
