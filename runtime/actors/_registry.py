"""``Registry``: names to running actors (OTP registered names, Elixir ``Registry``).

A registry is an object passed explicitly (to :class:`Actor` and to whoever looks names
up), not a process-wide global, so two trees or two tests never share names by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.actors._errors import NameTaken, NotRegistered, RegistryFull

if TYPE_CHECKING:
    from runtime.actors._actor import Actor

__all__ = ["Registry"]


class Registry:
    """A bounded map from names to actors.

    An :class:`Actor` built with ``registry=`` registers its name each time an
    incarnation starts (before ``Behaviour.started``) and unregisters it when it goes
    down for good, so between a crash and its restart the name still resolves and
    messages queue in the mailbox.

    Args:
        max_names: the most names held at once (default 10,000); registering past it
            raises :class:`RegistryFull`.

    Raises:
        ValueError: ``max_names < 1``.
    """

    __slots__ = ("_actors", "_max_names")

    def __init__(self, *, max_names: int = 10_000) -> None:
        if max_names < 1:
            raise ValueError(f"max_names must be >= 1, got {max_names}")
        self._max_names = max_names
        self._actors: dict[str, Actor[Any, Any]] = {}

    @property
    def max_names(self) -> int:
        """The bound on names held at once."""
        return self._max_names

    def register(self, actor: Actor[Any, Any]) -> None:
        """Make ``actor.name`` resolve to ``actor``; no-op if it already does.

        Raises:
            NameTaken: another actor holds the name.
            RegistryFull: ``max_names`` names are held already.
        """
        name = actor.name
        held = self._actors.get(name)
        if held is actor:
            return
        if held is not None:
            raise NameTaken(f"name {name!r} is registered to another actor", actor=name)
        if len(self._actors) >= self._max_names:
            raise RegistryFull(
                f"registry full ({self._max_names} names); {name!r} refused",
                actor=name,
                max_names=self._max_names,
            )
        self._actors[name] = actor

    def unregister(self, actor: Actor[Any, Any]) -> bool:
        """Drop ``actor``'s name if it is registered to ``actor``; whether it was."""
        if self._actors.get(actor.name) is actor:
            del self._actors[actor.name]
            return True
        return False

    def lookup(self, name: str) -> Actor[Any, Any]:
        """The actor registered as ``name``.

        Raises:
            NotRegistered: no actor holds ``name`` (never started, or down for good).
        """
        try:
            return self._actors[name]
        except KeyError:
            raise NotRegistered(f"no actor registered as {name!r}", actor=name) from None

    def get(self, name: str) -> Actor[Any, Any] | None:
        """The actor registered as ``name``, or ``None``."""
        return self._actors.get(name)

    def names(self) -> tuple[str, ...]:
        """The names held now, in registration order."""
        return tuple(self._actors)

    def __contains__(self, name: object) -> bool:
        return name in self._actors

    def __len__(self) -> int:
        return len(self._actors)
