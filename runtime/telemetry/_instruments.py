"""The tracer and instruments Garrison reports through, and the helpers that use them.

Library code calls the module-level helpers (``dead_letter_written``, ``process_span`` ...);
they go to the *current* :class:`Instruments`, which by default is bound to the
``opentelemetry-api`` global providers (no-ops until an SDK is configured, and forwarded to
the SDK once one is). Tests and embedding apps can bind other providers with
:func:`use_instruments` (``capture_telemetry`` does), so nothing depends on the
set-once global providers.

Every helper is cheap when nothing records: attributes are built only for recording spans.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from runtime.telemetry._histograms import SECONDS_BUCKETS, HistogramSet, HistogramTable

if TYPE_CHECKING:
    # Only for annotations: the store imports this module, so no import back at run time.
    from runtime.store._envelope import NewItem, WorkItem

__all__ = [
    "DEAD_LETTER_SPAN",
    "LEVELS",
    "PRESSURE_SPAN",
    "REPLAY_SPAN",
    "RESTART_SPAN",
    "Instruments",
    "ReplayRecorder",
    "current_instruments",
    "dead_letter_written",
    "enqueue_span",
    "extract_context",
    "histogram_set",
    "item_rejected",
    "items_enqueued",
    "items_shed",
    "lease_contended",
    "pressure_level_gauge",
    "pressure_transition",
    "process_span",
    "queue_depth",
    "replay_span",
    "settled",
    "use_instruments",
]

SCOPE: Final = "garrison.runtime"
MESSAGING_SYSTEM: Final = "garrison"
DEAD_LETTER_SPAN: Final = "garrison.dead_letter.write"
PRESSURE_SPAN: Final = "garrison.pressure.transition"
REPLAY_SPAN: Final = "garrison.replay"
RESTART_SPAN: Final = "garrison.supervisor.restart"
#: Pressure levels and the value the ``garrison.pressure.level`` gauge reports for each.
LEVELS: Final[Mapping[str, int]] = {"normal": 0, "elevated": 1, "critical": 2}
#: The trace-context key under which a replayed item carries its dead letter's context.
DEAD_LETTER_CONTEXT_KEY: Final = "garrison-dead-letter-traceparent"
# Gauge state is bounded: a runaway number of channels or queues cannot grow memory.
MAX_GAUGE_SERIES: Final = 1024

log = logging.getLogger("garrison.telemetry")
log.addHandler(logging.NullHandler())
_store_log = logging.getLogger("garrison.store")
_pressure_log = logging.getLogger("garrison.pressure")
_replay_log = logging.getLogger("garrison.replay")
for _logger in (_store_log, _pressure_log, _replay_log):
    # A library must not print through logging's last-resort handler when the app
    # configured none (as supervisors._telemetry does).
    _logger.addHandler(logging.NullHandler())

_PROPAGATOR: Final = TraceContextTextMapPropagator()


class _Recorder(Protocol):
    def record(
        self, value: float, key: Hashable, attributes: Mapping[str, AttributeValue]
    ) -> None: ...


class _SdkRecorder:
    __slots__ = ("_histogram",)

    def __init__(self, histogram: metrics.Histogram) -> None:
        self._histogram = histogram

    def record(self, value: float, key: Hashable, attributes: Mapping[str, AttributeValue]) -> None:
        self._histogram.record(value, attributes)


# The per-item histograms, in the order ``Instruments`` binds them: name, unit, description.
_HISTOGRAMS: Final = (
    ("garrison.queue.latency", "s", "Time from an item becoming available to its lease."),
    ("garrison.process.duration", "s", "Handler run time of one attempt, by topic and outcome."),
)


def histogram_set() -> HistogramSet:
    """Fresh tables for Garrison's per-item histograms (queue latency, handler duration),
    for readers made with it and the :class:`Instruments` that records into it."""
    return HistogramSet(
        SCOPE,
        [HistogramTable(*spec, max_series=MAX_GAUGE_SERIES) for spec in _HISTOGRAMS],
    )


class Instruments:
    """One tracer plus every Garrison instrument, bound to a pair of providers.

    Args:
        tracer_provider: where spans go; the global provider when None.
        meter_provider: where measurements go; the global provider when None.
        histograms: a :func:`histogram_set` whose tables take the per-item histograms,
            for meter providers whose readers report it (as ``configure_telemetry``
            builds them); None records them through ``meter_provider``'s histograms.
        sampler_follows_links: the tracer provider's sampler drops a root span whose
            links were all sampled out (Garrison's ``KeepRequiredSampler`` does), so a
            process span of an item whose enqueue was sampled out can skip the SDK.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        histograms: HistogramSet | None = None,
        sampler_follows_links: bool = False,
    ) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.sampler_follows_links = sampler_follows_links
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self._lock = threading.Lock()
        self._depths: dict[tuple[str, str], int] = {}
        self._levels: dict[str, int] = {}
        self.enqueued = meter.create_counter(
            "garrison.items.enqueued", unit="{item}", description="Items accepted by enqueue."
        )
        # The per-item counters are totals kept here and observed at collection time: a
        # dict increment per item instead of an SDK measurement (see bench/README.md).
        self._totals: dict[tuple[str, str, str, str], int] = {}
        meter.create_observable_counter(
            "garrison.items.processed",
            callbacks=[self._observer("processed")],
            unit="{item}",
            description="Handler attempts finished, by topic and outcome.",
        )
        meter.create_observable_counter(
            "garrison.items.succeeded",
            callbacks=[self._observer("succeeded")],
            unit="{item}",
            description="Items acknowledged after their handler returned.",
        )
        meter.create_observable_counter(
            "garrison.items.retried",
            callbacks=[self._observer("retried")],
            unit="{item}",
            description="Failed attempts scheduled for a retry, by topic and reason.",
        )
        self.dead_lettered = meter.create_counter(
            "garrison.items.dead_lettered",
            unit="{item}",
            description="Items written as dead letters, by topic and reason.",
        )
        self.shed = meter.create_counter(
            "garrison.items.shed",
            unit="{item}",
            description="Items dropped by a shed action, by topic and reason.",
        )
        self.rejected = meter.create_counter(
            "garrison.items.rejected",
            unit="{item}",
            description="Items refused at intake (pressure, validation), by topic and reason.",
        )
        # Per item; aggregated here when Garrison's own readers collect them (see
        # ``histogram_set``), SDK histograms otherwise.
        self.queue_latency: _Recorder
        self.process_duration: _Recorder
        if histograms is not None:
            self.queue_latency, self.process_duration = histograms.tables
        else:
            self.queue_latency, self.process_duration = (
                _SdkRecorder(
                    meter.create_histogram(
                        name,
                        unit=unit,
                        description=description,
                        explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
                    )
                )
                for name, unit, description in _HISTOGRAMS
            )
        self.lease_contention = meter.create_counter(
            "garrison.lease.contention",
            unit="{wait}",
            description="Times a writer waited on a busy database (lease contention).",
        )
        self.pressure_transitions = meter.create_counter(
            "garrison.pressure.transitions",
            unit="{transition}",
            description="Pressure level changes, by channel and level.",
        )
        self.replays = meter.create_counter(
            "garrison.replays",
            unit="{replay}",
            description="Dead-letter replays, by topic and outcome.",
        )
        meter.create_observable_gauge(
            "garrison.queue.depth",
            callbacks=[self._observe_depth],
            unit="{item}",
            description="Items in the durable queue by state (as last sampled).",
        )
        meter.create_observable_gauge(
            "garrison.pressure.level",
            callbacks=[self._observe_levels],
            unit="1",
            description="Pressure level per channel: 0 normal, 1 elevated, 2 critical.",
        )

    def count(self, metric: str, topic: str, name: str = "", value: str = "") -> None:
        """Add one to the total of an observed counter (``name=value`` an extra attribute)."""
        key = (metric, topic, name, value)
        with self._lock:
            n = self._totals.get(key)
            if n is not None:
                self._totals[key] = n + 1
            elif len(self._totals) < MAX_GAUGE_SERIES:
                self._totals[key] = 1

    def _observer(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                items = [(k, n) for k, n in self._totals.items() if k[0] == metric]
            return [
                Observation(
                    n, {"garrison.topic": topic, name: value} if name else {"garrison.topic": topic}
                )
                for (_, topic, name, value), n in items
            ]

        return observe

    def _observe_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            depths = dict(self._depths)
        depths.update(_sample_depth_sources())
        items = list(depths.items())
        return [
            Observation(n, {"garrison.queue": queue, "garrison.state": state})
            for (queue, state), n in items
        ]

    def _observe_levels(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._levels.items())
        return [Observation(level, {"garrison.channel": channel}) for channel, level in items]

    def set_depth(self, queue: str, depths: Mapping[str, int]) -> None:
        """Keep the latest depth by state of ``queue`` for the gauge."""
        with self._lock:
            for state, n in depths.items():
                key = (queue, state)
                if key in self._depths or len(self._depths) < MAX_GAUGE_SERIES:
                    self._depths[key] = int(n)

    def levels(self) -> dict[str, int]:
        """The latest pressure level of every channel (a copy)."""
        with self._lock:
            return dict(self._levels)

    def depths(self) -> dict[tuple[str, str], int]:
        """The latest sampled depth by ``(queue, state)`` (a copy)."""
        with self._lock:
            return dict(self._depths)

    def set_level(self, channel: str, level: int) -> None:
        """Keep the latest pressure level of ``channel`` for the gauge."""
        with self._lock:
            if channel in self._levels or len(self._levels) < MAX_GAUGE_SERIES:
                self._levels[channel] = level


_current: Instruments = Instruments()

DepthSample = Callable[[], Mapping[str, int]]
_sources_lock = threading.Lock()
_sources: dict[int, tuple[str, Callable[[], DepthSample | None]]] = {}
_source_ids = itertools.count()


def register_depth_source(queue: str, sample: DepthSample) -> Callable[[], None]:
    """Let the ``garrison.queue.depth`` gauge sample ``queue``'s depth by state on each
    collection (in the exporter's thread, never the event loop); return the function that
    unregisters it. A bound method is held weakly, so its object can still be collected.
    """
    ref: Callable[[], DepthSample | None]
    if hasattr(sample, "__self__") and hasattr(sample, "__func__"):
        ref = weakref.WeakMethod(sample)
    else:
        ref = lambda: sample  # noqa: E731
    key = next(_source_ids)
    with _sources_lock:
        if len(_sources) < MAX_GAUGE_SERIES:
            _sources[key] = (queue, ref)

    def unregister() -> None:
        with _sources_lock:
            _sources.pop(key, None)

    return unregister


def _sample_depth_sources() -> dict[tuple[str, str], int]:
    with _sources_lock:
        sources = list(_sources.values())
    found: dict[tuple[str, str], int] = {}
    for queue, ref in sources:
        sample = ref()
        if sample is None:
            continue
        try:
            depths = sample()
        except Exception:  # a closed or busy store must not break the whole collection
            log.debug("queue depth sample of %s failed", queue, exc_info=True)
            continue
        for state, n in depths.items():
            found[(queue, state)] = int(n)
    return found


def current_instruments() -> Instruments:
    """The instruments the helpers report through right now."""
    return _current


@contextmanager
def use_instruments(instruments: Instruments) -> Iterator[Instruments]:
    """Report through ``instruments`` inside the block (process-wide), then restore."""
    global _current
    previous, _current = _current, instruments
    try:
        yield instruments
    finally:
        _current = previous


def install_instruments(instruments: Instruments) -> None:
    """Report through ``instruments`` from now on (process-wide)."""
    global _current
    _current = instruments


# -- propagation -------------------------------------------------------------------------


def extract_context(carrier: Mapping[str, str] | None) -> trace.SpanContext | None:
    """The remote span context in a W3C ``traceparent`` carrier, or None."""
    if not carrier or "traceparent" not in carrier:
        return None
    ctx = _PROPAGATOR.extract(carrier)
    span_context = trace.get_current_span(ctx).get_span_context()
    return span_context if span_context.is_valid else None


def _carrier(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span, Context()))
    return carrier


