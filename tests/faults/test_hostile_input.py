"""Hostile input at the command line: every case gets one line on stderr, the documented exit
code (2 for bad input), and leaves the database exactly as it was.

The cases run in-process through the real ``garrison`` app (undecodable argv bytes arrive
as Python hands them over: lone surrogates); a few also go through a real process with raw
bytes in argv.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from typer.testing import CliRunner

from runtime.cli import app
from runtime.store import DeadReason, NewItem, open_store

ROOT = Path(__file__).resolve().parents[2]
BAD = "\udcff"  # how Python decodes the argv byte 0xff (surrogateescape)
OVERLONG = "\udcc0\udcaf"  # 0xc0 0xaf: an overlong '/'
LONG = "x" * 5000

# A file for --from-file is given as its bytes; "{file}" in argv is replaced by its path.
Case = tuple[str, tuple[str, ...], int, str, bytes | None]


def line(**fields: object) -> bytes:
    return json.dumps({"topic": "t", "payload": {"n": 1}, **fields}).encode() + b"\n"


GOOD = line() * 3

CASES: list[Case] = [
    # enqueue: text that is not UTF-8
    (
        "payload-bad-utf8",
        ("enqueue", "--topic", "t", "--payload", f'"{BAD}"'),
        2,
        "--payload is not valid UTF-8",
        None,
    ),
    (
        "payload-overlong",
        ("enqueue", "--topic", "t", "--payload", f'"{OVERLONG}"'),
        2,
        "--payload is not valid UTF-8",
        None,
    ),
    (
        "key-bad-utf8",
        ("enqueue", "--topic", "t", "--payload", "1", "--key", f"k{BAD}"),
        2,
        "--key is not valid UTF-8",
        None,
    ),
    (
        "idem-bad-utf8",
        ("enqueue", "--topic", "t", "--payload", "1", "--idempotency-key", BAD),
        2,
        "--idempotency-key is not valid UTF-8",
        None,
    ),
    (
        "topic-bad-utf8",
        ("enqueue", "--topic", f"t{BAD}", "--payload", "1"),
        2,
        "--topic is not valid UTF-8",
        None,
    ),
    (
        "sha-bad-utf8",
        ("enqueue", "--topic", "t", "--payload", "1", "--sha256", BAD * 64),
        2,
        "--sha256 is not valid UTF-8",
        None,
    ),
    (
        "queue-bad-utf8",
        ("enqueue", "--topic", "t", "--payload", "1", "--queue", BAD),
        2,
        "--queue is not valid UTF-8",
        None,
    ),
    # enqueue: values the intake gate refuses
    (
        "payload-not-json",
        ("enqueue", "--topic", "t", "--payload", "{not json"),
        2,
        "payload is not valid JSON",
        None,
    ),
    (
        "payload-empty",
        ("enqueue", "--topic", "t", "--payload", ""),
        2,
        "payload is not valid JSON",
        None,
    ),
    (
        "payload-nan",
        ("enqueue", "--topic", "t", "--payload", "NaN"),
        2,
        "payload is not valid JSON",
        None,
    ),
    (
        "payload-lone-surrogate-escape",
        ("enqueue", "--topic", "t", "--payload", '"\\ud800"'),
        2,
        "payload is not valid JSON",
        None,
    ),
    (
        "payload-two-documents",
        ("enqueue", "--topic", "t", "--payload", "1 2"),
        2,
        "payload is not valid JSON",
        None,
    ),
    (
        "payload-too-large",
        ("enqueue", "--topic", "t", "--payload", f'"{LONG}"', "--max-payload-bytes", "100"),
        2,
        "over the limit of 100",
        None,
    ),
    ("topic-empty", ("enqueue", "--topic", "", "--payload", "1"), 2, "is not valid", None),
    (
        "topic-spaces",
        ("enqueue", "--topic", "bad topic!", "--payload", "1"),
        2,
        "is not valid",
        None,
    ),
    ("topic-newline", ("enqueue", "--topic", "t\n", "--payload", "1"), 2, "is not valid", None),
    ("topic-nul", ("enqueue", "--topic", "t\x00", "--payload", "1"), 2, "is not valid", None),
    ("topic-too-long", ("enqueue", "--topic", LONG, "--payload", "1"), 2, "is not valid", None),
    (
        "topic-escape-codes",
        ("enqueue", "--topic", "\x1b[2J", "--payload", "1"),
        2,
        "is not valid",
        None,
    ),
    (
        "key-control",
        ("enqueue", "--topic", "t", "--payload", "1", "--key", "a\x07b"),
        2,
        "control characters",
        None,
    ),
    (
        "key-too-long",
        ("enqueue", "--topic", "t", "--payload", "1", "--key", LONG),
        2,
        "key must have at most 256 character",
        None,
    ),
    (
        "key-empty",
        ("enqueue", "--topic", "t", "--payload", "1", "--key", ""),
        2,
        "key must have at least 1 character",
        None,
    ),
    (
        "idem-too-long",
        ("enqueue", "--topic", "t", "--payload", "1", "--idempotency-key", LONG),
        2,
        "idempotency_key must have at most 256 character",
        None,
    ),
    (
        "priority-word",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "high"),
        2,
        "'--priority'",
        None,
    ),
    (
        "priority-float",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "1.5"),
        2,
        "'--priority'",
        None,
    ),
    (
        "priority-huge",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "99999999"),
        2,
        "priority must be",
        None,
    ),
    (
        "priority-negative-huge",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "-99999999"),
        2,
        "priority must be",
        None,
    ),
    (
        "priority-bignum",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "9" * 40),
        2,
        "priority must be",
        None,
    ),
    (
        "priority-1e400",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", "1e400"),
        2,
        "'--priority'",
        None,
    ),
    (
        "priority-empty",
        ("enqueue", "--topic", "t", "--payload", "1", "--priority", ""),
        2,
        "'--priority'",
        None,
    ),
    (
        "max-attempts-zero",
        ("enqueue", "--topic", "t", "--payload", "1", "--max-attempts", "0"),
        2,
        "max_attempts must be",
        None,
    ),
    (
        "max-attempts-negative",
        ("enqueue", "--topic", "t", "--payload", "1", "--max-attempts", "-1"),
        2,
        "max_attempts must be",
        None,
    ),
    (
        "max-attempts-word",
        ("enqueue", "--topic", "t", "--payload", "1", "--max-attempts", "many"),
        2,
        "'--max-attempts'",
        None,
    ),
    (
        "max-attempts-huge",
        ("enqueue", "--topic", "t", "--payload", "1", "--max-attempts", "10" * 20),
        2,
        "max_attempts must be",
        None,
    ),
    (
        "sha-not-hex",
        ("enqueue", "--topic", "t", "--payload", "1", "--sha256", "xyz"),
        2,
        "sha256 must be 64 hex digits",
        None,
    ),
    (
        "sha-mismatch",
        ("enqueue", "--topic", "t", "--payload", "1", "--sha256", "0" * 64),
        2,
        "does not match the payload",
        None,
    ),
    (
        "max-payload-zero",
        ("enqueue", "--topic", "t", "--payload", "1", "--max-payload-bytes", "0"),
        2,
        "'--max-payload-bytes'",
        None,
    ),
    (
        "busy-timeout-negative",
        ("enqueue", "--topic", "t", "--payload", "1", "--busy-timeout", "-1"),
        2,
        "'--busy-timeout'",
        None,
    ),
    (
        "busy-timeout-zero",
        ("enqueue", "--topic", "t", "--payload", "1", "--busy-timeout", "0"),
        2,
        "'--busy-timeout'",
        None,
    ),
    (
        "busy-timeout-nan",
        ("enqueue", "--topic", "t", "--payload", "1", "--busy-timeout", "nan"),
        2,
        "'--busy-timeout'",
        None,
    ),
    (
        "busy-timeout-inf",
        ("enqueue", "--topic", "t", "--payload", "1", "--busy-timeout", "inf"),
        2,
        "'--busy-timeout'",
        None,
    ),
    (
        "busy-timeout-word",
        ("enqueue", "--topic", "t", "--payload", "1", "--busy-timeout", "soon"),
        2,
        "'--busy-timeout'",
        None,
    ),
    # enqueue: usage
    ("missing-payload", ("enqueue", "--topic", "t"), 2, "give --topic and --payload", None),
    ("missing-topic", ("enqueue", "--payload", "1"), 2, "give --topic and --payload", None),
    ("missing-both", ("enqueue",), 2, "give --topic and --payload", None),
    (
        "from-file-and-topic",
        ("enqueue", "--from-file", "{file}", "--topic", "t"),
        2,
        "cannot be combined",
        GOOD,
    ),
    (
        "from-file-and-payload",
        ("enqueue", "--from-file", "{file}", "--payload", "1"),
        2,
        "cannot be combined",
        GOOD,
    ),
    (
        "unknown-option",
        ("enqueue", "--topic", "t", "--payload", "1", "--colour", "red"),
        2,
        "No such option",
        None,
    ),
    ("option-without-value", ("enqueue", "--topic"), 2, "requires an argument", None),
    (
        "extra-argument",
        ("enqueue", "--topic", "t", "--payload", "1", "surplus"),
        2,
        "unexpected extra argument",
        None,
    ),
    # enqueue --from-file: the file
    (
        "file-missing",
        ("enqueue", "--from-file", "/nonexistent/items.jsonl"),
        2,
        "cannot read",
        None,
    ),
    ("file-is-a-folder", ("enqueue", "--from-file", "/"), 2, "cannot read", None),
    (
        "file-too-large",
        ("enqueue", "--from-file", "{file}", "--max-file-bytes", "10"),
        2,
        "over --max-file-bytes 10",
        GOOD,
    ),
    (
        "file-bad-utf8-payload",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4: not valid UTF-8",
        GOOD + b'{"topic": "t", "payload": "\xff"}\n',
    ),
    (
        "file-overlong-utf8",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4: not valid UTF-8",
        GOOD + b'{"topic": "t", "payload": "\xc0\xaf"}\n',
    ),
    (
        "file-encoded-surrogate",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":1: not valid UTF-8",
        b'{"topic": "t", "payload": "\xed\xa0\x80"}\n' + GOOD,
    ),
    (
        "file-truncated-utf8",
        ("enqueue", "--from-file", "{file}"),
        2,
        "not valid UTF-8",
        GOOD + b'{"topic": "t", "payload": "\xe2\x82"}\n',
    ),
    (
        "file-bad-utf8-in-key",
        ("enqueue", "--from-file", "{file}"),
        2,
        "not valid UTF-8",
        GOOD + b'{"topic": "t", "payload": 1, "key": "\x80"}\n',
    ),
    (
        "file-latin1",
        ("enqueue", "--from-file", "{file}"),
        2,
        "not valid UTF-8",
        GOOD + '{"topic": "t", "payload": "café"}\n'.encode("latin-1"),
    ),
    (
        "file-utf16",
        ("enqueue", "--from-file", "{file}"),
        2,
        "not valid UTF-8",
        '{"topic": "t", "payload": 1}\n'.encode("utf-16"),
    ),
    (
        "file-lone-surrogate-escape",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4:",
        GOOD + b'{"topic": "t", "payload": 1, "key": "\\udc80"}\n',
    ),
    ("file-bom", ("enqueue", "--from-file", "{file}"), 2, ":1:", b"\xef\xbb\xbf" + GOOD),
    ("file-not-json", ("enqueue", "--from-file", "{file}"), 2, ":4:", GOOD + b"{nope\n"),
    (
        "file-nul-byte",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4:",
        GOOD + b'{"topic": "t", "payload": 1}\x00\n',
    ),
    (
        "file-array-line",
        ("enqueue", "--from-file", "{file}"),
        2,
        "Expected `object`",
        GOOD + b"[1, 2]\n",
    ),
    (
        "file-unknown-field",
        ("enqueue", "--from-file", "{file}"),
        2,
        "unknown field",
        GOOD + line(colour="red"),
    ),
    (
        "file-priority-string",
        ("enqueue", "--from-file", "{file}"),
        2,
        "Expected `int`",
        GOOD + line(priority="high"),
    ),
    (
        "file-priority-huge",
        ("enqueue", "--from-file", "{file}"),
        2,
        "priority must be",
        GOOD + line(priority=10**9),
    ),
    (
        "file-priority-bignum",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4:",
        GOOD + line(priority=10**30),
    ),
    (
        "file-max-attempts-zero",
        ("enqueue", "--from-file", "{file}"),
        2,
        "max_attempts must be",
        GOOD + line(max_attempts=0),
    ),
    (
        "file-missing-topic",
        ("enqueue", "--from-file", "{file}"),
        2,
        "missing required field `topic`",
        GOOD + b'{"payload": 1}\n',
    ),
    (
        "file-missing-payload",
        ("enqueue", "--from-file", "{file}"),
        2,
        "missing required field `payload`",
        GOOD + b'{"topic": "t"}\n',
    ),
    (
        "file-bad-topic",
        ("enqueue", "--from-file", "{file}"),
        2,
        "is not valid",
        GOOD + line(topic="no spaces"),
    ),
    (
        "file-control-key",
        ("enqueue", "--from-file", "{file}"),
        2,
        "control characters",
        GOOD + line(key="a\x1bb"),
    ),
    (
        "file-sha-mismatch",
        ("enqueue", "--from-file", "{file}"),
        2,
        "does not match",
        GOOD + line(sha256="0" * 64),
    ),
    (
        "file-payload-too-large",
        ("enqueue", "--from-file", "{file}", "--max-payload-bytes", "50"),
        2,
        "over the limit of 50",
        GOOD + line(payload="y" * 100),
    ),
    (
        "file-last-line-cut",
        ("enqueue", "--from-file", "{file}"),
        2,
        ":4:",
        GOOD + b'{"topic": "t", "payl',
    ),
    # dead letters
    ("dlq-since-1e400", ("dlq", "list", "--since", "1e400"), 2, "is not a duration", None),
    ("dlq-since-40-digits", ("dlq", "list", "--since", "9" * 40), 2, "longer than 100 years", None),
    (
        "dlq-since-400-digits",
        ("dlq", "list", "--since", "9" * 400),
        2,
        "longer than 100 years",
        None,
    ),
    ("dlq-since-negative", ("dlq", "list", "--since", "-5"), 2, "is not a duration", None),
    ("dlq-since-nan", ("dlq", "list", "--since", "nan"), 2, "is not a duration", None),
    ("dlq-since-zero", ("dlq", "list", "--since", "0"), 2, "more than zero", None),
    (
        "dlq-since-bad-utf8",
        ("dlq", "list", "--since", f"1{BAD}"),
        2,
        "--since is not valid UTF-8",
        None,
    ),
    ("dlq-reason-garbage", ("dlq", "list", "--reason", "garbage"), 2, "'--reason'", None),
    ("dlq-limit-zero", ("dlq", "list", "--limit", "0"), 2, "'--limit'", None),
    ("dlq-limit-word", ("dlq", "list", "--limit", "all"), 2, "'--limit'", None),
    ("dlq-format-xml", ("dlq", "list", "--format", "xml"), 2, "--format must be one of", None),
    ("dlq-topic-bad-utf8", ("dlq", "list", "--topic", BAD), 2, "--topic is not valid UTF-8", None),
    ("dlq-get-unknown", ("dlq", "get", "0" * 32), 2, "no dead letter with id", None),
    ("dlq-get-bad-utf8", ("dlq", "get", BAD), 2, "ITEM_ID is not valid UTF-8", None),
    ("dlq-get-missing-id", ("dlq", "get"), 2, "Missing argument", None),
    ("dlq-replay-unknown", ("dlq", "replay", "0" * 32), 2, "no dead letter with id", None),
    ("dlq-replay-bad-utf8", ("dlq", "replay", f"x{BAD}"), 2, "ITEM_ID is not valid UTF-8", None),
    (
        "dlq-replay-partitions-zero",
        ("dlq", "replay", "--topic", "bad", "--partitions", "0"),
        2,
        "partitions",
        None,
    ),
    (
        "dlq-replay-rate-negative",
        ("dlq", "replay", "--topic", "bad", "--rate", "-1"),
        2,
        "rate",
        None,
    ),
    ("dlq-replay-rate-nan", ("dlq", "replay", "--topic", "bad", "--rate", "nan"), 2, "rate", None),
    (
        "dlq-replay-since-huge",
        ("dlq", "replay", "--topic", "bad", "--since", "9" * 30),
        2,
        "longer than 100 years",
        None,
    ),
    ("dlq-archive-unknown", ("dlq", "archive", "0" * 32), 2, "no dead letter with id", None),
    (
        "dlq-purge-older-garbage",
        ("dlq", "purge", "--older-than", "yesterday"),
        2,
        "is not a duration",
        None,
    ),
    (
        "dlq-purge-older-huge",
        ("dlq", "purge", "--older-than", "9" * 30),
        2,
        "longer than 100 years",
        None,
    ),
    ("dlq-unknown-command", ("dlq", "resurrect"), 2, "No such command", None),
    # reads
    (
        "metrics-since-huge",
        ("queue-metrics", "--since", "9" * 30),
        2,
        "longer than 100 years",
        None,
    ),
    ("metrics-since-zero", ("queue-metrics", "--since", "0"), 2, "more than zero", None),
    (
        "metrics-format-yaml",
        ("queue-metrics", "--format", "yaml"),
        2,
        "--format must be one of",
        None,
    ),
    ("events-limit-zero", ("events", "--limit", "0"), 2, "'--limit'", None),
    ("events-since-garbage", ("events", "--since", "last week"), 2, "is not a duration", None),
    ("events-item-bad-utf8", ("events", "--item", BAD), 2, "--item is not valid UTF-8", None),
    ("unknown-command", ("resurrect",), 2, "No such command", None),
]


def seed(db: Path) -> None:
    """A small history: waiting items, one succeeded, one dead letter; no live lease (a
    store opening would reclaim an expired one, which is a legitimate change)."""

    async def go() -> None:
        async with open_store(db) as store:
            await store.enqueue_many([NewItem(topic="t", payload=b"{}") for _ in range(3)])
            done = await store.lease("w", 1)
            await store.ack_many([(i.id, i.lease_token or "") for i in done])
            dead = await store.enqueue(NewItem(topic="bad", payload=b"1"))
            await store.dead_letter(dead.id, DeadReason.TERMINAL_ERROR, "boom")

    trio.run(go)
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def fingerprint(db: Path) -> tuple[bytes, bytes, str]:
    """The database's bytes (main file and WAL) and a digest of its logical contents.

    SQLite's change counter (header bytes 24-27, copied at 92-95) is left out: a command
    that opens a store to find an unknown id commits the store's start-up lease reclaim,
    which bumps the counter even when there is nothing to reclaim. Every other byte counts.
    """
    wal = db.with_name(db.name + "-wal")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        dump = hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()
    finally:
        conn.close()
    raw = bytearray(db.read_bytes())
    raw[24:28] = raw[92:96] = b"\0\0\0\0"
    return bytes(raw), wal.read_bytes() if wal.exists() else b"", dump


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("hostile") / "seed.db"
    seed(db)
    return db


@pytest.fixture
def db(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "q.db"
    copy.write_bytes(template.read_bytes())
    return copy


def invoke(argv: list[str], db: Path | None = None) -> tuple[int, str, str]:
    if db is not None:  # right after the command's name, before any of its options
        at = 2 if argv[0] == "dlq" else 1
        argv = [*argv[:at], "--db", str(db), *argv[at:]]
    result = CliRunner().invoke(app, argv, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def check_refused(
    run: Callable[[], tuple[int, str, str]], db: Path, code: int, message: str
) -> None:
    before = fingerprint(db)
    got, out, err = run()
    assert got == code, (got, out, err)
    assert out == ""
    assert err.startswith("garrison: error: ") and err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "╭" not in err
    assert message in err, err
    assert fingerprint(db) == before


def test_there_are_at_least_64_cases() -> None:
    assert len(CASES) >= 64
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("name", "argv", "code", "message", "content"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_input_is_one_line_and_changes_nothing(
    db: Path,
    tmp_path: Path,
    name: str,
    argv: tuple[str, ...],
    code: int,
    message: str,
    content: bytes | None,
) -> None:
    items = tmp_path / "items.jsonl"
    if content is not None:
        items.write_bytes(content)
    args = [a.replace("{file}", str(items)) for a in argv]
    check_refused(lambda: invoke(args, db), db, code, message)


def test_a_good_file_after_all_that_is_written_whole(db: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_bytes(GOOD * 700)  # more than the 1,000 rows the old chunking committed alone
    code, out, err = invoke(["enqueue", "--from-file", str(items)], db)
    assert (code, out.strip(), err) == (0, "2100", "")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--payload", b'"\xff"'), ("--key", b"k\xff"), ("--idempotency-key", b"\xc0\xaf")],
)
def test_undecodable_argv_through_a_real_process(db: Path, option: str, value: bytes) -> None:
    argv = [b"--topic", b"t", b"--db", os.fsencode(db)]
    if option != "--payload":
        argv += [b"--payload", b"1"]
    before = fingerprint(db)
    proc = subprocess.run(
        [
            os.fsencode(sys.executable),
            b"-m",
            b"runtime.cli",
            b"enqueue",
            *argv,
            option.encode(),
            value,
        ],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"garrison: error: " + option.encode() + b" is not valid UTF-8")
    assert proc.stderr.count(b"\n") == 1
    assert fingerprint(db) == before
