from __future__ import annotations

import json

from tests.runtime.cli.conftest import Garrison


def test_demo_reconciles_every_item_and_leaves_dead_letters_to_inspect(garrison: Garrison) -> None:
    code, out, err = garrison("demo", "--items", "400", "--duration", "5", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["unaccounted"] == 0
    assert report["drained"] is True
    total = report["succeeded"] + report["dead_lettered"] + report["shed"]
    assert report["enqueued"] == total
    faults = report["faults_injected"]
    reasons = report["dead_letters_by_reason"]
    assert reasons.get("terminal_error", 0) <= faults["poison"]
    assert report["shed"] == reasons.get("shed", 0)
    assert report["restarts_by_reason"]["exception"] >= 1
    assert report["pressure_transitions"], "the burst should have raised the pressure level"
    code, out, _ = garrison("dlq", "list", "--format", "json", "--limit", "1000")
    assert len(json.loads(out)) == report["dead_lettered"] + report["shed"]
    code, out, _ = garrison("events", "--kind", "pressure_transition", "--format", "json")
    assert len(json.loads(out)) == len(report["pressure_transitions"])


def test_demo_table_output(garrison: Garrison) -> None:
    code, out, _ = garrison("demo", "--items", "50", "--duration", "3")
    assert code == 0
    assert "reconciliation" in out
    assert "garrison dlq list" in out


def test_demo_bad_format(garrison: Garrison) -> None:
    assert garrison("demo", "--format", "xml")[0] == 2


def test_demo_takes_the_telemetry_options(garrison: Garrison) -> None:
    code, out, err = garrison(
        "demo", "--items", "50", "--duration", "3", "--format", "json", "--log-format", "json"
    )
    assert code == 0, err
    assert json.loads(out)["ok"] is True
