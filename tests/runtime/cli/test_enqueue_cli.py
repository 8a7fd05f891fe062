from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.runtime.cli.conftest import Garrison


def test_enqueue_prints_the_id_and_idempotency_key_returns_it_again(garrison: Garrison) -> None:
    args = ("enqueue", "--topic", "mail.send", "--payload", '{"to": "a"}')
    code, first, _ = garrison(*args, "--idempotency-key", "k1", "--priority", "3", "--key", "c")
    assert code == 0 and len(first.strip()) == 32
    code, again, _ = garrison(*args, "--idempotency-key", "k1")
    assert code == 0 and again == first
    assert garrison.rows()["items"] == 1


def test_enqueue_accepts_a_matching_sha256(garrison: Garrison) -> None:
    payload = '{"n": 1}'
    digest = hashlib.sha256(payload.encode()).hexdigest()
    code, _, _ = garrison("enqueue", "--topic", "t", "--payload", payload, "--sha256", digest)
    assert code == 0


def test_bulk_enqueue_from_file_prints_a_count(garrison: Garrison, tmp_path: Path) -> None:
    lines = [{"topic": "t", "payload": {"n": n}, "key": str(n % 3)} for n in range(2500)]
    lines.append({"topic": "t", "payload": [1], "idempotency_key": "once", "max_attempts": 2})
    lines.append({"topic": "t", "payload": [1], "idempotency_key": "once"})
    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    code, out, _ = garrison("enqueue", "--from-file", str(path))
    assert (code, out.strip()) == (0, "2501")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--topic", "t", "--payload", "{not json"), "payload is not valid JSON"),
        (("--topic", "bad topic!", "--payload", "{}"), "topic 'bad topic!' is not valid"),
        (("--topic", "", "--payload", "{}"), "is not valid"),
        (
            ("--topic", "t", "--payload", '"' + "x" * 64 + '"', "--max-payload-bytes", "16"),
            "over the limit of 16",
        ),
        (("--topic", "t", "--payload", "{}", "--sha256", "0" * 64), "does not match the payload"),
        (("--topic", "t", "--payload", "{}", "--sha256", "xyz"), "sha256 must be 64 hex digits"),
        (("--topic", "t", "--payload", "{}", "--max-attempts", "0"), "max_attempts must be"),
        (("--topic", "t", "--payload", "{}", "--priority", "99999999"), "priority must be"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    garrison: Garrison, args: tuple[str, ...], message: str
) -> None:
    garrison("enqueue", "--topic", "seed", "--payload", "{}")
    before = garrison.rows()
    code, out, err = garrison("enqueue", *args)
    assert code == 2
    assert out == ""
    assert err.startswith("garrison: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert garrison.rows() == before


def test_wrong_option_types_are_usage_errors(garrison: Garrison) -> None:
    code, _, err = garrison("enqueue", "--topic", "t", "--payload", "{}", "--priority", "high")
    assert code == 2 and "priority" in err
    assert garrison.rows() == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"topic": "t", "payload": {}}\n{"topic": "t", "payload": }\n', ".jsonl:3: "),
        ('{"topic": "t", "payload": {}, "colour": "red"}\n', "unknown field"),
        ('{"topic": "t", "payload": {}, "priority": "high"}\n', "Expected `int`"),
        ('{"payload": {}}\n', "missing required field `topic`"),
        ('{"topic": "no spaces please", "payload": 1}\n', "topic"),
        ("[1, 2]\n", "Expected `object`"),
    ],
)
def test_bulk_file_with_a_bad_line_writes_nothing(
    garrison: Garrison, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"topic": "t", "payload": {"ok": true}}\n' + content)
    code, _, err = garrison("enqueue", "--from-file", str(path))
    assert code == 2 and message in err and "Traceback" not in err
    assert garrison.rows() == {}


def test_bulk_file_that_does_not_exist(garrison: Garrison, tmp_path: Path) -> None:
    code, _, err = garrison("enqueue", "--from-file", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "cannot read" in err


def test_from_file_and_topic_together_is_a_usage_error(garrison: Garrison, tmp_path: Path) -> None:
    code, _, _ = garrison("enqueue", "--from-file", str(tmp_path / "x"), "--topic", "t")
    assert code == 2


def test_missing_topic_is_a_usage_error(garrison: Garrison) -> None:
    code, _, _ = garrison("enqueue", "--payload", "{}")
    assert code == 2


def test_db_that_is_a_directory(tmp_path: Path) -> None:
    g = Garrison(tmp_path)
    code, _, err = g("enqueue", "--topic", "t", "--payload", "{}")
    assert code == 1 and "is a directory" in err


def test_db_that_is_not_a_database_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n")
    code, _, err = Garrison(path)("enqueue", "--topic", "t", "--payload", "{}")
    assert code == 1 and "not a SQLite database" in err
    assert path.read_text() == "shopping list\n"


def test_db_in_a_missing_folder(tmp_path: Path) -> None:
    code, _, err = Garrison(tmp_path / "no" / "such.db")(
        "enqueue", "--topic", "t", "--payload", "1"
    )
    assert code == 1 and "does not exist" in err


def test_db_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GARRISON_DB", str(tmp_path / "env.db"))
    code, _, _ = Garrison(tmp_path / "unused.db")(
        "enqueue", "--topic", "t", "--payload", "1", db=False
    )
    assert code == 0 and (tmp_path / "env.db").exists()
