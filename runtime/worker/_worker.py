"""A queue worker: leases items, runs a handler on each, settles the outcome.

Structure: one leasing task feeds a bounded channel (capacity = concurrency), N runner
tasks take items from it, and a heartbeat task extends the leases of items in flight.
Stopping (a signal, ``stop()``, or a finished drain) closes intake first, lets in-flight
items finish up to a deadline, then cancels what remains; every settle is a single
transaction, so nothing is half written and unfinished leases simply expire.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runtime._errors import StaleLease
from runtime._structure import build
from runtime.store import Store, WorkItem
from runtime.telemetry import _instruments as tel
from runtime.telemetry._progress import Progress, format_progress, run_progress
from runtime.worker._handler import Handler, as_async, failure_from

log = logging.getLogger("garrison.worker")


class WorkerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a worker.

    Attributes:
        concurrency: items handled at once (also the bound of the hand-off channel).
        lease_s: lease length; leases of items in flight are extended every third of it.
        lease_batch: most items taken in one lease call.
        poll_interval_s: wait between lease calls that found nothing.
        handler_timeout_s: a handler running longer fails with reason ``timeout``.
        shutdown_timeout_s: how long in-flight items may finish after a stop.
        drain: stop once no item is waiting, scheduled or leased.
        topics: lease only these topics (all when None).
        progress_interval_s: print a ``[progress]`` line this often (never when None).
    """

    concurrency: int = 8
    lease_s: float = 30.0
    lease_batch: int = 64
    poll_interval_s: float = 0.2
    handler_timeout_s: float | None = None
    shutdown_timeout_s: float = 30.0
    drain: bool = False
    topics: tuple[str, ...] | None = None
    progress_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 10_000:
            raise ValueError("concurrency must be within [1, 10000]")
        if self.lease_s <= 0 or self.poll_interval_s <= 0 or self.shutdown_timeout_s < 0:
            raise ValueError("lease_s and poll_interval_s must be positive")
        if self.lease_batch < 1:
            raise ValueError("lease_batch must be at least 1")
        if self.handler_timeout_s is not None and self.handler_timeout_s <= 0:
            raise ValueError("handler_timeout_s must be positive")
        if self.progress_interval_s is not None and self.progress_interval_s <= 0:
            raise ValueError("progress_interval_s must be positive")


class WorkerStatistics(msgspec.Struct, frozen=True):
    """Counters of a worker since it started."""

    owner: str
    leased: int
    succeeded: int
    failed: int
    stale: int
    in_flight: int
    stopping: bool
    drained: bool


