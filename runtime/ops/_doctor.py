"""``doctor``: check a database and say, for each problem, how urgent it is and what fixes it.

The doctor never changes what the database holds. With ``checkpoint`` (the default) it runs
a passive WAL checkpoint, which copies committed pages from the WAL into the main file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from policies import RetentionPolicy
from runtime._errors import NotADatabase, StoreBusy, StoreFull, StoreUnavailable
from runtime.ops._ages import format_age
from runtime.ops._backup import latest_verified
from runtime.ops._connect import open_db, queue_flag, queues, shell_path, tables
from runtime.ops._findings import Finding, Severity, worst
from runtime.ops._stats import file_size, wal_path
from runtime.store.sqlite import (
    EXPECTED_INDEXES,
    EXPECTED_TABLES,
    SCHEMA_VERSION,
    check_path,
    translate,
)

MB = 1024 * 1024

DiskUsage = Callable[[str], Any]


class DoctorConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the doctor checks, and its thresholds.

    Attributes:
        full: run ``PRAGMA integrity_check`` (reads every page) instead of ``quick_check``.
        checkpoint: run a passive WAL checkpoint first (reports frames before and after).
        stuck_after_s: a ready item waiting longer than this is stuck.
        dead_letter_window_s: window of the dead-letter growth check.
        dead_letter_growth: more new dead letters than this in the window is a warning.
        retention: ages past which rows should have been purged.
        max_page_count: the size cap the stores run with (``StoreConfig.max_page_count``),
            when there is one.
        disk_warn_bytes: warn when the database's file system has less free space.
        disk_critical_bytes: critical below this.
        wal_warn_bytes: warn when the WAL is larger than this after the checkpoint.
        backups: where backups are kept; the fix for a corrupt database names the newest
            verified one found there.
        busy_timeout_s: how long the checkpoint waits for another writer's lock.
    """

    full: bool = False
    checkpoint: bool = True
    stuck_after_s: float = 3600.0
    dead_letter_window_s: float = 3600.0
    dead_letter_growth: int = 10
    retention: RetentionPolicy = RetentionPolicy()
    max_page_count: int | None = None
    disk_warn_bytes: int = 1024 * MB
    disk_critical_bytes: int = 512 * MB
    wal_warn_bytes: int = 256 * MB
    backups: str | None = None
    busy_timeout_s: float = 5.0


class DoctorReport(msgspec.Struct, frozen=True):
    """Every check's finding, and the worst severity among them.

    ``status`` is ``ok`` or ``info`` when nothing needs doing; ``warning`` or ``critical``
    otherwise (then :attr:`exit_code` is 1).
    """

    path: str
    at: float
    status: Severity
    findings: tuple[Finding, ...]

    @property
    def exit_code(self) -> int:
        """0 when nothing needs action, 1 otherwise."""
        return 1 if self.status.needs_action else 0

    def finding(self, check: str) -> Finding | None:
        """The first finding of ``check``, if that check ran."""
        return next((f for f in self.findings if f.check == check), None)


def diagnose(
    path: Path,
    config: DoctorConfig | None = None,
    *,
    now: float,
    disk_usage: DiskUsage = shutil.disk_usage,
) -> DoctorReport:
    """Check the database at ``path``; a corrupt or unreadable one is a critical finding.

    Raises:
        StoreUnavailable: there is no file at ``path`` (or it is a directory).
    """
    config = config or DoctorConfig()
    findings = [_disk(path, config, disk_usage)]
    doctor = _Doctor(path, config, now, findings)
    doctor.run()
    return DoctorReport(
        path=os.fspath(path), at=now, status=worst(findings), findings=tuple(findings)
    )


