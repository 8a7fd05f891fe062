"""``PartitionSupervisor``: N keyed partitions, each a child with an inbox that outlives it.

Design, for worker pools keyed by an item key (replay workers, per-key ordered consumers):

* ``route(key)`` is a stable hash (BLAKE2b, not Python's per-process salted ``hash``), so a
  key maps to the same partition in every process and every run, and per-key order holds
  because one partition handles a key at a time, in inbox order.
* Each partition owns a bounded anyio memory object stream created with the supervisor.
  ``send`` routes an item to its partition's inbox and waits while that inbox is full
  (back-pressure, never an unbounded queue).
* Partitions are one-for-one children of an inner :class:`~supervisors.Supervisor`: a crash
  restarts only its partition. The inbox is not the child's: each incarnation gets a fresh
  *clone* of the receive side, closed when the incarnation ends, so items still queued wait
  for the replacement and nothing a child does to its stream breaks the inbox. An item that
  was being handled when the child crashed is lost unless the worker acknowledges work
  durably (the runtime's leases do), as usual for at-most-once in-memory hand-off.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from policies import RestartPolicy
from supervisors._child import ChildInfo, ChildSpec
from supervisors._down import ChildMonitor
from supervisors._records import RestartRecord, Strategy, SupervisorStatistics
from supervisors._supervisor import Supervisor

__all__ = ["PartitionKey", "PartitionStatistics", "PartitionSupervisor", "partition_for"]

T = TypeVar("T")

PartitionKey = str | bytes | int
"""What ``route`` accepts. Integers hash as their decimal text, so ``42`` and ``"42"`` route
alike (keys read from text and from numbers agree)."""

PartitionFactory = Callable[[int, MemoryObjectReceiveStream[T]], ChildSpec]


def partition_for(key: PartitionKey, partitions: int) -> int:
    """The partition, in ``range(partitions)``, for ``key``: stable across processes.

    Raises:
        ValueError: ``partitions < 1``.
        TypeError: ``key`` is not ``str``, ``bytes`` or ``int``.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if isinstance(key, bytes):
        data = key
    elif isinstance(key, str):
        data = key.encode()
    elif isinstance(key, int):
        data = str(key).encode()
    else:
        raise TypeError(f"partition key must be str, bytes or int, got {type(key).__name__}")
    digest = hashlib.blake2b(data, digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class PartitionStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a :class:`PartitionSupervisor`.

    Attributes:
        supervisor: statistics of the inner one-for-one supervisor.
        partitions: the number of partitions.
        inbox_capacity: each inbox's bound.
        inbox_sizes: items waiting in each partition's inbox, by index.
    """

    supervisor: SupervisorStatistics
    partitions: int
    inbox_capacity: int
    inbox_sizes: tuple[int, ...]


class PartitionSupervisor(Generic[T]):
    """``partitions`` children, work routed to them by a stable hash of a key.

    Args:
        partitions: how many partitions (children), at least 1.
        child: ``child(index, inbox) -> ChildSpec`` builds partition ``index``'s child; its
            ``start`` consumes ``inbox``. Called once per partition at construction (its id,
            restart type and timeouts are taken from that call) and again at every
            (re)start of the partition with a fresh clone of the inbox, so it must be cheap
            and side-effect free. Ids must be unique across partitions.
        inbox_size: bound of each partition's inbox (default 64); ``send`` waits when full.
        policy: restart intensity for the inner supervisor (default OTP's 1 in 5 s).
        name: used in telemetry, logs and errors.
        history_cap: bound on :meth:`restart_history`.
        stop_timeout, kill_timeout: as for :class:`~supervisors.Supervisor`.
        tracer_provider, meter_provider, random: as for :class:`~supervisors.Supervisor`.

    Raises:
        ValueError: ``partitions < 1`` or ``inbox_size < 0``.
        DuplicateChild: the factory gave two partitions the same id.

    The inboxes live as long as this object: call :meth:`close` (or use it as a context
    manager) when done; after that :meth:`send` raises ``anyio.ClosedResourceError``.
    """

    def __init__(
        self,
        partitions: int,
        child: PartitionFactory[T],
        *,
        inbox_size: int = 64,
        policy: RestartPolicy | None = None,
        name: str = "partition_supervisor",
        history_cap: int = 100,
        stop_timeout: float = math.inf,
        kill_timeout: float = 1.0,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        random: random.Random | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        if inbox_size < 0:
            raise ValueError(f"inbox_size must be >= 0, got {inbox_size}")
        self._partitions = partitions
        self._inbox_size = inbox_size
        self._factory = child
        self._send: list[MemoryObjectSendStream[T]] = []
        self._receive: list[MemoryObjectReceiveStream[T]] = []
        for _ in range(partitions):
            send, receive = anyio.create_memory_object_stream[T](inbox_size)
            self._send.append(send)
            self._receive.append(receive)
        specs = []
        for index in range(partitions):
            template = child(index, self._receive[index])
            specs.append(
                ChildSpec(
                    id=template.id,
                    start=partial(self._run_partition, index),
                    restart=template.restart,
                    shutdown_timeout=template.shutdown_timeout,
                    significant=template.significant,
                    heartbeat_timeout=template.heartbeat_timeout,
                    on_down=template.on_down,
                )
            )
        self._supervisor = Supervisor(
            specs,
            Strategy.ONE_FOR_ONE,
            policy,
            name=name,
            history_cap=history_cap,
            stop_timeout=stop_timeout,
            kill_timeout=kill_timeout,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            random=random,
        )

    async def _run_partition(self, index: int, *, task_status: TaskStatus[Any]) -> None:
        with self._receive[index].clone() as inbox:
            await self._factory(index, inbox).start(task_status=task_status)

    @property
    def partitions(self) -> int:
        """The number of partitions."""
        return self._partitions

    @property
    def name(self) -> str:
        """The supervisor's name."""
        return self._supervisor.name

    def route(self, key: PartitionKey) -> int:
        """The partition index for ``key`` (see :func:`partition_for`)."""
        return partition_for(key, self._partitions)

    async def send(self, key: PartitionKey, item: T) -> int:
        """Put ``item`` in the inbox of ``key``'s partition, waiting while it is full.

        Items sent with the same key are received by one partition in send order.

        Returns:
            The partition index the item went to.

        Raises:
            anyio.ClosedResourceError: :meth:`close` was called.

        Cancellation: if cancelled while waiting for room, the item was not sent.
        """
        index = partition_for(key, self._partitions)
        await self._send[index].send(item)
        return index

    def send_nowait(self, key: PartitionKey, item: T) -> int:
        """Like :meth:`send` but never waits.

        Raises:
            anyio.WouldBlock: the partition's inbox is full.
            anyio.ClosedResourceError: :meth:`close` was called.
        """
        index = partition_for(key, self._partitions)
        self._send[index].send_nowait(item)
        return index

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every partition and supervise them until cancelled.

        Raises and cancellation: as :meth:`Supervisor.run`. The inboxes are not closed when
        ``run()`` ends, so a partition supervisor restarted by its parent keeps the items
        still queued.
        """
        await self._supervisor.run(task_status=task_status)

    def close(self) -> None:
        """Close every inbox; queued items are dropped and later sends raise. Idempotent."""
        for stream in self._send:
            stream.close()
        for receive in self._receive:
            receive.close()

    def __enter__(self) -> PartitionSupervisor[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def child_spec(self, id: str | None = None) -> ChildSpec:
        """A spec that runs this partition supervisor as a child of another supervisor."""
        return ChildSpec(
            id=id if id is not None else self.name, start=self.run, shutdown_timeout=float("inf")
        )

    def monitor(self, child_id: str) -> ChildMonitor:
        """Watch a partition's child (see :meth:`Supervisor.monitor`).

        A partition's life ends only when the partition supervisor stops or gives up (or,
        for a non-permanent partition child, when it ends and is not restarted).
        """
        return self._supervisor.monitor(child_id)

    def which_children(self) -> list[ChildInfo]:
        """A snapshot of every partition's child, by index."""
        return self._supervisor.which_children()

    def restart_history(self) -> list[RestartRecord]:
        """The most recent partition restarts, oldest first, at most ``history_cap``."""
        return self._supervisor.restart_history()

    def statistics(self) -> PartitionStatistics:
        """A frozen snapshot: inner supervisor statistics and inbox fill levels."""
        return PartitionStatistics(
            supervisor=self._supervisor.statistics(),
            partitions=self._partitions,
            inbox_capacity=self._inbox_size,
            inbox_sizes=tuple(r.statistics().current_buffer_used for r in self._receive),
        )
