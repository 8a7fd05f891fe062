"""Supervision trees over anyio task groups (Trio nurseries on Trio), with OTP semantics.

A supervisor owns its children: it starts them in order (each counts as running once it has
called ``task_status.started()``), restarts them by restart type and strategy, gives up past
its restart intensity (:class:`SupervisorEscalation`, which its parent handles like a crashed
child), cancels children that miss their heartbeat, and stops them in reverse start order.
Every restart, hang and escalation is an OpenTelemetry span, span event and metric, and a log
line on ``logging.getLogger("garrison.supervisors")``.
"""

from supervisors._child import (
    ChildInfo,
    ChildSpec,
    ChildStart,
    ChildState,
    Failure,
    Restart,
    RestartReason,
)
from supervisors._down import ChildDown, ChildMonitor, DownReason
from supervisors._dynamic import DynamicSupervisor
from supervisors._errors import (
    ChildExited,
    ChildHung,
    ChildNotFound,
    ChildRunning,
    ChildStartError,
    DuplicateChild,
    SupervisorError,
    SupervisorEscalation,
    SupervisorNotRunning,
    TaskStopped,
    TooManyChildren,
)
from supervisors._heartbeat import ChildContext, current_child, heartbeat, shutdown_grace
from supervisors._loop_watch import LoopBlockage, LoopWatch, LoopWatchConfig, LoopWatchStatistics
from supervisors._partition import (
    PartitionKey,
    PartitionStatistics,
    PartitionSupervisor,
    partition_for,
)
from supervisors._records import (
    AutoShutdown,
    ChildCounts,
    RestartRecord,
    Strategy,
    SupervisorStatistics,
)
from supervisors._stopping import abandoned_children
from supervisors._supervisor import Supervisor
from supervisors._tasks import TaskHandle, TaskSupervisor, TaskSupervisorStatistics

__all__ = [
    "AutoShutdown",
    "ChildContext",
    "ChildCounts",
    "ChildDown",
    "ChildExited",
    "ChildHung",
    "ChildInfo",
    "ChildMonitor",
    "ChildNotFound",
    "ChildRunning",
    "ChildSpec",
    "ChildStart",
    "ChildStartError",
    "ChildState",
    "DownReason",
    "DuplicateChild",
    "DynamicSupervisor",
    "Failure",
    "LoopBlockage",
    "LoopWatch",
    "LoopWatchConfig",
    "LoopWatchStatistics",
    "PartitionKey",
    "PartitionStatistics",
    "PartitionSupervisor",
    "Restart",
    "RestartReason",
    "RestartRecord",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorEscalation",
    "SupervisorNotRunning",
    "SupervisorStatistics",
    "TaskHandle",
    "TaskStopped",
    "TaskSupervisor",
    "TaskSupervisorStatistics",
    "TooManyChildren",
    "current_child",
    "heartbeat",
    "partition_for",
    "shutdown_grace",
    "abandoned_children",
]
