"""``garrison queue-metrics`` and ``garrison events``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from runtime.cli._common import (
    DbOption,
    FormatOption,
    QueueOption,
    check_format,
    console,
    db_path,
    duration,
    friendly_errors,
    iso,
    print_json,
    run_async,
    text_option,
)
from runtime.store import AuditEvent, QueueMetrics, StoreConfig, open_store


def metrics_document(m: QueueMetrics) -> dict[str, Any]:
    """The JSON shape of ``queue-metrics`` (stable: automation reads it)."""
    return {
        "queue": m.queue,
        "at": iso(m.now),
        "since_s": m.since_s,
        "depth": m.depth,
        "enqueued": m.enqueued,
        "succeeded": m.succeeded,
        "throughput_per_min": round(m.throughput_per_min, 3),
        "avg_queue_latency_s": None
        if m.avg_queue_latency_s is None
        else round(m.avg_queue_latency_s, 6),
        "lease_contention": m.lease_contention,
        "retries": m.retries,
        "dead_letters": m.dead_letters,
        "lease_expirations": m.lease_expirations,
        "last_success": {topic: iso(at) for topic, at in sorted(m.last_success.items())},
        "dead_letters_by_reason": dict(sorted(m.dead_letters_by_reason.items())),
    }


def queue_metrics(
    db: DbOption = None,
    since: Annotated[str, typer.Option(help="Window in seconds (or 15m, 2h, 1d).")] = "60",
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
) -> None:
    """Queue depth by state, and throughput, latency, retries and dead letters over a window."""
    out = check_format(fmt)
    with friendly_errors():
        text_option(queue, "--queue")
        window = duration(since, "--since")

    async def body() -> QueueMetrics:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            return await store.metrics(window)

    doc = metrics_document(run_async(body))
    if out == "json":
        print_json(doc)
        return
    table = Table(title=f"queue {doc['queue']} — last {doc['since_s']:g} s")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for state, count in doc["depth"].items():
        table.add_row(f"depth {state}", str(count))
    for name in (
        "enqueued",
        "succeeded",
        "throughput_per_min",
        "avg_queue_latency_s",
        "lease_contention",
        "retries",
        "dead_letters",
        "lease_expirations",
    ):
        table.add_row(name, str(doc[name]))
    for topic, at in doc["last_success"].items():
        table.add_row(f"last success {topic}", str(at))
    console().print(table)


def events(
    db: DbOption = None,
    item: Annotated[str | None, typer.Option("--item", help="Only this item id.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind (e.g. dead_lettered, retry_scheduled).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only newer than (e.g. 3600, 2h).")] = None,
    limit: Annotated[int, typer.Option(help="Most rows shown.", min=1)] = 1000,
    queue: QueueOption = "default",
    fmt: FormatOption = "table",
) -> None:
    """Query the audit trail: every state change, with topic, attempt and error."""
    out = check_format(fmt)
    with friendly_errors():
        for value, option in (
            (item, "--item"),
            (topic, "--topic"),
            (kind, "--kind"),
            (queue, "--queue"),
        ):
            text_option(value, option)
        age = None if since is None else duration(since, "--since")

    async def body() -> list[AuditEvent]:
        async with open_store(db_path(db), StoreConfig(queue=queue), create=False) as store:
            start = None if age is None else store.now() - age
            return await store.events(
                item_id=item, topic=topic, kind=kind, since=start, limit=limit
            )

    rows = run_async(body)
    if out == "json":
        print_json([{**_event_dict(e), "at": iso(e.at)} for e in rows])
        return
    table = Table(title=f"{len(rows)} event(s)")
    for column in ("at", "kind", "item", "topic", "from", "to", "attempt", "error"):
        table.add_column(column)
    for e in rows:
        table.add_row(
            iso(e.at) or "",
            e.kind,
            e.item_id or "",
            e.topic or "",
            e.from_state or "",
            e.to_state or "",
            "" if e.attempt is None else f"{e.attempt}/{e.max_attempts}",
            (e.error or "")[:50],
        )
    console().print(table)


def _event_dict(e: AuditEvent) -> dict[str, Any]:
    return {f: getattr(e, f) for f in e.__struct_fields__}
