from __future__ import annotations

import json

from tests.runtime.cli.conftest import Garrison


def test_demo_reconciles_every_item_and_leaves_dead_letters_to_inspect(garrison: Garrison) -> None:
    code, out, err = garrison("demo", "--items", "400", "--duration", "5", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["unaccounted"] == 0
    assert report["enqueued"] == 400 == report["succeeded"] + report["dead_lettered"]
    assert report["dead_letters_by_reason"]["terminal_error"] == report["faults_injected"]["poison"]
    assert report["retries"] >= report["faults_injected"]["flaky"]
    code, out, _ = garrison("dlq", "list", "--format", "json")
    assert len(json.loads(out)) == report["dead_lettered"]


def test_demo_table_output(garrison: Garrison) -> None:
    code, out, _ = garrison("demo", "--items", "50", "--duration", "3")
    assert code == 0 and "reconciliation" in out and "garrison dlq list" in out


def test_demo_bad_format(garrison: Garrison) -> None:
    assert garrison("demo", "--format", "xml")[0] == 2
