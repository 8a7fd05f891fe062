"""Handlers: loading ``MODULE:FUNC``, telling ``f(item)`` from ``f(item, ctx)``, sync from
async, and what a failure records."""

from __future__ import annotations

import importlib
import inspect
import os
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from runtime._errors import ValidationFailed
from runtime.pipeline._threads import ThreadPool
from runtime.store import Failure, WorkItem

__all__ = [
    "AsyncHandler",
    "ContextHandler",
    "Handler",
    "HandlerContext",
    "ItemHandler",
    "TerminalError",
    "adapt_handler",
    "default_owner",
    "failure_from",
    "is_async",
    "load_callable",
    "load_handler",
    "takes_context",
]


class HandlerContext(msgspec.Struct, frozen=True):
    """What a handler is told besides the item: whether the runtime is degraded (skip
    optional work), and which partition runs it."""

    degraded: bool
    partition: int


ItemHandler = Callable[[WorkItem], Any]
"""``handler(item)``, sync or async."""

ContextHandler = Callable[[WorkItem, HandlerContext], Any]
"""``handler(item, ctx)``, sync or async; the result (bytes or None) goes to the sinks."""

Handler = ItemHandler | ContextHandler
"""Either form; which one is read once from the signature (see :func:`takes_context`)."""

AsyncHandler = Callable[[WorkItem, HandlerContext], Awaitable[Any]]


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
    """Import a handler given as ``MODULE:FUNC`` and check its signature.

    Raises:
        ValidationFailed: as :func:`load_callable`, or the handler takes neither
            ``(item)`` nor ``(item, ctx)``.
    """
    handler: Handler = load_callable(spec, "handler")
    takes_context(handler)
    return handler


def takes_context(handler: Handler) -> bool:
    """Whether ``handler`` is called ``handler(item, ctx)`` (else ``handler(item)``).

    Read from the signature: two positional parameters (or ``*args``) get the context,
    one gets the item alone. Parameters with defaults count as accepted, not required.

    Raises:
        ValidationFailed: no signature can be read, it requires more than two positional
            arguments or a keyword-only one, or it accepts no positional argument.
    """
    name = getattr(handler, "__qualname__", type(handler).__qualname__)
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            f"handler {name!r}: cannot read its signature ({exc})", field="handler"
        ) from exc
    positional = required = 0
    varargs = False
    for p in signature.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
            required += p.default is p.empty
        elif p.kind is p.VAR_POSITIONAL:
            varargs = True
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            raise ValidationFailed(
                f"handler {name!r} requires keyword-only argument {p.name!r};"
                " a handler takes (item) or (item, ctx)",
                field="handler",
            )
    if required > 2 or (positional == 0 and not varargs):
        raise ValidationFailed(
            f"handler {name!r} has signature {signature}; a handler takes (item) or (item, ctx)",
            field="handler",
        )
    return positional >= 2 or varargs


def is_async(handler: Handler) -> bool:
    """Whether ``handler`` is called with ``await`` (objects with an async ``__call__``
    count too)."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    )


def adapt_handler(handler: Handler, threads: ThreadPool) -> AsyncHandler:
    """``handler`` as ``await call(item, ctx)``: decided once here, not per item.

    A sync handler runs on ``threads`` (see :class:`ThreadPool` for what a timeout does to
    it); an async ``(item, ctx)`` handler is returned as it is.

    Raises:
        ValidationFailed: as :func:`takes_context`.
    """
    context = takes_context(handler)
    if is_async(handler):
        if context:
            return handler  # type: ignore[return-value]
        item_only: Callable[[WorkItem], Awaitable[Any]] = handler  # type: ignore[assignment]

        async def async_item(item: WorkItem, ctx: HandlerContext) -> Any:
            return await item_only(item)

        return async_item
    run = threads.run
    if context:

        async def sync_context(item: WorkItem, ctx: HandlerContext) -> Any:
            return await run(handler, item, ctx)

        return sync_context

    async def sync_item(item: WorkItem, ctx: HandlerContext) -> Any:
        return await run(handler, item)

    return sync_item


def failure_from(exc: BaseException, *, timeout: bool = False) -> Failure:
    """What to record for an exception a handler raised (or a timeout)."""
    return Failure(
        error=str(exc) or type(exc).__name__,
        error_type=type(exc).__name__,
        traceback="".join(traceback.format_exception(exc)),
        terminal=isinstance(exc, TerminalError),
        timeout=timeout,
    )


def default_owner() -> str:
    """A lease owner name that tells operators which host and process hold a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
