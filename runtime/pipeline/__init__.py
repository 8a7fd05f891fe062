"""The supervised pipeline — the one engine every way of running work uses: intake from
the durable queue, workers keyed by item key under a ``PartitionSupervisor``, outbound
sinks with an effects ledger, a batching settler, one lease keeper, and pressure
policies."""

from runtime.pipeline._config import KeyOrder, PipelineConfig, default_worker_restarts
from runtime.pipeline._flight import SettledHook
from runtime.pipeline._handler import (
    ContextHandler,
    Handler,
    HandlerContext,
    ItemHandler,
    TerminalError,
    adapt_handler,
    default_owner,
    failure_from,
    is_async,
    load_callable,
    load_handler,
    takes_context,
)
from runtime.pipeline._outcome import Outcome
from runtime.pipeline._pipeline import Pipeline, PipelineStatistics
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._sinks import Sink, SinkFailed, effect_key, origin_id
from runtime.pipeline._threads import ThreadPool, ThreadPoolStatistics

__all__ = [
    "ContextHandler",
    "Handler",
    "HandlerContext",
    "ItemHandler",
    "KeyOrder",
    "Outcome",
    "Pipeline",
    "PipelineConfig",
    "PipelineStatistics",
    "PressureGauge",
    "SettledHook",
    "Sink",
    "SinkFailed",
    "TerminalError",
    "ThreadPool",
    "ThreadPoolStatistics",
    "adapt_handler",
    "default_owner",
    "default_worker_restarts",
    "effect_key",
    "failure_from",
    "is_async",
    "load_callable",
    "load_handler",
    "origin_id",
    "takes_context",
]
