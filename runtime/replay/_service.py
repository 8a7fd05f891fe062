"""Operator-driven replay of dead letters through partitioned, supervised replay workers.

The coordinator selects dead letters (bounded by ``limit``), routes each to a partition by
its key (so per-key order holds) and paces the sends to ``rate_per_s``. A partition worker
replays through the store, whose replay is transactional and guarded (once per dead letter
unless forced). A worker that crashes is restarted by the ``PartitionSupervisor`` alone;
whatever it had in hand is found unfinished by the reconciliation pass and sent again, and
the store's guard turns a replay that did commit before the crash into a skip — so nothing
is lost and nothing is replayed twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from policies import RestartPolicy
from runtime._errors import InvalidTransition, ItemNotFound, ReplayRefused
from runtime._structure import build, first_leaf
from runtime.store import DeadLetter, DeadLetterAdmin, DeadReason, ItemState, replay_refusal
from supervisors import ChildSpec, PartitionSupervisor, SupervisorEscalation, heartbeat

log = logging.getLogger("garrison.replay")

ReplayFn = Callable[[str, bool], Awaitable[str]]


class ReplaySelection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which dead letters to replay. Empty fields do not filter.

    ``ids`` names dead letters outright; the other fields filter the live (not archived)
    dead letters. ``limit`` bounds one run.
    """

    ids: tuple[str, ...] = ()
    topic: str | None = None
    reason: DeadReason | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 10_000


class ReplayOutcome(msgspec.Struct, frozen=True):
    """What happened to one dead letter."""

    item_id: str
    key: str | None
    status: str  # replayed | skipped | would_replay | would_skip | missing | failed
    new_item_id: str | None = None
    detail: str | None = None


class ReplayReport(msgspec.Struct, frozen=True):
    """The result of a replay run."""

    dry_run: bool
    selected: int
    replayed: int
    skipped: int
    missing: int
    failed: int
    rounds: int
    worker_restarts: int
    outcomes: tuple[ReplayOutcome, ...]


class ReplayConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Settings of a replay run.

    Attributes:
        partitions: replay workers (each owns the keys that hash to it).
        rate_per_s: most replays started per second (None: as fast as the store allows).
        force: replay dead letters that were replayed before.
        max_rounds: reconciliation passes before unfinished ones are reported as failed.
        inbox_size: bound of each partition's inbox.
        restart_policy: intensity of the replay workers' supervisor.
    """

    partitions: int = 4
    rate_per_s: float | None = None
    force: bool = False
    max_rounds: int = 5
    inbox_size: int = 64
    restart_policy: RestartPolicy = RestartPolicy(max_restarts=10, period_s=10.0)

    def __post_init__(self) -> None:
        if not 1 <= self.partitions <= 256:
            raise ValueError("partitions must be within [1, 256]")
        if self.rate_per_s is not None and not self.rate_per_s > 0:
            raise ValueError("rate must be positive")
        if self.max_rounds < 1 or self.inbox_size < 1:
            raise ValueError("max_rounds and inbox_size must be at least 1")


async def select(store: DeadLetterAdmin, selection: ReplaySelection) -> list[DeadLetter]:
    """The dead letters a selection names, oldest first, at most ``selection.limit``.

    Raises:
        ItemNotFound: an id in ``selection.ids`` is not a dead letter.
    """
    if selection.ids:
        return [await store.get_dead_letter(i) for i in selection.ids[: selection.limit]]
    return await store.dead_letters(
        topic=selection.topic,
        reason=selection.reason,
        since=selection.since,
        until=selection.until,
        limit=selection.limit,
    )


def _dry_outcome(letter: DeadLetter, force: bool) -> ReplayOutcome:
    # The store's own rule says what its replay would do (archived: refused; replayed
    # before: refused unless forced), so a dry run cannot drift from a real one.
    state = ItemState.DEAD_LETTERED if letter.archived_at is None else ItemState.ARCHIVED
    refusal = replay_refusal(letter.item_id, state, letter.replay_count, force=force)
    if isinstance(refusal, InvalidTransition):
        return ReplayOutcome(letter.item_id, letter.key, "missing", detail="archived")
    if isinstance(refusal, ReplayRefused):
        return ReplayOutcome(
            letter.item_id, letter.key, "would_skip", letter.replayed_item_id, "already replayed"
        )
    return ReplayOutcome(letter.item_id, letter.key, "would_replay")


class ReplayService:
    """One replay run: select, route to partitions, replay, reconcile.

    ``replay_fn`` defaults to ``store.replay``; tests inject one that crashes to prove
    isolation.
    """

    def __init__(
        self,
        store: DeadLetterAdmin,
        config: ReplayConfig | None = None,
        *,
        replay_fn: ReplayFn | None = None,
    ) -> None:
        self.store = store
        self.config = config or ReplayConfig()
        self._replay: ReplayFn = replay_fn or (lambda i, f: store.replay(i, force=f))
        self._done: dict[str, ReplayOutcome] = {}
        # Sent to a partition and not finished: what "quiet" waits for. Kept by the
        # coordinator because a hand-off to a waiting receiver never shows in inbox sizes.
        self._outstanding: set[str] = set()
        self._progress = anyio.Event()

    async def run(self, selection: ReplaySelection, *, dry_run: bool = False) -> ReplayReport:
        """Replay what ``selection`` names (or, with ``dry_run``, say what would happen).

        Raises:
            ItemNotFound: an explicitly named id is not a dead letter.
            SupervisorEscalation: replay workers crashed past their restart intensity.
        """
        letters = await select(self.store, selection)
        if dry_run:
            outcomes = [_dry_outcome(d, self.config.force) for d in letters]
            return self._report(True, letters, outcomes, rounds=0, restarts=0)
        cfg = self.config
        sup: PartitionSupervisor[DeadLetter] = PartitionSupervisor(
            cfg.partitions,
            self._partition,
            inbox_size=cfg.inbox_size,
            policy=cfg.restart_policy,
            name="replay",
        )
        rounds = 0
        with sup:
            try:
                async with anyio.create_task_group() as tg:
                    await tg.start(sup.run)
                    pending = list(letters)
                    while pending and rounds < cfg.max_rounds:
                        rounds += 1
                        for letter in pending:
                            self._outstanding.add(letter.item_id)
                            await sup.send(letter.key or letter.item_id, letter)
                            if cfg.rate_per_s is not None:
                                await anyio.sleep(1.0 / cfg.rate_per_s)
                        await self._quiet()
                        pending = [d for d in pending if d.item_id not in self._done]
                    tg.cancel_scope.cancel()
            except* SupervisorEscalation as group:
                # The task group wraps it; callers act on the escalation itself.
                raise first_leaf(group) from None
            restarts = sum(c.restarts for c in sup.which_children())
        outcomes = [
            self._done.get(d.item_id)
            or ReplayOutcome(d.item_id, d.key, "failed", detail="unfinished after all rounds")
            for d in letters
        ]
        return self._report(False, letters, outcomes, rounds=rounds, restarts=restarts)

    async def _quiet(self) -> None:
        """Wait until every dead letter sent this round is finished or was dropped by a
        crash (a restarted worker carries on with what is still in its inbox)."""
        while self._outstanding:
            self._progress = anyio.Event()
            await self._progress.wait()

    def _partition(self, index: int, inbox: MemoryObjectReceiveStream[DeadLetter]) -> ChildSpec:
        return ChildSpec(id=f"replay-{index}", start=partial(self._work, inbox))

    async def _work(
        self, inbox: MemoryObjectReceiveStream[DeadLetter], *, task_status: TaskStatus[Any]
    ) -> None:
        task_status.started()
        async with inbox:
            async for letter in inbox:
                try:
                    self._done[letter.item_id] = await self._replay_one(letter)
                finally:
                    self._outstanding.discard(letter.item_id)
                    self._progress.set()
                heartbeat()

    async def _replay_one(self, letter: DeadLetter) -> ReplayOutcome:
        try:
            new_id = await self._replay(letter.item_id, self.config.force)
        except ReplayRefused:
            current = await self.store.get_dead_letter(letter.item_id)
            return ReplayOutcome(
                letter.item_id,
                letter.key,
                "skipped",
                current.replayed_item_id,
                "already replayed",
            )
        except (InvalidTransition, ItemNotFound) as exc:
            return ReplayOutcome(letter.item_id, letter.key, "missing", detail=str(exc))
        log.info("replayed", extra={"item_id": letter.item_id, "new_item_id": new_id})
        return ReplayOutcome(letter.item_id, letter.key, "replayed", new_id)

    @staticmethod
    def _report(
        dry_run: bool,
        letters: list[DeadLetter],
        outcomes: list[ReplayOutcome],
        *,
        rounds: int,
        restarts: int,
    ) -> ReplayReport:
        def count(*statuses: str) -> int:
            return sum(o.status in statuses for o in outcomes)

        return ReplayReport(
            dry_run=dry_run,
            selected=len(letters),
            replayed=count("replayed", "would_replay"),
            skipped=count("skipped", "would_skip"),
            missing=count("missing"),
            failed=count("failed"),
            rounds=rounds,
            worker_restarts=restarts,
            outcomes=tuple(outcomes),
        )


def replay_config(**options: Any) -> ReplayConfig:
    """A :class:`ReplayConfig` with a typed error for bad values.

    Raises:
        ValidationFailed: an option is out of bounds.
    """
    return build(ReplayConfig, **options)
