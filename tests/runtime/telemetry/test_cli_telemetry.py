"""``garrison health``, ``events`` for runtime kinds, and the telemetry options of ``work``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from runtime.store import open_store
from runtime.telemetry import _setup, capture_telemetry, parse_progress, reset_logging
from tests.runtime.cli.conftest import Garrison


@pytest.fixture
def garrison(tmp_path: Path) -> Garrison:
    return Garrison(tmp_path / "cli.db")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> object:
    # The commands install the OpenTelemetry globals, which a process can set only once;
    # keep this test process's globals untouched for the other tests.
    monkeypatch.setattr(_setup, "_set_globals", lambda tracer, meter: None)
    yield
    reset_logging()


def enqueue(garrison: Garrison, n: int, topic: str = "t") -> None:
    for i in range(n):
        code, _, err = garrison("enqueue", "--topic", topic, "--payload", str(i))
        assert code == 0, err


def test_health_ok_json(garrison: Garrison) -> None:
    enqueue(garrison, 1)
    code, out, _ = garrison(
        "work", "--handler", "tests.runtime.cli.handlers:ok", "--drain", "--poll-interval", "0.01"
    )
    assert code == 0
    code, out, _ = garrison(
        "health",
        "--format",
        "json",
        "--disk-warn-mb",
        "0",
        "--disk-critical-mb",
        "0",
        "--memory-warn-mb",
        "0",
    )
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "ok", doc
    checks = {c["name"]: c for c in doc["checks"]}
    assert set(checks) == {"database", "last_success", "failures", "disk", "memory"}
    assert "t" in checks["last_success"]["data"]["topics"]


def test_health_warns_and_renders_a_table(garrison: Garrison) -> None:
    enqueue(garrison, 1)
    garrison(
        "work", "--handler", "tests.runtime.cli.handlers:ok", "--drain", "--poll-interval", "0.01"
    )
    huge = str(1024 * 1024 * 1024)  # a petabyte: always short of it
    code, out, _ = garrison("health", "--disk-warn-mb", huge, "--disk-critical-mb", "0")
    assert code == 1 and "health: warn" in out and "last success" in out


def test_health_missing_database_is_critical(tmp_path: Path) -> None:
    code, out, _ = Garrison(tmp_path / "none.db")("health", "--format", "json")
    doc = json.loads(out)
    assert code == 2 and doc["status"] == "critical"
    assert doc["checks"][0]["name"] == "database"


def test_health_bad_thresholds(garrison: Garrison) -> None:
    code, _, err = garrison("health", "--disk-warn-mb", "1", "--disk-critical-mb", "2")
    assert code == 2 and "critical disk threshold" in err


def test_events_of_runtime_kinds(garrison: Garrison) -> None:
    enqueue(garrison, 1)

    async def record() -> None:
        async with open_store(garrison.db) as store:
            await store.record_event(
                "pressure_transition",
                {"channel": "intake", "from": "normal", "to": "critical", "depth": 90},
            )
            await store.record_event("restart", {"child": "worker-1", "reason": "crash"})

    trio.run(record)
    for kind, key in (("pressure_transition", "channel"), ("restart", "child")):
        code, out, _ = garrison("events", "--kind", kind, "--since", "1h", "--format", "json")
        [row] = json.loads(out)
        assert code == 0 and row["kind"] == kind and row["queue"] == "default"
        assert key in json.loads(row["detail"])
    code, out, _ = garrison("events", "--topic", "t", "--kind", "enqueued", "--format", "json")
    [row] = json.loads(out)
    assert row["item_id"] and row["topic"] == "t" and row["max_attempts"] == 5


def test_work_progress_json_logs_and_metrics_agree_with_queue_metrics(
    garrison: Garrison, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "worker.log"
    with capture_telemetry() as cap:
        enqueue(garrison, 3)
        enqueue(garrison, 1, topic="bad")
        code, _, err = garrison(
            "work",
            "--handler",
            "tests.runtime.telemetry.handlers:fail_bad",
            "--drain",
            "--poll-interval",
            "0.01",
            "--progress-interval",
            "60",
            "--log-format",
            "json",
            "--log-file",
            str(log_file),
        )
        assert code == 0, err
        code, out, _ = garrison("queue-metrics", "--format", "json", "--since", "60")
        doc = json.loads(out)
        assert doc["enqueued"] == cap.value("garrison.items.enqueued") == 4
        assert doc["succeeded"] == cap.value("garrison.items.succeeded") == 3
        assert doc["dead_letters"] == cap.value("garrison.items.dead_lettered") == 1
        assert doc["retries"] == cap.value("garrison.items.retried") == 0
        for state, n in doc["depth"].items():
            assert cap.value("garrison.queue.depth", garrison_state=state) == n
    [line] = [line for line in err.splitlines() if line.startswith("[progress]")]
    progress = parse_progress(line)
    assert progress["processed"] == "4" and progress["dead_letters"] == "1"
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    [dead] = [r for r in records if r.get("event") == "dead_lettered"]
    assert dead["topic"] == "bad" and dead["level"] == "warning" and dead["attempt"] == 1
    assert "trace_id" not in dead or len(dead["trace_id"]) == 32


def test_work_with_metrics_port_and_console_exporter(garrison: Garrison) -> None:
    enqueue(garrison, 1)
    code, out, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:ok",
        "--drain",
        "--poll-interval",
        "0.01",
        "--metrics-port",
        "0",
        "--otel-exporter",
        "console",
        "--log-format",
        "human",
    )
    assert code == 0, err
    assert "metrics on http://127.0.0.1:" in err
    assert "process t" in out  # the console exporter prints spans at shutdown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--otel-exporter", "zipkin"), "--otel-exporter must be one of"),
        (("--otel-protocol", "udp"), "--otel-protocol must be one of"),
        (("--log-format", "xml"), "--log-format must be one of"),
    ],
)
def test_work_bad_telemetry_options(
    garrison: Garrison, args: tuple[str, ...], message: str
) -> None:
    enqueue(garrison, 1)
    code, _, err = garrison("work", "--handler", "tests.runtime.cli.handlers:ok", "--drain", *args)
    assert code == 2 and message in err


def test_work_unusable_log_file_and_port(garrison: Garrison, tmp_path: Path) -> None:
    enqueue(garrison, 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:ok",
        "--drain",
        "--log-file",
        str(blocker / "x.log"),
    )
    assert code == 1 and "cannot open log file" in err
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = garrison(
            "work",
            "--handler",
            "tests.runtime.cli.handlers:ok",
            "--drain",
            "--metrics-port",
            port,
        )
    assert code == 1 and "cannot serve metrics" in err