# -- enqueue -----------------------------------------------------------------------------


@contextmanager
def enqueue_span(items: Sequence[NewItem]) -> Iterator[list[NewItem]]:
    """A ``send`` span (kind PRODUCER) around an enqueue; yields the items to write.

    Items without a ``trace_context`` get the span's W3C context injected, so the process
    span of each can link back to it, in any process and after any restart. A span that
    was sampled out is injected too (its ``traceparent`` says so): the items' process spans
    follow that decision rather than sample again. With no SDK (an invalid span), the
    items are yielded unchanged.
    """
    inst = _current
    topics = {item.topic for item in items}
    name = f"send {next(iter(topics))}" if len(topics) == 1 else "send"
    with inst.tracer.start_as_current_span(
        name, kind=SpanKind.PRODUCER, record_exception=True
    ) as span:
        if not span.is_recording():
            yield _with_context(items, span) if span.get_span_context().is_valid else list(items)
            return
        span.set_attribute("messaging.system", MESSAGING_SYSTEM)
        span.set_attribute("messaging.operation.type", "send")
        span.set_attribute("messaging.operation.name", "enqueue")
        if len(topics) == 1:
            span.set_attribute("messaging.destination.name", name[5:])
        if len(items) > 1:
            span.set_attribute("messaging.batch.message_count", len(items))
        yield _with_context(items, span)


