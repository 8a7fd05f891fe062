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
