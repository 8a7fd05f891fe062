"""The supervised pipeline a service embeds: intake from the durable queue, workers keyed
by item key under a ``PartitionSupervisor``, outbound sinks with an effects ledger, and
pressure policies."""

from runtime.pipeline._config import PipelineConfig
from runtime.pipeline._pipeline import Handler, HandlerContext, Pipeline, PipelineStatistics
from runtime.pipeline._pressure import PressureGauge
from runtime.pipeline._sinks import Sink, SinkFailed, effect_key, origin_id

__all__ = [
    "Handler",
    "HandlerContext",
    "Pipeline",
    "PipelineConfig",
    "PipelineStatistics",
    "PressureGauge",
    "Sink",
    "SinkFailed",
    "effect_key",
    "origin_id",
]
