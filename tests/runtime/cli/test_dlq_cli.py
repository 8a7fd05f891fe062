from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtime.cli.conftest import Garrison


def test_list_get_replay_archive_purge(
    garrison: Garrison, make_dead_letter: Callable[[], str]
) -> None:
    item_id = make_dead_letter()
    code, out, _ = garrison("dlq", "list", "--format", "json")
    listed = json.loads(out)
    assert code == 0 and [d["item_id"] for d in listed] == [item_id]
    assert listed[0]["reason"] == "terminal_error"

    code, out, _ = garrison("dlq", "list", "--reason", "terminal_error", "--since", "1h")
    assert code == 0 and item_id in out
    code, out, _ = garrison("dlq", "list", "--topic", "other", "--format", "json")
    assert json.loads(out) == []

    code, out, _ = garrison("dlq", "get", item_id)
    letter = json.loads(out)
    assert letter["error"] == "TerminalError: cannot be done" and "Traceback" in letter["traceback"]
    code, out, _ = garrison("dlq", "get", item_id, "--format", "table")
    assert code == 0 and "TerminalError" in out

    code, new_id, _ = garrison("dlq", "replay", item_id)
    assert code == 0 and len(new_id.strip()) == 32
    code, _, err = garrison("dlq", "replay", item_id)
    assert code == 2 and "already replayed" in err and "force" in err
    code, newer, _ = garrison("dlq", "replay", item_id, "--force")
    assert code == 0 and newer != new_id

    assert garrison("dlq", "archive", item_id)[0] == 0
    code, _, err = garrison("dlq", "archive", item_id)
    assert code == 1 and "already archived" in err
    code, out, _ = garrison("dlq", "list", "--archived", "--format", "json")
    assert [d["item_id"] for d in json.loads(out)] == [item_id]
    code, out, _ = garrison("dlq", "purge", "--older-than", "1d")
    assert (code, out.strip()) == (0, "purged 0")
    code, out, _ = garrison("dlq", "purge")
    assert (code, out.strip()) == (0, "purged 1")
    code, _, err = garrison("dlq", "get", item_id)
    assert code == 2 and "no dead letter" in err


@pytest.mark.parametrize(
    "command", [("list",), ("get", "x"), ("replay", "x"), ("archive", "x"), ("purge",)]
)
def test_dlq_commands_refuse_a_missing_database_without_creating_it(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    g = Garrison(tmp_path / "missing.db")
    code, _, err = g("dlq", *command)
    assert code == 1 and "no database at" in err
    assert not g.db.exists()


@pytest.mark.parametrize("command", [("get",), ("replay",), ("archive",)])
def test_unknown_ids_are_bad_input(garrison: Garrison, command: tuple[str, ...]) -> None:
    garrison("enqueue", "--topic", "t", "--payload", "1")
    before = garrison.rows()
    code, _, err = garrison("dlq", *command, "0" * 32)
    assert code == 2 and "no dead letter" in err
    assert garrison.rows() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "--since", "yesterday"), "is not a duration"),
        (("list", "--format", "xml"), "--format must be one of"),
        (("list", "--reason", "bored"), "Invalid value"),
        (("purge", "--older-than", "-5"), "is not a duration"),
    ],
)
def test_bad_options(garrison: Garrison, args: tuple[str, ...], message: str) -> None:
    garrison("enqueue", "--topic", "t", "--payload", "1")
    before = garrison.rows()
    code, _, err = garrison("dlq", *args)
    assert code == 2 and message in err
    assert garrison.rows() == before


def test_dlq_on_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    code, _, err = Garrison(path)("dlq", "list")
    assert code == 1 and err.startswith("garrison: error: ") and "Traceback" not in err


def test_replay_a_selection_through_partitioned_workers(
    garrison: Garrison, make_dead_letter: Callable[[], str]
) -> None:
    ids = {make_dead_letter() for _ in range(3)}
    code, out, _ = garrison("dlq", "replay", "--topic", "t", "--dry-run", "--format", "json")
    report = json.loads(out)
    assert code == 0
    assert report["dry_run"] is True
    assert {o["item_id"] for o in report["outcomes"]} == ids
    assert {o["status"] for o in report["outcomes"]} == {"would_replay"}
    code, out, _ = garrison("dlq", "replay", "--reason", "terminal_error", "--partitions", "2")
    assert code == 0
    assert "selected=3 replayed=3 skipped=0 missing=0 failed=0" in out
    code, out, _ = garrison("dlq", "replay", "--since", "1h", "--rate", "1000", "--format", "json")
    assert json.loads(out)["skipped"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--topic", "t", "--partitions", "0"), "partitions"),
        (("--rate", "-1", "--topic", "t"), "rate"),
    ],
)
def test_replay_selection_bad_options(
    garrison: Garrison, make_dead_letter: Callable[[], str], args: tuple[str, ...], message: str
) -> None:
    make_dead_letter()
    before = garrison.rows()
    code, _, err = garrison("dlq", "replay", *args)
    assert code == 2
    assert message in err
    assert garrison.rows() == before
