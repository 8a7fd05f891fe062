"""Restart, hang and escalation telemetry, through injected SDK providers (no globals)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
from opentelemetry.trace import StatusCode

from policies import RestartPolicy
from supervisors import ChildSpec, Supervisor, SupervisorEscalation
from tests.supervisors.conftest import Boom, Telemetry


async def test_restart_span_counter_and_log(
    autojump_clock: trio.testing.MockClock,
    telemetry: Telemetry,
    sup_logs: pytest.LogCaptureFixture,
) -> None:
    async def crashes(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1.0)
        raise Boom("kaput")

    sup = Supervisor(
        [ChildSpec(id="db", start=crashes)],
        policy=RestartPolicy(2, 100.0),
        name="root",
        **telemetry.kwargs(),
    )
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("app"), pytest.raises(SupervisorEscalation):
        await sup.run()

    spans = telemetry.spans.get_finished_spans()
    restarts = [s for s in spans if s.name == "garrison.supervisor.restart"]
    assert len(restarts) == 2
    attrs = dict(restarts[0].attributes or {})
    assert attrs["garrison.supervisor.name"] == "root"
    assert attrs["garrison.child.id"] == "db"
    assert attrs["garrison.restart.reason"] == "exception"
    assert attrs["exception.type"] == "Boom"
    assert attrs["exception.message"] == "kaput"
    assert [dict(s.attributes or {})["garrison.child.restarts"] for s in restarts] == [1, 2]

    [escalation] = [s for s in spans if s.name == "garrison.supervisor.escalation"]
    assert escalation.status.status_code is StatusCode.ERROR
    assert "gave up" in (escalation.status.description or "")

    [app] = [s for s in spans if s.name == "app"]
    assert [e.name for e in app.events] == [
        "garrison.supervisor.restart",
        "garrison.supervisor.restart",
        "garrison.supervisor.escalation",
    ]
    assert restarts[0].parent is not None
    assert restarts[0].parent.span_id == app.context.span_id

    assert telemetry.counter("garrison.supervisor.restarts") == [
        (
            {
                "garrison.supervisor.name": "root",
                "garrison.child.id": "db",
                "garrison.restart.reason": "exception",
            },
            2,
        )
    ]
    [(_, escalations)] = telemetry.counter("garrison.supervisor.escalations")
    assert escalations == 1

    restart_logs = [r for r in sup_logs.records if "restarting child" in r.getMessage()]
    assert len(restart_logs) == 2
    assert restart_logs[0].levelno == logging.WARNING
    assert (restart_logs[0].supervisor, restart_logs[0].child_id) == ("root", "db")
    assert restart_logs[0].reason == "exception"
    assert restart_logs[0].error_type == "Boom"
    [gave_up] = [r for r in sup_logs.records if r.levelno == logging.ERROR]
    assert "gave up" in gave_up.getMessage()


async def test_hang_event_and_counter(
    autojump_clock: trio.testing.MockClock, telemetry: Telemetry
) -> None:
    async def silent(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep_forever()

    sup = Supervisor(
        [ChildSpec(id="h", start=silent, heartbeat_timeout=1.0)],
        policy=RestartPolicy(1, 100.0),
        **telemetry.kwargs(),
    )
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("app"), pytest.raises(SupervisorEscalation):
        await sup.run()
    [app] = [s for s in telemetry.spans.get_finished_spans() if s.name == "app"]
    hangs = [e for e in app.events if e.name == "garrison.supervisor.hang"]
    assert len(hangs) == 2
    assert dict(hangs[0].attributes or {})["garrison.child.heartbeat_timeout_s"] == 1.0
    [(attrs, count)] = telemetry.counter("garrison.supervisor.hangs")
    assert (attrs["garrison.child.id"], count) == ("h", 2)
    [(attrs, count)] = telemetry.counter("garrison.supervisor.restarts")
    assert (attrs["garrison.restart.reason"], count) == ("hang", 1)


async def test_without_sdk_everything_is_a_noop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Default (global, unconfigured) providers: nothing to assert but that it runs.
    async def crashes(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1.0)
        raise Boom

    sup = Supervisor([ChildSpec(id="x", start=crashes)], policy=RestartPolicy(1, 100.0))
    with pytest.raises(SupervisorEscalation):
        await sup.run()
