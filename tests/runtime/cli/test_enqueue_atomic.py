"""``enqueue --from-file`` is one transaction: on a disk that fills up half-way through the
file, none of it is written and the message says so truthfully; a re-run cannot duplicate.

A real full disk: a 3 MiB tmpfs (needs root, as on CI; skipped where mounting is refused).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.cli.conftest import Garrison


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def items_file(path: Path, count: int, size: int) -> Path:
    lines = (
        json.dumps({"topic": "t", "payload": {"n": n, "pad": "x" * size}}) for n in range(count)
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_that_fills_the_disk_writes_nothing(small_disk: Path, tmp_path: Path) -> None:
    garrison = Garrison(small_disk / "q.db")
    code, _, _ = garrison("enqueue", "--topic", "seed", "--payload", "{}")
    assert code == 0
    before = garrison.rows()
    # 5,000 items of about 1 KiB: several times the 1,000 rows the old chunked writer
    # committed before the disk filled, and more than the 3 MiB disk holds.
    big = items_file(tmp_path / "big.jsonl", 5000, 1000)
    code, out, err = garrison("enqueue", "--from-file", str(big))
    assert code == 1 and out == ""
    assert err.startswith("garrison: error: ") and err.count("\n") == 1
    assert "nothing from this operation was written" in err
    assert garrison.rows() == before
    # the disk has room for a smaller file; the refused one left nothing half-done behind
    small = items_file(tmp_path / "small.jsonl", 200, 100)
    code, out, err = garrison("enqueue", "--from-file", str(small))
    assert (code, out.strip(), err) == (0, "200", "")
    assert garrison.rows()["items"] == before["items"] + 200
