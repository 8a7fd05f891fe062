"""The tracer and instruments Garrison reports through, and which of them is current.

Library code calls the module-level helpers of :mod:`runtime.telemetry` (``process_span``,
``dead_letter_written`` ...); they go to the *current* :class:`Instruments`, which by default
is bound to the ``opentelemetry-api`` global providers (no-ops until an SDK is configured,
and forwarded to the SDK once one is). Tests and embedding apps can bind other providers
with :func:`use_instruments` (``capture_telemetry`` does), so nothing depends on the
set-once global providers.

The helpers read the current instruments as ``_registry._current`` at each call (not
imported by value), so that :func:`use_instruments` reaches all of them.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from runtime.telemetry._histograms import SECONDS_BUCKETS, HistogramSet, HistogramTable

__all__ = [
    "MAX_GAUGE_SERIES",
    "SCOPE",
    "DepthSample",
    "Instruments",
    "current_instruments",
    "histogram_set",
    "install_instruments",
    "register_depth_source",
    "use_instruments",
]

SCOPE: Final = "garrison.runtime"
# Gauge state is bounded: a runaway number of channels or queues cannot grow memory.
MAX_GAUGE_SERIES: Final = 1024

log = logging.getLogger("garrison.telemetry")
log.addHandler(logging.NullHandler())


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
