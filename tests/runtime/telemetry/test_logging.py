from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import msgspec
import pytest

from runtime._errors import ValidationFailed
from runtime.telemetry import (
    LogConfig,
    _events,  # noqa: F401 - imported for its loggers
    capture_telemetry,
    configure_logging,
    reset_logging,
)

log = logging.getLogger("garrison.worker")


@pytest.fixture(autouse=True)
def _reset() -> object:
    yield
    reset_logging()


def test_json_lines_carry_fields_and_trace_ids() -> None:
    stream = io.StringIO()
    configure_logging(LogConfig(format="json"), stream=stream)
    with capture_telemetry() as cap:
        tracer = cap.tracer_provider.get_tracer("t")
        with tracer.start_as_current_span("s") as span:
            log.info(
                "handled %s",
                "abc",
                extra={
                    "event": "succeeded",
                    "topic": "t",
                    "item_id": "abc",
                    "attempt": 1,
                    "correlation_id": "c",
                    "obj": object(),
                },
            )
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "info" and first["event"] == "succeeded"
    assert first["component"] == "worker" and first["message"] == "handled abc"
    assert first["topic"] == "t" and first["item_id"] == "abc" and first["attempt"] == 1
    assert first["correlation_id"] == "c" and first["obj"].startswith("<object")
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert first["span_id"] == format(span.get_span_context().span_id, "016x")
    assert first["time"].endswith("Z")
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]
    assert "trace_id" not in second


def test_human_format_and_auto() -> None:
    stream = io.StringIO()
    configure_logging(LogConfig(format="human"), stream=stream)
    log.warning("lease lost", extra={"item_id": "x"})
    assert "WARNING" in stream.getvalue() and "item_id=x" in stream.getvalue()
    stream = io.StringIO()  # not a terminal: auto means JSON
    configure_logging(LogConfig(format="auto"), stream=stream)
    log.warning("lease lost")
    assert json.loads(stream.getvalue())["message"] == "lease lost"


def test_rotating_file_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "garrison.log"
    configure_logging(LogConfig(format="json", file=str(path), max_bytes=1024, backup_count=2))
    for n in range(200):
        log.info("line %d", n, extra={"item_id": "x" * 50})
    reset_logging()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["garrison.log", "garrison.log.1", "garrison.log.2"]
    assert all(p.stat().st_size <= 1024 for p in path.parent.iterdir())
    assert json.loads(path.read_text().splitlines()[-1])["message"] == "line 199"


def test_reset_restores_propagation() -> None:
    root = logging.getLogger("garrison")
    configure_logging(LogConfig(format="json"), stream=io.StringIO())
    assert root.propagate is False
    reset_logging()
    reset_logging()
    assert root.propagate is True


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_bytes": 10}, "max_bytes"),
        ({"backup_count": -1}, "backup_count"),
        ({"backup_count": 1001}, "backup_count"),
        ({"level": "LOUD"}, "level"),
    ],
)
def test_log_config_is_validated(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        LogConfig(**options)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_log_config_bounds_match_decoding() -> None:
    assert LogConfig(max_bytes=1024, backup_count=1000).backup_count == 1000
    assert LogConfig(backup_count=0).backup_count == 0
    for options in ({"max_bytes": 1023}, {"backup_count": 1001}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(options, LogConfig)