def _with_context(items: Sequence[NewItem], span: Span) -> list[NewItem]:
    carrier = _carrier(span)
    return [
        item
        if item.trace_context is not None
        else msgspec.structs.replace(item, trace_context=carrier)
        for item in items
    ]


def items_enqueued(topic: str, n: int = 1) -> None:
    """Count ``n`` items newly accepted on ``topic``."""
    if n > 0:
        _current.enqueued.add(n, {"garrison.topic": topic})


def item_rejected(topic: str, reason: str) -> None:
    """Count one item refused at intake on ``topic`` (``reason``: pressure, validation...)."""
    _current.rejected.add(1, {"garrison.topic": topic, "garrison.reason": reason})


def items_shed(topic: str, n: int, reason: str, *, log: bool = False) -> None:
    """Count ``n`` items of ``topic`` dropped by a shed action for ``reason``.

    With ``log``, also one warning line for the lot (a shed of many items at once; a
    mailbox shedding one at a time only counts).
    """
    if n > 0:
        _current.shed.add(n, {"garrison.topic": topic, "garrison.reason": reason})
        if log:
            _pressure_log.warning(
                "shed %d item(s) (%s)",
                n,
                reason,
                extra={
                    "event": "items_shed",
                    "component": "pressure",
                    "topic": topic,
                    "count": n,
                    "reason": reason,
                },
            )


