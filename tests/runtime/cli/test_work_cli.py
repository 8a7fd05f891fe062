from __future__ import annotations

import json

import pytest

from tests.runtime.cli import handlers
from tests.runtime.cli.conftest import Garrison


def test_work_drains_and_exits_0(garrison: Garrison) -> None:
    ids = [garrison("enqueue", "--topic", "t", "--payload", str(n))[1].strip() for n in range(5)]
    handlers.SEEN.clear()
    code, _, err = garrison(
        "work", "--handler", "tests.runtime.cli.handlers:ok", "--drain", "--poll-interval", "0.01"
    )
    assert code == 0, err
    assert sorted(handlers.SEEN) == sorted(ids)
    code, out, _ = garrison("queue-metrics", "--format", "json", "--since", "60")
    doc = json.loads(out)
    assert doc["depth"]["succeeded"] == 5 and doc["succeeded"] == 5
    assert set(doc["last_success"]) == {"t"}


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("no_colon", "must look like MODULE:FUNC"),
        ("no.such.module:fn", "cannot import handler module"),
        ("tests.runtime.cli.handlers:missing", "has no attribute"),
        ("tests.runtime.cli.handlers:NOT_CALLABLE", "is not callable"),
    ],
)
def test_bad_handler_is_refused_before_touching_the_db(
    garrison: Garrison, handler: str, message: str
) -> None:
    code, _, err = garrison("work", "--handler", handler, "--drain")
    assert code == 2 and message in err
    assert not garrison.db.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--concurrency", "0"),
        ("--lease-seconds", "0"),
        ("--handler-timeout", "-1"),
        ("--max-attempts", "0"),
    ],
)
def test_bad_worker_settings(garrison: Garrison, args: tuple[str, ...]) -> None:
    code, _, err = garrison("work", "--handler", "tests.runtime.cli.handlers:ok", *args)
    assert code == 2 and "Traceback" not in err


def test_work_on_a_text_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "x.db"
    path.write_text("hello")
    code, _, err = Garrison(path)("work", "--handler", "tests.runtime.cli.handlers:ok", "--drain")
    assert code == 1 and "not a SQLite database" in err


def test_work_with_let_it_crash_restarts_partitions_and_settles_each_item_once(
    garrison: Garrison,
) -> None:
    ids = [garrison("enqueue", "--topic", "t", "--payload", str(n))[1].strip() for n in range(3)]
    handlers.SEEN.clear()
    code, _, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:crash_first_attempt",
        "--let-it-crash",
        "--drain",
        "--poll-interval",
        "0.01",
    )
    assert code == 0, err
    assert sorted(handlers.SEEN) == sorted(ids)
    doc = json.loads(garrison("queue-metrics", "--format", "json", "--since", "60")[1])
    assert doc["depth"]["succeeded"] == 3


def test_work_passes_the_context_to_a_two_argument_handler(garrison: Garrison) -> None:
    item_id = garrison("enqueue", "--topic", "t", "--payload", "1")[1].strip()
    handlers.SEEN.clear()
    code, _, err = garrison(
        "work",
        "--handler",
        "tests.runtime.cli.handlers:with_context",
        "--threads",
        "2",
        "--drain",
        "--poll-interval",
        "0.01",
    )
    assert code == 0, err
    assert [f"{item_id}:HandlerContext"] == handlers.SEEN


def test_a_handler_with_the_wrong_signature_is_refused(garrison: Garrison) -> None:
    code, _, err = garrison("work", "--handler", "tests.runtime.cli.handlers:three_arguments")
    assert code == 2 and "(item) or (item, ctx)" in err
    assert not garrison.db.exists()


@pytest.mark.parametrize("threads", ["0", "5000"])
def test_threads_are_bounded(garrison: Garrison, threads: str) -> None:
    code, _, err = garrison(
        "work", "--handler", "tests.runtime.cli.handlers:ok", "--threads", threads
    )
    assert code == 2 and "threads" in err
