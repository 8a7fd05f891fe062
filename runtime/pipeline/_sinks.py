"""Outbound delivery: sinks, timeouts, retries, and the effects ledger."""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

import anyio

from policies import RetryPolicy
from runtime._errors import ItemNotFound
from runtime.store import Store, WorkItem


@runtime_checkable
class Sink(Protocol):
    """Where results go. ``deliver`` must be idempotent for a given ``idempotency_key``:
    after a crash the runtime may deliver the same effect again if the ledger write did not
    commit, and passes the same key so the far side can recognise it."""

    name: str

    async def deliver(self, item: WorkItem, result: bytes | None, idempotency_key: str) -> None:
        """Deliver one result; raise to fail the attempt."""


class SinkFailed(Exception):
    """Every delivery attempt to a sink failed; the item's attempt fails with this."""

    def __init__(self, sink: str, attempts: int, cause: BaseException) -> None:
        kind = "timed out" if isinstance(cause, TimeoutError) else f"failed: {cause!r}"
        super().__init__(f"sink {sink!r} {kind} after {attempts} attempt(s)")
        self.sink = sink
        self.timeout = isinstance(cause, TimeoutError)


async def origin_id(store: Store, item: WorkItem, max_hops: int = 64) -> str:
    """The id of the item a replay chain started from (``item.id`` when not a replay).

    Replays are rare, so walking the ``replay_of`` links costs nothing on the hot path;
    a purged ancestor ends the walk where the chain is still known.
    """
    current, parent = item.id, item.replay_of
    for _ in range(max_hops):
        if parent is None:
            break
        current = parent
        try:
            parent = (await store.get(parent)).replay_of
        except ItemNotFound:
            break
    return current


def effect_key(sink: Sink, item: WorkItem, origin: str) -> str:
    """The ledger key of an item's effect on ``sink``.

    It survives redelivery and replay: the item's idempotency key when it has one, else
    the id of the item its replay chain started from.
    """
    return f"{sink.name}:{item.idempotency_key or origin}"


def may_have_effects(item: WorkItem) -> bool:
    """Whether the ledger can already hold effects of this item.

    A first attempt of an item that is neither a replay nor keyed by an idempotency key
    cannot: skipping the lookup saves a read per item on the common path.
    """
    return item.attempt > 1 or item.replay_of is not None or item.idempotency_key is not None


async def deliver(
    sink: Sink,
    item: WorkItem,
    result: bytes | None,
    key: str,
    *,
    timeout_s: float,
    policy: RetryPolicy,
    rng: random.Random,
) -> None:
    """Deliver one result to one sink, each try under ``timeout_s``, retried in place with
    the policy's backoff up to ``policy.max_attempts``.

    Raises:
        SinkFailed: the last try failed or timed out.
    """
    for attempt in range(1, policy.max_attempts + 1):
        try:
            with anyio.fail_after(timeout_s):
                await sink.deliver(item, result, key)
        except Exception as exc:
            if attempt >= policy.max_attempts:
                raise SinkFailed(sink.name, attempt, exc) from exc
            await anyio.sleep(policy.backoff(attempt, rng.random()))
        else:
            return