# -- processing --------------------------------------------------------------------------


class process_span:
    """A ``process <topic>`` span (kind CONSUMER) around handling one leased item.

    ``with process_span(item, owner=...) as span:`` — the span is current inside the block
    and linked to the span that enqueued the item (from ``item.trace_context``; a link
    without attributes) and, for a replayed item, to its replay (``garrison.link=replay``).
    An exception leaving the block is recorded on the span and re-raised.

    Built for the hot path (see bench/README.md, "Telemetry overhead"): a class, not a
    generator; links only for a recording span; the context attached only for a valid
    span. The item's attributes are set when the block ends, in one call together with the
    outcome :func:`settled` reported, so they are on the span when it is exported but not
    while it is running.
    """

    __slots__ = ("_attributes", "_item", "_owner", "_pending", "_span", "_token")

    def __init__(self, item: WorkItem, *, owner: str | None = None) -> None:
        self._item = item
        self._owner = owner
        self._token: object | None = None
        self._pending: Token[process_span | None] | None = None
        self._attributes: dict[str, AttributeValue] | None = None

    def __enter__(self) -> Span:
        item = self._item
        carrier = item.trace_context
        links: tuple[Link, ...] = ()
        if carrier:
            # Given at the start, so that a sampler can follow the enqueue's decision
            # (Garrison's does); only a recording span keeps them.
            enqueued = _parse_traceparent(carrier.get("traceparent"))
            replay = _parse_traceparent(carrier.get(DEAD_LETTER_CONTEXT_KEY))
            if (
                enqueued is not None
                and not enqueued.trace_flags.sampled
                and (replay is None or not replay.trace_flags.sampled)
                and _current.sampler_follows_links
                and not trace.get_current_span().get_span_context().is_valid
            ):
                return self._dropped(enqueued)
            if replay is not None:
                links = (Link(replay, _REPLAY_LINK),)
            if enqueued is not None:
                links = (Link(enqueued), *links)
        span = _current.tracer.start_span(
            _process_name(item.topic), kind=SpanKind.CONSUMER, links=links
        )
        self._span = span
        if span.is_recording():
            self._attributes = {}
            self._pending = _processing.set(self)
        self._token = _attach(span)
        return span

    def _dropped(self, enqueued: trace.SpanContext) -> Span:
        # The sampler would drop this span (its enqueue was sampled out): skip the SDK
        # building a span only to say so, most of the cost of an unsampled item. The
        # enqueue's context is current instead: the handler's spans are dropped with it,
        # required spans are kept in the enqueue's trace, and log lines carry its ids.
        span = trace.NonRecordingSpan(enqueued)
        self._span = span
        self._token = _attach(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        span = self._span
        if self._pending is not None:
            _processing.reset(self._pending)
            span.set_attributes(self._item_attributes())
            # A late ``settled`` (from a task started inside the block) finds no span to
            # report to, as it would find the span ended.
            self._attributes = None
        if exc is not None and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
        span.end()

    def _item_attributes(self) -> dict[str, AttributeValue]:
        item = self._item
        attributes: dict[str, AttributeValue] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": item.topic,
            "messaging.message.id": item.id,
            "garrison.queue": item.queue,
            "garrison.attempt": item.attempt,
            "garrison.max_attempts": item.max_attempts,
            "garrison.priority": item.priority,
        }
        if item.key is not None:
            attributes["garrison.key"] = item.key
        if item.correlation_id is not None:
            attributes["messaging.message.conversation_id"] = item.correlation_id
        if item.replay_of is not None:
            attributes["garrison.replay_of"] = item.replay_of
        if self._owner is not None:
            attributes["messaging.consumer.group.name"] = self._owner
        if self._attributes:
            attributes.update(self._attributes)
        return attributes


