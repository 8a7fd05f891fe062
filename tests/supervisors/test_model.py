"""Property test: the supervisor restarts, escalates and stops exactly as a model of OTP says.

The model is deliberately naive: it keeps every restart time and counts the ones in the
window, while the supervisor keeps a bounded deque and checks in O(1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import RestartPolicy
from supervisors import ChildState, Restart, Strategy, Supervisor, SupervisorEscalation
from tests.supervisors.conftest import Puppets

IDS = ["a", "b", "c"]


@dataclass
class Model:
    strategy: Strategy
    types: dict[str, Restart]
    max_restarts: int
    period: float
    alive: dict[str, bool] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)
    escalated: bool = False
    # OTP deletes a temporary child's spec whenever it ends, group restarts included.
    deleted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.alive = dict.fromkeys(IDS, True)
        self.restarts = dict.fromkeys(IDS, 0)

    def end(self, cid: str, how: str, now: float) -> None:
        self.alive[cid] = False
        kind = self.types[cid]
        if kind is Restart.TEMPORARY:
            self.deleted.add(cid)
            return
        if kind is Restart.TRANSIENT and how == "exit":
            return
        in_window = sum(1 for t in self.times if now - t < self.period)
        if in_window + 1 > self.max_restarts:
            self.escalated = True
            self.alive = dict.fromkeys(IDS, False)
            return
        self.times.append(now)
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [cid]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            group = IDS
        else:
            group = IDS[IDS.index(cid) :]
        for other in group:
            if other != cid and self.types[other] is Restart.TEMPORARY:
                self.alive[other] = False
                self.deleted.add(other)
            else:
                self.alive[other] = True
                self.restarts[other] += 1


step = st.tuples(
    st.integers(min_value=0, max_value=2),
    st.sampled_from(["crash", "exit"]),
    st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    strategy=st.sampled_from(list(Strategy)),
    types=st.lists(st.sampled_from(list(Restart)), min_size=3, max_size=3),
    max_restarts=st.integers(min_value=0, max_value=4),
    period=st.sampled_from([1.0, 5.0]),
    steps=st.lists(step, max_size=25),
)
def test_supervisor_matches_model(
    strategy: Strategy,
    types: list[Restart],
    max_restarts: int,
    period: float,
    steps: list[tuple[int, str, float]],
) -> None:
    model = Model(strategy, dict(zip(IDS, types, strict=True)), max_restarts, period)

    async def scenario() -> None:
        puppets = Puppets()
        sup = Supervisor(
            [puppets.spec(cid, restart=model.types[cid]) for cid in IDS],
            strategy,
            RestartPolicy(max_restarts, period),
        )
        escalated: list[SupervisorEscalation] = []

        async def runner(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await sup.run(task_status=task_status)
            except SupervisorEscalation as exc:
                escalated.append(exc)

        async with trio.open_nursery() as nursery:
            await nursery.start(runner)
            for pick, how, dt in steps:
                living = [cid for cid in IDS if model.alive[cid]]
                if not living or model.escalated:
                    break
                await trio.sleep(dt)
                cid = living[pick % len(living)]
                model.end(cid, how, trio.current_time())
                puppets.order(cid, how)
                await trio.testing.wait_all_tasks_blocked()

                assert bool(escalated) == model.escalated
                children = {c.id: c for c in sup.which_children()}
                listed = [c for c in IDS if c not in model.deleted]
                assert list(children) == listed
                assert {c: children[c].restarts for c in listed} == {
                    c: model.restarts[c] for c in listed
                }
                running = {c for c in listed if children[c].state is ChildState.RUNNING}
                assert running == {c for c in IDS if model.alive[c]}
                assert puppets.alive() == running
            nursery.cancel_scope.cancel()
        assert sup.statistics().restarts_total == len(model.times)
        if model.escalated:
            assert escalated[0].restarts == max_restarts + 1

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
