"""Messaging spans and per-item measurements: enqueue (``send``), ``process`` and settle
(``ack``/``nack``), with the counters and histograms of each item's outcome.

This is the per-item hot path (see bench/README.md, "Telemetry overhead"): attributes are
built only for recording spans, memo tables are bounded, and the current
:class:`~runtime.telemetry.Instruments` is read at each call (so ``use_instruments``
reaches every helper).

The items are described by the attributes read here (:class:`OutgoingItem`,
:class:`LeasedItem`), not by the store's types: the store reports through this package, so
this package imports nothing of the store's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Final, Protocol, TypeVar

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from runtime.telemetry import _registry
from runtime.telemetry._propagation import (
    DEAD_LETTER_CONTEXT_KEY,
    attach,
    parse_traceparent,
    span_carrier,
)
from runtime.telemetry._registry import MAX_GAUGE_SERIES

__all__ = [
    "MESSAGING_SYSTEM",
    "LeasedItem",
    "OutgoingItem",
    "enqueue_span",
    "items_enqueued",
    "lease_contended",
    "process_span",
    "queue_depth",
    "MAX_SETTLE_LINKS",
    "settle_links",
    "settle_span",
    "settled",
]

MESSAGING_SYSTEM: Final = "garrison"


class OutgoingItem(Protocol):
    """What :func:`enqueue_span` reads of an item being enqueued (the store's ``NewItem``).

    The items must also be ``msgspec.Struct`` instances: a context is injected with
    ``msgspec.structs.replace``.
    """

    @property
    def topic(self) -> str:
        """The topic the item is sent to."""
        ...

    @property
    def trace_context(self) -> Mapping[str, str] | None:
        """The W3C carrier the item already has, if any."""
        ...


class LeasedItem(Protocol):
    """What :class:`process_span` and :func:`settled` read of a leased item (the store's
    ``WorkItem``)."""

    @property
    def id(self) -> str:
        """The item's id."""
        ...

    @property
    def queue(self) -> str:
        """The queue it was leased from."""
        ...

    @property
    def topic(self) -> str:
        """Its topic."""
        ...

    @property
    def key(self) -> str | None:
        """Its partition key."""
        ...

    @property
    def priority(self) -> int:
        """Its priority."""
        ...

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first)."""
        ...

    @property
    def max_attempts(self) -> int:
        """Attempts allowed before it is dead-lettered."""
        ...

    @property
    def correlation_id(self) -> str | None:
        """The caller's correlation id."""
        ...

    @property
    def trace_context(self) -> Mapping[str, str] | None:
        """The carrier its enqueue (and a replay) injected."""
        ...

    @property
    def replay_of(self) -> str | None:
        """The dead letter it replays, if it is a replay."""
        ...


_Outgoing = TypeVar("_Outgoing", bound=OutgoingItem)


@contextmanager
def enqueue_span(items: Sequence[_Outgoing]) -> Iterator[list[_Outgoing]]:
    """A ``send`` span (kind PRODUCER) around an enqueue; yields the items to write.

    Items without a ``trace_context`` get the span's W3C context injected, so the process
    span of each can link back to it, in any process and after any restart. A span that
    was sampled out is injected too (its ``traceparent`` says so): the items' process spans
    follow that decision rather than sample again. With no SDK (an invalid span), the
    items are yielded unchanged.
    """
    inst = _registry._current
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


def _with_context(items: Sequence[_Outgoing], span: Span) -> list[_Outgoing]:
    carrier = span_carrier(span)
    return [
        item
        if item.trace_context is not None
        # The store's items are Structs; a Protocol cannot say so to the type checker.
        else msgspec.structs.replace(item, trace_context=carrier)  # type: ignore[type-var]
        for item in items
    ]


