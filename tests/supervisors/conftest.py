"""Shared helpers for supervisor tests: scripted children, telemetry capture, backends.

pytest-trio's ``trio_mode`` marks every async test as a Trio test, and its runner would then
run tests marked ``@pytest.mark.anyio`` on Trio even for the ``asyncio`` parameter. The hook
below takes the ``trio`` marker off anyio-marked tests, so anyio's plugin runs them on the
backend named by ``anyio_backend``; ``test_conformance.py`` asserts the backend really in use.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from anyio.abc import TaskStatus
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]


class Boom(Exception):
    """The exception scripted children raise."""


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def kwargs(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def counter(self, name: str) -> list[tuple[dict[str, Any], int]]:
        """(attributes, value) of every data point of the named counter."""
        data = self.metrics.get_metrics_data()
        points: list[tuple[dict[str, Any], int]] = []
        if data is None:
            return points
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        points.extend(
                            (dict(p.attributes or {}), int(p.value))
                            for p in metric.data.data_points  # type: ignore[union-attr]
                        )
        return points


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Private SDK providers (no global state) with in-memory span and metric capture."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(tracer_provider, meter_provider, spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def sup_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="garrison.supervisors")
    return caplog


@dataclass
class Journal:
    """What scripted children did, in order: ("start", id), ("stop", id), ..."""

    events: list[tuple[str, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [cid for k, cid in self.events if k == kind]


ChildFn = Callable[..., Awaitable[object]]


def scripted(
    journal: Journal,
    child_id: str,
    body: Callable[[], Awaitable[object]] | None = None,
) -> Callable[..., Awaitable[None]]:
    """A child that journals its start and stop and runs ``body`` (default: forever)."""
    import anyio

    async def start(*, task_status: TaskStatus[Any]) -> None:
        journal.events.append(("start", child_id))
        task_status.started()
        try:
            if body is None:
                await anyio.sleep_forever()
            else:
                await body()
        finally:
            journal.events.append(("stop", child_id))

    return start


class Puppets:
    """Children that do what the test tells them, journalling starts and stops.

    Each incarnation calls ``task_status.started()`` and then waits for an order for its
    id: ``crash`` (raise :class:`Boom`), ``exit`` (return) or ``raise_`` (raise the given
    exception). Orders are given with :meth:`order` and followed after :func:`settle`.
    """

    def __init__(self) -> None:
        self.journal = Journal()
        self._orders: dict[str, Any] = {}
        self._waiting: dict[str, Any] = {}
        self.cleanup_s: dict[str, float] = {}

    def spec(self, child_id: str, **kwargs: Any) -> Any:
        from supervisors import ChildSpec

        async def start(*, task_status: TaskStatus[Any]) -> None:
            await self._run(child_id, task_status)

        return ChildSpec(id=child_id, start=start, **kwargs)

    async def _run(self, child_id: str, task_status: TaskStatus[Any]) -> None:
        import anyio

        from supervisors import shutdown_grace

        self.journal.events.append(("start", child_id))
        event = anyio.Event()
        try:
            task_status.started()
            self._waiting[child_id] = event
            await event.wait()
            order = self._orders.pop(child_id)
            if order == "crash":
                raise Boom(child_id)
            if isinstance(order, BaseException):
                raise order
        finally:
            if self._waiting.get(child_id) is event:
                del self._waiting[child_id]
            cleanup = self.cleanup_s.get(child_id)
            if cleanup is not None:
                with shutdown_grace():
                    await anyio.sleep(cleanup)
            self.journal.events.append(("stop", child_id))

    def order(self, child_id: str, order: Any) -> None:
        self._orders[child_id] = order
        self._waiting[child_id].set()

    def alive(self) -> set[str]:
        return set(self._waiting)


async def settle() -> None:
    """Let every task run until all are blocked (deterministic on both backends)."""
    import anyio

    await anyio.wait_all_tasks_blocked()


@pytest.fixture
def puppets() -> Puppets:
    return Puppets()
