"""``purge``: the retention purge, counted and audited."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from policies import RetentionPolicy
from runtime.store import StoreConfig, open_store


class PurgeReport(msgspec.Struct, frozen=True):
    """Rows a retention purge removed (or, on a dry run, would remove).

    ``dead_letters`` counts archived and live dead letters together. Each removal is in
    the audit trail (``succeeded_purged``, ``dead_letters_purged``, ``audit_purged``), and
    the run as a whole as ``retention_purge``.
    """

    queue: str
    dry_run: bool
    succeeded: int
    dead_letters: int
    audit: int
    policy: RetentionPolicy

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return self.succeeded + self.dead_letters + self.audit


async def purge(
    path: Path,
    policy: RetentionPolicy,
    *,
    queue: str = "default",
    dry_run: bool = False,
    busy_timeout_s: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> PurgeReport:
    """Purge rows of ``queue`` past ``policy``'s ages (count them only, with ``dry_run``).

    Raises:
        StoreUnavailable: no database at ``path``.
        NotADatabase: not a Garrison database, or corrupt.
        StoreBusy: another writer held the lock past ``busy_timeout_s``.
    """
    config = StoreConfig(queue=queue, busy_timeout_s=busy_timeout_s, retention=policy)
    async with open_store(path, config, create=False, clock=clock) as store:
        result = await store.purge(policy, dry_run=dry_run)
        report = PurgeReport(
            queue=queue,
            dry_run=dry_run,
            succeeded=result.succeeded,
            dead_letters=result.dead_letters,
            audit=result.audit,
            policy=policy,
        )
        if not dry_run:
            await store.record_event(
                "retention_purge",
                {
                    "succeeded": report.succeeded,
                    "dead_letters": report.dead_letters,
                    "audit": report.audit,
                    "policy": msgspec.to_builtins(policy),
                },
            )
    return report