class _Doctor:
    def __init__(self, path: Path, config: DoctorConfig, now: float, out: list[Finding]):
        self.path, self.config, self.now, self.out = path, config, now, out
        self.db = shell_path(path)

    def run(self) -> None:
        try:
            check_path(self.path, create=False)
        except NotADatabase as exc:
            self._corrupt("database", str(exc))
            return
        try:
            conn = open_db(
                self.path, write=self.config.checkpoint, busy_timeout_s=self.config.busy_timeout_s
            )
        except NotADatabase as exc:  # pragma: no cover - check_path catches it first
            self._corrupt("database", str(exc))
            return
        try:
            if self.config.checkpoint:
                self._guard("wal_checkpoint", lambda: self._checkpoint(conn))
            self._guard("integrity", lambda: self._integrity(conn))
            if not self._guard("schema", lambda: self._schema(conn)):
                return
            if self.config.max_page_count is not None:
                self._guard("size_cap", lambda: self._size_cap(conn))
            self._guard("foreign_keys", lambda: self._foreign_keys(conn))
            found: list[str] = []
            if not self._guard("queues", lambda: found.extend(queues(conn))):
                return
            for queue in found:
                self._guard("expired_leases", partial(self._expired, conn, queue))
                self._guard("stuck_items", partial(self._stuck, conn, queue))
                self._guard("retention", partial(self._retention, conn, queue))
                self._guard("dead_letter_growth", partial(self._growth, conn, queue))
        finally:
            conn.close()

    # -- plumbing ------------------------------------------------------------------------

    def _add(
        self, check: str, severity: Severity, message: str, fix: str | None = None, /, **data: Any
    ) -> None:
        self.out.append(Finding(check, severity, message, fix, data))

    def _guard(self, check: str, fn: Callable[[], bool | None]) -> bool:
        """Run a check; a database too damaged to answer is a critical finding."""
        try:
            return fn() is not False
        except sqlite3.Error as exc:
            error = translate(exc)
            if isinstance(error, StoreFull):
                self._add(check, Severity.CRITICAL, str(error), self._make_room_fix())
            elif isinstance(error, StoreBusy):
                self._add(
                    check,
                    Severity.WARNING,
                    f"could not run: {error}",
                    "stop the process holding the write lock, then run garrison doctor again",
                )
            elif isinstance(error, StoreUnavailable) and not isinstance(error, NotADatabase):
                self._add(
                    check,
                    Severity.WARNING,
                    f"could not run: {exc}",
                    "run garrison doctor as the user that owns the database",
                )
            else:
                self._corrupt(check, f"could not run: {exc}")
            return False

    def _corrupt(self, check: str, message: str) -> None:
        self._add(check, Severity.CRITICAL, message, self._restore_fix())

    def _restore_fix(self) -> str:
        folder = Path(self.config.backups or "backups")
        backup = latest_verified(folder, self.path)
        source = "BACKUP" if backup is None else shell_path(Path(backup.path))
        listing = (
            "" if backup else f" (find one with: garrison backups --dest {shell_path(folder)})"
        )
        return (
            f"stop the workers, then: garrison restore {source} --db {self.db}{listing}; "
            "see runbooks/backup-restore.md"
        )

    def _make_room_fix(self) -> str:
        return (
            f"garrison purge --db {self.db}, then garrison maintenance --db {self.db} --vacuum; "
            "see runbooks/retention-disk-full.md"
        )

    # -- checks --------------------------------------------------------------------------

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log < 0:
            self._add(
                "wal_checkpoint",
                Severity.INFO,
                "the database is not in WAL mode (a store switches it when it opens it)",
            )
            return
        wal = file_size(wal_path(self.path))
        data = {"frames_before": log, "frames_after": log - done, "wal_bytes": wal, "busy": busy}
        message = f"checkpointed {done} of {log} WAL frames ({log - done} left), WAL {wal} bytes"
        if wal > self.config.wal_warn_bytes:
            self._add(
                "wal_checkpoint",
                Severity.WARNING,
                message + " — the WAL is large (a long reader, or checkpoints fall behind)",
                f"garrison maintenance --db {self.db}",
                **data,
            )
        else:
            self._add("wal_checkpoint", Severity.OK, message, **data)

    def _integrity(self, conn: sqlite3.Connection) -> None:
        pragma = "integrity_check" if self.config.full else "quick_check"
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA {pragma}(20)")]
        if rows == ["ok"]:
            self._add("integrity", Severity.OK, f"{pragma}: ok")
        else:
            self._add(
                "integrity",
                Severity.CRITICAL,
                f"{pragma} found corruption: {rows[0]}",
                self._restore_fix(),
                problems=rows,
            )

    def _schema(self, conn: sqlite3.Connection) -> bool:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        present = tables(conn) - {"sqlite_sequence"}
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        missing_tables = sorted(set(EXPECTED_TABLES) - present)
        missing_indexes = sorted(set(EXPECTED_INDEXES) - indexes)
        data = {"version": version, "expected_version": SCHEMA_VERSION}
        if version == 0 and not present:
            self._add("schema", Severity.INFO, "empty database: no Garrison schema yet", **data)
            return False
        if version > SCHEMA_VERSION:
            self._add(
                "schema",
                Severity.CRITICAL,
                f"schema version {version} is newer than this Garrison ({SCHEMA_VERSION})",
                "upgrade Garrison to the version that wrote this database",
                **data,
            )
            return False
        if missing_tables:
            self._corrupt(
                "schema",
                f"not a Garrison database: tables missing: {', '.join(missing_tables)}",
            )
            return False
        if version < SCHEMA_VERSION or missing_indexes:
            parts = []
            if version < SCHEMA_VERSION:
                parts.append(f"schema version {version} is older than {SCHEMA_VERSION}")
            if missing_indexes:
                parts.append(f"indexes missing: {', '.join(missing_indexes)}")
            self._add(
                "schema",
                Severity.WARNING,
                "; ".join(parts),
                f"garrison maintenance --db {self.db}",
                missing_indexes=missing_indexes,
                **data,
            )
        else:
            self._add(
                "schema",
                Severity.OK,
                f"schema version {version}, all {len(EXPECTED_INDEXES)} indexes present",
                **data,
            )
        return True

    def _size_cap(self, conn: sqlite3.Connection) -> None:
        cap = self.config.max_page_count or 1
        pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        used = (pages - free) / cap
        data = {"page_count": pages, "freelist_count": free, "max_page_count": cap}
        message = f"{pages - free} of {cap} pages in use ({used:.0%} of the size cap)"
        if used >= 0.95:
            self._add(
                "size_cap",
                Severity.CRITICAL,
                message + ": the database is full, writes fail",
                self._make_room_fix(),
                **data,
            )
        elif used >= 0.8:
            self._add("size_cap", Severity.WARNING, message, self._make_room_fix(), **data)
        else:
            self._add("size_cap", Severity.OK, message, **data)

    def _foreign_keys(self, conn: sqlite3.Connection) -> None:
        broken: dict[str, int] = {}
        for row in conn.execute("PRAGMA foreign_key_check"):
            broken[str(row[0])] = broken.get(str(row[0]), 0) + 1
        if broken:
            detail = ", ".join(f"{n} in {t}" for t, n in sorted(broken.items()))
            self._add(
                "foreign_keys",
                Severity.WARNING,
                f"rows pointing at missing items: {detail}",
                f"garrison maintenance --db {self.db}",
                rows=broken,
            )
        else:
            self._add("foreign_keys", Severity.OK, "foreign keys consistent")

    def _expired(self, conn: sqlite3.Connection, queue: str) -> None:
        rows = conn.execute(
            "SELECT lease_owner, count(*) FROM items WHERE queue = ? AND state = 'leased' "
            "AND lease_expires_at < ? GROUP BY lease_owner ORDER BY count(*) DESC",
            (queue, self.now),
        ).fetchall()
        count = sum(int(n) for _, n in rows)
        if not count:
            self._add("expired_leases", Severity.OK, f"{queue}: no expired leases", queue=queue)
            return
        owners = {str(owner): int(n) for owner, n in rows[:5]}
        self._add(
            "expired_leases",
            Severity.WARNING,
            f"{queue}: {count} item(s) still leased past their lease "
            f"(owners: {', '.join(owners)}) — their workers died",
            f"garrison maintenance --db {self.db} (reclaims them), and restart the workers; "
            "see runbooks/crash-recovery.md",
            queue=queue,
            count=count,
            owners=owners,
        )

    def _stuck(self, conn: sqlite3.Connection, queue: str) -> None:
        limit = self.now - self.config.stuck_after_s
        count, oldest = conn.execute(
            "SELECT count(*), min(available_at) FROM items WHERE queue = ? "
            "AND state IN ('enqueued', 'retry_scheduled') AND available_at < ?",
            (queue, limit),
        ).fetchone()
        after = format_age(self.config.stuck_after_s)
        if not count:
            self._add(
                "stuck_items",
                Severity.OK,
                f"{queue}: no item ready for longer than {after}",
                queue=queue,
            )
            return
        waited = self.now - float(oldest)
        self._add(
            "stuck_items",
            Severity.WARNING,
            f"{queue}: {count} item(s) ready for longer than {after} "
            f"(oldest waited {waited:.0f} s) — no worker is taking them, or too few",
            f"start (more) workers: garrison work --db {self.db}{queue_flag(queue)} "
            "--handler MODULE:FUNC; see runbooks/pressure-incident.md",
            queue=queue,
            count=int(count),
            oldest_wait_s=round(waited, 3),
        )

    def _retention(self, conn: sqlite3.Connection, queue: str) -> None:
        policy = self.config.retention
        cut = policy.cutoffs(self.now)

        def count(sql: str, before: float | None) -> int:
            if before is None:
                return 0
            return int(conn.execute(sql, (queue, before)).fetchone()[0])

        counts = {
            "succeeded": count(
                "SELECT count(*) FROM items WHERE queue = ? AND state = 'succeeded' "
                "AND finished_at < ?",
                cut.succeeded_before,
            ),
            "archived": count(
                "SELECT count(*) FROM dead_letters d JOIN items i ON i.id = d.item_id "
                "WHERE d.queue = ? AND i.state = 'archived' AND d.archived_at < ?",
                cut.archived_before,
            ),
            "dead_letters": count(
                "SELECT count(*) FROM dead_letters d JOIN items i ON i.id = d.item_id "
                "WHERE d.queue = ? AND i.state = 'dead_lettered' AND d.dead_at < ?",
                cut.dead_letters_before,
            ),
            "audit": count(
                "SELECT count(*) FROM audit WHERE queue = ? AND at < ?", cut.audit_before
            ),
        }
        total = sum(counts.values())
        if not total:
            self._add(
                "retention", Severity.OK, f"{queue}: nothing past retention", queue=queue, **counts
            )
            return
        detail = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
        self._add(
            "retention",
            Severity.WARNING,
            f"{queue}: {total} row(s) past retention ({detail})",
            f"garrison purge --db {self.db}{queue_flag(queue)}{retention_flags(policy)}",
            queue=queue,
            **counts,
        )

    def _growth(self, conn: sqlite3.Connection, queue: str) -> None:
        window = self.config.dead_letter_window_s
        recent, before = conn.execute(
            "SELECT count(*) FILTER (WHERE dead_at >= ?), count(*) FILTER (WHERE dead_at < ?) "
            "FROM dead_letters WHERE queue = ? AND dead_at >= ?",
            (self.now - window, self.now - window, queue, self.now - 2 * window),
        ).fetchone()
        span = format_age(window)
        message = (
            f"{queue}: {recent} new dead letter(s) in the last {span} "
            f"({before} in the {span} before)"
        )
        data = {"queue": queue, "new": int(recent), "previous": int(before), "window_s": window}
        if recent > self.config.dead_letter_growth:
            self._add(
                "dead_letter_growth",
                Severity.WARNING,
                message,
                f"garrison dlq list --db {self.db}{queue_flag(queue)} --since {span}; "
                "see runbooks/dead-letter-triage.md",
                **data,
            )
        else:
            self._add(
                "dead_letter_growth", Severity.INFO if recent else Severity.OK, message, **data
            )


