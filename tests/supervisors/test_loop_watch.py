"""LoopWatch: a blocked event loop is reported while blocked, once, and again when it recovers.

Two kinds of test. The decision (``check``) is driven directly with an injected clock: beats
and checks happen exactly when the test says, so nothing depends on timing. The thread-level
tests really block the loop, but never by sleeping for a guessed time: the loop blocks on a
``threading.Event`` that only the watch's own report sets (through a logging handler), so it
stays blocked exactly until the watchdog thread has seen it, however busy the machine is.
Every wait is bounded by ``fail_after`` or a wait timeout, so a broken watch fails, not hangs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import anyio
import msgspec
import pytest

from policies import ValidationFailed
from supervisors import (
    LoopBlockage,
    LoopWatch,
    LoopWatchConfig,
    Supervisor,
)
from tests.conftest import FakeClock
from tests.supervisors.conftest import Boom, Telemetry

WAIT_S = 10.0
LOGGER = "garrison.supervisors"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A monotonic-style clock from 0, so the seconds compared below are exact floats."""
    return FakeClock(start=0.0)


def watch_on(clock: FakeClock, telemetry: Telemetry | None = None) -> LoopWatch:
    kwargs = telemetry.kwargs() if telemetry is not None else {}
    return LoopWatch(threshold_s=1.0, interval_s=0.25, name="main", clock=clock, **kwargs)


# -- configuration ---------------------------------------------------------------------------


def test_defaults_are_valid() -> None:
    config = LoopWatchConfig()
    assert config.interval_s < config.threshold_s
    assert LoopWatch().config == config


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold_s", 0.0),
        ("threshold_s", 3601.0),
        ("interval_s", 0.0),
        ("interval_s", 61.0),
        ("stack_limit", 0),
        ("stack_limit", 501),
        ("join_timeout_s", -0.1),
        ("join_timeout_s", 61.0),
    ],
)
def test_bounds_hold(field: str, value: float) -> None:
    base = {"threshold_s": 3600.0} if field == "interval_s" else {}
    with pytest.raises(ValidationFailed) as caught:
        LoopWatchConfig(**{**base, field: value})
    assert caught.value.field == field
    # Decoding refuses the same values.
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**base, field: value}, LoopWatchConfig)


def test_interval_must_be_below_threshold() -> None:
    with pytest.raises(ValidationFailed) as caught:
        LoopWatchConfig(threshold_s=0.5, interval_s=0.5)
    assert caught.value.field == "interval_s"
    # The shorthand arguments are validated the same way.
    with pytest.raises(ValidationFailed):
        LoopWatch(threshold_s=0.05)  # default interval 0.1
    watch = LoopWatch(LoopWatchConfig(stack_limit=7), threshold_s=0.5, interval_s=0.05)
    assert (watch.config.threshold_s, watch.config.interval_s) == (0.5, 0.05)
    assert watch.config.stack_limit == 7


# -- the decision, with an injected clock ----------------------------------------------------


def test_healthy_loop_is_never_reported(fake_clock: FakeClock) -> None:
    watch = watch_on(fake_clock)
    assert watch.check() is None  # no heartbeat yet: nothing to compare with
    for _ in range(100):
        watch._beat()
        assert watch.check(fake_clock.advance(0.25)) is None
    stats = watch.statistics()
    assert (stats.blockages, stats.blocked, stats.beats, stats.checks) == (0, False, 100, 101)


def test_blockage_reported_once_then_recovery(
    fake_clock: FakeClock, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    watch = watch_on(fake_clock, telemetry)
    watch._beat()
    assert watch.check(fake_clock.advance(1.0)) is None  # at the threshold, not past it

    report = watch.check(fake_clock.advance(0.5))
    assert report == LoopBlockage(blocked=True, seconds=1.5)  # not running: no stack
    stats = watch.statistics()
    assert (stats.blocked, stats.blocked_for_s, stats.blockages) == (True, 1.5, 1)

    # Still blocked: checked again, not reported again.
    assert watch.check(fake_clock.advance(1.5)) is None
    assert watch.statistics().blocked_for_s == 3.0
    assert telemetry.counter("garrison.loop.blockages") == [({"garrison.loop.name": "main"}, 1)]

    watch._beat()  # the loop ran again, 3 s after its previous heartbeat
    report = watch.check(fake_clock.advance(0.1))
    assert report == LoopBlockage(blocked=False, seconds=3.0)
    stats = watch.statistics()
    assert (stats.blocked, stats.blocked_for_s, stats.blockages) == (False, 0.0, 1)
    assert stats.longest_blockage_s == 3.0
    assert watch.check(fake_clock.advance(0.1)) is None

    [span] = [s for s in telemetry.spans.get_finished_spans() if s.name == "garrison.loop.blocked"]
    assert span.attributes is not None
    assert span.attributes["garrison.loop.name"] == "main"
    assert span.attributes["garrison.loop.blocked_s"] == 3.0
    assert span.attributes["garrison.loop.threshold_s"] == 1.0
    assert telemetry.counter("garrison.loop.blockages") == [({"garrison.loop.name": "main"}, 1)]

    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]
    assert [level for level, _ in lines] == [logging.WARNING, logging.INFO]
    assert "event loop main blocked: no heartbeat for 1.500 s (threshold 1.000 s)" in lines[0][1]
    assert "event loop main ran again after 3.000 s" in lines[1][1]