# The recording process span of the attempt this task is handling, so that ``settled``
# can hand it the outcome rather than make an SDK call of its own.
_processing: ContextVar[process_span | None] = ContextVar("garrison_processing", default=None)


def _attach(span: Span) -> object | None:
    """Make ``span`` current (the token to detach), unless it is invalid (nothing records)."""
    if span.get_span_context().is_valid:
        return otel_context.attach(trace.set_span_in_context(span))
    return None


# The enqueue link, on every traced item, has no attributes (the SDK copies a link's
# attributes into a bounded mapping of their own: ~2 us for this one); the replay link,
# rarer, says what it is.
_REPLAY_LINK: Final = {"garrison.link": "replay"}

# Small memo tables for the hot path, bounded like the gauges (a runaway number of topics
# or outcomes only stops the memoising): span names by topic, histogram attributes by
# (topic, outcome), and parsed traceparents (the items of one enqueue call share theirs).
_process_names: dict[str, str] = {}
_outcome_attributes: dict[tuple[str, str], Mapping[str, str]] = {}
_topic_attributes: dict[str, Mapping[str, str]] = {}
_parsed: dict[str, trace.SpanContext | None] = {}
MAX_PARSED: Final = 256


def _process_name(topic: str) -> str:
    name = _process_names.get(topic)
    if name is None:
        name = f"process {topic}"
        if len(_process_names) < MAX_GAUGE_SERIES:
            _process_names[topic] = name
    return name


