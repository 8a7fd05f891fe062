"""Queue workers: the one engine (:mod:`runtime.pipeline`) seen as a worker, with graceful
shutdown on signals.

``Handler``, ``TerminalError``, ``load_callable`` and ``load_handler`` live in
:mod:`runtime.pipeline` and are re-exported here for compatibility.
"""

from runtime.pipeline import Handler, TerminalError, load_callable, load_handler
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
