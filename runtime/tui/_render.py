"""Text of the dashboard's header, and the rows of its two tables."""

from __future__ import annotations

from rich.text import Text

from runtime.store import DeadLetter
from runtime.tui._model import Snapshot, TopicRow, age, clock_time, level_style


def header(snap: Snapshot, *, queue: str, source: str) -> Text:
    """Three lines: depth by state; rates and waits; pressure per channel."""
    d = snap.depth
    out = Text()
    out.append(f"{queue}", style="bold")
    out.append(f" @ {source}  {clock_time(snap.now)} UTC  window {age(snap.window_s)}\n")
    out.append("depth ", style="bold")
    out.append(
        f"waiting {snap.waiting}  enqueued {d.get('enqueued', 0)}  "
        f"retry {d.get('retry_scheduled', 0)}  leased {d.get('leased', 0)}  "
        f"dead {d.get('dead_lettered', 0)}  done {d.get('succeeded', 0)}\n"
    )
    out.append("rate  ", style="bold")
    wait = _seconds(snap.avg_wait_s)
    out.append(
        f"{snap.throughput_per_min:.0f}/min  wait avg {wait}  "
        f"oldest ready {age(snap.oldest_wait_s)}  retries {snap.retries}  "
        f"new dead {snap.dead_lettered}\n"
    )
    out.append("pressure ", style="bold")
    if not snap.pressure:
        out.append("no transitions recorded", style="dim")
    for p in snap.pressure:
        out.append(f"{p.channel}:")
        out.append(p.level, style=level_style(p.level))
        out.append("  ")
    return out


def topic_cells(row: TopicRow) -> tuple[str, ...]:
    """A topics-table row: topic, depth, rate/min, failures, last success, staleness."""
    return (
        row.topic,
        row.depth.text(),
        row.rate_per_min.text(1),
        row.failures.text(),
        clock_time(row.last_success),
        age(row.staleness_s),
    )


def dead_letter_cells(d: DeadLetter, now: float) -> tuple[str, ...]:
    """A dead-letter-table row: age, topic, reason, attempts, replays, error, id."""
    return (
        age(now - d.dead_at),
        d.topic,
        d.reason.value,
        f"{d.attempts}/{d.max_attempts}",
        str(d.replay_count),
        (d.error or "").splitlines()[0][:60] if d.error else "",
        d.item_id,
    )


def _seconds(value: float | None) -> str:
    """A short duration with a unit that suits it: ``12ms``, ``4.3s``, ``3m10s``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s"
    return age(value)
