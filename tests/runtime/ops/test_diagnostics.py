from __future__ import annotations

import json
import stat
import time
import zipfile
from pathlib import Path

import pytest

from runtime import ValidationFailed
from runtime.ops import build_bundle, redact, redact_text
from runtime.ops._diagnostics import default_bundle_name
from tests.conftest import FakeClock
from tests.runtime.ops.conftest import corrupt

SECRET = "s3cr3t-value"


def test_bundle_holds_every_part_with_secrets_redacted(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    log.write_text(f'{{"event": "start", "dsn": "postgres://app:{SECRET}@db/x"}}\n' * 3)
    config = tmp_path / "service.toml"
    config.write_text(f'[store]\npath = "q.db"\npassword = "{SECRET}"\n')
    environ = {
        "GARRISON_DB": str(db),
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@collector:4317",
        "HOME": "/root",
    }
    out = tmp_path / "bundle.zip"
    result = build_bundle(
        db,
        out,
        now=fake_clock(),
        log_files=[log, tmp_path / "missing.log"],
        config_file=config,
        environ=environ,
        events_limit=5,
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert result.doctor_status == "warning"
    assert list(result.errors) == ["logs/1-missing.log"]
    with zipfile.ZipFile(out) as bundle:
        names = set(bundle.namelist())
        assert names >= {
            "doctor.json",
            "metrics.json",
            "db-stats.json",
            "events.jsonl",
            "config.json",
            "versions.json",
            "platform.json",
            "manifest.json",
            "logs/0-worker.log",
        }
        everything = b"".join(bundle.read(n) for n in names)
        assert SECRET.encode() not in everything
        cfg = json.loads(bundle.read("config.json"))
        assert cfg["environment"]["OTEL_EXPORTER_OTLP_HEADERS"] == "[redacted]"
        assert "HOME" not in cfg["environment"]
        assert cfg["config_file"]["store"] == {"path": "q.db", "password": "[redacted]"}
        assert cfg["database"]["journal_mode"] == "wal"
        events = bundle.read("events.jsonl").decode().splitlines()
        assert len(events) == 5 and "at_iso" in json.loads(events[-1])
        doctor = json.loads(bundle.read("doctor.json"))
        assert doctor["status"] == "warning"
        assert "wal_checkpoint" not in {f["check"] for f in doctor["findings"]}
        assert json.loads(bundle.read("metrics.json"))["default"]["depth"]["enqueued"] == 3
        versions = json.loads(bundle.read("versions.json"))
        assert {"trio", "msgspec", "typer"} <= set(versions["dependencies"])


def test_a_corrupt_database_still_gives_a_bundle(
    db: Path, fake_clock: FakeClock, seeded: dict[str, list[str]], tmp_path: Path
) -> None:
    corrupt(db, offset=0, size=100)  # the header
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"token": SECRET, "list": [f"x://u:{SECRET}@h"]}))
    result = build_bundle(db, tmp_path / "b.zip", now=fake_clock(), config_file=config)
    assert result.doctor_status == "critical"
    assert set(result.errors) == {"metrics.json", "db-stats.json", "events.jsonl"}
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle:
        cfg = json.loads(bundle.read("config.json"))
        assert cfg["config_file"] == {"token": "[redacted]", "list": ["x://u:[redacted]@h"]}
        assert "error" in cfg["database"]
        assert "error" in json.loads(bundle.read("db-stats.json"))


def test_a_missing_database_and_a_plain_config(tmp_path: Path) -> None:
    plain = tmp_path / "app.conf"
    plain.write_text(f"password={SECRET}\nname=x\n")
    result = build_bundle(tmp_path / "none.db", tmp_path / "b.zip", now=0.0, config_file=plain)
    assert result.doctor_status is None and "doctor.json" in result.errors
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle:
        assert json.loads(bundle.read("config.json"))["config_file"] == (
            "password=[redacted]\nname=x\n"
        )


def test_bad_output_paths(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="is a folder"):
        build_bundle(tmp_path / "q.db", tmp_path, now=0.0)
    with pytest.raises(ValidationFailed, match="does not exist"):
        build_bundle(tmp_path / "q.db", tmp_path / "no" / "b.zip", now=0.0)
    assert default_bundle_name(0.0).name == "garrison-diagnostics-19700101T000000Z.zip"


def test_redaction() -> None:
    assert redact({"api_key": "k", "empty_token": "", "n": 1, "nested": {"Secret": [1]}}) == {
        "api_key": "[redacted]",
        "empty_token": "",
        "n": 1,
        "nested": {"Secret": "[redacted]"},
    }
    assert "abc" not in redact_text("Authorization: Bearer abc.def")
    assert redact_text("curl -H 'x' Bearer abc") == "curl -H 'x' Bearer [redacted]"
    assert redact_text('db_password="a b" ok') == "db_password=[redacted] ok"


@pytest.mark.parametrize(
    "text",
    [
        "QUJD" * 50_000,
        "a." * 100_000,
        "token" * 40_000,
        ("x" * 60 + " ") * 3_000,
        'password="' * 20_000,
    ],
    ids=["base64", "dotted", "repeated-word", "words", "unterminated"],
)
def test_redaction_is_linear_in_the_text(text: str) -> None:
    # 200 KB: quadratic matching (a name pattern retried at every character of a long
    # word) took hours on this; linear takes well under a second.
    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 10.0
