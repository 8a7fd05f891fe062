"""``garrison enqueue``: one item from options, or many from a JSON-lines file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from runtime._errors import ValidationFailed
from runtime.cli._common import BusyTimeoutOption, DbOption, QueueOption, db_path, run_async
from runtime.store import NewItem, StoreConfig, open_store, validate_new_item

CHUNK = 1000


class ItemLine(msgspec.Struct, forbid_unknown_fields=True):
    """One line of an ``--from-file`` JSON-lines file; ``payload`` is any JSON value."""

    topic: str
    payload: msgspec.Raw
    key: str | None = None
    priority: int = 0
    idempotency_key: str | None = None
    max_attempts: int | None = None
    sha256: str | None = None
    correlation_id: str | None = None


_line_decoder = msgspec.json.Decoder(ItemLine)


def parse_payload(text: str) -> bytes:
    """The payload bytes for a ``--payload`` argument, which must be JSON.

    Raises:
        ValidationFailed: it is not valid JSON.
    """
    data = text.encode()
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"payload is not valid JSON: {exc}", field="payload") from exc
    return data


def read_lines(path: Path, limit: int) -> Iterator[NewItem]:
    """Items of a JSON-lines file, validated; errors name the line.

    Raises:
        ValidationFailed: the file cannot be read, or a line is malformed or refused.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}", field="from_file") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = _line_decoder.decode(raw)
                item = NewItem(
                    topic=line.topic,
                    payload=bytes(line.payload),
                    key=line.key,
                    priority=line.priority,
                    idempotency_key=line.idempotency_key,
                    max_attempts=line.max_attempts,
                    sha256=line.sha256,
                    correlation_id=line.correlation_id,
                )
                validate_new_item(item, max_payload_bytes=limit)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ValidationFailed(f"{path}:{number}: {exc}") from exc
            except ValidationFailed as exc:
                raise ValidationFailed(f"{path}:{number}: {exc}", field=exc.field) from exc
            yield item


def enqueue(
    db: DbOption = None,
    topic: Annotated[str | None, typer.Option(help="Topic of the item.")] = None,
    payload: Annotated[str | None, typer.Option(help="Payload, as JSON text.")] = None,
    key: Annotated[str | None, typer.Option(help="Partition/order key.")] = None,
    priority: Annotated[int, typer.Option(help="Higher is leased first.")] = 0,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Enqueue at most once per key.")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before dead letter.")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Expected SHA-256 of the payload bytes.")
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="JSON-lines file of items.")
    ] = None,
    queue: QueueOption = "default",
    max_payload_bytes: Annotated[int, typer.Option(help="Largest payload accepted.", min=1)] = 1024
    * 1024,
    busy_timeout: BusyTimeoutOption = 5.0,
) -> None:
    """Enqueue one item (prints its id) or a JSON-lines file of items (prints a count)."""
    config = StoreConfig(
        queue=queue, max_payload_bytes=max_payload_bytes, busy_timeout_s=busy_timeout
    )
    path = db_path(db)
    if from_file is not None:
        if topic is not None or payload is not None:
            raise typer.BadParameter("--from-file cannot be combined with --topic/--payload")

        async def bulk() -> int:
            # Validate the whole file before writing anything, reading it twice so memory
            # stays bounded by one chunk whatever the file's size.
            total = sum(1 for _ in read_lines(from_file, max_payload_bytes))
            created = 0
            console = Console(stderr=True)
            async with open_store(path, config) as store:
                with Progress(
                    TextColumn("enqueue"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=console,
                    disable=not console.is_terminal,
                ) as progress:
                    task = progress.add_task("enqueue", total=total)
                    chunk: list[NewItem] = []
                    for item in read_lines(from_file, max_payload_bytes):
                        chunk.append(item)
                        if len(chunk) == CHUNK:
                            created += sum(r.created for r in await store.enqueue_many(chunk))
                            progress.advance(task, len(chunk))
                            chunk = []
                    if chunk:
                        created += sum(r.created for r in await store.enqueue_many(chunk))
                        progress.advance(task, len(chunk))
            return created

        typer.echo(run_async(bulk))
        return
    if topic is None or payload is None:
        raise typer.BadParameter("give --topic and --payload, or --from-file")

    async def single() -> str:
        item = NewItem(
            topic=topic,
            payload=parse_payload(payload),
            key=key,
            priority=priority,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            sha256=sha256,
        )
        validate_new_item(item, max_payload_bytes=max_payload_bytes)
        async with open_store(path, config) as store:
            return (await store.enqueue(item)).id

    typer.echo(run_async(single))
