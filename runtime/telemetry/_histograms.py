"""Histograms aggregated by Garrison, for the SDK's metric readers to report.

Recording a value through an SDK histogram costs about 7 us (a ``Measurement`` built, the
attribute set frozen and hashed to find its aggregation, two locks), and a handled item
records two: more than the rest of its metrics together (see bench/README.md). When
Garrison sets the SDK up itself, it aggregates these two histograms here instead (one lock,
one ``bisect``), and its metric readers (``_readers``) add the data points to every
collection, so exporters, Prometheus and the in-memory reader see an ordinary
explicit-bucket histogram. With a meter provider of the application's own, the instruments
stay SDK histograms. This module uses no SDK: library code imports it.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.util.types import AttributeValue

__all__ = ["SECONDS_BUCKETS", "HistogramPoint", "HistogramSet", "HistogramTable"]

#: Bucket bounds for durations in seconds: OpenTelemetry's semantic-convention advice for
#: durations (the SDK's default bounds, 0-10,000, are meant for milliseconds).
SECONDS_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
#: The series that takes every measurement once a table is full (as the SDK names it).
OVERFLOW_ATTRIBUTES: Final[Mapping[str, AttributeValue]] = {"otel.metric.overflow": True}
_OVERFLOW_KEY: Final = ("otel.metric.overflow",)


@dataclass(frozen=True, slots=True)
class HistogramPoint:
    """One series of a :class:`HistogramTable` at a collection, as an exporter sees it."""

    attributes: dict[str, AttributeValue]
    start_ns: int
    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    min: float
    max: float


class _Series:
    __slots__ = ("attributes", "counts", "imax", "imin", "max", "min", "start_ns", "sum")

    def __init__(self, attributes: Mapping[str, AttributeValue], buckets: int) -> None:
        self.attributes = dict(attributes)
        self.counts = [0] * buckets
        self.sum = 0.0
        self.min = self.imin = float("inf")
        self.max = self.imax = float("-inf")
        self.start_ns = time.time_ns()


class HistogramTable:
    """One histogram: bucket counts, sum, min and max per attribute set, cumulative.

    Args:
        name, unit, description: the instrument as exporters show it.
        bounds: explicit bucket bounds, increasing (a value equal to a bound counts in the
            bucket that bound closes, as in OpenTelemetry).
        max_series: attribute sets kept; measurements of any further set go to one series
            with ``otel.metric.overflow=true``, so memory stays bounded.
    """

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float] = SECONDS_BUCKETS,
        *,
        max_series: int = 1024,
    ) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._series: dict[Hashable, _Series] = {}

    def record(self, value: float, key: Hashable, attributes: Mapping[str, AttributeValue]) -> None:
        """Count ``value`` in the series ``key`` (whose attributes are ``attributes``).

        ``key`` stands for ``attributes`` so the hot path hashes a small tuple instead of
        freezing a dict; the same key must always come with the same attributes.
        """
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._add(key, attributes)
            series.counts[bisect_left(self.bounds, value)] += 1
            series.sum += value
            if value < series.imin:
                series.imin = value
                if value < series.min:
                    series.min = value
            if value > series.imax:
                series.imax = value
                if value > series.max:
                    series.max = value

    def _add(self, key: Hashable, attributes: Mapping[str, AttributeValue]) -> _Series:
        if len(self._series) >= self.max_series - 1 and key != _OVERFLOW_KEY:
            # One slot is kept for the overflow series itself.
            key, attributes = _OVERFLOW_KEY, OVERFLOW_ATTRIBUTES
            found = self._series.get(key)
            if found is not None:
                return found
        series = self._series[key] = _Series(attributes, len(self.bounds) + 1)
        return series

    def points(self, state: dict[Hashable, Any] | None, now_ns: int) -> list[HistogramPoint]:
        """The data points of a collection at ``now_ns``: cumulative when ``state`` is
        None; otherwise the change since the collection that last updated ``state`` (a
        dict the caller keeps per reader), with min and max of that interval.
        """
        points: list[HistogramPoint] = []
        with self._lock:
            for key, s in self._series.items():
                count = sum(s.counts)
                if state is None:
                    points.append(
                        HistogramPoint(
                            dict(s.attributes),
                            s.start_ns,
                            count,
                            s.sum,
                            tuple(s.counts),
                            s.min,
                            s.max,
                        )
                    )
                    continue
                last_ns, last_counts, last_sum = state.get(key, (s.start_ns, None, 0.0))
                counts = (
                    tuple(s.counts)
                    if last_counts is None
                    else tuple(c - p for c, p in zip(s.counts, last_counts, strict=True))
                )
                state[key] = (now_ns, tuple(s.counts), s.sum)
                delta = sum(counts)
                if delta == 0:
                    continue
                points.append(
                    HistogramPoint(
                        dict(s.attributes), last_ns, delta, s.sum - last_sum, counts, s.imin, s.imax
                    )
                )
                # Interval extremes start again: the one delta reader just reported them.
                s.imin, s.imax = float("inf"), float("-inf")
        return points


class HistogramSet:
    """The histograms Garrison aggregates itself, reported under one instrumentation scope
    by the metric readers made with it (``configure_telemetry`` makes them)."""

    def __init__(self, scope: str, tables: Sequence[HistogramTable]) -> None:
        self.scope = scope
        self.tables = tuple(tables)
