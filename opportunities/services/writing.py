"""The one place an existing opportunity row is written.

`opportunity_write` applies a set of field changes with the optimistic lock and records
what changed (history + events). The services decide *what* to change and check who may;
this module decides *how*: lock order, version guard, timestamps that follow from the
change, and the diff.

Lock order, everywhere: the stage rows a write needs (by id, FOR NO KEY UPDATE), then the
opportunity row (taken by the guarded UPDATE), then the event-log append lock. NO KEY
UPDATE because history rows reference stages: their foreign-key checks take KEY SHARE
locks, which a plain FOR UPDATE would block (two crossing moves deadlocked that way).
"""

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from opportunities.errors import StaleVersion
from opportunities.models import CLOSED_STATUSES, Opportunity, Status
from opportunities.services.changes import (
    Recorded,
    changes_prepare,
    changes_record,
    changes_write,
    snapshot,
)
from opportunities.services.rows import execute_update, update_statement
from pipelines.models import Stage


def lock_stages(*stage_ids: int) -> None:
    ids = sorted({pk for pk in stage_ids if pk})
    # SQLite has no row locks: its transactions start IMMEDIATE (crm/settings.py), so
    # writers are serialised already and a plain SELECT here would only cost a query.
    if ids and connection.vendor != "sqlite":
        list(
            Stage.objects.select_for_update(no_key=True)
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def money(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def follow_status(opportunity: Opportunity, status: str, now) -> dict:
    """The timestamps a status change implies (closing date, days to close)."""
    if status == opportunity.status:
        return {}
    changes = {"status_changed_at": now, "closed_at": None, "days_to_close": None}
    if status in CLOSED_STATUSES:
        changes["closed_at"] = now
        changes["days_to_close"] = max((now - opportunity.created_at).days, 0)
    return changes


def _with_followers(opportunity: Opportunity, changes: dict, now) -> dict:
    """`changes` plus what follows from them: status timestamps, time in stage."""
    if "status" in changes:
        changes = follow_status(opportunity, changes["status"], now) | changes
    if "stage" in changes and changes["stage"].pk != opportunity.stage_id:
        changes.setdefault("stage_entered_at", now)
    return changes


def _apply(opportunity: Opportunity, changes: dict, version: int, now) -> None:
    for attr, value in changes.items():
        setattr(opportunity, attr, value)
    opportunity.updated_at, opportunity.version = now, version + 1


def _guarded_update(opportunity: Opportunity, version: int, changes: dict, now, **guard):
    """What every write starts with: the version check, `changes` with what follows from
    them, the deal's watched values before, and its guarded UPDATE (not run)."""
    if opportunity.version != version:
        raise StaleVersion(opportunity.pk)
    changes = _with_followers(opportunity, changes, now)
    update = update_statement(opportunity, version, changes, now, **guard)
    return changes, snapshot(opportunity), update


def opportunity_write(
    *, opportunity: Opportunity, version: int, user, changes: dict, extra=None, now=None
) -> Opportunity:
    """Apply `changes` (model attribute -> value) if `version` is still current.

    Raises StaleVersion and changes nothing when someone wrote first. On success the
    instance carries the new values and version, and history and events are written.
    `extra` ({attr: (old, new)}) records changes made beside the row (tags, followers,
    custom fields): the row is still written, so its version and updated_at move and
    every board and form holding the old version learns of it.
    """
    now = now or timezone.now()
    changes, before, update = _guarded_update(opportunity, version, changes, now)
    if not execute_update(update):
        raise StaleVersion(opportunity.pk)
    _apply(opportunity, changes, version, now)
    changes_record(user=user, items=[(before, opportunity, extra)], at=now)
    return opportunity


@dataclass
class PlannedWrite:
    """An `opportunity_write` whose statements are built and not yet run."""

    update: tuple[str, list]
    recorded: Recorded

    def run(self) -> bool:
        """Run the statements in the caller's transaction; False (and nothing written)
        when the guarded UPDATE matched no row."""
        if not execute_update(self.update):
            return False
        changes_write(self.recorded)
        return True


def opportunity_write_planned(
    *, opportunity: Opportunity, version: int, user, changes: dict, rank_free: bool = False
) -> PlannedWrite:
    """Everything `opportunity_write` computes, done now, before any lock: the guarded
    UPDATE (with `rank_free`, also guarded against another deal holding the new rank),
    the history rows and the events. `opportunity` already carries the new values and
    version; if the plan's `run` fails, it is stale and the caller reads the deal again.
    """
    now = timezone.now()
    changes, before, update = _guarded_update(
        opportunity, version, changes, now, rank_free=rank_free
    )
    _apply(opportunity, changes, version, now)
    recorded = changes_prepare(user=user, items=[(before, opportunity, None)], at=now)
    return PlannedWrite(update=update, recorded=recorded)


def check_status(status: str, lost_reason, *, current=None):
    """The lost reason a status keeps: an active one iff Lost, else none.

    A retired reason the deal already has may stay (editing an old lost deal's name must
    not force a new reason); choosing a retired one is refused.
    """
    if status not in Status.values:
        raise ValidationError({"status": "Choose Open, Won, Lost or Abandoned."})
    if status != Status.LOST:
        return None
    if lost_reason is None:
        raise ValidationError({"lost_reason": "Choose why this opportunity was lost."})
    if not lost_reason.is_active and lost_reason != current:
        raise ValidationError({"lost_reason": "That lost reason is no longer offered."})
    return lost_reason


def status_is_new(opportunity: Opportunity, status: str, lost_reason) -> bool:
    return status != opportunity.status or (
        status == Status.LOST and lost_reason is not None and lost_reason != opportunity.lost_reason
    )
