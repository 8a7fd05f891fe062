"""Secrets and permissions: what Garrison writes is private to its owner, never written
through a planted link, and a diagnostics bundle made with planted secrets holds none of them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import zipfile
from pathlib import Path

import pytest
import trio

from runtime import NotADatabase
from runtime._files import (
    atomic_private_file,
    create_private,
    ensure_private_dir,
    ensure_private_file,
    make_private,
    open_private_append,
    private_temp_dir,
)
from runtime.ops import backup, build_bundle, restore
from runtime.ops._backup import manifest_path, stamp
from runtime.store import Failure, NewItem, open_store
from runtime.telemetry import LogConfig, configure_logging, reset_logging
from tests.conftest import FakeClock

VICTIM_TEXT = b"the victim's own data\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def seed(db: Path, clock: FakeClock, errors: list[str] = ()) -> None:  # type: ignore[assignment]
    """Items, and one failed attempt per error text (so each lands in the audit trail)."""

    async def go() -> None:
        async with open_store(db, clock=clock) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(3)])
            for error in errors:
                await store.enqueue(NewItem(topic="charge", payload=b"{}", max_attempts=1))
                (item,) = await store.lease("w", 1, topics=["charge"])
                await store.fail(
                    item.id,
                    item.lease_token or "",
                    Failure(error=error, traceback=f"Traceback...\n{error}", terminal=True),
                )

    trio.run(go)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM_TEXT)
    path.chmod(0o644)
    return path


# -- the diagnostics bundle --------------------------------------------------------------

PLANTED = {
    # handler errors, in the audit trail (events.jsonl)
    "P-ERR-PASSWORD": "connect failed: password=P-ERR-PASSWORD host=db",
    "P-ERR-BEARER": "HTTP 401 sending Authorization: Bearer P-ERR-BEARER",
    "P-ERR-DSN": "could not reach postgresql://app:P-ERR-DSN@db.internal:5432/orders",
    "P-ERR-DICT": "headers={'Cookie': 'sid=P-ERR-DICT; theme=dark'}",
}


def test_a_bundle_made_with_planted_secrets_contains_none(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    seed(db, fake_clock, list(PLANTED.values()))
    pem = "-----BEGIN PRIVATE KEY-----\nP-PEM-BODY\nMIIEvQ==\n-----END PRIVATE KEY-----"
    config = tmp_path / "service.json"
    config.write_text(
        json.dumps(
            {
                "http": {"cookie": "session=P-CFG-COOKIE", "headers": {"X-Token": "P-CFG-HDR"}},
                "tls": {"private_key": pem, "note": f"pasted by mistake: {pem}"},
                "store": {"url": "postgresql://app:P-CFG-URL@db/x", "path": "q.db"},
                "client_secret": "P-CFG-SECRET",
                "tenant_account": "P-CFG-USER-LISTED",
                "plain": "visible-value",
            }
        )
    )
    log = tmp_path / "worker.log"
    log.write_text(
        json.dumps({"event": "retry", "exception": "Authorization: Digest response=P-LOG-DIGEST"})
        + "\n"
        + json.dumps({"event": "x", "message": 'login {"password": "P-LOG-JSON"} refused'})
        + "\nCookie: sid=P-LOG-COOKIE1; csrf=P-LOG-COOKIE2\n"
        + "token: P-LOG-TOKEN and api_key='P-LOG-KEY'\n"
    )
    environ = {
        "GARRISON_DB": str(db),
        "GARRISON_DB_PASSWORD": "P-ENV-PASSWORD",
        "GARRISON_DSN": "postgresql://u:P-ENV-DSN@h/db",
        "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer P-ENV-OTLP,x-api-key=P-ENV-APIKEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://P-ENV-URLTOKEN@collector:4317",
        "GARRISON_REDACT": "customer_ref, account",
        "GARRISON_CUSTOMER_REF": "P-ENV-USER-LISTED",
        "GARRISON_SHARD": "P-ENV-OPTION-LISTED",
        "OTEL_SERVICE_NAME": "orders",
    }
    out = tmp_path / "bundle.zip"
    result = build_bundle(
        db,
        out,
        now=fake_clock(),
        log_files=[log],
        config_file=config,
        environ=environ,
        redact_names=["shard"],
    )
    assert mode(out) == 0o600
    with zipfile.ZipFile(out) as bundle:
        members = {name: bundle.read(name) for name in bundle.namelist()}
    assert {"events.jsonl", "config.json", "logs/0-worker.log"} <= set(members)
    planted = [*PLANTED] + [
        "P-PEM-BODY",
        "MIIEvQ==",
        "P-CFG-COOKIE",
        "P-CFG-HDR",
        "P-CFG-URL",
        "P-CFG-SECRET",
        "P-CFG-USER-LISTED",
        "P-LOG-DIGEST",
        "P-LOG-JSON",
        "P-LOG-COOKIE1",
        "P-LOG-COOKIE2",
        "P-LOG-TOKEN",
        "P-LOG-KEY",
        "P-ENV-PASSWORD",
        "P-ENV-DSN",
        "P-ENV-OTLP",
        "P-ENV-APIKEY",
        "P-ENV-URLTOKEN",
        "P-ENV-USER-LISTED",
        "P-ENV-OPTION-LISTED",
    ]
    everything = [*members.values(), out.read_bytes(), json.dumps(result.errors).encode()]
    leaks = [s for s in planted for blob in everything if s.encode() in blob]
    assert leaks == []
    # ... and what is not secret is still there to help
    events = members["events.jsonl"].decode()
    assert "connect failed: password=[redacted] host=db" in events
    assert "postgresql://app:[redacted]@db.internal" in events
    cfg = json.loads(members["config.json"])
    assert cfg["config_file"]["plain"] == "visible-value"
    assert cfg["config_file"]["store"]["path"] == "q.db"
    assert cfg["environment"]["OTEL_SERVICE_NAME"] == "orders"
    assert "-----BEGIN PRIVATE KEY-----[redacted]" in cfg["config_file"]["tls"]["note"]


def test_diagnostics_never_writes_through_a_planted_link(
    tmp_path: Path, fake_clock: FakeClock, victim: Path
) -> None:
    db = tmp_path / "q.db"
    seed(db, fake_clock)
    out = tmp_path / "bundle.zip"
    # the old fixed temporary name, and the final name itself, both point at the victim
    (tmp_path / f".{out.name}.partial").symlink_to(victim)
    out.symlink_to(victim)
    build_bundle(db, out, now=fake_clock(), environ={})
    assert victim.read_bytes() == VICTIM_TEXT and mode(victim) == 0o644
    assert not out.is_symlink() and zipfile.is_zipfile(out) and mode(out) == 0o600
    assert [p.name for p in tmp_path.glob("*.partial")] == [f".{out.name}.partial"]


# -- backups and restore -------------------------------------------------------------------


def test_backup_is_private_and_never_writes_through_a_planted_link(
    tmp_path: Path, fake_clock: FakeClock, victim: Path
) -> None:
    db = tmp_path / "q.db"
    seed(db, fake_clock)
    dest = tmp_path / "backups" / "nightly"
    dest.parent.mkdir(mode=0o755)
    dest.mkdir(mode=0o755)
    name = f"garrison-q-{stamp(fake_clock())}.db"
    for planted in (f".{name}.partial", f".{name}.sha256.json.partial"):
        (dest / planted).symlink_to(victim)
    result = backup(db, dest, now=fake_clock())
    assert victim.read_bytes() == VICTIM_TEXT and mode(victim) == 0o644
    made = Path(result.backup)
    assert made.name == name and mode(made) == 0o600
    assert mode(manifest_path(made)) == 0o600
    assert not any(p.is_dir() for p in dest.iterdir())  # its private staging folder is gone
    fresh = tmp_path / "new" / "deeper"
    backup(db, fresh, now=fake_clock() + 1)
    assert mode(fresh) == mode(fresh.parent) == 0o700


def test_restore_keeps_the_replaced_file_private(tmp_path: Path, fake_clock: FakeClock) -> None:
    db = tmp_path / "q.db"
    seed(db, fake_clock)
    made = Path(backup(db, tmp_path / "b", now=fake_clock()).backup)
    db.chmod(0o644)  # a database from before files were private
    result = restore(made, db, clock=fake_clock)
    assert result.pre_restore is not None
    assert mode(Path(result.pre_restore)) == 0o600
    assert mode(db) == 0o600


@pytest.mark.parametrize("kind", ["text", "other-sqlite"])
def test_restore_refuses_a_file_that_is_not_a_garrison_database(
    tmp_path: Path, fake_clock: FakeClock, kind: str
) -> None:
    source = tmp_path / "q.db"
    seed(source, fake_clock)
    made = Path(backup(source, tmp_path / "b", now=fake_clock()).backup)
    target = tmp_path / "target.db"
    if kind == "text":
        target.write_text("shopping list\n")
    else:
        conn = sqlite3.connect(target)
        conn.execute("CREATE TABLE recipes (name TEXT)")
        conn.commit()
        conn.close()
    before, listing = target.read_bytes(), sorted(tmp_path.iterdir())
    with pytest.raises(NotADatabase, match=r"is not a Garrison database.*--force"):
        restore(made, target, clock=fake_clock)
    assert target.read_bytes() == before
    assert sorted(tmp_path.iterdir()) == listing  # not even a lock file next to it
    result = restore(made, target, clock=fake_clock, force=True)
    assert Path(result.pre_restore or "").read_bytes() == before
    assert mode(Path(result.pre_restore or "")) == 0o600


def test_restore_replaces_a_damaged_or_empty_garrison_file(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    db = tmp_path / "q.db"
    seed(db, fake_clock)
    made = Path(backup(db, tmp_path / "b", now=fake_clock()).backup)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with db.open("r+b") as fh:  # the schema page and beyond: sqlite_master is unreadable
        fh.seek(100)
        fh.write(b"\xa5" * 8000)
    assert restore(made, db, clock=fake_clock).pre_restore is not None
    with db.open("r+b") as fh:  # the header too: the store's use lock says whose it was
        fh.write(b"\xa5" * 8000)
    assert db.with_name("q.db.lock").exists()
    assert restore(made, db, clock=fake_clock).pre_restore is not None
    empty = tmp_path / "empty.db"
    empty.touch()
    assert restore(made, empty, clock=fake_clock).pre_restore is not None


# -- log files --------------------------------------------------------------------------------


def test_log_files_and_their_folder_are_private(tmp_path: Path, victim: Path) -> None:
    path = tmp_path / "logs" / "garrison.log"
    try:
        configure_logging(LogConfig(file=str(path), max_bytes=1024, backup_count=2))
        for n in range(60):
            logging.getLogger("garrison.test").warning("line %d with some padding", n)
    finally:
        reset_logging()
    files = sorted(path.parent.iterdir())
    assert [p.name for p in files] == ["garrison.log", "garrison.log.1", "garrison.log.2"]
    assert all(mode(p) == 0o600 for p in files) and mode(path.parent) == 0o700
    linked = tmp_path / "linked.log"
    linked.symlink_to(victim)
    with pytest.raises(OSError):
        configure_logging(LogConfig(file=str(linked)))
    reset_logging()
    assert victim.read_bytes() == VICTIM_TEXT


# -- runtime._files ---------------------------------------------------------------------------


def test_create_private_never_opens_what_is_already_there(tmp_path: Path, victim: Path) -> None:
    fresh = tmp_path / "fresh"
    os.close(create_private(fresh))
    assert mode(fresh) == 0o600
    for existing in (fresh, victim):
        with pytest.raises(FileExistsError):
            create_private(existing)
    link = tmp_path / "link"
    link.symlink_to(victim)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for planted in (link, dangling):
        with pytest.raises(FileExistsError):
            create_private(planted)
    assert not (tmp_path / "nowhere").exists() and victim.read_bytes() == VICTIM_TEXT


def test_ensure_private_file_for_the_database_and_its_lock(tmp_path: Path, victim: Path) -> None:
    db = tmp_path / "app.db"
    assert ensure_private_file(db) is True and mode(db) == 0o600 and db.read_bytes() == b""
    assert ensure_private_file(db) is False
    assert ensure_private_file(victim) is False and mode(victim) == 0o644  # left as it is
    dangling = tmp_path / "app.db.lock"
    dangling.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        ensure_private_file(dangling)
    assert not (tmp_path / "elsewhere").exists()


def test_private_folders_and_modes(tmp_path: Path, victim: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    ensure_private_dir(deep)
    ensure_private_dir(deep)
    assert mode(deep) == mode(deep.parent) == mode(deep.parent.parent) == 0o700
    with pytest.raises(FileExistsError):
        ensure_private_dir(victim / "sub")
    make_private(victim)
    assert mode(victim) == 0o600
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(OSError):
        make_private(link)
    with private_temp_dir(tmp_path, ".x.") as staging:
        (staging / "f").write_text("x")
        (staging / "f-journal").write_text("x")
        assert mode(staging) == 0o700
    assert not staging.exists()


def test_open_private_append(tmp_path: Path, victim: Path) -> None:
    log = tmp_path / "a.log"
    with open_private_append(log) as fh:
        fh.write(b"one\n")
    with open_private_append(log) as fh:
        fh.write(b"two\n")
    assert log.read_bytes() == b"one\ntwo\n" and mode(log) == 0o600
    with open_private_append(victim) as fh:  # an existing file keeps its mode
        fh.write(b"more\n")
    assert mode(victim) == 0o644
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError, match="not a regular file"):
            open_private_append(fifo)
    finally:
        os.close(reader)


def test_atomic_private_file(tmp_path: Path, victim: Path) -> None:
    final = tmp_path / "out.bin"
    with atomic_private_file(final) as fh:
        fh.write(b"whole")
    assert final.read_bytes() == b"whole" and mode(final) == 0o600
    with pytest.raises(RuntimeError), atomic_private_file(final) as fh:
        fh.write(b"half")
        raise RuntimeError("disk gone")
    assert final.read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "victim.txt"]