def items_enqueued(topic: str, n: int = 1) -> None:
    """Count ``n`` items newly accepted on ``topic``."""
    if n > 0:
        _registry._current.enqueued.add(n, {"garrison.topic": topic})


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

    def __init__(self, item: LeasedItem, *, owner: str | None = None) -> None:
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
            enqueued = parse_traceparent(carrier.get("traceparent"))
            replay = parse_traceparent(carrier.get(DEAD_LETTER_CONTEXT_KEY))
            if (
                enqueued is not None
                and not enqueued.trace_flags.sampled
                and (replay is None or not replay.trace_flags.sampled)
                and _registry._current.sampler_follows_links
                and not trace.get_current_span().get_span_context().is_valid
            ):
                return self._dropped(enqueued)
            if replay is not None:
                links = (Link(replay, _REPLAY_LINK),)
            if enqueued is not None:
                links = (Link(enqueued), *links)
        span = _registry._current.tracer.start_span(
            _process_name(item.topic), kind=SpanKind.CONSUMER, links=links
        )
        self._span = span
        if span.is_recording():
            self._attributes = {}
            self._pending = _processing.set(self)
        self._token = attach(span)
        return span

    def _dropped(self, enqueued: trace.SpanContext) -> Span:
        # The sampler would drop this span (its enqueue was sampled out): skip the SDK
        # building a span only to say so, most of the cost of an unsampled item. The
        # enqueue's context is current instead: the handler's spans are dropped with it,
        # required spans are kept in the enqueue's trace, and log lines carry its ids.
        span = trace.NonRecordingSpan(enqueued)
        self._span = span
        self._token = attach(span)
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


# The enqueue link, on every traced item, has no attributes (the SDK copies a link's
# attributes into a bounded mapping of their own: ~2 us for this one); the replay link,
# rarer, says what it is.
_REPLAY_LINK: Final = {"garrison.link": "replay"}

# Small memo tables for the hot path, bounded like the gauges (a runaway number of topics
# or outcomes only stops the memoising): span names by topic, histogram attributes by
# (topic, outcome) and by topic.
_process_names: dict[str, str] = {}
_outcome_attributes: dict[tuple[str, str], Mapping[str, str]] = {}
_topic_attributes: dict[str, Mapping[str, str]] = {}


def _process_name(topic: str) -> str:
    name = _process_names.get(topic)
    if name is None:
        name = f"process {topic}"
        if len(_process_names) < MAX_GAUGE_SERIES:
            _process_names[topic] = name
    return name


def settled(
    item: LeasedItem,
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
    inst = _registry._current
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


#: Most links a batch's settle span carries to the journeys it settles (OTel's default
#: span limit is 128; a batch of hundreds would otherwise cost a link per item).
MAX_SETTLE_LINKS: Final = 32


def settle_links(contexts: Sequence[Mapping[str, str] | None]) -> list[Link]:
    """Links to the enqueue contexts of a batch's items: sampled ones first, each once,
    at most :data:`MAX_SETTLE_LINKS` (the sampler keeps the batch if any is sampled)."""
    kept: list[Link] = []
    dropped: list[Link] = []
    seen: set[int] = set()
    for carrier in contexts:
        if not carrier:
            continue
        linked = parse_traceparent(carrier.get("traceparent"))
        if linked is None or linked.span_id in seen:
            continue
        seen.add(linked.span_id)
        (kept if linked.trace_flags.sampled else dropped).append(Link(linked))
        if len(kept) >= MAX_SETTLE_LINKS:
            break
    return (kept + dropped)[:MAX_SETTLE_LINKS]


class settle_span:
    """Messaging *settle* (``ack`` or ``nack``) for acknowledging or failing items.

    ``with settle_span("ack", item_id=...) as span:`` — inside a span (the process span of
    the item), a single item's settle is an event on that span, added when the block ends
    without an exception, or nothing if that span was sampled out (a child span per item
    would double the tracing cost of the hot path). A batch, or a settle outside any span,
    gets its own span (kind CLIENT), current inside the block, with an exception leaving
    the block recorded on it; given the items' trace ``contexts``, that span links to their
    enqueues (:func:`settle_links`) and is sampled with them. Attributes are built only
    when something records.
    """

    __slots__ = (
        "_contexts",
        "_count",
        "_event",
        "_item_id",
        "_operation",
        "_own",
        "_span",
        "_token",
    )

    def __init__(
        self,
        operation: str,
        *,
        item_id: str | None = None,
        count: int = 1,
        contexts: Sequence[Mapping[str, str] | None] | None = None,
    ) -> None:
        self._operation = operation
        self._item_id = item_id
        self._contexts = contexts
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
        links = settle_links(self._contexts) if self._contexts else None
        span = _registry._current.tracer.start_span(
            self._operation, kind=SpanKind.CLIENT, links=links
        )
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
        self._token = attach(span)
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
        _registry._current.lease_contention.add(n, {"garrison.queue": queue})


def queue_depth(queue: str, depths: Mapping[str, int]) -> None:
    """Publish the latest depth by state of ``queue`` to the ``garrison.queue.depth`` gauge."""
    _registry._current.set_depth(queue, depths)
