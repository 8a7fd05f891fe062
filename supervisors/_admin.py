"""Changing a running supervisor's children: OTP's start/terminate/restart/delete_child."""

from __future__ import annotations

from supervisors._child import ChildSpec, ChildState, Restart
from supervisors._down import DownReason
from supervisors._errors import (
    ChildNotFound,
    ChildRunning,
    ChildStartError,
    DuplicateChild,
    SupervisorNotRunning,
    TooManyChildren,
)
from supervisors._group import GroupEngine
from supervisors._records import ChildCounts
from supervisors._state import Child, cause_of, reason_of

__all__ = ["AdminEngine"]


class AdminEngine(GroupEngine):
    """The admin API; every change holds the supervisor's lock, as its control loop does."""

    @property
    def _dynamic(self) -> bool:
        return self.max_children is not None

    def _require_running(self) -> None:
        if not self.running:
            raise SupervisorNotRunning(f"supervisor {self.name!r} is not running")

    def _get(self, child_id: str) -> Child:
        child = self.children.get(child_id)
        if child is None:
            raise ChildNotFound(f"supervisor {self.name!r} has no child {child_id!r}")
        return child

    def _get_stopped(self, child_id: str) -> Child:
        child = self._get(child_id)
        if child.current is not None:
            raise ChildRunning(f"supervisor {self.name!r}: child {child_id!r} is running")
        return child

    def count_children(self) -> ChildCounts:
        return ChildCounts(
            specs=len(self.children),
            active=sum(1 for c in self.children.values() if c.state is not ChildState.STOPPED),
        )

    async def start_child(self, spec: ChildSpec) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            await self._await_group()
            self._require_running()
            if spec.id in self.children:
                raise DuplicateChild(f"supervisor {self.name!r} already has a child {spec.id!r}")
            self.check_spec(spec)
            if self.max_children is not None and len(self.children) >= self.max_children:
                raise TooManyChildren(
                    f"supervisor {self.name!r} already supervises max_children="
                    f"{self.max_children} children"
                )
            child = Child(spec)
            self.children[spec.id] = child
            await self._start_new(child)

    async def _start_new(self, child: Child) -> None:
        """Start a listed child's new life; on a failed start, say why (and forget it if
        dynamic or temporary)."""
        spec = child.spec
        if await self._start(child, 0.0):
            return
        ctx = child.current
        if ctx is not None and not ctx.handled:
            ctx.handled = True
            child.current = None
            child.state = ChildState.STOPPED
            if (self._dynamic or spec.restart is Restart.TEMPORARY) and self.children.get(
                spec.id
            ) is child:
                del self.children[spec.id]
            cause = cause_of(spec, ctx, reason_of(ctx))
            self._down(child, DownReason.CRASHED, cause)
            raise ChildStartError(self.name, spec.id) from cause
        # Stopped by a concurrent shutdown while it was starting.
        raise SupervisorNotRunning(f"supervisor {self.name!r} is shutting down")

    async def terminate_child(self, child_id: str) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            await self._await_group()
            child = self._get(child_id)
            if self._dynamic or child.spec.restart is Restart.TEMPORARY:
                # Forgotten first, so a cancelled caller still leaves it gone.
                del self.children[child_id]
            await self._stop(child, final=True)

    async def restart_child(self, child_id: str) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            await self._await_group()
            await self._start_new(self._get_stopped(child_id))

    async def delete_child(self, child_id: str) -> None:
        self._require_running()
        assert self._lock is not None
        async with self._lock:
            await self._await_group()
            self._get_stopped(child_id)
            del self.children[child_id]
