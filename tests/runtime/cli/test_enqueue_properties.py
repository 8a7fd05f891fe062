"""Property tests of ``garrison enqueue``: for any input, its JSON-lines reader and its
options give a documented typed error (one line, exit 2) or a success, and a rejection
leaves the database byte for byte as it was.

About 20,000 generated inputs per run (see the ``max_examples``), all in-process: the
reader is called directly, the command through the real app with its Click command built
once (building it is most of an in-process call's cost).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import msgspec
import pytest
import trio
import typer.main
import typer.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime._errors import ValidationFailed
from runtime.cli import app
from runtime.cli._enqueue import parse_lines
from runtime.store import NewItem, open_store, validate_new_item

# Generating an input costs hypothesis about a millisecond, so the reader's examples are
# files of LINES lines, each line also checked as a file of its own: LINES + 1 inputs each.
PARSER_EXAMPLES = 2_400
LINES = 6
OPTION_EXAMPLES = 3_000
FILE_EXAMPLES = 600
INPUTS = PARSER_EXAMPLES * (LINES + 1) + OPTION_EXAMPLES + FILE_EXAMPLES
LIMIT = 256

PROPERTY = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as hostile callers send it: valid names, near misses, control characters, lone
# surrogates (how Python hands over undecodable argv bytes), huge and numeric-looking.
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
hostile = st.sampled_from(
    [
        "",
        " ",
        "bad topic",
        "t\n",
        "\x00",
        "\x1b[2J",
        "\udcff",
        "\ud800",
        "é",
        "x" * 300,
        "-1",
        "1e400",
        "nan",
        "--db",
    ]
)
names = st.one_of(st.sampled_from(["t", "mail.send", "a/b:c-d_e", "9"]), hostile, any_text)
numbers = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["0", "1", "5", "1000", "1.5", "1e400", "inf", "nan", "", "high"]),
    any_text,
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)
)
json_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
payload_texts = st.one_of(json_values.map(json.dumps), hostile, any_text)


@pytest.fixture(scope="module")
def command() -> object:
    return typer.main.get_command(app)


@pytest.fixture
def cli(command: object, monkeypatch: pytest.MonkeyPatch) -> typer.testing.CliRunner:
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: command)
    return typer.testing.CliRunner()


def seeded(db: Path) -> Path:
    async def go() -> None:
        async with open_store(db) as store:
            await store.enqueue_many([NewItem(topic="seed", payload=b"{}") for _ in range(3)])

    trio.run(go)
    return db


def fingerprint(db: Path) -> tuple[bytes, bytes]:
    """The database file and its WAL, SQLite's change counter left out (a store that opens
    commits its start-up reclaim, which bumps it without changing anything)."""
    raw = bytearray(db.read_bytes())
    raw[24:28] = raw[92:96] = b"\0\0\0\0"
    wal = db.with_name(db.name + "-wal")
    return bytes(raw), wal.read_bytes() if wal.exists() else b""


def items(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    finally:
        conn.close()


class Outcome:
    """Checks one invocation against the contract and tracks the database's state."""

    def __init__(self, cli: typer.testing.CliRunner, db: Path) -> None:
        self.cli, self.db = cli, db
        self.before = fingerprint(db)
        self.count = items(db)
        self.accepted = self.rejected = 0

    def run(self, argv: list[str]) -> str | None:
        """The command's output if it succeeded, None if it refused."""
        result = self.cli.invoke(app, ["enqueue", "--db", str(self.db), *argv])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            argv,
            result.exception,
        )
        if result.exit_code == 0:
            assert result.stderr == ""
            self.accepted += 1
            self.count = items(self.db)
            self.before = fingerprint(self.db)
            return result.stdout
        assert result.exit_code == 2, (argv, result.exit_code, result.stderr)
        assert result.stdout == ""
        err = result.stderr
        assert err.startswith("garrison: error: ") and err.count("\n") == 1, (argv, err)
        assert fingerprint(self.db) == self.before, argv
        self.rejected += 1
        return None


@st.composite
def option_sets(draw: st.DrawFn) -> list[str]:
    argv: list[str] = []
    chosen = {
        "--topic": names,
        "--payload": payload_texts,
        "--key": names,
        "--idempotency-key": names,
        "--priority": numbers,
        "--max-attempts": numbers,
        "--sha256": st.one_of(st.just("0" * 64), names),
        "--max-payload-bytes": numbers,
        "--busy-timeout": numbers,
    }
    for option, values in chosen.items():
        if draw(st.booleans()):
            argv += [option, draw(values)]
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(st.sampled_from(["--colour", "extra", "--from-file", "--topic"])))
    return argv


