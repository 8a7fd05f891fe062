"""Loading and calling handlers: ``MODULE:FUNC``, sync or async, given the work item."""

from __future__ import annotations

import functools
import importlib
import inspect
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from runtime._errors import ValidationFailed
from runtime.store import Failure, WorkItem

Handler = Callable[[WorkItem], Any]


class TerminalError(Exception):
    """Raise from a handler to say retrying cannot help: the item is dead-lettered at once."""


def load_callable(spec: str, what: str = "handler") -> Any:
    """Import ``MODULE:NAME`` (NAME may be dotted) and return the callable it names.

    Raises:
        ValidationFailed: the spec is malformed, the module or attribute is missing, or
            the attribute is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationFailed(f"{what} {spec!r} must look like MODULE:FUNC", field=what)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationFailed(
            f"cannot import {what} module {module_name!r}: {exc}", field=what
        ) from exc
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise ValidationFailed(
                f"module {module_name!r} has no attribute {attr!r}", field=what
            ) from exc
    if not callable(target):
        raise ValidationFailed(f"{what} {spec!r} is not callable", field=what)
    return target


def load_handler(spec: str) -> Handler:
    """Import a handler given as ``MODULE:FUNC``. Raises ValidationFailed."""
    handler: Handler = load_callable(spec, "handler")
    return handler


def as_async(handler: Handler) -> Callable[[WorkItem], Awaitable[Any]]:
    """Wrap a handler so it can be awaited; sync handlers run in a worker thread.

    A sync handler keeps running in its thread if the caller is cancelled (threads
    cannot be interrupted); its result is then ignored.
    """
    # Objects with an async __call__ count as async handlers too.
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        return handler

    async def call_in_thread(item: WorkItem) -> Any:
        return await anyio.to_thread.run_sync(
            functools.partial(handler, item), abandon_on_cancel=True
        )

    return call_in_thread


def failure_from(exc: BaseException, *, timeout: bool = False) -> Failure:
    """What to record for an exception a handler raised (or a timeout)."""
    return Failure(
        error=str(exc) or type(exc).__name__,
        error_type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
        terminal=isinstance(exc, TerminalError),
        timeout=timeout,
    )
