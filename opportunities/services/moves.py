"""Moving cards between and within stages, and changing their status."""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import FilteredRelation, Q, Subquery

from opportunities import ranking
from opportunities.compiled_reads import (
    Statement,
    fixed_statement,
    instance_from,
    row_fields,
    stand_ins,
)
from opportunities.errors import StaleVersion
from opportunities.models import MAX_ID, Contact, LostReason, Opportunity, Status
from opportunities.selectors import can_view_all, opportunities_visible_to
from opportunities.services.access import ensure_may_change, ensure_permission
from opportunities.services.writing import (
    check_status,
    lock_stages,
    opportunity_write,
    opportunity_write_planned,
    status_is_new,
)
from pipelines.models import Pipeline, Stage


def _column(stage_id: int, moving_id: int | None):
    """The stage's live cards but the one being moved."""
    column = Opportunity.objects.filter(stage_id=stage_id, deleted_at__isnull=True)
    return column.exclude(pk=moving_id) if moving_id else column


def _rank_of(queryset):
    return Subquery(queryset.values("rank")[:1])


def _gap_reads(stage_id: int, moving_id, before_id, after_id) -> dict[str, Subquery]:
    """The ranks around the drop point as subqueries, so one SELECT reads them all.

    `before_id` is the card the client shows above the drop, `after_id` the one below.
    Each is looked up with its real neighbour on the other side, and the column's top
    card for when neither is still in this stage; `_gap_from` picks the answer. The
    plain `rank >=` / `rank <=` bound lets the (stage, rank, id) index start at the
    neighbour: with the OR alone, the card above was found by walking up from the
    column's bottom (a millisecond per 10,000 cards in the column).
    """
    column = _column(stage_id, moving_id)
    reads = {"gap_top": _rank_of(column.order_by("rank", "id"))}
    if before_id:
        rank = _rank_of(column.filter(pk=before_id))
        below = column.filter(Q(rank__gt=rank) | Q(rank=rank, id__gt=before_id), rank__gte=rank)
        reads |= {"gap_before": rank, "gap_below": _rank_of(below.order_by("rank", "id"))}
    if after_id:
        rank = _rank_of(column.filter(pk=after_id))
        above = column.filter(Q(rank__lt=rank) | Q(rank=rank, id__lt=after_id), rank__lte=rank)
        reads |= {"gap_after": rank, "gap_above": _rank_of(above.order_by("-rank", "-id"))}
    return reads


GAP_NAMES = ("gap_top", "gap_before", "gap_below", "gap_after", "gap_above")


def _gap_from(row: dict) -> tuple[str | None, str | None]:
    """The gap from `_gap_reads`' values: a neighbour that left the column is ignored and
    the real neighbour in the database on the other side is used, so cards the client
    cannot see keep their place."""
    if row.get("gap_before") is not None:
        return row["gap_before"], row.get("gap_below")
    if row.get("gap_after") is not None:
        return row.get("gap_above"), row["gap_after"]
    return None, row["gap_top"]


def _gap(stage: Stage, moving_id, before_id, after_id) -> tuple[str | None, str | None]:
    """The ranks around the drop point, read from the database (one query)."""
    reads = _gap_reads(stage.pk, moving_id, before_id, after_id)
    return _gap_from(Stage.objects.filter(pk=stage.pk).values(**reads).get())


def _respace_column(stage: Stage, moving_id, before_id, after_id) -> str:
    """Give every card of the column a short, evenly spaced key; return the mover's key.

    Rare: only when repeated splits of one gap made a key longer than MAX_KEY_LENGTH.
    Order is kept, so other cards' versions are not bumped.
    """
    ids = list(_column(stage.pk, moving_id).order_by("rank", "id").values_list("id", flat=True))
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
    return _key_in_gap(stage, before, after, moving_id, before_id, after_id)


def _free_key(before: str | None, after: str | None) -> str | None:
    """A key between the neighbours, or None when the column must be re-spaced first
    (a write, which `_key_in_gap` does under the lock)."""
    try:
        key = ranking.key_between(before, after)
    except ranking.InvalidKey:  # equal neighbours left by an old bug or a manual edit
        return None
    return key if len(key) <= ranking.MAX_KEY_LENGTH else None


def _key_in_gap(stage: Stage, before, after, moving_id, before_id, after_id) -> str:
    key = _free_key(before, after)
    return key or _respace_column(stage, moving_id, before_id, after_id)


def _parse_id(value) -> int | None:
    """A neighbour's id from the client, or None for anything that names no row."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_ID else None


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
    return _write_place(opportunity, to_stage, rank, version=version, user=user)


def _place(opportunity: Opportunity, to_stage: Stage, rank: str) -> dict:
    """A move's changes: the new rank, and the stage when it changes."""
    changes = {"rank": rank}
    if to_stage.pk != opportunity.stage_id:
        changes["stage"] = to_stage
    return changes


def _write_place(opportunity: Opportunity, to_stage: Stage, rank: str, *, version, user):
    """The move's one write: the new rank, and the stage when it changes (history + event)."""
    changes = _place(opportunity, to_stage, rank)
    return opportunity_write(opportunity=opportunity, version=version, user=user, changes=changes)


@dataclass
class Drop:
    opportunity: Opportunity  # as written: new stage, rank and version
    from_stage: Stage
    to_stage: Stage


NOT_IN_PIPELINE = "That stage is not part of this opportunity's pipeline."


