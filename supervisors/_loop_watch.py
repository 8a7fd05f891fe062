"""A watchdog thread that reports an event loop blocked past a threshold, while it is blocked.

Supervisor heartbeats (``ChildSpec.heartbeat_timeout``) catch a child that stops making
progress *while the loop keeps running*: the deadline is a cancel scope, so it needs the loop
to fire. The hang users actually have is different: a handler calls blocking code (a sync
HTTP client, ``time.sleep``, a CPU-bound loop, a lock held by another thread) and the whole
event loop stops. Nothing inside the loop can notice that until it is over.

So the watch has two halves:

* **in the loop**, a heartbeat task that reads a thread-safe monotonic clock every
  ``interval_s`` and records the time (the *beat*);
* **in a daemon thread**, a check every ``interval_s`` that compares the last beat with the
  clock. Past ``threshold_s`` without a beat, the loop is blocked: the thread reports it once
  (log line on ``garrison.supervisors``, the loop thread's stack taken with
  ``sys._current_frames()``, an OpenTelemetry span event, span and counter) and keeps quiet
  until a beat shows the loop ran again; then it reports the recovery with the duration.

A blockage that starts and ends between two checks is still counted: each beat records the
gap since the previous one, and the next check reports a gap past the threshold as a blockage
that already ended (without a stack: by then the loop is doing something else).

Bounds: one thread and one task per running watch; the stack kept is at most ``stack_limit``
frames; stopping sets an event the thread waits on and joins it for at most
``join_timeout_s`` (a synchronous join, so it holds the loop for at most that long, in
practice microseconds: the thread is waiting on that event). A thread that does not end in
time (a logging handler stuck on I/O) is a daemon and is left behind; ``statistics()`` says so.

Limits: a loop blocked inside C code that holds the GIL stops this thread too, so that
blockage is reported when the GIL is released, with the stack at that moment. A suspended
process (SIGSTOP, a paused VM) looks like a blocked loop, because it is one.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from opentelemetry import metrics, trace

from policies import ValidationFailed, check_bounds
from supervisors._child import ChildSpec, Restart
from supervisors._telemetry import _SCOPE, logger

__all__ = ["LoopBlockage", "LoopWatch", "LoopWatchConfig", "LoopWatchStatistics"]


BLOCKED_EVENT = "garrison.loop.blocked"
RECOVERED_EVENT = "garrison.loop.recovered"
BLOCKED_SPAN = "garrison.loop.blocked"


class LoopWatchConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How a :class:`LoopWatch` decides that its event loop is blocked.

    Attributes:
        threshold_s: seconds without a heartbeat after which the loop counts as blocked.
        interval_s: seconds between heartbeats in the loop, and between the thread's checks.
            Must be less than ``threshold_s``: a healthy loop beats every ``interval_s``, so
            a blockage is reported between ``threshold_s`` and ``threshold_s + interval_s``
            after the last beat.
        stack_limit: innermost frames of the loop thread's stack kept in a report.
        join_timeout_s: how long stopping the watch waits for its thread to end.

    Raises:
        ValidationFailed: on construction, for a value outside its bounds (``field`` names
            it), or ``interval_s >= threshold_s`` (``field="interval_s"``).
    """

    threshold_s: Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)] = 1.0
    interval_s: Annotated[float, msgspec.Meta(gt=0.0, le=60.0)] = 0.1
    stack_limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    join_timeout_s: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] = 1.0

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.interval_s >= self.threshold_s:
            raise ValidationFailed(
                f"interval_s ({self.interval_s}) must be less than threshold_s "
                f"({self.threshold_s})",
                field="interval_s",
            )


class LoopBlockage(msgspec.Struct, frozen=True, kw_only=True):
    """One report of the watch, as returned by :meth:`LoopWatch.check`.

    Attributes:
        blocked: ``True`` when the loop is blocked now (the first report of a blockage);
            ``False`` when it ran again (the report of its end).
        seconds: when blocked, seconds since the last heartbeat; when it ended, the gap
            between the heartbeats around the blockage (at most ``interval_s`` more than the
            blockage itself).
        stack: the loop thread's stack when the blockage was seen, innermost frame last, one
            formatted frame per item; empty in the report of its end.
        seen_while_blocked: ``False`` for a blockage that began and ended between two checks
            (reported once, after the fact, without a stack).
    """

    blocked: bool
    seconds: float
    stack: tuple[str, ...] = ()
    seen_while_blocked: bool = True


class LoopWatchStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`LoopWatch`, as returned by ``statistics()``.

    Attributes:
        name: the watch's name (the ``garrison.loop.name`` attribute of its telemetry).
        running: whether its heartbeat task runs.
        thread_alive: whether its watchdog thread is alive (after a stop, ``True`` only if
            the thread did not end within ``join_timeout_s``).
        threshold_s: the configured threshold.
        blocked: whether the last check found the loop blocked.
        blocked_for_s: seconds since the last heartbeat as of the last check, when blocked.
        blockages: blockages seen since construction (each counted once).
        longest_blockage_s: the longest of them, in seconds (see ``LoopBlockage.seconds``).
        beats: heartbeats recorded.
        checks: checks made.
    """

    name: str
    running: bool
    thread_alive: bool
    threshold_s: float
    blocked: bool
    blocked_for_s: float
    blockages: int
    longest_blockage_s: float
    beats: int
    checks: int


class LoopWatch:
    """Reports the event loop it runs in when that loop is blocked past a threshold.

    Use it as a scope around the code whose loop it watches, or run it as a supervised child:

    .. code-block:: python

        async with LoopWatch(threshold_s=0.5):
            ...

        Supervisor([LoopWatch(threshold_s=0.5).child_spec(), ...])

    Works on any anyio backend (Trio, asyncio). One watch runs at most once at a time; it can
    run again after it stopped (a supervised restart), keeping its counters.

    Args:
        config: thresholds and bounds; :class:`LoopWatchConfig` defaults when omitted.
        threshold_s, interval_s: shorthand for those config fields (they replace the ones of
            ``config``), validated the same way.
        name: names the watched loop in logs and telemetry.
        clock: the monotonic clock in seconds both halves read; it must be safe to call from
            any thread. Injected by tests.
        tracer_provider, meter_provider: OpenTelemetry providers; the globals by default.

    Raises:
        ValidationFailed: for a config value outside its bounds.
    """

    def __init__(
        self,
        config: LoopWatchConfig | None = None,
        *,
        threshold_s: float | None = None,
        interval_s: float | None = None,
        name: str = "event-loop",
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        config = config if config is not None else LoopWatchConfig()
        changes: dict[str, float] = {}
        if threshold_s is not None:
            changes["threshold_s"] = threshold_s
        if interval_s is not None:
            changes["interval_s"] = interval_s
        self.config = msgspec.structs.replace(config, **changes) if changes else config
        self.name = name
        self._clock = clock
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._blockage_counter = meter.create_counter(
            "garrison.loop.blockages",
            unit="{blockage}",
            description="Times the event loop ran no heartbeat for longer than the threshold.",
        )
        self._duration = meter.create_histogram(
            "garrison.loop.blockage.duration",
            unit="s",
            description="Gap between the heartbeats around each event loop blockage.",
        )
        self._attributes = {"garrison.loop.name": name}
        # Written by the loop's heartbeat, read by the checking thread.
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        self._gap = 0.0
        self._beats = 0
        # The checker's own state; one check at a time.
        self._check_lock = threading.Lock()
        self._checks = 0
        self._blocked_at_beats: int | None = None
        self._blocked_for = 0.0
        self._blockages = 0
        self._longest = 0.0
        self._span: trace.Span | None = None
        # Where the loop runs, taken when it starts.
        self._loop_thread: int | None = None
        self._parent: trace.Span = trace.INVALID_SPAN
        self._running = False
        self._thread: threading.Thread | None = None
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> LoopWatch:
        """Start the heartbeat task and the watchdog thread; return once both run.

        Raises:
            RuntimeError: if this watch is already running.
        """
        if self._running:
            raise RuntimeError(f"loop watch {self.name!r} is already running")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self.run)
        except BaseException:
            # As in __aexit__: the group is closed without the error, which then propagates
            # as it is rather than wrapped in an exception group.
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(None, None, None)
            raise
        self._task_group = task_group
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop the heartbeat task and the thread (joined for at most ``join_timeout_s``).

        An exception of the body propagates unchanged (not wrapped in an exception group).
        """
        task_group, self._task_group = self._task_group, None
        assert task_group is not None, "__aexit__ without __aenter__"
        task_group.cancel_scope.cancel()
        # The body's exception is not handed to the task group: on Trio it would come out
        # wrapped in an ExceptionGroup. The group only has to see its own task end.
        await task_group.__aexit__(None, None, None)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch the loop this runs in until cancelled (the body of a supervised child).

        Calls ``task_status.started()`` once the first heartbeat is recorded and the thread
        runs. On exit (cancellation included) the thread is stopped and joined for at most
        ``join_timeout_s``, synchronously, so the stop completes even under cancellation.

        Raises:
            RuntimeError: if this watch is already running.
        """
        if self._running:
            raise RuntimeError(f"loop watch {self.name!r} is already running")
        self._running = True
        self._loop_thread = threading.get_ident()
        self._parent = trace.get_current_span()
        # A new run starts from its own first beat: the time stopped is not a blockage. No
        # check lock here: a thread left behind by the last run may hold it, stuck.
        with self._lock:
            self._last_beat = None
            self._gap = 0.0
        self._blocked_at_beats = None
        self._blocked_for = 0.0
        stop = threading.Event()
        try:
            self._beat()
            self._thread = threading.Thread(
                target=self._watch,
                args=(stop,),
                name=f"garrison-loop-watch-{self.name}",
                daemon=True,
            )
            self._thread.start()
            task_status.started()
            interval = self.config.interval_s
            while True:
                await anyio.sleep(interval)
                self._beat()
        finally:
            self._running = False
            self._halt(stop)

    def child_spec(
        self, id: str = "loop-watch", *, restart: Restart = Restart.PERMANENT
    ) -> ChildSpec:
        """A spec that runs this watch as a child of a supervisor.

        Its ``shutdown_timeout`` is ``join_timeout_s`` plus one second: the stop does not
        await anything, it only joins the thread.
        """
        return ChildSpec(
            id=id,
            start=self.run,
            restart=restart,
            shutdown_timeout=self.config.join_timeout_s + 1.0,
        )

    def check(self, now: float | None = None) -> LoopBlockage | None:
        """Compare the last heartbeat with ``now`` and report what changed, if anything.

        The watchdog thread calls this every ``interval_s``; tests call it directly with an
        injected ``now`` (default: the watch's clock). A blockage is reported once when it
        is first seen and once more when the loop has run a heartbeat again. Reports are
        logged, traced and counted here, in the calling thread, and returned.
        """
        if now is None:
            now = self._clock()
        with self._check_lock:
            with self._lock:
                last, beats, gap = self._last_beat, self._beats, self._gap
                self._gap = 0.0
            self._checks += 1
            if last is None:
                return None
            if self._blocked_at_beats is not None:
                if beats == self._blocked_at_beats:
                    self._blocked_for = now - last
                    return None
                # The gap that ended the blockage is the largest since the previous check.
                report = LoopBlockage(blocked=False, seconds=gap)
                self._blocked_at_beats = None
                self._blocked_for = 0.0
                self._longest = max(self._longest, gap)
            elif now - last > self.config.threshold_s:
                stalled = now - last
                report = LoopBlockage(blocked=True, seconds=stalled, stack=self._loop_stack())
                self._blocked_at_beats = beats
                self._blocked_for = stalled
                self._blockages += 1
                self._longest = max(self._longest, stalled)
            elif gap > self.config.threshold_s:
                report = LoopBlockage(blocked=False, seconds=gap, seen_while_blocked=False)
                self._blockages += 1
                self._longest = max(self._longest, gap)
            else:
                return None
            self._report(report)
            return report

    def statistics(self) -> LoopWatchStatistics:
        """A frozen snapshot of the watch's state and counters.

        Never waits for a check in progress (which may be logging), so the loop can call it
        at any time; the checker's fields are read as they are.
        """
        with self._lock:
            return LoopWatchStatistics(
                name=self.name,
                running=self._running,
                thread_alive=self._thread is not None and self._thread.is_alive(),
                threshold_s=self.config.threshold_s,
                blocked=self._blocked_at_beats is not None,
                blocked_for_s=self._blocked_for,
                blockages=self._blockages,
                longest_blockage_s=self._longest,
                beats=self._beats,
                checks=self._checks,
            )

    def _beat(self) -> None:
        now = self._clock()
        with self._lock:
            if self._last_beat is not None:
                self._gap = max(self._gap, now - self._last_beat)
            self._last_beat = now
            self._beats += 1

    def _watch(self, stop: threading.Event) -> None:
        interval = self.config.interval_s
        while not stop.wait(interval):
            try:
                self.check()
            except Exception:
                # A broken exporter or handler must not end the watch silently.
                logger.exception("loop watch %s: check failed", self.name)

    def _halt(self, stop: threading.Event) -> None:
        stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.config.join_timeout_s)
            if thread.is_alive():
                logger.warning(
                    "loop watch %s: thread still running %.3f s after stop, left behind",
                    self.name,
                    self.config.join_timeout_s,
                    extra={"loop": self.name},
                )
                # It may hold the check lock; whatever span it has open is left to it.
                return
        with self._check_lock:
            if self._span is not None:
                # Stopped while (as far as the last check knew) blocked: close the span.
                self._span.end()
                self._span = None

    def _loop_stack(self) -> tuple[str, ...]:
        frame = sys._current_frames().get(self._loop_thread) if self._loop_thread else None
        if frame is None:
            return ()
        # extract_stack walks outwards from the frame, so the limit keeps the innermost ones.
        summary = traceback.extract_stack(frame, limit=self.config.stack_limit)
        return tuple(summary.format())

    def _report(self, report: LoopBlockage) -> None:
        threshold = self.config.threshold_s
        if report.blocked:
            stack = "".join(report.stack)
            attributes: dict[str, str | float | int] = {
                **self._attributes,
                "garrison.loop.blocked_s": report.seconds,
                "garrison.loop.threshold_s": threshold,
                "code.stacktrace": stack,
            }
            start_ns = time.time_ns() - int(report.seconds * 1e9)
            self._add_parent_event(BLOCKED_EVENT, attributes)
            self._span = self._tracer.start_span(
                BLOCKED_SPAN,
                context=trace.set_span_in_context(self._parent),
                attributes=attributes,
                start_time=start_ns,
            )
            self._blockage_counter.add(1, self._attributes)
            logger.warning(
                "event loop %s blocked: no heartbeat for %.3f s (threshold %.3f s); "
                "loop thread stack, innermost last:\n%s",
                self.name,
                report.seconds,
                threshold,
                stack,
                extra={"loop": self.name, "blocked_s": report.seconds, "threshold_s": threshold},
            )
            return
        attributes = {**self._attributes, "garrison.loop.blocked_s": report.seconds}
        self._add_parent_event(RECOVERED_EVENT, attributes)
        self._duration.record(report.seconds, self._attributes)
        if report.seen_while_blocked:
            if self._span is not None:
                self._span.set_attribute("garrison.loop.blocked_s", report.seconds)
                self._span.end()
                self._span = None
            logger.info(
                "event loop %s ran again after %.3f s without a heartbeat",
                self.name,
                report.seconds,
                extra={"loop": self.name, "blocked_s": report.seconds},
            )
            return
        self._blockage_counter.add(1, self._attributes)
        self._tracer.start_span(
            BLOCKED_SPAN,
            context=trace.set_span_in_context(self._parent),
            attributes=attributes,
            start_time=time.time_ns() - int(report.seconds * 1e9),
        ).end()
        logger.warning(
            "event loop %s was blocked: %.3f s between heartbeats (threshold %.3f s), "
            "over before the watch looked, so no stack",
            self.name,
            report.seconds,
            threshold,
            extra={"loop": self.name, "blocked_s": report.seconds, "threshold_s": threshold},
        )

    def _add_parent_event(self, name: str, attributes: dict[str, Any]) -> None:
        if self._parent.is_recording():
            self._parent.add_event(name, attributes)
