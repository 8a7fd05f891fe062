"""What the live view shows, as plain values: figures, topic rows, pressure levels,
bounded histories. No I/O here, so every figure is testable without a store."""

from __future__ import annotations

import collections
import datetime as dt
import enum
from collections.abc import Iterable, Mapping

import msgspec

WAITING_STATES = ("enqueued", "retry_scheduled", "leased")


class History:
    """The last ``maxlen`` samples of one figure (a ring buffer: old samples fall off)."""

    def __init__(self, maxlen: int) -> None:
        self._samples: collections.deque[float] = collections.deque(maxlen=maxlen)

    def add(self, value: float) -> None:
        """Keep ``value`` as the newest sample (dropping the oldest when full)."""
        self._samples.append(value)

    @property
    def maxlen(self) -> int:
        """The bound."""
        maxlen = self._samples.maxlen
        assert maxlen is not None
        return maxlen

    def values(self) -> list[float]:
        """The samples, oldest first."""
        return list(self._samples)


class Pressure(msgspec.Struct, frozen=True):
    """A channel's latest pressure level, from its last ``pressure_transition`` event."""

    channel: str
    level: str
    depth: int | None
    at: float


class Estimate(msgspec.Struct, frozen=True):
    """A count or rate; ``exact`` is False when it was scaled up from a capped sample."""

    value: float
    exact: bool = True

    def text(self, digits: int = 0) -> str:
        """The value as shown: ``~`` marks an estimate."""
        body = f"{self.value:.{digits}f}"
        return body if self.exact else f"~{body}"


class TopicRow(msgspec.Struct, frozen=True):
    """One line of the topics table."""

    topic: str
    depth: Estimate
    rate_per_min: Estimate
    failures: Estimate
    last_success: float | None
    staleness_s: float | None


class Snapshot(msgspec.Struct, frozen=True):
    """Everything one refresh read, for the header and the topics table."""

    now: float
    window_s: float
    depth: dict[str, int]
    throughput_per_min: float
    avg_wait_s: float | None
    oldest_wait_s: float | None
    retries: int
    dead_lettered: int
    pressure: tuple[Pressure, ...]
    topics: tuple[TopicRow, ...]

    @property
    def waiting(self) -> int:
        """Unfinished items: enqueued, retry scheduled and leased."""
        return sum(self.depth.get(s, 0) for s in WAITING_STATES)


class SortKey(enum.StrEnum):
    """Columns the topics table sorts by (``s`` cycles through them)."""

    DEPTH = "depth"
    RATE = "rate"
    FAILURES = "failures"
    STALENESS = "staleness"
    TOPIC = "topic"


def sort_topics(rows: Iterable[TopicRow], key: SortKey) -> list[TopicRow]:
    """Rows in the order the table shows them: the busiest or stalest first, by name
    when sorting by topic; ties broken by name so the order is stable between refreshes."""
    values = list(rows)
    if key is SortKey.TOPIC:
        return sorted(values, key=lambda r: r.topic)

    def figure(r: TopicRow) -> float:
        if key is SortKey.DEPTH:
            return r.depth.value
        if key is SortKey.RATE:
            return r.rate_per_min.value
        if key is SortKey.FAILURES:
            return r.failures.value
        return float("inf") if r.staleness_s is None else r.staleness_s

    return sorted(values, key=lambda r: (-figure(r), r.topic))


def next_sort(key: SortKey) -> SortKey:
    """The column after ``key``, wrapping round."""
    members = list(SortKey)
    return members[(members.index(key) + 1) % len(members)]


def fold_pressure(
    levels: Mapping[str, Pressure], events: Iterable[tuple[float, str | None]], cap: int
) -> dict[str, Pressure]:
    """``levels`` updated by ``(at, detail JSON)`` of ``pressure_transition`` events, oldest
    first. At most ``cap`` channels are kept (the least recently changed fall off);
    events whose detail is not the expected JSON are ignored."""
    out = dict(levels)
    for at, detail in events:
        if detail is None:
            continue
        try:
            fields = msgspec.json.decode(detail)
        except msgspec.DecodeError:
            continue
        if not isinstance(fields, dict):
            continue
        channel, level, depth = fields.get("channel"), fields.get("to"), fields.get("depth")
        if not isinstance(channel, str) or not isinstance(level, str):
            continue
        out.pop(channel, None)
        out[channel] = Pressure(channel, level, depth if isinstance(depth, int) else None, at)
    while len(out) > cap:
        del out[min(out, key=lambda c: out[c].at)]
    return out


def scaled_counts(topics: Iterable[str], total: float, capped: bool) -> dict[str, Estimate]:
    """Per-topic counts of a sample; when the sample was capped, each topic's share of it
    scaled to ``total`` (the exact overall figure), marked as an estimate."""
    counts = collections.Counter(topics)
    n = sum(counts.values())
    if not capped or n == 0:
        return {t: Estimate(float(c)) for t, c in counts.items()}
    return {t: Estimate(total * c / n, exact=False) for t, c in counts.items()}


def topic_rows(
    *,
    now: float,
    window_s: float,
    depth: Mapping[str, Estimate],
    succeeded: Mapping[str, Estimate],
    failures: Mapping[str, Estimate],
    last_success: Mapping[str, float],
    cap: int,
) -> list[TopicRow]:
    """The topics table: every topic seen in any source, at most ``cap`` (the busiest)."""
    names = set(depth) | set(succeeded) | set(failures) | set(last_success)
    zero = Estimate(0.0)
    rows = []
    for name in names:
        done = succeeded.get(name, zero)
        last = last_success.get(name)
        rows.append(
            TopicRow(
                topic=name,
                depth=depth.get(name, zero),
                rate_per_min=Estimate(done.value * 60.0 / window_s, done.exact),
                failures=failures.get(name, zero),
                last_success=last,
                staleness_s=None if last is None else max(0.0, now - last),
            )
        )
    return sort_topics(rows, SortKey.DEPTH)[:cap]


def age(seconds: float | None) -> str:
    """A duration as people read it: ``45s``, ``3m10s``, ``2h05m``, ``4d03h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(ts: float | None) -> str:
    """An epoch time as ``HH:MM:SS`` UTC, or ``-``."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%H:%M:%S")


def level_style(level: str) -> str:
    """The colour of a pressure level."""
    return {"normal": "green", "elevated": "yellow", "critical": "bold red"}.get(level, "white")