# What the drop reads, by prefix: the whole card (its event carries it), its pipeline,
# its stage and contact, and the target stage.
_READ = {
    "": Opportunity,
    "pipeline__": Pipeline,
    "stage__": Stage,
    "to_stage__": Stage,
    "contact__": Contact,
}


def _drop_statement(user, has_before: bool, has_after: bool) -> tuple[Statement, list[int]]:
    """The drop's one SELECT, compiled once per user and shape (which neighbours the
    client named): building it through the ORM cost about as much as the rest of a drag.
    Returns it with its stand-ins: the card, the target stage, the card above and below.
    """
    ins = stand_ins(4)
    card_in, stage_in, before_in, after_in = ins

    def build():
        target = FilteredRelation("pipeline__stages", condition=Q(pipeline__stages__pk=stage_in))
        gaps = _gap_reads(
            stage_in, card_in, before_in if has_before else None, after_in if has_after else None
        )
        names = [prefix + name for prefix, model in _READ.items() for name in row_fields(model)]
        rows = (
            opportunities_visible_to(user)
            .filter(pk=card_in)
            .annotate(to_stage=target, **gaps)
            .values(*names, *gaps)
        )
        used = [card_in, stage_in] + [before_in] * has_before + [after_in] * has_after
        return Statement.compile(rows, used)

    key = ("drop", user.pk, can_view_all(user), has_before, has_after)
    return fixed_statement(key, build), ins


def _read_drop(
    user, pk: int, stage_id: int, before_id, after_id
) -> tuple[Opportunity, Stage | None, dict]:
    """The card as `user` may see it (DoesNotExist otherwise), with its pipeline, stage
    and contact loaded, the target stage (None when it is not of the card's pipeline),
    and the ranks around the drop point (`_gap_from`'s input)."""
    if not user.is_authenticated or not 0 < pk <= MAX_ID or not 0 < stage_id <= MAX_ID:
        raise Opportunity.DoesNotExist
    statement, (card_in, stage_in, before_in, after_in) = _drop_statement(
        user, before_id is not None, after_id is not None
    )
    values = {card_in: pk, stage_in: stage_id, before_in: before_id, after_in: after_id}
    rows = statement.rows(values)
    if not rows:
        raise Opportunity.DoesNotExist
    row = rows[0]
    # A left join that found nothing (no contact; a stage of another pipeline) has no id.
    loaded = {
        prefix: instance_from(model, row, prefix)
        for prefix, model in _READ.items()
        if row[prefix + "id"] is not None
    }
    card = loaded[""]
    card.pipeline, card.stage = loaded["pipeline__"], loaded["stage__"]
    card.contact = loaded.get("contact__")
    return card, loaded.get("to_stage__"), {name: row.get(name) for name in GAP_NAMES}


def opportunity_drop(
    *, pk: int, stage_id: int, version: int, user, before_id=None, after_id=None
) -> Drop:
    """`opportunity_move` for the board, which knows the card and the stage by id only.

    The same checks and writes, with as little as possible under the write lock (on
    SQLite one lock serialises every writer of every process, so its hold time bounds
    drags per second). The card (as `user` may see it), its pipeline, stage and
    contact, the target stage and the ranks around the drop point come in one SELECT
    (compiled once: `_drop_statement`) read before the write's transaction, and the
    write is planned from it there: the UPDATE, the history row and the event, built and
    ready. Under the lock only they run. The UPDATE is guarded by the version and by the
    new rank still being free in the column; when either guard fails (the card was
    written, or another card was dropped into the same gap, since the read), the drop is
    done again under the lock from a fresh read. Raises Opportunity.DoesNotExist for a
    card `user` cannot see, PermissionDenied, ValidationError for a stage of another
    pipeline (or none), StaleVersion.
    """
    before_id, after_id = _parse_id(before_id), _parse_id(after_id)
    card, to_stage, gap_row = _checked_drop(user, pk, stage_id, version, before_id, after_id)
    from_stage = card.stage
    key = _free_key(*_gap_from(gap_row))
    plan = None
    if key is not None:
        changes = _place(card, to_stage, key)
        plan = opportunity_write_planned(
            opportunity=card, version=version, user=user, changes=changes, rank_free=True
        )
    with transaction.atomic():
        lock_stages(stage_id)
        if plan is not None and plan.run():
            return Drop(opportunity=card, from_stage=from_stage, to_stage=to_stage)
        return _drop_under_lock(user, pk, stage_id, version, before_id, after_id)


def _checked_drop(user, pk: int, stage_id: int, version: int, before_id, after_id):
    """`_read_drop`, refused as `opportunity_drop` says."""
    card, to_stage, gap_row = _read_drop(user, pk, stage_id, before_id, after_id)
    # Read through the visibility rule, so only the permission is left to check.
    ensure_permission(user, "change_opportunity")
    if to_stage is None:
        raise ValidationError({"stage": NOT_IN_PIPELINE})
    if card.version != version:
        raise StaleVersion(card.pk)
    return card, to_stage, gap_row


def _drop_under_lock(user, pk: int, stage_id: int, version: int, before_id, after_id) -> Drop:
    """The drop read and written inside the write's transaction (after the stage lock),
    so the read is as fresh as the write."""
    card, to_stage, gap_row = _checked_drop(user, pk, stage_id, version, before_id, after_id)
    rank = _key_in_gap(to_stage, *_gap_from(gap_row), card.pk, before_id, after_id)
    from_stage = card.stage
    moved = _write_place(card, to_stage, rank, version=version, user=user)
    return Drop(opportunity=moved, from_stage=from_stage, to_stage=to_stage)


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
