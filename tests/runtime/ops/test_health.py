from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
import trio
import trio.testing

from runtime._errors import ValidationFailed
from runtime.ops import MB, HealthConfig, HealthStatus, check_health, memory_available
from runtime.store import Failure, NewItem, StoreConfig, open_store

GB = 1024 * MB


def disk(free: int) -> Callable[[str], object]:
    return lambda path: SimpleNamespace(free=free)


def by_name(report: object) -> dict[str, object]:
    return {c.name: c for c in report.checks}  # type: ignore[attr-defined]


async def test_healthy_database(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    async with open_store(
        tmp_path / "q.db", clock=lambda: 1e9 + autojump_clock.current_time()
    ) as store:
        await store.enqueue(NewItem(topic="t", payload=b""))
        [item] = await store.lease("w")
        await store.ack(item.id, item.lease_token or "")
        report = await check_health(
            store, tmp_path / "q.db", disk_usage=disk(5 * GB), memory=lambda: 4 * GB
        )
    assert report.status == "ok" and report.exit_code == 0
    checks = by_name(report)
    assert set(checks) == {"database", "last_success", "failures", "disk", "memory"}
    assert checks["last_success"].data["topics"]["t"]["staleness_s"] == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("free", "status"),
    [(2 * GB, "ok"), (900 * MB, "warn"), (100 * MB, "critical")],
)
async def test_disk_thresholds(tmp_path: Path, free: int, status: str) -> None:
    report = await check_health(
        None,
        tmp_path / "none.db",
        disk_usage=disk(free),
        memory=lambda: None,
        store_error=RuntimeError("x"),
    )
    assert by_name(report)["disk"].status == status  # type: ignore[attr-defined]
    assert report.status == "critical"  # no database
    assert "cannot open: x" in by_name(report)["database"].message  # type: ignore[attr-defined]


async def test_disk_unreadable_and_low_memory(tmp_path: Path) -> None:
    def broken(path: str) -> object:
        raise OSError("gone")

    report = await check_health(None, tmp_path, disk_usage=broken, memory=lambda: 10 * MB)
    checks = by_name(report)
    assert checks["disk"].status == "critical"  # type: ignore[attr-defined]
    assert checks["memory"].status == "warn"  # type: ignore[attr-defined]


async def test_failures_over_threshold_and_stale_topics(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_store(
        tmp_path / "q.db", StoreConfig(), clock=lambda: 1e9 + autojump_clock.current_time()
    ) as store:
        await store.enqueue(NewItem(topic="old", payload=b""))
        [item] = await store.lease("w")
        await store.ack(item.id, item.lease_token or "")
        await trio.sleep(7200)
        for _ in range(3):
            await store.enqueue(NewItem(topic="f", payload=b"", max_attempts=1))
        for item in await store.lease("w", 3):
            await store.fail(item.id, item.lease_token or "", Failure(error="e"))
        config = HealthConfig(alert_failure_threshold=2, stale_after_s=3600)
        report = await check_health(
            store, tmp_path / "q.db", config, disk_usage=disk(5 * GB), memory=lambda: 4 * GB
        )
        assert report.status == "warn" and report.exit_code == 1
        checks = by_name(report)
        assert checks["failures"].data["failures"] == 3  # type: ignore[attr-defined]
        assert checks["last_success"].status == "warn"  # type: ignore[attr-defined]
        await store.aclose()
        report = await check_health(
            store, tmp_path / "q.db", disk_usage=disk(5 * GB), memory=lambda: 4 * GB
        )
        assert by_name(report)["database"].status == "critical"  # type: ignore[attr-defined]


async def test_read_back_mismatch_is_critical(tmp_path: Path) -> None:
    class Liar:
        def now(self) -> float:
            return 1.0

        async def save_checkpoint(self, name: str, state: bytes) -> None:
            return None

        async def load_checkpoint(self, name: str) -> bytes | None:
            return b"other"

    report = await check_health(
        Liar(),
        tmp_path,
        disk_usage=disk(5 * GB),
        memory=lambda: None,  # type: ignore[arg-type]
    )
    assert by_name(report)["database"].status == "critical"  # type: ignore[attr-defined]
    assert HealthStatus.CRITICAL.label == "critical"


def test_memory_available_parses_meminfo(tmp_path: Path) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal: 100 kB\nMemAvailable:   2048 kB\n")
    assert memory_available(info) == 2048 * 1024
    info.write_text("MemTotal: 100 kB\n")
    assert memory_available(info) is None
    assert memory_available(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"disk_warn_bytes": 1, "disk_critical_bytes": 2}, "disk_critical_bytes"),
        ({"disk_warn_bytes": -1}, "disk_warn_bytes"),
        ({"memory_warn_bytes": -1}, "memory_warn_bytes"),
        ({"alert_failure_threshold": -1}, "alert_failure_threshold"),
        ({"metrics_window_hours": 0}, "metrics_window_hours"),
        ({"stale_after_s": 0}, "stale_after_s"),
    ],
)
def test_health_config_is_validated(options: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        HealthConfig(**options)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_health_config_bounds_match_decoding() -> None:
    edge = HealthConfig(disk_warn_bytes=0, disk_critical_bytes=0, alert_failure_threshold=0)
    assert edge.disk_critical_bytes == 0
    for options in ({"stale_after_s": 0}, {"alert_failure_threshold": -1}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(options, HealthConfig)