def test_enqueue_options_give_a_typed_error_or_a_success(
    cli: typer.testing.CliRunner, tmp_path: Path
) -> None:
    outcome = Outcome(cli, seeded(tmp_path / "q.db"))

    @settings(PROPERTY, max_examples=OPTION_EXAMPLES)
    @given(option_sets())
    def check(argv: list[str]) -> None:
        outcome.run(argv)

    check()
    assert outcome.rejected > outcome.accepted > 0


# -- JSON lines ------------------------------------------------------------------------


def encode(obj: object, ascii_only: bool) -> bytes:
    # surrogatepass: a lone surrogate in a generated string becomes its (invalid) UTF-8
    # encoding, as a hostile producer's file would hold it
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


item_objects = st.fixed_dictionaries(
    {"topic": names, "payload": json_values},
    optional={
        "key": names,
        "priority": st.one_of(st.integers(-(10**7), 10**7), st.integers(), any_text),
        "idempotency_key": names,
        "max_attempts": st.one_of(st.integers(-2, 2000), st.none()),
        "sha256": st.one_of(st.just("0" * 64), names),
        "correlation_id": names,
        "colour": any_text,
    },
)
good_lines = st.builds(encode, item_objects, st.booleans())
mutated_lines = st.builds(
    lambda line, at, junk: line[:at] + junk + line[at:],
    good_lines,
    st.integers(0, 80),
    st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\x00", b'"']),
)
any_line = st.one_of(
    good_lines, mutated_lines, st.binary(max_size=40), st.sampled_from([b"", b"  "])
)
json_lines = st.lists(any_line, max_size=5)


def utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_reader(lines: list[bytes]) -> None:
    numbered = list(enumerate(lines, start=1))
    filled = [(n, raw) for n, raw in numbered if raw.strip()]
    try:
        parsed = list(parse_lines(iter(numbered), "f.jsonl", LIMIT))
    except ValidationFailed as exc:
        refusal = str(exc)
    else:
        refusal = None
    if refusal is not None:
        match = re.match(r"f\.jsonl:(\d+): \S", refusal)
        assert match, refusal
        assert int(match.group(1)) in {n for n, _ in filled}
        return
    assert len(parsed) == len(filled)
    assert all(utf8(raw) for _, raw in filled), "a line that is not UTF-8 was accepted"
    for item in parsed:
        validate_new_item(item, max_payload_bytes=LIMIT)
        msgspec.json.decode(item.payload)  # the payload is one JSON value, in UTF-8
        item.payload.decode("utf-8")


def test_the_json_lines_reader_gives_items_or_one_typed_error() -> None:
    checked = 0

    @settings(PROPERTY, max_examples=PARSER_EXAMPLES)
    @given(st.lists(any_line, min_size=LINES, max_size=LINES))
    def check(lines: list[bytes]) -> None:
        nonlocal checked
        check_reader(lines)
        for line in lines:
            check_reader([line])
        checked += LINES + 1

    check()
    assert checked >= PARSER_EXAMPLES * (LINES + 1)


def files(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_enqueue_from_file_writes_the_whole_file_or_nothing(
    cli: typer.testing.CliRunner, tmp_path: Path
) -> None:
    outcome = Outcome(cli, seeded(tmp_path / "q.db"))
    path = tmp_path / "items.jsonl"
    valid_only = st.lists(good_lines, min_size=1, max_size=3)

    @settings(PROPERTY, max_examples=FILE_EXAMPLES)
    @given(st.one_of(json_lines, valid_only))
    def check(lines: list[bytes]) -> None:
        path.write_bytes(files(lines))
        before = outcome.count
        out = outcome.run(["--from-file", str(path), "--max-payload-bytes", str(LIMIT)])
        if out is not None:  # every line was written (less those whose idempotency key
            assert int(out) == outcome.count - before  # was known): the printed count

    check()
    assert outcome.rejected > outcome.accepted > 0


def test_the_input_budget_is_twenty_thousand() -> None:
    assert INPUTS >= 20_000
