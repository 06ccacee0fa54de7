"""Creating, editing and deleting opportunities.

Each function is the only way to make its kind of change, whoever asks (board, record,
list, import, admin, API, automation, demo seeding): it checks the actor's permission and
visibility, validates, writes through `opportunity_write` (version guard, history,
events) and raises ValidationError / PermissionDenied / StaleVersion /
Opportunity.DoesNotExist for the caller to turn into 422 / 403 / 409 / 404.
"""

import copy
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from opportunities.models import CLOSED_STATUSES, Contact, LostReason, Opportunity, Status
from opportunities.selectors import can_view_all
from opportunities.services.access import ensure_may_change, ensure_permission
from opportunities.services.changes import changes_record
from opportunities.services.moves import rank_for_drop
from opportunities.services.writing import check_status, lock_stages, money, opportunity_write
from pipelines.models import Pipeline, Stage

# Passed for a field the caller does not change.
UNCHANGED = object()


def _money_or_error(value) -> Decimal:
    try:
        amount = money(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError({"value": "Enter a number."}) from None
    if amount < 0:
        raise ValidationError({"value": "The value cannot be negative."})
    return amount


def _check_close_date(value: date | None) -> date | None:
    if value is not None and not (date(2000, 1, 1) <= value <= date(2999, 12, 31)):
        raise ValidationError({"expected_close_date": "Enter a close date between 2000 and 2999."})
    return value


def _check_probability(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError({"probability": "Enter a whole percentage."}) from None
    if not 0 <= number <= 100:
        raise ValidationError({"probability": "Enter a percentage from 0 to 100."})
    return number


def first_stage(pipeline: Pipeline) -> Stage:
    stage = pipeline.stages.order_by("position", "id").first()
    if stage is None:
        raise ValidationError({"stage": f"The pipeline “{pipeline}” has no stages yet."})
    return stage


def _check_place(pipeline: Pipeline, stage: Stage | None) -> Stage:
    if pipeline.is_archived:
        raise ValidationError({"pipeline": "That pipeline is archived."})
    stage = stage or first_stage(pipeline)
    if stage.pipeline_id != pipeline.pk:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})
    return stage


@transaction.atomic
def opportunity_create(
    *,
    user,
    name: str,
    pipeline: Pipeline,
    stage: Stage | None = None,
    value: Decimal | int | str = 0,
    contact: Contact | None = None,
    source: str = "",
    assigned_to=None,
    status: str = Status.OPEN,
    lost_reason: LostReason | None = None,
    expected_close_date: date | None = None,
    probability: int | None = None,
) -> Opportunity:
    """Create an opportunity at the top of its stage's column.

    Invariants: the pipeline is not archived and the stage belongs to it (default: its
    first stage); a lost reason (an active one) iff Lost; a "created" history row and an
    OpportunityCreate event.
    """
    ensure_permission(user, "add_opportunity")
    stage = _check_place(pipeline, stage)
    lost_reason = check_status(status, lost_reason)
    lock_stages(stage.pk)
    now = timezone.now()
    opportunity = Opportunity(
        name=name.strip(),
        pipeline=pipeline,
        stage=stage,
        value=_money_or_error(value),
        contact=contact,
        source=source.strip(),
        assigned_to=assigned_to,
        status=status,
        lost_reason=lost_reason,
        rank=rank_for_drop(stage),
        stage_entered_at=now,
        status_changed_at=now if status != Status.OPEN else None,
        closed_at=now if status in CLOSED_STATUSES else None,
        days_to_close=0 if status in CLOSED_STATUSES else None,
        expected_close_date=_check_close_date(expected_close_date),
        probability=_check_probability(probability),
        created_at=now,
        updated_at=now,
    )
    opportunity.full_clean(exclude=["pipeline", "stage", "lost_reason"])
    opportunity.save(force_insert=True)
    changes_record(user=user, items=[(None, opportunity)], at=now)
    return opportunity


