from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.runtime.cli.conftest import Garrison


def test_queue_metrics_json_has_the_contract_fields(
    garrison: Garrison, make_dead_letter: Callable[[], str]
) -> None:
    make_dead_letter()
    garrison("enqueue", "--topic", "t", "--payload", "2")
    code, out, _ = garrison("queue-metrics", "--format", "json", "--since", "60")
    doc = json.loads(out)
    assert code == 0
    for key in (
        "depth",
        "throughput_per_min",
        "avg_queue_latency_s",
        "lease_contention",
        "retries",
        "dead_letters",
        "last_success",
    ):
        assert key in doc
    assert doc["depth"]["dead_lettered"] == 1 and doc["depth"]["enqueued"] == 1
    assert doc["dead_letters"] == 1


def test_queue_metrics_table(garrison: Garrison) -> None:
    garrison("enqueue", "--topic", "t", "--payload", "2")
    code, out, _ = garrison("queue-metrics", "--since", "5m")
    assert code == 0 and "depth enqueued" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "0"), "more than zero"),
        (("--since", "soon"), "is not a duration"),
        (("--format", "yaml"), "--format must be one of"),
    ],
)
def test_queue_metrics_bad_options(garrison: Garrison, args: tuple[str, ...], message: str) -> None:
    garrison("enqueue", "--topic", "t", "--payload", "2")
    code, _, err = garrison("queue-metrics", *args)
    assert code == 2 and message in err


def test_queue_metrics_missing_db(tmp_path: Path) -> None:
    code, _, err = Garrison(tmp_path / "none.db")("queue-metrics", "--format", "json")
    assert code == 1 and "no database" in err


def test_events_show_the_audit_trail_of_an_item(
    garrison: Garrison, make_dead_letter: Callable[[], str]
) -> None:
    item_id = make_dead_letter()
    code, out, _ = garrison("events", "--item", item_id, "--format", "json")
    kinds = [e["kind"] for e in json.loads(out)]
    assert code == 0 and kinds == ["enqueued", "leased", "dead_lettered"]
    code, out, _ = garrison("events", "--kind", "dead_lettered", "--since", "1h")
    assert code == 0 and "cannot be done" in out
    code, _, err = garrison("events", "--since", "never")
    assert code == 2 and "duration" in err
