"""Queue workers: lease, handle, settle, with graceful shutdown."""

from runtime.worker._handler import Handler, TerminalError, load_callable, load_handler
from runtime.worker._signals import Graceful, run_until_signalled
from runtime.worker._worker import Worker, WorkerConfig, WorkerStatistics, worker_config

__all__ = [
    "Graceful",
    "Handler",
    "TerminalError",
    "Worker",
    "WorkerConfig",
    "WorkerStatistics",
    "load_callable",
    "load_handler",
    "run_until_signalled",
    "worker_config",
]