def test_blockage_between_two_checks_is_counted_after_the_fact(
    fake_clock: FakeClock, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    watch = watch_on(fake_clock, telemetry)
    watch._beat()
    assert watch.check(fake_clock.advance(0.2)) is None
    fake_clock.advance(2.0)
    watch._beat()  # 2.2 s since the previous beat, all of it between two checks
    report = watch.check(fake_clock.advance(0.1))
    assert report == LoopBlockage(blocked=False, seconds=2.2, seen_while_blocked=False)
    stats = watch.statistics()
    assert (stats.blockages, stats.blocked, stats.longest_blockage_s) == (1, False, 2.2)
    assert telemetry.counter("garrison.loop.blockages") == [({"garrison.loop.name": "main"}, 1)]
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["garrison.loop.blocked"]
    [line] = [r for r in caplog.records if r.name == LOGGER]
    assert line.levelno == logging.WARNING
    assert "over before the watch looked" in line.getMessage()


def test_longest_blockage_is_kept(fake_clock: FakeClock) -> None:
    watch = watch_on(fake_clock)
    for pause in (3.0, 7.0, 2.0):
        watch._beat()
        assert watch.check(fake_clock.advance(pause)) is not None  # blocked
        watch._beat()
        assert watch.check(fake_clock.now) is not None  # recovered
    stats = watch.statistics()
    assert (stats.blockages, stats.longest_blockage_s) == (3, 7.0)


def test_stack_is_cut_to_stack_limit(fake_clock: FakeClock) -> None:
    config = LoopWatchConfig(threshold_s=1.0, interval_s=0.25, stack_limit=3)
    watch = LoopWatch(config, clock=fake_clock)
    # Watch this very thread: the check then sees its own stack, which is deeper than 3.
    watch._loop_thread = threading.get_ident()
    watch._beat()
    report = watch.check(fake_clock.advance(2.0))
    assert report is not None
    assert len(report.stack) == 3
    # The innermost frames are kept: the last one is where the stack was taken.
    assert "_loop_stack" in report.stack[-1]


def test_stop_while_blocked_ends_the_span(fake_clock: FakeClock, telemetry: Telemetry) -> None:
    watch = watch_on(fake_clock, telemetry)
    watch._beat()
    assert watch.check(fake_clock.advance(5.0)) is not None
    assert telemetry.spans.get_finished_spans() == ()
    watch._halt(threading.Event())
    assert [s.name for s in telemetry.spans.get_finished_spans()] == ["garrison.loop.blocked"]


# -- the thread, on a really blocked loop, on both backends ----------------------------------


class Reports(logging.Handler):
    """Sets events when the watch reports the blockage the test caused, and its end."""

    def __init__(self, marker: str) -> None:
        super().__init__(logging.DEBUG)
        self.marker = marker
        self.blocked = threading.Event()
        self.recovered = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        # Only the blockage whose stack shows the test's blocking call counts: on a busy
        # machine the loop may also miss a beat on its own.
        if " blocked: " in message and self.marker in message:
            self.blocked.set()
        elif self.blocked.is_set() and " ran again after " in message:
            self.recovered.set()


@pytest.fixture
def reports() -> Iterator[Reports]:
    handler = Reports(marker="block_until_reported")
    logger = logging.getLogger(LOGGER)
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def block_until_reported(reported: threading.Event) -> bool:
    """Block the calling event loop until the watch reports it (the marker in the stack)."""
    return reported.wait(WAIT_S)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_blocked_loop_is_reported_with_its_stack(
    anyio_backend: str, reports: Reports, telemetry: Telemetry
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("test")
    watch = LoopWatch(threshold_s=0.05, interval_s=0.01, name="main", **telemetry.kwargs())
    with anyio.fail_after(4 * WAIT_S), tracer.start_as_current_span("app"):
        async with watch:
            stats = watch.statistics()
            assert (stats.running, stats.thread_alive) == (True, True)
            # A stall of its own (busy machine) still open would absorb the one we cause.
            while watch.statistics().blocked:
                await anyio.sleep(0.01)
            assert block_until_reported(reports.blocked), reports.messages
            assert await anyio.to_thread.run_sync(reports.recovered.wait, WAIT_S)
            stats = watch.statistics()
            assert stats.blockages >= 1
            assert stats.longest_blockage_s > 0.05
        stats = watch.statistics()
        assert (stats.running, stats.thread_alive) == (False, False)

    [report] = [m for m in reports.messages if "block_until_reported" in m]
    # The loop thread's stack, innermost last: the test function, then its blocking call.
    assert report.index("test_blocked_loop_is_reported_with_its_stack") < report.index(
        "block_until_reported"
    )
    [app] = [s for s in telemetry.spans.get_finished_spans() if s.name == "app"]
    names = [e.name for e in app.events]
    assert "garrison.loop.blocked" in names
    assert "garrison.loop.recovered" in names
    blocked = [s for s in telemetry.spans.get_finished_spans() if s.name == "garrison.loop.blocked"]
    assert blocked
    assert all(s.parent is not None and s.parent.span_id == app.context.span_id for s in blocked)


@pytest.mark.anyio
async def test_body_exception_propagates_unchanged(anyio_backend: str) -> None:
    watch = LoopWatch(threshold_s=5.0, interval_s=0.5)
    with anyio.fail_after(WAIT_S), pytest.raises(Boom):
        async with watch:
            raise Boom("body")
    assert watch.statistics().thread_alive is False


@pytest.mark.anyio
async def test_one_run_at_a_time(anyio_backend: str) -> None:
    watch = LoopWatch(threshold_s=5.0, interval_s=0.5)
    with anyio.fail_after(WAIT_S):
        async with watch:
            with pytest.raises(RuntimeError, match="already running"):
                await watch.run()
            with pytest.raises(RuntimeError, match="already running"):
                async with watch:
                    pass
            assert watch.statistics().running
        # Stopped, it can run again (as a supervised restart does).
        async with watch:
            assert watch.statistics().thread_alive
    assert not watch.statistics().thread_alive


async def test_runs_as_a_supervised_child() -> None:
    watch = LoopWatch(threshold_s=5.0, interval_s=0.5)
    spec = watch.child_spec()
    assert (spec.id, spec.shutdown_timeout) == ("loop-watch", watch.config.join_timeout_s + 1.0)
    sup = Supervisor([spec], name="root")
    with anyio.fail_after(WAIT_S):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert sup.statistics().children_running == 1
            assert watch.statistics().thread_alive
            tg.cancel_scope.cancel()
    stats = watch.statistics()
    assert (stats.running, stats.thread_alive) == (False, False)


def thread_side(clock: Callable[[], float]) -> Callable[[], float]:
    """A clock that runs ``clock`` when read by the watchdog thread, time.monotonic otherwise."""
    import time

    def read() -> float:
        if threading.current_thread().name.startswith("garrison-loop-watch"):
            return clock()
        return time.monotonic()

    return read


async def test_a_failing_check_is_logged_and_the_watch_goes_on(reports: Reports) -> None:
    failed = threading.Event()
    reads = 0

    def broken() -> float:
        nonlocal reads
        reads += 1
        if reads == 1:
            raise OSError("clock gone")
        failed.set()
        import time

        return time.monotonic()

    watch = LoopWatch(threshold_s=5.0, interval_s=0.01, clock=thread_side(broken))
    with anyio.fail_after(WAIT_S):
        async with watch:
            # The second read means the thread survived the first check's failure.
            assert await anyio.to_thread.run_sync(failed.wait, WAIT_S)
    assert any("check failed" in m for m in reports.messages)


async def test_thread_that_does_not_stop_in_time_is_left_behind(reports: Reports) -> None:
    entered = threading.Event()
    release = threading.Event()

    def stuck() -> float:
        entered.set()
        release.wait(WAIT_S)
        import time

        return time.monotonic()

    watch = LoopWatch(
        LoopWatchConfig(threshold_s=5.0, interval_s=0.01, join_timeout_s=0.0),
        clock=thread_side(stuck),
    )
    try:
        with anyio.fail_after(WAIT_S):
            async with watch:
                assert await anyio.to_thread.run_sync(entered.wait, WAIT_S)
        assert watch.statistics().thread_alive
        assert any("left behind" in m for m in reports.messages)
    finally:
        release.set()
    thread = watch._thread
    assert thread is not None
    thread.join(WAIT_S)
    assert not watch.statistics().thread_alive


@pytest.mark.anyio
async def test_a_watch_that_cannot_start_raises_its_error(anyio_backend: str) -> None:
    def no_clock() -> float:
        raise OSError("no clock")

    watch = LoopWatch(threshold_s=5.0, interval_s=0.5, clock=no_clock)
    with anyio.fail_after(WAIT_S), pytest.raises(OSError, match="no clock"):
        async with watch:
            pass  # pragma: no cover - not reached
    assert not watch.statistics().running


async def test_time_stopped_between_runs_is_not_a_blockage(fake_clock: FakeClock) -> None:
    # Both halves read the fake clock, which stands still while the watch runs: the thread's
    # own checks, whenever they happen, see no time pass either.
    watch = LoopWatch(threshold_s=1.0, interval_s=0.5, clock=fake_clock)
    watch._beat()  # the last beat of an earlier run
    fake_clock.advance(100.0)
    with anyio.fail_after(WAIT_S):
        async with watch:
            assert watch.check() is None
    stats = watch.statistics()
    assert (stats.blockages, stats.blocked) == (0, False)
