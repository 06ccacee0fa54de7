"""Moving cards between and within stages, and changing their status."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from opportunities import ranking
from opportunities.errors import StaleVersion
from opportunities.models import CLOSED_STATUSES, LostReason, Opportunity, Status
from opportunities.services.history import history_record
from pipelines.models import Stage


def _column(stage: Stage, moving_id: int | None):
    column = Opportunity.objects.filter(stage=stage)
    return column.exclude(pk=moving_id) if moving_id else column


def _gap(stage: Stage, moving_id, before_id, after_id) -> tuple[str | None, str | None]:
    """The ranks around the drop point, read from the database, not from the client.

    `before_id` is the card the client shows above the drop, `after_id` the one below.
    A neighbour that is no longer in this stage is ignored; the real neighbour in the
    database on the other side is used, so cards the client cannot see keep their place.
    """
    column = _column(stage, moving_id)
    if before_id:
        before = column.filter(pk=before_id).values_list("rank", "id").first()
        if before:
            rank, pk = before
            below = (
                column.filter(Q(rank__gt=rank) | Q(rank=rank, id__gt=pk))
                .order_by("rank", "id")
                .values_list("rank", flat=True)
                .first()
            )
            return rank, below
    if after_id:
        after = column.filter(pk=after_id).values_list("rank", "id").first()
        if after:
            rank, pk = after
            above = (
                column.filter(Q(rank__lt=rank) | Q(rank=rank, id__lt=pk))
                .order_by("-rank", "-id")
                .values_list("rank", flat=True)
                .first()
            )
            return above, rank
    top = column.order_by("rank", "id").values_list("rank", flat=True).first()
    return None, top


def _respace_column(stage: Stage, moving_id, before_id, after_id) -> str:
    """Give every card of the column a short, evenly spaced key; return the mover's key.

    Rare: only when repeated splits of one gap made a key longer than MAX_KEY_LENGTH.
    Order is kept, so other cards' versions are not bumped.
    """
    ids = list(_column(stage, moving_id).order_by("rank", "id").values_list("id", flat=True))
    if before_id in ids:
        index = ids.index(before_id) + 1
    elif after_id in ids:
        index = ids.index(after_id)
    else:
        index = 0
    ids.insert(index, moving_id)
    keys = list(ranking.spaced_keys(len(ids)))
    others = [
        Opportunity(pk=pk, rank=key) for pk, key in zip(ids, keys, strict=True) if pk != moving_id
    ]
    Opportunity.objects.bulk_update(others, ["rank"], batch_size=500)
    return keys[index]


def rank_for_drop(stage: Stage, *, moving_id=None, before_id=None, after_id=None) -> str:
    before, after = _gap(stage, moving_id, before_id, after_id)
    try:
        key = ranking.key_between(before, after)
    except ranking.InvalidKey:  # equal neighbours left by an old bug or a manual edit
        key = None
    if key is None or len(key) > ranking.MAX_KEY_LENGTH:
        key = _respace_column(stage, moving_id, before_id, after_id)
    return key


def _parse_id(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@transaction.atomic
def opportunity_move(
    *,
    opportunity: Opportunity,
    to_stage: Stage,
    version: int,
    user,
    before_id=None,
    after_id=None,
) -> Opportunity:
    """Put the card in `to_stage`, between `before_id` and `after_id`.

    Invariants: the stage belongs to the opportunity's pipeline; exactly one UPDATE of
    the opportunity, guarded by `version` (a stale version raises StaleVersion and
    changes nothing); a history row only when the stage changes.
    """
    if to_stage.pipeline_id != opportunity.pipeline_id:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})
    if opportunity.version != version:
        raise StaleVersion(opportunity.pk)
    # Serialise moves into one column so two drops into the same gap get distinct keys.
    # NO KEY UPDATE: the history row's foreign keys take KEY SHARE locks on stages; a plain
    # FOR UPDATE would block them, and two crossing moves of one card deadlocked.
    Stage.objects.select_for_update(no_key=True).filter(pk=to_stage.pk).values_list("pk").first()

    before_id, after_id = _parse_id(before_id), _parse_id(after_id)
    rank = rank_for_drop(to_stage, moving_id=opportunity.pk, before_id=before_id, after_id=after_id)
    now = timezone.now()
    changes = {"rank": rank, "version": F("version") + 1, "updated_at": now}
    stage_changed = to_stage.pk != opportunity.stage_id
    if stage_changed:
        changes |= {"stage": to_stage, "stage_entered_at": now}
    updated = Opportunity.objects.filter(pk=opportunity.pk, version=version).update(**changes)
    if not updated:
        raise StaleVersion(opportunity.pk)
    if stage_changed:
        history_record(
            opportunity=opportunity,
            user=user,
            from_stage_id=opportunity.stage_id,
            to_stage_id=to_stage.pk,
            from_status=opportunity.status,
            to_status=opportunity.status,
            at=now,
        )
    opportunity.rank, opportunity.version, opportunity.updated_at = rank, version + 1, now
    if stage_changed:
        opportunity.stage, opportunity.stage_entered_at = to_stage, now
    return opportunity


@transaction.atomic
def opportunity_set_status(
    *,
    opportunity: Opportunity,
    status: str,
    version: int,
    user,
    lost_reason: LostReason | None = None,
) -> Opportunity:
    """Mark Won / Lost / Abandoned, or reopen.

    Invariants: a lost reason (an active one) is given iff the new status is Lost;
    closed_at is set for closed statuses and cleared on reopen; guarded by `version`;
    one history row per change.
    """
    if status not in Status.values:
        raise ValidationError({"status": "Choose Open, Won, Lost or Abandoned."})
    if status == Status.LOST:
        if lost_reason is None:
            raise ValidationError({"lost_reason": "Choose why this opportunity was lost."})
        if not lost_reason.is_active:
            raise ValidationError({"lost_reason": "That lost reason is no longer offered."})
    else:
        lost_reason = None
    if status == opportunity.status and lost_reason == opportunity.lost_reason:
        raise ValidationError({"status": f"This opportunity is already {Status(status).label}."})
    if opportunity.version != version:
        raise StaleVersion(opportunity.pk)

    now = timezone.now()
    closed_at = None
    if status in CLOSED_STATUSES:
        # Changing only the lost reason keeps the original close date.
        closed_at = opportunity.closed_at if opportunity.status == status else now
    updated = Opportunity.objects.filter(pk=opportunity.pk, version=version).update(
        status=status,
        lost_reason=lost_reason,
        status_changed_at=now,
        closed_at=closed_at,
        updated_at=now,
        version=F("version") + 1,
    )
    if not updated:
        raise StaleVersion(opportunity.pk)
    history_record(
        opportunity=opportunity,
        user=user,
        from_stage_id=opportunity.stage_id,
        to_stage_id=opportunity.stage_id,
        from_status=opportunity.status,
        to_status=status,
        at=now,
    )
    opportunity.status, opportunity.lost_reason = status, lost_reason
    opportunity.status_changed_at, opportunity.closed_at = now, closed_at
    opportunity.version, opportunity.updated_at = version + 1, now
    return opportunity