def _parse_traceparent(value: str | None) -> trace.SpanContext | None:
    if not value:
        return None
    try:
        return _parsed[value]
    except KeyError:
        pass
    found = _parse_traceparent_uncached(value)
    if len(_parsed) >= MAX_PARSED:
        _parsed.clear()
    _parsed[value] = found
    return found


def _parse_traceparent_uncached(value: str) -> trace.SpanContext | None:
    # A fast W3C traceparent parse (version 00 layout); anything unusual goes through the
    # full propagator.
    parts = value.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16 and len(parts[3]) == 2:
        try:
            trace_id, span_id = int(parts[1], 16), int(parts[2], 16)
            flags = int(parts[3], 16)
        except ValueError:
            return None
        if trace_id and span_id and parts[0] != "ff":
            return trace.SpanContext(
                trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 0xFF)
            )
        return None
    return extract_context({"traceparent": value})


def settled(
    item: WorkItem,
    outcome: str,
    *,
    duration_s: float,
    queue_latency_s: float | None = None,
    error: BaseException | None = None,
) -> None:
    """Record the outcome of one attempt: counters, histograms, and the current span.

    ``outcome`` is ``succeeded``, ``retry_scheduled``, ``dead_lettered`` or ``stale``;
    ``error`` is what the handler raised, if anything (recorded on the current span).
    Dead letters themselves are reported by :func:`dead_letter_written` (the store does).
    """
    inst = _current
    topic = item.topic
    inst.count("processed", topic, "garrison.outcome", outcome)
    if outcome == "succeeded":
        inst.count("succeeded", topic)
    elif outcome == "retry_scheduled":
        reason = "timeout" if isinstance(error, TimeoutError) else "error"
        inst.count("retried", topic, "garrison.reason", reason)
    key = (topic, outcome)
    attributes = _outcome_attributes.get(key)
    if attributes is None:
        attributes = {"garrison.topic": topic, "garrison.outcome": outcome}
        if len(_outcome_attributes) < MAX_GAUGE_SERIES:
            _outcome_attributes[key] = attributes
    inst.process_duration.record(duration_s, key, attributes)
    if queue_latency_s is not None:
        attributes = _topic_attributes.get(topic)
        if attributes is None:
            attributes = {"garrison.topic": topic}
            if len(_topic_attributes) < MAX_GAUGE_SERIES:
                _topic_attributes[topic] = attributes
        inst.queue_latency.record(max(queue_latency_s, 0.0), topic, attributes)
    span = trace.get_current_span()
    pending = _processing.get()
    if pending is not None and pending._span is span and pending._attributes is not None:
        pending._attributes["garrison.outcome"] = outcome
        if error is not None:
            pending._attributes["error.type"] = type(error).__qualname__
    elif span.is_recording():
        span.set_attribute("garrison.outcome", outcome)
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
    if error is not None and span.is_recording():
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__qualname__}: {outcome}"))


