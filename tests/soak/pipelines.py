"""Pipeline factories the ``garrison run`` tests start in real processes."""

from __future__ import annotations

from runtime.pipeline import HandlerContext, Pipeline, PipelineConfig
from runtime.store import Store, WorkItem


async def _handle(item: WorkItem, ctx: HandlerContext) -> bytes:
    return item.payload


def build(store: Store) -> Pipeline:
    """A small pipeline with no sinks."""
    return Pipeline(store, _handle, config=PipelineConfig(poll_interval_s=0.02))


def not_a_pipeline(store: Store) -> object:
    """A factory that returns the wrong thing."""
    return object()
