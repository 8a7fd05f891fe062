"""``garrison enqueue``: one item from options, or many from a JSON-lines file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import msgspec
import typer

from runtime._errors import ValidationFailed
from runtime.cli._common import (
    EXIT_BAD_INPUT,
    BusyTimeoutOption,
    DbOption,
    QueueOption,
    db_path,
    fail,
    friendly_errors,
    run_async,
    text_option,
)
from runtime.store import NewItem, StoreConfig, open_store, validate_new_item

# The whole file is one transaction, so it is held in memory while it is written; this
# bounds that (a larger file is split by the operator, each part atomic on its own).
# Measured: a 16 MB file of 100,000 items peaks at 232 MiB RSS (main's chunked writer,
# which was not atomic: 123 MiB), so the default keeps a load under about half a GiB.
DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024


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
    data = (text_option(text, "--payload") or "").encode()
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"payload is not valid JSON: {exc}", field="payload") from exc
    return data


def read_lines(
    path: Path, limit: int, *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[NewItem]:
    """Items of a JSON-lines file, validated; errors name the line.

    Every line must be UTF-8 (overlong forms and encoded surrogates are refused too):
    a payload is stored as the line's bytes, so nothing else checks the bytes inside its
    strings.

    Raises:
        ValidationFailed: the file cannot be read, is larger than ``max_file_bytes``, or a
            line is malformed or refused.
    """
    try:
        handle = path.open("rb")
        size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}", field="from_file") from exc
    with handle:
        if size > max_file_bytes:
            raise ValidationFailed(
                f"{path} is {size} bytes, over --max-file-bytes {max_file_bytes}: "
                "split it (each file is enqueued in one transaction)",
                field="from_file",
            )
        yield from parse_lines(_numbered_lines(handle, path), str(path), limit)


def parse_lines(lines: Iterable[tuple[int, bytes]], source: str, limit: int) -> Iterator[NewItem]:
    """Items of numbered JSON lines (blank ones skipped), each validated as the store's
    intake gate would; the first bad line stops it.

    Raises:
        ValidationFailed: a line is not UTF-8, not an item, or refused; the message starts
            with ``source:number:``.
    """
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationFailed(
                f"{source}:{number}: not valid UTF-8 at byte {exc.start + 1} of the line",
                field="from_file",
            ) from exc
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
            raise ValidationFailed(f"{source}:{number}: {exc}", field="from_file") from exc
        except ValidationFailed as exc:
            raise ValidationFailed(f"{source}:{number}: {exc}", field=exc.field) from exc
        yield item


def _numbered_lines(handle: BinaryIO, path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        yield from enumerate(handle, start=1)
    except OSError as exc:  # a folder, or an I/O error while reading
        raise ValidationFailed(f"cannot read {path}: {exc.strerror}", field="from_file") from exc


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
        Path | None,
        typer.Option(
            "--from-file",
            help="JSON-lines file of items, enqueued in one transaction: all or none.",
        ),
    ] = None,
    queue: QueueOption = "default",
    max_payload_bytes: Annotated[int, typer.Option(help="Largest payload accepted.", min=1)] = 1024
    * 1024,
    max_file_bytes: Annotated[
        int, typer.Option(help="Largest --from-file accepted (it is held in memory).", min=1)
    ] = DEFAULT_MAX_FILE_BYTES,
    busy_timeout: BusyTimeoutOption = 5.0,
) -> None:
    """Enqueue one item (prints its id) or a JSON-lines file of items (prints a count).

    A file is validated whole, then written in one transaction: a refusal, a full disk or
    a crash leaves none of its items written, so it can simply be run again.
    """
    with friendly_errors():
        for value, option in (
            (topic, "--topic"),
            (key, "--key"),
            (idempotency_key, "--idempotency-key"),
            (sha256, "--sha256"),
            (queue, "--queue"),
        ):
            text_option(value, option)
    config = StoreConfig(
        queue=queue, max_payload_bytes=max_payload_bytes, busy_timeout_s=busy_timeout
    )
    path = db_path(db)
    if from_file is not None:
        if topic is not None or payload is not None:
            fail("--from-file cannot be combined with --topic/--payload", EXIT_BAD_INPUT)
        # Validated whole before the store is opened: a bad line changes nothing.
        with friendly_errors():
            items = list(read_lines(from_file, max_payload_bytes, max_file_bytes=max_file_bytes))

        async def bulk() -> int:
            async with open_store(path, config) as store:
                return sum(r.created for r in await store.enqueue_many(items))

        typer.echo(run_async(bulk))
        return
    if topic is None or payload is None:
        fail("give --topic and --payload, or --from-file", EXIT_BAD_INPUT)
    with friendly_errors():
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

    async def single() -> str:
        async with open_store(path, config) as store:
            return (await store.enqueue(item)).id

    typer.echo(run_async(single))