def _disk(path: Path, config: DoctorConfig, usage: DiskUsage) -> Finding:
    target = path.parent if path.parent != Path("") else Path(".")
    try:
        free = int(usage(os.fspath(target)).free)
    except OSError as exc:
        return Finding("disk", Severity.WARNING, f"cannot read free disk space: {exc.strerror}")
    message = f"{free // MB} MB free on the database's file system"
    data = {"free_bytes": free}
    fix = (
        f"free space, or garrison purge --db {shell_path(path)}; "
        "see runbooks/retention-disk-full.md"
    )
    if free < config.disk_critical_bytes:
        return Finding("disk", Severity.CRITICAL, message, fix, data)
    if free < config.disk_warn_bytes:
        return Finding("disk", Severity.WARNING, message, fix, data)
    return Finding("disk", Severity.OK, message, None, data)


def retention_flags(policy: RetentionPolicy) -> str:
    """The ``garrison purge`` options that select ``policy`` (only those not the default)."""
    default = RetentionPolicy()
    flags = (
        ("--succeeded-older-than", policy.succeeded_s, default.succeeded_s),
        ("--archived-older-than", policy.archived_s, default.archived_s),
        ("--dead-letters-older-than", policy.dead_letters_s, default.dead_letters_s),
        ("--audit-older-than", policy.audit_s, default.audit_s),
    )
    return "".join(f" {flag} {format_age(age)}" for flag, age, base in flags if age != base)


__all__ = [
    "DoctorConfig",
    "DoctorReport",
    "diagnose",
    "retention_flags",
]
