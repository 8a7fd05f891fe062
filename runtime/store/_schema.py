"""The SQLite schema, versioned with forward-only migrations.

A database records its version in ``PRAGMA user_version``; opening it applies every
migration above that version in one transaction. A database from a newer Garrison is
refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3

from runtime._errors import SchemaTooNew

MIGRATIONS: tuple[str, ...] = (
    # 1: items, dead letters, audit, checkpoints, effects ledger.
    """
    CREATE TABLE items (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        id               TEXT NOT NULL UNIQUE,
        queue            TEXT NOT NULL,
        topic            TEXT NOT NULL,
        key              TEXT,
        priority         INTEGER NOT NULL DEFAULT 0,
        payload          BLOB NOT NULL,
        sha256           TEXT NOT NULL,
        idempotency_key  TEXT,
        state            TEXT NOT NULL CHECK (state IN ('enqueued', 'leased', 'succeeded',
                             'retry_scheduled', 'dead_lettered', 'archived')),
        attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
        max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
        created_at       REAL NOT NULL,
        available_at     REAL NOT NULL,
        updated_at       REAL NOT NULL,
        finished_at      REAL,
        correlation_id   TEXT,
        trace_context    TEXT,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_token      TEXT,
        lease_expires_at REAL,
        replay_of        TEXT REFERENCES items(id) ON DELETE SET NULL
    );
    CREATE UNIQUE INDEX items_idempotency ON items(queue, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX items_ready ON items(queue, priority DESC, seq)
        WHERE state IN ('enqueued', 'retry_scheduled');
    CREATE INDEX items_leased ON items(lease_expires_at) WHERE state = 'leased';
    CREATE INDEX items_state ON items(queue, state, finished_at);
    CREATE INDEX items_replay_of ON items(replay_of) WHERE replay_of IS NOT NULL;

    CREATE TABLE dead_letters (
        item_id          TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
        queue            TEXT NOT NULL,
        reason           TEXT NOT NULL,
        error            TEXT,
        traceback        TEXT,
        attempts         INTEGER NOT NULL,
        dead_at          REAL NOT NULL,
        archived_at      REAL,
        replay_count     INTEGER NOT NULL DEFAULT 0,
        replayed_at      REAL,
        replayed_item_id TEXT
    );
    CREATE INDEX dead_letters_listing ON dead_letters(queue, dead_at);

    CREATE TABLE audit (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at           REAL NOT NULL,
        kind         TEXT NOT NULL,
        queue        TEXT NOT NULL,
        item_id      TEXT,
        topic        TEXT,
        from_state   TEXT,
        to_state     TEXT,
        attempt      INTEGER,
        max_attempts INTEGER,
        error        TEXT,
        wait_s       REAL,
        detail       TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_item ON audit(item_id) WHERE item_id IS NOT NULL;
    CREATE INDEX audit_kind ON audit(kind, at);

    CREATE TABLE effects (
        effect_key   TEXT PRIMARY KEY,
        item_id      TEXT,
        recorded_at  REAL NOT NULL
    );

    CREATE TABLE checkpoints (
        name         TEXT PRIMARY KEY,
        state        BLOB NOT NULL,
        saved_at     REAL NOT NULL
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)

EXPECTED_TABLES = ("items", "dead_letters", "audit", "effects", "checkpoints")
EXPECTED_INDEXES = (
    "items_idempotency",
    "items_ready",
    "items_leased",
    "items_state",
    "items_replay_of",
    "dead_letters_listing",
    "audit_at",
    "audit_item",
    "audit_kind",
)


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; return the version found before.

    Raises:
        SchemaTooNew: the database is from a newer Garrison.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"database schema version {found} is newer than this Garrison "
                f"understands ({SCHEMA_VERSION}); upgrade Garrison"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