class settle_span:
    """Messaging *settle* (``ack`` or ``nack``) for acknowledging or failing items.

    ``with settle_span("ack", item_id=...) as span:`` — inside a span (the process span of
    the item), a single item's settle is an event on that span, added when the block ends
    without an exception, or nothing if that span was sampled out (a child span per item
    would double the tracing cost of the hot path). A batch, or a settle outside any span,
    gets its own span (kind CLIENT), current inside the block, with an exception leaving
    the block recorded on it. Attributes are built only when something records.
    """

    __slots__ = ("_count", "_event", "_item_id", "_operation", "_own", "_span", "_token")

    def __init__(self, operation: str, *, item_id: str | None = None, count: int = 1) -> None:
        self._operation = operation
        self._item_id = item_id
        self._count = count
        self._event = False
        self._own = False
        self._token: object | None = None

    def __enter__(self) -> Span:
        parent = trace.get_current_span()
        if self._count == 1 and parent.get_span_context().is_valid:
            # A single settle belongs to the span around it: an event when that span
            # records; nothing when it was sampled out (a child of it would be too).
            self._event = parent.is_recording()
            self._span = parent
            return parent
        span = _current.tracer.start_span(self._operation, kind=SpanKind.CLIENT)
        self._span = span
        self._own = True
        if span.is_recording():
            attributes: dict[str, AttributeValue] = {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "settle",
                "messaging.operation.name": self._operation,
            }
            if self._item_id is not None:
                attributes["messaging.message.id"] = self._item_id
            if self._count > 1:
                attributes["messaging.batch.message_count"] = self._count
            span.set_attributes(attributes)
        self._token = _attach(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if not self._own:
            if self._event and exc is None:
                attributes: dict[str, AttributeValue] = {
                    "messaging.operation.type": "settle",
                    "messaging.operation.name": self._operation,
                }
                if self._item_id is not None:
                    attributes["messaging.message.id"] = self._item_id
                span.add_event(self._operation, attributes)
            return
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        # As ``start_as_current_span`` does: only an Exception is an error (not Cancelled,
        # GeneratorExit, KeyboardInterrupt).
        if isinstance(exc, Exception) and span.is_recording():
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()


def lease_contended(n: int = 1, *, queue: str = "default") -> None:
    """Count ``n`` waits on a busy database while leasing or settling."""
    if n > 0:
        _current.lease_contention.add(n, {"garrison.queue": queue})


def queue_depth(queue: str, depths: Mapping[str, int]) -> None:
    """Publish the latest depth by state of ``queue`` to the ``garrison.queue.depth`` gauge."""
    _current.set_depth(queue, depths)


# -- dead letters, pressure, replay ------------------------------------------------------


def dead_letter_written(
    *,
    reason: str,
    topic: str,
    item_id: str,
    attempts: int,
    max_attempts: int | None = None,
    queue: str | None = None,
    error_type: str | None = None,
) -> None:
    """Report one dead letter: a ``garrison.dead_letter.write`` span, a counter, a log line."""
    inst = _current
    inst.dead_lettered.add(1, {"garrison.topic": topic, "garrison.reason": reason})
    span = inst.tracer.start_span(DEAD_LETTER_SPAN, kind=SpanKind.INTERNAL)
    if span.is_recording():
        span.set_attributes(
            {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.destination.name": topic,
                "messaging.message.id": item_id,
                "garrison.dead_letter.reason": reason,
                "garrison.attempt": attempts,
            }
        )
        if max_attempts is not None:
            span.set_attribute("garrison.max_attempts", max_attempts)
        if queue is not None:
            span.set_attribute("garrison.queue", queue)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
    span.end()
    # Shedding drops items by the hundred on purpose; its warning is one line per shed
    # (items_shed), so each shed item's own line is only INFO.
    level = logging.INFO if reason == "shed" else logging.WARNING
    if _store_log.isEnabledFor(level):
        _store_log.log(
            level,
            "item %s dead-lettered (%s) after %d attempt(s)",
            item_id,
            reason,
            attempts,
            extra={
                "event": "dead_lettered",
                "component": "store",
                "topic": topic,
                "item_id": item_id,
                "attempt": attempts,
                "max_attempts": max_attempts,
                "reason": reason,
                "queue": queue,
            },
        )


def pressure_level_gauge(channel: str, level: str) -> None:
    """Publish ``channel``'s current pressure level (normal/elevated/critical) to the gauge."""
    _current.set_level(channel, LEVELS.get(level, -1))


def pressure_transition(
    *,
    channel: str,
    from_level: str,
    to_level: str,
    depth: int,
    actions: Sequence[str],
) -> None:
    """Report a pressure level change: a ``garrison.pressure.transition`` span, a counter,
    the level gauge and a log line. (The audit row is the caller's ``store.record_event``.)
    """
    inst = _current
    inst.set_level(channel, LEVELS.get(to_level, -1))
    inst.pressure_transitions.add(
        1, {"garrison.channel": channel, "garrison.pressure.level": to_level}
    )
    span = inst.tracer.start_span(PRESSURE_SPAN)
    if span.is_recording():
        span.set_attributes(
            {
                "garrison.channel": channel,
                "garrison.pressure.from": from_level,
                "garrison.pressure.to": to_level,
                "garrison.pressure.depth": depth,
                "garrison.pressure.actions": list(actions),
            }
        )
    span.end()
    if _pressure_log.isEnabledFor(logging.WARNING):
        _pressure_log.warning(
            "pressure on %s: %s -> %s (depth %d)",
            channel,
            from_level,
            to_level,
            depth,
            extra={
                "event": "pressure_transition",
                "component": "pressure",
                "channel": channel,
                "from_level": from_level,
                "to_level": to_level,
                "depth": depth,
                "actions": list(actions),
            },
        )


class ReplayRecorder:
    """What a :func:`replay_span` block reports through."""

    __slots__ = ("_done", "_span", "_topic", "dead_letter_id", "new_item_id")

    def __init__(self, span: Span, dead_letter_id: str, topic: str | None) -> None:
        self._span = span
        self._topic = topic
        self._done = False
        self.dead_letter_id = dead_letter_id
        self.new_item_id: str | None = None

    def trace_context(self) -> dict[str, str]:
        """Entries to add to the new item's ``trace_context`` so its process span links to
        this replay (empty when nothing records)."""
        if not self._span.get_span_context().is_valid:
            return {}
        traceparent = _carrier(self._span).get("traceparent")
        return {DEAD_LETTER_CONTEXT_KEY: traceparent} if traceparent else {}

    def replayed(self, new_item_id: str) -> None:
        """The dead letter was enqueued again as ``new_item_id`` (once; later calls are
        ignored)."""
        if self._done:
            return
        self.new_item_id = new_item_id
        self._finish("replayed")
        if self._span.is_recording():
            self._span.set_attribute("garrison.replay.new_item_id", new_item_id)
            self._span.set_attribute("messaging.message.id", new_item_id)

    def refused(self, reason: str) -> None:
        """The replay was refused (already replayed, archived, not found...)."""
        self._finish(reason)
        self._span.set_status(Status(StatusCode.ERROR, reason))

    def _finish(self, outcome: str) -> None:
        if self._done:
            return
        self._done = True
        attributes = {"garrison.outcome": outcome}
        if self._topic is not None:
            attributes["garrison.topic"] = self._topic
        _current.replays.add(1, attributes)
        if self._span.is_recording():
            self._span.set_attribute("garrison.outcome", outcome)


@contextmanager
def replay_span(
    dead_letter_id: str,
    *,
    topic: str | None = None,
    trace_context: Mapping[str, str] | None = None,
    forced: bool = False,
) -> Iterator[ReplayRecorder]:
    """A ``garrison.replay`` span around replaying one dead letter.

    The span links to the dead item's enqueue context (``trace_context``, the dead item's
    envelope). Call ``recorder.replayed(new_id)`` or ``recorder.refused(reason)``; an
    exception leaving the block counts as refused with the exception's type name.
    """
    inst = _current
    links = None
    dead = extract_context(trace_context)
    if dead is not None:
        links = [Link(dead, {"garrison.link": "dead_letter"})]
    with inst.tracer.start_as_current_span(
        REPLAY_SPAN, kind=SpanKind.PRODUCER, links=links, record_exception=True
    ) as span:
        if span.is_recording():
            span.set_attribute("garrison.dead_letter.id", dead_letter_id)
            span.set_attribute("garrison.replay.forced", forced)
            span.set_attribute("messaging.system", MESSAGING_SYSTEM)
            if topic is not None:
                span.set_attribute("messaging.destination.name", topic)
        recorder = ReplayRecorder(span, dead_letter_id, topic)
        try:
            yield recorder
        except Exception as exc:
            recorder.refused(type(exc).__name__)
            raise
    if recorder.new_item_id is not None and _replay_log.isEnabledFor(logging.INFO):
        _replay_log.info(
            "dead letter %s replayed as %s",
            dead_letter_id,
            recorder.new_item_id,
            extra={
                "event": "replayed",
                "component": "replay",
                "topic": topic,
                "item_id": recorder.new_item_id,
                "dead_letter_id": dead_letter_id,
            },
        )
