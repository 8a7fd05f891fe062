"""Trace sampling that keeps a fraction of traces, whole across the queue, and never
loses the required spans.

Parent-based ratio sampling keeps or drops a trace as a whole, so a dead letter written
inside an item's unsampled ``process`` span would vanish with it. The spans operators rely
on (dead-letter writes, pressure transitions, supervisor restarts and escalations,
replays) are rare and are exactly the ones that must not be lost, so they are always kept.

An item's ``process`` span is the root of its own trace, linked to the span that enqueued
the item; deciding it by the ratio again would keep only ratio² of the enqueue-to-process
journeys. It follows the decision carried by its links instead, made once at enqueue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from runtime._errors import ValidationFailed
from runtime.telemetry._events import (
    DEAD_LETTER_SPAN,
    ESCALATION_SPAN,
    PRESSURE_SPAN,
    REPLAY_SPAN,
    RESTART_SPAN,
)

__all__ = ["REQUIRED_SPANS", "KeepRequiredSampler"]

#: The span names kept whatever the sample ratio and the parent's decision: the four the
#: project requires, and a supervisor giving up (rarer and graver than a restart).
REQUIRED_SPANS: Final = frozenset(
    {DEAD_LETTER_SPAN, PRESSURE_SPAN, REPLAY_SPAN, RESTART_SPAN, ESCALATION_SPAN}
)


_DROP_ROOT: Final = SamplingResult(Decision.DROP)


class KeepRequiredSampler(Sampler):
    """Keep ``ratio`` of traces, every required span, and consumers of kept producers.

    The decision for a span, in order:

    - a span named in ``required`` is recorded and sampled, even under an unsampled parent
      (the parent's trace state is kept, and so is the trace id: in a backend it shows as
      a child of a span that was never exported);
    - a child follows its parent (local or remote), as ``ParentBased`` does; so the
      descendants of a kept required span are kept with it;
    - a root span with links (an item's ``process`` span links to its enqueue and, for a
      replayed item, to its replay) is kept if a linked span was sampled and dropped if
      the linked spans were all sampled out: the enqueue decided for the whole journey,
      and a replayed item is always traced (its replay span is required);
    - any other root is kept with probability ``ratio`` (``TraceIdRatioBased``'s rule on
      the trace id).

    Without links this decides exactly as ``ParentBased(TraceIdRatioBased(ratio))``, in
    one function instead of three: it runs for every span of every item.

    Args:
        ratio: the fraction of root traces kept, in [0, 1].
        required: the span names always kept (default :data:`REQUIRED_SPANS`).

    Raises:
        ValidationFailed: ``ratio`` outside [0, 1].
    """

    __slots__ = ("_bound", "_description", "ratio", "required")

    def __init__(self, ratio: float = 1.0, required: Iterable[str] = REQUIRED_SPANS) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValidationFailed("sample ratio must be within [0, 1]", field="ratio")
        self.ratio = ratio
        self.required = frozenset(required)
        self._bound = TraceIdRatioBased.get_bound_for_rate(ratio)
        self._description = (
            f"KeepRequiredSampler{{required:[{','.join(sorted(self.required))}],"
            f"links:sampled if a linked span is,"
            f"otherwise:ParentBased{{root:TraceIdRatioBased{{{ratio}}}}}}}"
        )

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Decide for one span, as the class documentation says."""
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            if parent.trace_flags.sampled or name in self.required:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)
            return SamplingResult(Decision.DROP, None, parent.trace_state)
        if name in self.required:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        if links:
            decided = False
            for link in links:
                linked = link.context
                if linked.is_valid:
                    if linked.trace_flags.sampled:
                        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
                    decided = True
            if decided:
                return _DROP_ROOT
        if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT < self._bound:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return _DROP_ROOT

    def get_description(self) -> str:
        """Name the rules, as the SDK's samplers do."""
        return self._description
