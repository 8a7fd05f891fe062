"""How long finished rows are kept."""

from __future__ import annotations

import msgspec


class RetentionCutoffs(msgspec.Struct, frozen=True):
    """Timestamps (seconds since the epoch) before which rows may be purged.

    ``None`` means the class of row is kept forever.
    """

    succeeded_before: float | None
    archived_before: float | None
    dead_letters_before: float | None
    audit_before: float | None


class RetentionPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Ages, in seconds, past which finished rows are purged.

    Succeeded items and archived dead letters are history; live dead letters are work an
    operator still owes, so by default they are never purged automatically.
    Audit rows outlive the items they describe by default (30 days vs 7).
    """

    succeeded_s: float | None = 7 * 86400.0
    archived_s: float | None = 30 * 86400.0
    dead_letters_s: float | None = None
    audit_s: float | None = 30 * 86400.0

    def __post_init__(self) -> None:
        for name in ("succeeded_s", "archived_s", "dead_letters_s", "audit_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must not be negative (or NaN)")

    def cutoffs(self, now: float) -> RetentionCutoffs:
        """Cut-off timestamps for a purge run at ``now``."""

        def before(age: float | None) -> float | None:
            return None if age is None else now - age

        return RetentionCutoffs(
            succeeded_before=before(self.succeeded_s),
            archived_before=before(self.archived_s),
            dead_letters_before=before(self.dead_letters_s),
            audit_before=before(self.audit_s),
        )

    def is_expired(self, finished_at: float, age_s: float | None, now: float) -> bool:
        """Whether a row finished at ``finished_at`` is past ``age_s`` at ``now``."""
        return age_s is not None and finished_at < now - age_s
