"""Trace sampling that keeps a fraction of traces but never the required spans' share.

Parent-based ratio sampling keeps or drops a trace as a whole, so a dead letter written
inside an item's unsampled ``process`` span would vanish with it. The spans operators rely
on (dead-letter writes, pressure transitions, supervisor restarts and escalations,
replays) are rare and
are exactly the ones that must not be lost, so they are always kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from runtime._errors import ValidationFailed
from runtime.telemetry._instruments import (
    DEAD_LETTER_SPAN,
    PRESSURE_SPAN,
    REPLAY_SPAN,
    RESTART_SPAN,
)
from supervisors._telemetry import ESCALATION_SPAN

__all__ = ["REQUIRED_SPANS", "KeepRequiredSampler"]

#: The span names kept whatever the sample ratio and the parent's decision: the four the
#: project requires, and a supervisor giving up (rarer and graver than a restart).
REQUIRED_SPANS: Final = frozenset(
    {DEAD_LETTER_SPAN, PRESSURE_SPAN, REPLAY_SPAN, RESTART_SPAN, ESCALATION_SPAN}
)


class KeepRequiredSampler(Sampler):
    """Keep ``ratio`` of root traces (parent-based), and every required span regardless.

    A span named in ``required`` is recorded and sampled even under an unsampled parent
    (the parent's trace state is kept, and so is the trace id: in a backend it shows as a
    child of a span that was never exported). Its own descendants then follow the
    parent-based rule, so they are kept with it. Every other span is decided by
    ``ParentBased`` over the ratio sampler: a child follows its parent, a root is kept
    with probability ``ratio``.

    This runs for every span started, so the extra cost over plain parent-based sampling
    is one set membership test.

    Args:
        ratio: the fraction of root traces kept, in [0, 1].
        required: the span names always kept (default :data:`REQUIRED_SPANS`).

    Raises:
        ValidationFailed: ``ratio`` outside [0, 1].
    """

    __slots__ = ("_delegate", "_description", "ratio", "required")

    def __init__(self, ratio: float = 1.0, required: Iterable[str] = REQUIRED_SPANS) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValidationFailed("sample ratio must be within [0, 1]", field="ratio")
        self.ratio = ratio
        self.required = frozenset(required)
        # The ratio sampler does arithmetic on every root span's trace id; at the two
        # ends the decision is a constant, which the static samplers give for nothing.
        root: Sampler
        if ratio >= 1.0:
            root = ALWAYS_ON
        elif ratio <= 0.0:
            root = ALWAYS_OFF
        else:
            root = TraceIdRatioBased(ratio)
        self._delegate = ParentBased(root)
        # ParentBased's own description lists its four default child samplers too.
        self._description = (
            f"KeepRequiredSampler{{required:[{','.join(sorted(self.required))}],"
            f"otherwise:ParentBased{{root:{root.get_description()}}}}}"
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
        """Sample a required span; leave any other to the parent-based ratio sampler."""
        # ALWAYS_ON keeps the span's attributes and the parent's trace state, which is
        # what a required span needs, without ParentBased's look at the parent.
        sampler = ALWAYS_ON if name in self.required else self._delegate
        return sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        """Name the rule and the delegate, as the SDK's samplers do."""
        return self._description
