"""Moving cards between and within stages, and changing their status."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, Subquery

from opportunities import ranking
from opportunities.errors import StaleVersion
from opportunities.models import LostReason, Opportunity, Status
from opportunities.services.access import ensure_may_change
from opportunities.services.writing import (
    check_status,
    lock_stages,
    opportunity_write,
    status_is_new,
)
from pipelines.models import Stage


def _column(stage: Stage, moving_id: int | None):
    column = Opportunity.objects.filter(stage=stage, deleted_at__isnull=True)
    return column.exclude(pk=moving_id) if moving_id else column


def _gap(stage: Stage, moving_id, before_id, after_id) -> tuple[str | None, str | None]:
    """The ranks around the drop point, read from the database, not from the client.

    `before_id` is the card the client shows above the drop, `after_id` the one below.
    A neighbour that is no longer in this stage is ignored; the real neighbour in the
    database on the other side is used, so cards the client cannot see keep their place.
    """
    column = _column(stage, moving_id)
    if before_id:
        # The card above and the one right below it, in one read (the subquery finds the
        # card above's rank; NULL, so no row, when it left the column).
        rank = Subquery(column.filter(pk=before_id).values("rank")[:1])
        pair = list(
            column.filter(Q(rank__gt=rank) | Q(rank=rank, id__gte=before_id))
            .order_by("rank", "id")
            .values_list("rank", "id")[:2]
        )
        if pair and pair[0][1] == before_id:
            return pair[0][0], pair[1][0] if len(pair) > 1 else None
    if after_id:
        rank = Subquery(column.filter(pk=after_id).values("rank")[:1])
        pair = list(
            column.filter(Q(rank__lt=rank) | Q(rank=rank, id__lte=after_id))
            .order_by("-rank", "-id")
            .values_list("rank", "id")[:2]
        )
        if pair and pair[0][1] == after_id:
            return pair[1][0] if len(pair) > 1 else None, pair[0][0]
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
    changes nothing); a history row and an OpportunityStageUpdate event when the stage
    changes, an OpportunityUpdate event for a reorder within the column.
    """
    ensure_may_change(user, opportunity)
    if to_stage.pipeline_id != opportunity.pipeline_id:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})
    if opportunity.version != version:
        raise StaleVersion(opportunity.pk)
    # Serialises drops into one column, so two drops into the same gap get distinct keys.
    lock_stages(to_stage.pk)
    before_id, after_id = _parse_id(before_id), _parse_id(after_id)
    rank = rank_for_drop(to_stage, moving_id=opportunity.pk, before_id=before_id, after_id=after_id)
    changes = {"rank": rank}
    if to_stage.pk != opportunity.stage_id:
        changes["stage"] = to_stage
    return opportunity_write(opportunity=opportunity, version=version, user=user, changes=changes)


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

    Invariants: a lost reason (an active one) iff the new status is Lost; closed_at and
    days_to_close set when closing, cleared on reopen (changing only the lost reason
    keeps them); guarded by `version`; history rows and events for what changed.
    """
    ensure_may_change(user, opportunity)
    lost_reason = check_status(status, lost_reason)
    if not status_is_new(opportunity, status, lost_reason):
        raise ValidationError({"status": f"This opportunity is already {Status(status).label}."})
    changes = {"status": status, "lost_reason": lost_reason}
    return opportunity_write(opportunity=opportunity, version=version, user=user, changes=changes)
