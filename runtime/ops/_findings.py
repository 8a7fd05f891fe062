"""What the doctor reports: findings with a severity and the command that fixes them."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class Severity(enum.StrEnum):
    """How urgent a finding is. ``warning`` and ``critical`` need an operator's action."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order of urgency: ok 0, info 1, warning 2, critical 3."""
        return _RANK[self]

    @property
    def needs_action(self) -> bool:
        """Whether an operator has to act (``warning`` or ``critical``)."""
        return self.rank >= _RANK[Severity.WARNING]


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


class Finding(msgspec.Struct, frozen=True):
    """The result of one check.

    Attributes:
        check: which check (``integrity``, ``expired_leases``, ...).
        severity: how urgent.
        message: one line an operator can read.
        fix: the command (or runbook) that fixes it, when action is needed.
        data: the figures behind the message (counts, frames, names).
    """

    check: str
    severity: Severity
    message: str
    fix: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


def worst(findings: list[Finding] | tuple[Finding, ...]) -> Severity:
    """The most urgent severity among ``findings`` (``ok`` when there are none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)
