"""Pure decisions: no I/O, no event loop, no clock reads.

A policy is a frozen value plus a function from facts (time included) to a decision,
so it is trivially testable and property-testable.
"""

from policies._bounds import check_bounds
from policies._errors import GarrisonError, ValidationFailed
from policies._pressure import (
    PressureAction,
    PressureLevel,
    PressurePolicy,
    TokenBucket,
    shed_victim,
)
from policies._restart import Backoff, RestartPolicy
from policies._retention import RetentionCutoffs, RetentionPolicy
from policies._retry import FailureKind, RetryDecision, RetryPolicy

__all__ = [
    "Backoff",
    "FailureKind",
    "GarrisonError",
    "PressureAction",
    "PressureLevel",
    "PressurePolicy",
    "RestartPolicy",
    "RetentionCutoffs",
    "RetentionPolicy",
    "RetryDecision",
    "RetryPolicy",
    "TokenBucket",
    "ValidationFailed",
    "check_bounds",
    "shed_victim",
]
