"""The live view's pure parts: bounds, histories, pressure levels, topic rows, formats."""

from __future__ import annotations

import msgspec
import pytest

from policies import ValidationFailed
from runtime.tui import History, SortKey, TopConfig
from runtime.tui._model import (
    Estimate,
    age,
    clock_time,
    fold_pressure,
    level_style,
    next_sort,
    scaled_counts,
    sort_topics,
    topic_rows,
)
from runtime.tui._reader import preview
from runtime.tui._render import _seconds


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("refresh_s", 0.1),
        ("refresh_s", 61.0),
        ("window_s", 0.5),
        ("history_s", 5.0),
        ("max_history", 1),
        ("dead_letter_rows", 0),
        ("dead_letter_rows", 1001),
        ("topic_sample", 5),
        ("max_topics", 0),
        ("max_channels", 0),
        ("audit_rows", 0),
        ("preview_bytes", 1),
    ],
)
def test_config_refuses_out_of_bounds(field: str, value: float) -> None:
    with pytest.raises(ValidationFailed) as err:
        TopConfig(**{field: value})  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({field: value}, TopConfig)


def test_history_len_is_bounded() -> None:
    assert TopConfig().history_len == 450  # 15 min at 2 s
    assert TopConfig(refresh_s=0.5, max_history=300).history_len == 300
    assert TopConfig(refresh_s=60, history_s=10).history_len == 2


def test_history_keeps_only_the_newest() -> None:
    h = History(3)
    for v in range(10):
        h.add(float(v))
    assert h.values() == [7.0, 8.0, 9.0] and h.maxlen == 3


def test_fold_pressure_keeps_latest_level_per_channel_and_a_cap() -> None:
    events = [
        (1.0, '{"channel": "a", "to": "elevated", "depth": 5}'),
        (2.0, '{"channel": "b", "to": "critical"}'),
        (3.0, '{"channel": "a", "to": "normal", "depth": 1}'),
        (4.0, "not json"),
        (5.0, None),
        (6.0, "[1, 2]"),
        (7.0, '{"channel": 3, "to": "normal"}'),
    ]
    levels = fold_pressure({}, events, cap=10)
    assert {c: (p.level, p.depth) for c, p in levels.items()} == {
        "a": ("normal", 1),
        "b": ("critical", None),
    }
    more = fold_pressure(levels, [(8.0, '{"channel": "c", "to": "normal"}')], cap=2)
    assert set(more) == {"a", "c"}  # b changed least recently


def test_scaled_counts_mark_estimates() -> None:
    assert scaled_counts(["a", "a", "b"], 100, capped=False) == {
        "a": Estimate(2.0),
        "b": Estimate(1.0),
    }
    scaled = scaled_counts(["a", "a", "b", "b"], 100, capped=True)
    assert scaled["a"] == Estimate(50.0, exact=False) and scaled["a"].text() == "~50"
    assert scaled_counts([], 100, capped=True) == {}


def test_topic_rows_sorting_and_cap() -> None:
    rows = topic_rows(
        now=100.0,
        window_s=60.0,
        depth={"a": Estimate(5.0), "b": Estimate(1.0)},
        succeeded={"b": Estimate(120.0)},
        failures={"c": Estimate(2.0)},
        last_success={"b": 90.0},
        cap=10,
    )
    assert [r.topic for r in rows] == ["a", "b", "c"]
    by = {k: [r.topic for r in sort_topics(rows, k)] for k in SortKey}
    assert by[SortKey.RATE][0] == "b" and by[SortKey.FAILURES][0] == "c"
    assert by[SortKey.STALENESS][-1] == "b"  # never succeeded sorts stalest
    assert by[SortKey.TOPIC] == ["a", "b", "c"]
    b = next(r for r in rows if r.topic == "b")
    assert b.rate_per_min.value == 120.0 and b.staleness_s == 10.0
    assert (
        len(
            topic_rows(
                now=0,
                window_s=1,
                depth={"a": Estimate(1)},
                succeeded={},
                failures={"b": Estimate(1)},
                last_success={},
                cap=1,
            )
        )
        == 1
    )
    assert next_sort(SortKey.TOPIC) is SortKey.DEPTH


def test_formats() -> None:
    assert [age(v) for v in (None, 5, 190, 7500, 200000)] == ["-", "5s", "3m10s", "2h05m", "2d07h"]
    assert clock_time(None) == "-" and clock_time(0) == "00:00:00"
    assert level_style("critical") == "bold red" and level_style("odd") == "white"
    assert [_seconds(v) for v in (None, 0.012, 4.25, 190)] == ["-", "12ms", "4.2s", "3m10s"]
    assert preview(b"hello", 10) == "hello"
    assert preview(b"hello world", 5) == "hello…"
    assert preview("é".encode() * 4, 3) == "é…"
    assert preview(b"\xff\xfe\x00\x01", 16) == "ff fe 00 01"
