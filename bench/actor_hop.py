"""Actor hop: messages/s through a chain of 3 supervised actors vs raw anyio memory streams.

Both chains run on the same backend in the same process, interleaved round by round:

* raw: producer -> stream -> task -> stream -> task -> stream -> task (counts), three anyio
  memory object streams of the same capacity, plain tasks in one task group;
* actors: producer -> ``cast`` -> actor -> ``cast`` -> actor -> ``cast`` -> actor (counts),
  three :class:`runtime.actors.Actor` children of one one-for-one ``Supervisor``, with the
  actor defaults (``handler_timeout=30`` s, i.e. a cancel scope per message) plus a
  ``heartbeat_timeout=10`` s (hang detection on: a watchdog task per actor) and a pressure policy
  with the default marks and only ``degrade`` as action (level bookkeeping on every
  message, transitions reported, nothing dropped or refused).

``--clock cpu`` times each chain by the process's CPU time instead of the wall clock: on a
shared machine other processes steal wall time from one round and not the next, while the
CPU time a chain needs is what it costs. Both chains run in this one thread.

Usage: python bench/actor_hop.py [--messages 200000] [--rounds 5] [--capacity 64]
       [--backend trio|asyncio] [--clock wall|cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio

from policies import PressureAction, PressurePolicy, RestartPolicy
from runtime.actors import Actor, ActorContext, from_handler
from supervisors import Supervisor

_clock: Callable[[], float] = time.perf_counter


async def raw_chain(messages: int, capacity: int) -> float:
    streams = [anyio.create_memory_object_stream[int](capacity) for _ in range(3)]
    done = anyio.Event()

    async def forward(index: int) -> None:
        receive = streams[index][1]
        send = streams[index + 1][0]
        async for item in receive:
            await send.send(item)

    async def sink() -> None:
        count = 0
        async for _ in streams[2][1]:
            count += 1
            if count == messages:
                done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(forward, 0)
        tg.start_soon(forward, 1)
        tg.start_soon(sink)
        send = streams[0][0]
        start = _clock()
        for i in range(messages):
            await send.send(i)
        await done.wait()
        elapsed = _clock() - start
        tg.cancel_scope.cancel()
    return messages / elapsed


async def actor_chain(messages: int, capacity: int) -> float:
    done = anyio.Event()
    count = 0
    # Default marks; only ``degrade`` at both levels, so nothing is throttled, shed or
    # refused, but the level bookkeeping (and any transition's telemetry) runs.
    policy = PressurePolicy(elevated=(PressureAction.DEGRADE,), critical=(PressureAction.DEGRADE,))

    async def last(ctx: ActorContext, item: int) -> None:
        nonlocal count
        count += 1
        if count == messages:
            done.set()

    third: Actor[int, None] = Actor(
        "hop3",
        from_handler(last),
        capacity=capacity,
        policy=policy,
        heartbeat_timeout=10.0,
    )

    async def to_third(ctx: ActorContext, item: int) -> None:
        await third.cast(item)

    second: Actor[int, None] = Actor(
        "hop2",
        from_handler(to_third),
        capacity=capacity,
        policy=policy,
        heartbeat_timeout=10.0,
    )

    async def to_second(ctx: ActorContext, item: int) -> None:
        await second.cast(item)

    first: Actor[int, None] = Actor(
        "hop1",
        from_handler(to_second),
        capacity=capacity,
        policy=policy,
        heartbeat_timeout=10.0,
    )
    sup = Supervisor([a.child_spec() for a in (third, second, first)], policy=RestartPolicy(3, 5.0))
    async with anyio.create_task_group() as tg:
        await tg.start(sup.run)
        start = _clock()
        for i in range(messages):
            await first.cast(i)
        await done.wait()
        elapsed = _clock() - start
        tg.cancel_scope.cancel()
    return messages / elapsed


async def main(args: argparse.Namespace) -> None:
    global _clock
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    raw: list[float] = []
    actors: list[float] = []
    for _ in range(args.rounds):
        raw.append(await raw_chain(args.messages, args.capacity))
        actors.append(await actor_chain(args.messages, args.capacity))
    raw_m, act_m = statistics.median(raw), statistics.median(actors)
    versions: dict[str, Any] = {"anyio": _version("anyio"), "trio": _version("trio")}
    print(
        f"# {os.cpu_count()} cpu, {platform.python_implementation()} {platform.python_version()},"
        f" backend {args.backend}, anyio {versions['anyio']}, trio {versions['trio']}"
    )
    print(
        f"# {args.messages} messages, 3 hops, capacity {args.capacity},"
        f" median of {args.rounds} interleaved rounds, {args.clock} clock"
    )
    print(f"raw streams  {raw_m:12,.0f} msg/s   (rounds: {', '.join(f'{x:,.0f}' for x in raw)})")
    print(f"actors       {act_m:12,.0f} msg/s   (rounds: {', '.join(f'{x:,.0f}' for x in actors)})")
    print(f"ratio        {act_m / raw_m:12.1%}   (target >= 70 %)")


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--backend", choices=["trio", "asyncio"], default="trio")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ns = parser.parse_args()
    anyio.run(main, ns, backend=ns.backend)
    sys.exit(0)
