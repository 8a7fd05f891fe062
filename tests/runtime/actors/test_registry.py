"""``Registry``: actors register their name on start and drop it when down for good;
lookups of unknown names raise a typed error; the registry is bounded."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
import trio.testing

from policies import RestartPolicy
from runtime.actors import (
    Actor,
    ActorContext,
    CallFailed,
    NameTaken,
    NotRegistered,
    Registry,
    RegistryFull,
    from_handler,
)
from supervisors import ChildStartError, Restart, Supervisor


async def echo(ctx: ActorContext, message: Any) -> Any:
    if message == "boom":
        raise ValueError("scripted")
    return message


def named(name: str, registry: Registry) -> Actor[Any, Any]:
    return Actor(name, from_handler(echo), registry=registry)


async def test_registered_while_alive_and_dropped_when_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    actor = named("svc", registry)
    assert "svc" not in registry
    with pytest.raises(NotRegistered) as info:
        registry.lookup("svc")
    assert info.value.actor == "svc" and isinstance(info.value, LookupError)
    sup = Supervisor([actor.child_spec()], policy=RestartPolicy(5, 10.0))
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            assert registry.lookup("svc") is actor
            assert await registry.lookup("svc").call("hi") == "hi"
            with pytest.raises(CallFailed):
                await actor.call("boom")
            # Between the crash and the restart the name still resolves.
            assert registry.get("svc") is actor
            assert await actor.call("again") == "again"
            assert registry.names() == ("svc",) and len(registry) == 1
            tg.cancel_scope.cancel()
    assert registry.get("svc") is None and len(registry) == 0


async def test_a_second_actor_cannot_take_a_held_name() -> None:
    registry = Registry()
    first, second = named("dup", registry), named("dup", registry)
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(first.run)
            with pytest.raises(NameTaken):
                await second.run()
            assert registry.lookup("dup") is first  # the failed start took nothing
            tg.cancel_scope.cancel()
    # Once the holder is down the name is free again.
    with trio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(second.run)
            assert registry.lookup("dup") is second
            tg.cancel_scope.cancel()


async def test_the_registry_is_bounded() -> None:
    registry = Registry(max_names=2)
    assert registry.max_names == 2
    a, b, c = (named(n, registry) for n in "abc")
    registry.register(a)
    registry.register(a)  # idempotent for the holder
    registry.register(b)
    with pytest.raises(RegistryFull) as info:
        registry.register(c)
    assert (info.value.actor, info.value.max_names) == ("c", 2)
    temporary = Supervisor([c.child_spec(restart=Restart.TEMPORARY)])
    with pytest.raises(BaseExceptionGroup) as group:
        async with anyio.create_task_group() as tg:
            await tg.start(temporary.run)
    assert group.group_contains(ChildStartError)
    start_error = group.value.exceptions[0]
    assert isinstance(start_error.__cause__, RegistryFull)
    assert registry.unregister(b) and not registry.unregister(b)
    registry.register(c)
    assert registry.names() == ("a", "c")


def test_max_names_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Registry(max_names=0)


def test_registries_are_independent() -> None:
    one, two = Registry(), Registry()
    actor = named("x", one)
    one.register(actor)
    assert "x" in one and "x" not in two
