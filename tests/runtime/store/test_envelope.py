"""The envelope module: the pure intake gate, digests and error truncation."""

from __future__ import annotations

import hashlib

import msgspec
import pytest

from runtime import ChecksumMismatch, PayloadTooLarge, ValidationFailed
from runtime.store import NewItem, payload_digest, validate_new_item
from runtime.store._envelope import MAX_ERROR_LENGTH, truncate_error


def test_payload_digest_is_hex_sha256() -> None:
    assert payload_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_validate_returns_the_digest() -> None:
    item = NewItem(topic="a.b:c/d-e_f", payload=b"abc")
    assert validate_new_item(item, max_payload_bytes=3) == payload_digest(b"abc")


def test_validate_accepts_a_matching_uppercase_sha256() -> None:
    digest = payload_digest(b"abc")
    item = NewItem(topic="t", payload=b"abc", sha256=digest.upper())
    assert validate_new_item(item, max_payload_bytes=10) == digest


def test_validate_accepts_memoryview_and_bytearray_payloads() -> None:
    for payload in (bytearray(b"xy"), memoryview(b"xy")):
        item = NewItem(topic="t", payload=payload)  # type: ignore[arg-type]
        assert validate_new_item(item, max_payload_bytes=2) == payload_digest(b"xy")


def test_errors_are_ordered_from_most_specific() -> None:
    assert issubclass(PayloadTooLarge, ValidationFailed)
    assert issubclass(ChecksumMismatch, ValidationFailed)
    assert issubclass(ValidationFailed, ValueError)


def test_payload_too_large_names_the_sizes() -> None:
    with pytest.raises(PayloadTooLarge, match="4 bytes, over the limit of 3"):
        validate_new_item(NewItem(topic="t", payload=b"abcd"), max_payload_bytes=3)


def test_checksum_mismatch_names_the_real_digest() -> None:
    item = NewItem(topic="t", payload=b"abc", sha256="0" * 64)
    with pytest.raises(ChecksumMismatch, match=payload_digest(b"abc")):
        validate_new_item(item, max_payload_bytes=10)


def test_truncate_error_bounds_long_text() -> None:
    assert truncate_error(None) is None
    assert truncate_error("short") == "short"
    exact = "x" * MAX_ERROR_LENGTH
    assert truncate_error(exact) == exact
    long = truncate_error("y" * (MAX_ERROR_LENGTH + 1))
    assert long is not None
    assert len(long) == MAX_ERROR_LENGTH
    assert long.endswith("... [truncated]")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"topic": ""}, "topic"),
        ({"priority": 1_000_001}, "priority"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"delay_s": -1.0}, "delay_s"),
        ({"key": "a\nb"}, "key"),
        ({"sha256": "abc"}, "sha256"),
        ({"trace_context": {str(n): "v" for n in range(33)}}, "trace_context"),
    ],
)
def test_decoding_refuses_what_the_declared_bounds_refuse(
    fields: dict[str, object], field: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=field):
        msgspec.convert({"topic": "t", "payload": b"x", **fields}, NewItem)
    with pytest.raises(ValidationFailed) as info:
        validate_new_item(
            msgspec.structs.replace(NewItem("t", b"x"), **fields), max_payload_bytes=8
        )
    assert info.value.field == field


def test_building_an_item_checks_nothing_until_the_gate() -> None:
    item = NewItem(topic="", payload=b"x")  # refused at enqueue, with telemetry
    with pytest.raises(ValidationFailed, match="topic"):
        validate_new_item(item, max_payload_bytes=8)