@transaction.atomic
def opportunity_update(
    *,
    opportunity: Opportunity,
    user,
    version: int | None = None,
    name=UNCHANGED,
    value=UNCHANGED,
    source=UNCHANGED,
    assigned_to=UNCHANGED,
    contact=UNCHANGED,
    pipeline=UNCHANGED,
    stage=UNCHANGED,
    status=UNCHANGED,
    lost_reason=UNCHANGED,
    expected_close_date=UNCHANGED,
    probability=UNCHANGED,
) -> Opportunity:
    """Change any of the deal's fields at once (record form, admin, API, automation).

    Invariants: written only if the stored version still equals `version` (None: the
    version the caller read); the stage belongs to the (possibly new) pipeline, which is
    not archived (a new pipeline without a stage means its first stage); a changed stage
    puts the card at the top of its new column; a lost reason (active) iff Lost; value
    >= 0; one history row per tracked field that changed and the matching events.
    """
    ensure_may_change(user, opportunity)
    version = opportunity.version if version is None else version
    given = {
        "name": name,
        "value": value,
        "source": source,
        "assigned_to": assigned_to,
        "contact": contact,
        "pipeline": pipeline,
        "stage": stage,
        "status": status,
        "lost_reason": lost_reason,
        "expected_close_date": expected_close_date,
        "probability": probability,
    }
    changes = {
        key: given_value for key, given_value in given.items() if given_value is not UNCHANGED
    }
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    if "source" in changes:
        changes["source"] = changes["source"].strip()
    if "value" in changes:
        changes["value"] = _money_or_error(changes["value"])
    if "expected_close_date" in changes:
        new_date = _check_close_date(changes["expected_close_date"])
        changes["expected_close_date"] = new_date
        old_date = opportunity.expected_close_date
        if old_date and new_date and new_date > old_date:
            changes["close_date_slips"] = opportunity.close_date_slips + 1
    if "probability" in changes:
        changes["probability"] = _check_probability(changes["probability"])

    target_pipeline = changes.get("pipeline", opportunity.pipeline)
    if "pipeline" in changes and changes["pipeline"].pk != opportunity.pipeline_id:
        changes["stage"] = _check_place(target_pipeline, changes.get("stage"))
    elif "stage" in changes and changes["stage"].pipeline_id != opportunity.pipeline_id:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})

    if "status" in changes or "lost_reason" in changes:
        changes["lost_reason"] = check_status(
            changes.get("status", opportunity.status),
            changes.get("lost_reason", opportunity.lost_reason),
            current=opportunity.lost_reason,
        )

    candidate = copy.copy(opportunity)
    for attr, new in changes.items():
        setattr(candidate, attr, new)
    candidate.full_clean(exclude=["pipeline", "stage", "status", "lost_reason", "rank"])

    # Keep only what really changes, so an unchanged form writes nothing new.
    changes = {
        attr: new
        for attr, new in changes.items()
        if _stored(opportunity, attr) != _stored(candidate, attr)
    }
    if not changes:
        return opportunity
    if "stage" in changes:
        lock_stages(changes["stage"].pk)
        changes["rank"] = rank_for_drop(changes["stage"], moving_id=opportunity.pk)
    return opportunity_write(opportunity=opportunity, version=version, user=user, changes=changes)


def _stored(opportunity: Opportunity, attr: str):
    field = Opportunity._meta.get_field(attr)
    return getattr(opportunity, field.attname)


@transaction.atomic
def opportunity_delete(*, opportunity: Opportunity, user, version: int | None = None) -> None:
    """Move a deal to the trash.

    Invariants: permission to delete and visibility; refused if stale; the board, lists
    and totals stop showing it at once (the visibility selector leaves the trash out);
    an OpportunityDelete event; restorable for TRASH_RETENTION_DAYS, then purged.
    """
    ensure_may_change(user, opportunity, "delete_opportunity")
    version = opportunity.version if version is None else version
    actor = user if user.is_authenticated else None
    changes = {"deleted_at": timezone.now(), "deleted_by": actor}
    opportunity_write(opportunity=opportunity, version=version, user=user, changes=changes)


@transaction.atomic
def opportunity_restore(*, opportunity: Opportunity, user) -> Opportunity:
    """Take a deal out of the trash, where it was (its stage and place in the column).

    Invariant: only users who may delete and see every deal restore (managers).
    """
    ensure_permission(user, "delete_opportunity")
    if not can_view_all(user):
        raise PermissionDenied("Only managers restore opportunities from the trash.")
    if opportunity.deleted_at is None:
        raise ValidationError({"opportunity": "This opportunity is not in the trash."})
    changes = {"deleted_at": None, "deleted_by": None}
    return opportunity_write(
        opportunity=opportunity, version=opportunity.version, user=user, changes=changes
    )


def trash_purge(*, days: int | None = None) -> int:
    """Delete for good the deals in the trash for longer than the retention period.

    Their deletion was announced when they went to the trash; notes, tasks and history go
    with them, communications stay on the contact. Returns how many deals went.
    """
    days = settings.TRASH_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    purged = 0
    while True:
        with transaction.atomic():
            ids = list(
                Opportunity.objects.filter(deleted_at__lt=cutoff).values_list("pk", flat=True)[:500]
            )
            if not ids:
                return purged
            Opportunity.objects.filter(pk__in=ids).delete()
            purged += len(ids)
