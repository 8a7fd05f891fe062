"""Actor tests: Trio by default (pytest-trio's ``trio_mode``); the conformance subset is
marked ``@pytest.mark.anyio`` and runs on both backends.

As in ``tests/supervisors/conftest.py``: ``trio_mode`` marks every async test as a Trio
test, so the hook below takes the ``trio`` marker off anyio-marked tests and lets anyio's
plugin run them on the backend named by ``anyio_backend``.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers[:] = [m for m in item.own_markers if m.name != "trio"]