def default_owner() -> str:
    """A lease owner name that tells operators which host and process hold a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs ``handler`` on items leased from ``store`` until stopped or drained."""

    def __init__(
        self,
        store: Store,
        handler: Handler,
        config: WorkerConfig | None = None,
        *,
        owner: str | None = None,
        on_settled: Callable[[WorkItem, str], Awaitable[None] | None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config or WorkerConfig()
        self.owner = owner or default_owner()
        self._handler = as_async(handler)
        self._on_settled = on_settled
        self._on_progress = on_progress
        self.progress = Progress(self.owner, clock=anyio.current_time)
        self._in_flight: dict[str, WorkItem] = {}
        # Leases still worth extending: an item leaves this as soon as it starts settling.
        self._unsettled: dict[str, WorkItem] = {}
        self._stop = anyio.Event()
        self._settled = anyio.Event()
        self._leased = self._succeeded = self._failed = self._stale = 0
        self.drained = False
        self.completed_shutdown = True

    def stop(self) -> None:
        """Stop leasing; in-flight items get ``shutdown_timeout_s`` to finish."""
        self._stop.set()

    @property
    def stopped_cleanly(self) -> bool:
        """After :meth:`run`: whether no in-flight item was cut off by the deadline."""
        return self.completed_shutdown

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the worker's counters."""
        return WorkerStatistics(
            owner=self.owner,
            leased=self._leased,
            succeeded=self._succeeded,
            failed=self._failed,
            stale=self._stale,
            in_flight=len(self._in_flight),
            stopping=self._stop.is_set(),
            drained=self.drained,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Work until stopped or (with ``drain``) until nothing is left.

        Cancelling ``run`` cancels in-flight handlers at once; use :meth:`stop` for a
        graceful stop. ``completed_shutdown`` is False afterwards if the shutdown
        deadline cut in-flight items short.
        """
        send, receive = anyio.create_memory_object_stream[WorkItem](self.config.concurrency)
        async with anyio.create_task_group() as runners:
            async with anyio.create_task_group() as support:
                support.start_soon(self._heartbeat_loop)
                if self.config.progress_interval_s is not None:
                    support.start_soon(self._progress_loop, self.config.progress_interval_s)
                for _ in range(self.config.concurrency):
                    runners.start_soon(self._runner, receive.clone())
                receive.close()
                task_status.started()
                await self._lease_loop(send)
                # Intake closed: give in-flight items their deadline, then cut them off.
                with anyio.move_on_after(self.config.shutdown_timeout_s) as deadline:
                    await self._wait_idle()
                if deadline.cancelled_caught:
                    self.completed_shutdown = False
                    runners.cancel_scope.cancel()
                support.cancel_scope.cancel()
        if self.config.progress_interval_s is not None:
            # A last line on the way out: what this worker did in total.
            (self._on_progress or _print_progress)(self.progress_line())

    async def _wait_idle(self) -> None:
        while self._in_flight:
            self._settled = anyio.Event()
            await self._settled.wait()

    async def _lease_loop(self, send: MemoryObjectSendStream[WorkItem]) -> None:
        cfg = self.config
        async with send:
            while not self._stop.is_set():
                room = cfg.concurrency - len(self._in_flight)
                items: list[WorkItem] = []
                if room > 0:
                    items = await self.store.lease(
                        self.owner, min(room, cfg.lease_batch), cfg.lease_s, cfg.topics
                    )
                for item in items:
                    self._leased += 1
                    self._in_flight[item.id] = item
                    self._unsettled[item.id] = item
                    await send.send(item)
                if items:
                    continue
                if cfg.drain and not self._in_flight and await self._nothing_left():
                    self.drained = True
                    return
                with anyio.move_on_after(cfg.poll_interval_s):
                    await self._stop.wait()

    async def _nothing_left(self) -> bool:
        depth = await self.store.depth()
        return depth["enqueued"] + depth["retry_scheduled"] + depth["leased"] == 0

    async def _runner(self, receive: MemoryObjectReceiveStream[WorkItem]) -> None:
        async with receive:
            async for item in receive:
                try:
                    await self._handle(item)
                finally:
                    self._in_flight.pop(item.id, None)
                    self._settled.set()

    async def _progress_loop(self, interval_s: float) -> None:
        self.progress.start()
        await run_progress(
            self.progress,
            interval_s,
            in_flight=lambda: len(self._in_flight),
            **({} if self._on_progress is None else {"emit": self._on_progress}),
        )

    def progress_line(self) -> str:
        """A ``[progress]`` line now (starts a new interval for the per-interval figures)."""
        return format_progress(self.progress.snapshot(in_flight=len(self._in_flight)))

    async def _handle(self, item: WorkItem) -> None:
        # Queue latency: from the item becoming available to its handling starting.
        latency = self.store.now() - item.available_at
        began = time.perf_counter()
        with tel.process_span(item, owner=self.owner):
            outcome, error = await self._attempt(item)
            tel.settled(
                item,
                outcome,
                duration_s=time.perf_counter() - began,
                queue_latency_s=latency,
                error=error,
            )
        self.progress.settled(outcome, latency)
        if self._on_settled is not None:
            result = self._on_settled(item, outcome)
            if result is not None:
                await result

    async def _attempt(self, item: WorkItem) -> tuple[str, Exception | None]:
        """Run the handler and settle; return the outcome and the handler's error."""
        token = item.lease_token or ""
        timeout = self.config.handler_timeout_s
        outcome = "succeeded"
        error: Exception | None = None
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                try:
                    await self._handler(item)
                finally:
                    self._unsettled.pop(item.id, None)
        except TimeoutError as exc:
            outcome, error = await self._fail(item, token, exc, timeout=True), exc
        except Exception as exc:
            outcome, error = await self._fail(item, token, exc, timeout=False), exc
        else:
            try:
                await self.store.ack(item.id, token)
                self._succeeded += 1
            except StaleLease:
                self._stale += 1
                outcome = "stale"
                log.warning("ack refused: lease was stale", extra={"item_id": item.id})
        return outcome, error

    async def _fail(self, item: WorkItem, token: str, exc: BaseException, *, timeout: bool) -> str:
        self._failed += 1
        try:
            settled = await self.store.fail(item.id, token, failure_from(exc, timeout=timeout))
        except StaleLease:
            self._stale += 1
            return "stale"
        return settled.state.value

    async def _heartbeat_loop(self) -> None:
        period = self.config.lease_s / 3
        while True:
            await anyio.sleep(period)
            for item_id, item in list(self._unsettled.items()):
                try:
                    await self.store.heartbeat(item_id, item.lease_token or "", self.config.lease_s)
                except StaleLease:
                    # Settled while we were heartbeating others: not a lost lease.
                    if item_id in self._unsettled:
                        log.warning("heartbeat refused: lease lost", extra={"item_id": item_id})


def _print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def worker_config(**options: Any) -> WorkerConfig:
    """A :class:`WorkerConfig` from keyword options, with a typed error on bad values.

    Raises:
        ValidationFailed: an option is out of bounds.
    """
    return build(WorkerConfig, **options)
