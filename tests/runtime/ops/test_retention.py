from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies import RetentionPolicy
from runtime import StoreUnavailable
from runtime.ops import format_age, parse_age, purge
from runtime.store import open_store
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import DAY, rows


async def test_dry_run_counts_and_purge_deletes_and_audits(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]]
) -> None:
    policy = RetentionPolicy(succeeded_s=DAY, archived_s=DAY, dead_letters_s=None, audit_s=None)
    before = rows(db)
    dry = await purge(db, policy, dry_run=True, clock=fake_clock)
    assert (dry.succeeded, dry.dead_letters, dry.audit, dry.dry_run) == (5, 1, 0, True)
    assert rows(db)["items"] == before["items"]  # (opening reclaimed the expired lease)
    done = await purge(db, policy, clock=fake_clock)
    assert (done.succeeded, done.dead_letters, done.total) == (5, 1, 6)
    assert rows(db)["items"] == before["items"] - 6
    async with open_store(db, clock=fake_clock) as store:
        (event,) = await store.events(kind="retention_purge")
        detail = json.loads(event.detail or "{}")
        assert detail["succeeded"] == 5 and detail["policy"]["succeeded_s"] == DAY
        assert len(await store.events(kind="succeeded_purged")) >= 1
    live = await purge(db, RetentionPolicy(dead_letters_s=0.0), clock=fake_clock)
    assert live.dead_letters == 2


async def test_purge_of_a_missing_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no database at"):
        await purge(tmp_path / "none.db", RetentionPolicy())
    assert not (tmp_path / "none.db").exists()


def test_ages() -> None:
    assert parse_age("never") is None and parse_age("0") == 0.0 and parse_age("2h") == 7200
    assert [format_age(s) for s in (None, 604800, 86400, 7200, 120, 90, 0.5)] == [
        "never",
        "1w",
        "1d",
        "2h",
        "2m",
        "90",
        "0.5",
    ]
