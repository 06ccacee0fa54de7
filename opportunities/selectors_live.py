"""Reads for the board's live updates: what changed since the board's last event.

The board remembers the id of the last event (opportunities.events) it reflects. A poll
asks for the events of its pipeline after that id and gets back only the cards they
touched, read again through the rep's filters and visibility, each with the card it now
follows in its column, so the browser can put it in place.
"""

import hashlib
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import (
    CharField,
    Count,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Concat
from django.http import QueryDict

from opportunities.compiled_reads import (
    STAND_IN,
    Statement,
    cached_statement,
    fixed_statement,
    instance_from,
    padded,
    row_fields,
    stand_ins,
)
from opportunities.filters import OpportunityFilter
from opportunities.models import Contact, Opportunity, OpportunityEvent
from opportunities.selectors import (
    Column,
    add_to_column,
    can_view_all,
    opportunities_visible_to,
    stage_totals_rows,
    with_card_fields,
)
from pipelines.models import Pipeline, Stage

# More events than this since the board's cursor: the whole board is sent again.
DELTA_LIMIT = 50
# How many of the pipeline's most recently changed cards the fingerprint looks at.
RECENT = 100


# What a board card shows (templates/opportunities/board.html#card), in model field order.
_CARD_FIELDS = [
    field.attname
    for field in Opportunity._meta.concrete_fields
    if field.attname
    in {
        "id",
        "name",
        "pipeline_id",
        "stage_id",
        "status",
        "value",
        "contact_id",
        "assigned_to_id",
        "rank",
        "version",
        "stage_entered_at",
        "closed_at",
    }
]
_CONTACT_FIELDS = ["id", "name", "company"]
_OWNER_FIELDS = ["id", "username", "first_name", "last_name"]


def board_fingerprint(pipeline_id: int) -> Subquery:
    """A value that changes whenever a card of the pipeline's board is written, as a
    subquery, so the board page cache reads it in the same query as the rest of its key.

    Beside the event cursor in the board page cache's key, for writes that append no
    event (a bulk update in a data migration, test factories). Over the RECENT most
    recently updated opportunities, found backwards on the (pipeline, updated_at,
    version) index: a new `updated_at`, a higher version, or a recent card gone.
    """
    recent = (
        Opportunity.objects.filter(pipeline_id=pipeline_id)
        .order_by("-updated_at")
        .values("pk")[:RECENT]
    )
    text = CharField()
    parts = [Count("*"), Max("updated_at"), Min("updated_at"), Sum("version")]
    dashed = [piece for part in parts for piece in (Value("-"), Cast(part, text))][1:]
    row = (
        Opportunity.objects.filter(pk__in=recent)
        .order_by()
        .values("pipeline_id")
        .annotate(fingerprint=Concat(*dashed, output_field=text))
        .values("fingerprint")
    )
    return Subquery(row, output_field=text)


def events_cursor_read() -> Subquery:
    """`events_cursor` as a subquery."""
    return Subquery(_newest_event())


def events_cursor() -> int:
    """The id of the newest event (events.last_event_id): read before the board it
    describes is read. Every poll starts with it."""
    statement = fixed_statement(("cursor",), lambda: Statement.compile(_newest_event(), []))
    rows = statement.rows({})
    return rows[0]["id"] if rows else 0


def _newest_event() -> QuerySet:
    return OpportunityEvent.objects.order_by("-id").values("id")[:1]


def pipeline_stages(pipeline_id: int) -> list[Stage]:
    """The pipeline's stages in board order, each with the pipeline (one instance)."""
    pipeline_in = STAND_IN

    def build():
        stages = Stage.objects.filter(pipeline_id=pipeline_in).order_by("position", "id")
        related = [f"pipeline__{name}" for name in row_fields(Pipeline)]
        return Statement.compile(stages.values(*row_fields(Stage), *related), [pipeline_in])

    rows = fixed_statement(("stages",), build).rows({pipeline_in: pipeline_id})
    if not rows:
        return []
    pipeline = instance_from(Pipeline, rows[0], "pipeline__")
    stages = []
    for row in rows:
        stage = instance_from(Stage, row)
        stage.pipeline = pipeline
        stages.append(stage)
    return stages


def stages_key(stages) -> str:
    """Changes when a column is added, removed, renamed, reordered or re-weighted."""
    rows = [(s.pk, s.name, s.position, s.probability, s.rotting_days) for s in stages]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


@dataclass
class Changes:
    ids: list[int]  # the changed opportunities, oldest change first
    stage_ids: set[int]  # the columns they left or are in
    people: set[str]  # owners and followers the events name, before and after


def changes_since(pipeline_id: int, after: int, upto: int) -> Changes | None:
    """The opportunities of the pipeline with events in (after, upto], from the payloads.

    None when there are more than DELTA_LIMIT events: cheaper to send the whole board.
    """
    after_in, upto_in, pipeline_in = stand_ins(3)

    def build():
        events = OpportunityEvent.objects.filter(
            id__gt=after_in, id__lte=upto_in, pipeline_id=pipeline_in
        )
        rows = events.order_by("id").values("opportunity_id", "payload")[: DELTA_LIMIT + 1]
        return Statement.compile(rows, [after_in, upto_in, pipeline_in])

    statement = fixed_statement(("events",), build)
    values = {after_in: after, upto_in: upto, pipeline_in: pipeline_id}
    rows = [(row["opportunity_id"], row["payload"]) for row in statement.rows(values)]
    if len(rows) > DELTA_LIMIT:
        return None
    changes = Changes(ids=list(dict.fromkeys(pk for pk, _ in rows)), stage_ids=set(), people=set())
    for _, payload in rows:
        deal, changed = payload.get("opportunity") or {}, payload.get("changes") or {}
        stages = [deal.get("pipelineStageId"), changed.get("pipelineStageId", {}).get("old")]
        changes.stage_ids |= {int(stage) for stage in stages if stage}
        followers = changed.get("followers", {})
        people = [deal.get("assignedTo"), changed.get("assignedTo", {}).get("old")]
        people += [*(followers.get("old") or []), *(followers.get("new") or [])]
        changes.people |= {str(person) for person in people if person}
    return changes


def changes_concern(user, changes: Changes) -> bool:
    """Whether any changed card is on `user`'s board, or was at the board's cursor, as far
    as visibility goes (filters aside); if not, the board has nothing to redraw.

    Someone who sees every deal: yes. Otherwise a card was or is theirs only if the events
    name them as its owner or follower (the first event of a card carries its owner before
    the change, or the old owner when it changed), or if they follow it and nobody changed
    its followers since: that is the one read here.
    """
    if can_view_all(user) or str(user.pk) in changes.people:
        return True
    if not changes.ids:
        return False
    ids = padded(changes.ids)
    user_in, card_stand_ins = STAND_IN, stand_ins(len(ids), offset=1)

    def build():
        follows = Opportunity.followers.through.objects.filter(
            user_id=user_in, opportunity_id__in=card_stand_ins
        )
        return Statement.compile(follows.values("opportunity_id")[:1], [user_in, *card_stand_ins])

    statement = fixed_statement(("follows", len(ids)), build)
    values = {user_in: user.pk, **dict(zip(card_stand_ins, ids, strict=True))}
    return bool(statement.rows(values))


@dataclass
class PlacedCard:
    card: Opportunity
    after_id: int | None  # the card above it in its column (same filters); None: on top


def placed_cards(queryset: QuerySet[Opportunity], ids: list[int]) -> list[PlacedCard]:
    """The given cards as `queryset` (filters, visibility) shows them, with their places,
    in one query (the card above each is a subquery on the column's (rank, id) index).

    A card missing from the answer left the board for this rep (filtered out, no longer
    visible, deleted, moved to another pipeline).
    """
    cards = _cards_with_places(queryset, ids)
    return [PlacedCard(card=card, after_id=card.above_id) for card in cards]


def _cards_with_places(queryset: QuerySet[Opportunity], ids) -> QuerySet[Opportunity]:
    # rank <= the card's as well: the column's (stage, status, rank, id) index is then
    # read backwards from the card, not from the column's end.
    above = (
        queryset.filter(stage_id=OuterRef("stage_id"), rank__lte=OuterRef("rank"))
        .filter(Q(rank__lt=OuterRef("rank")) | Q(rank=OuterRef("rank"), id__lt=OuterRef("pk")))
        .order_by("-rank", "-id")
        .values("id")[:1]
    )
    cards = with_card_fields(queryset.filter(pk__in=ids)).annotate(above_id=Subquery(above))
    return cards.order_by("rank", "id")


def compiled_reads_serve(filters: QueryDict) -> bool:
    """Whether the compiled reads can answer for these board filters.

    Not with an owner: the filter checks that the owner is an active user when it is
    built, which a statement compiled earlier would not do again.
    """
    return not filters.get("owner")


def _filters_key(filters: QueryDict) -> tuple:
    return tuple(sorted((key, tuple(values)) for key, values in filters.lists()))


def _board_queryset(user, pipeline_id: int, filters: QueryDict) -> QuerySet[Opportunity]:
    """The rep's board as views.board filters it (visibility, pipeline, filters)."""
    visible = opportunities_visible_to(user).filter(pipeline_id=pipeline_id)
    return OpportunityFilter(filters, queryset=visible).qs


def changed_cards(
    user, pipeline_id: int, filters: QueryDict, ids: list[int], stages
) -> list[PlacedCard] | None:
    """`placed_cards` for the board `filters` describe, from a compiled statement; None
    when no statement serves these filters or this shape (then use `placed_cards`)."""
    if not compiled_reads_serve(filters):
        return None
    ids = padded(ids)
    pipeline_stand_in, card_stand_ins = STAND_IN, stand_ins(len(ids), offset=1)

    def build():
        board = _board_queryset(user, pipeline_stand_in, filters)
        contact = {f"contact__{name}" for name in _CONTACT_FIELDS[1:]}
        owner = {f"assigned_to__{name}" for name in _OWNER_FIELDS[1:]}
        cards = _cards_with_places(board, card_stand_ins).values(
            *_CARD_FIELDS,
            *sorted(contact),
            *sorted(owner),
            "next_task_due",
            "card_tags",
            "above_id",
        )
        return Statement.compile(cards, [pipeline_stand_in, *card_stand_ins])

    key = ("cards", user.pk, can_view_all(user), _filters_key(filters), len(ids))
    statement = cached_statement(key, build)
    if statement is None:
        return None
    values = {pipeline_stand_in: pipeline_id, **dict(zip(card_stand_ins, ids, strict=True))}
    by_id = {stage.pk: stage for stage in stages}
    return [_placed(row, by_id) for row in statement.rows(values)]


def _placed(row: dict, stages: dict) -> PlacedCard:
    """A card as the ORM would load it: the fields the card shows (others deferred), its
    stage, contact and owner, its next task and tags."""
    card = instance_from(Opportunity, row, fields=_CARD_FIELDS)
    if card.stage_id in stages:
        card.stage = stages[card.stage_id]
    contact = [row.get(f"contact__{name}") for name in _CONTACT_FIELDS[1:]]
    card.contact = (
        Contact.from_db(connection.alias, _CONTACT_FIELDS, [card.contact_id, *contact])
        if card.contact_id is not None
        else None
    )
    owner = [row.get(f"assigned_to__{name}") for name in _OWNER_FIELDS[1:]]
    card.assigned_to = (
        get_user_model().from_db(connection.alias, _OWNER_FIELDS, [card.assigned_to_id, *owner])
        if card.assigned_to_id is not None
        else None
    )
    card.next_task_due, card.card_tags = row["next_task_due"], row["card_tags"]
    return PlacedCard(card=card, after_id=row["above_id"])


def column_totals(user, pipeline_id: int, filters: QueryDict, stages) -> list[Column] | None:
    """`selectors.header_columns` for the given columns of the board `filters` describe,
    from a compiled statement; None when no statement serves these filters or this shape.

    For a rep, in two parts added up here: their own deals (read from the owner totals
    index) and the deals they see without owning them (found from their follows). One
    condition "theirs or followed" over the columns reads every deal of the columns.
    The split holds because `opportunities_visible_to` shows a rep only deals they own
    or follow (tests compare the two).
    """
    if not compiled_reads_serve(filters):
        return None
    if not stages:
        return []
    stage_ids = padded([stage.pk for stage in stages])
    pipeline_stand_in, stage_stand_ins = STAND_IN, stand_ins(len(stage_ids), offset=1)
    view_all = can_view_all(user)

    def build():
        board = _board_queryset(user, pipeline_stand_in, filters).filter(stage__in=stage_stand_ins)
        if view_all:
            rows = stage_totals_rows(board)
        else:
            follows = Opportunity.followers.through.objects.filter(user_id=user.pk)
            theirs = board.filter(assigned_to_id=user.pk)
            followed = board.filter(pk__in=follows.values("opportunity_id")).exclude(
                assigned_to_id=user.pk
            )
            rows = stage_totals_rows(theirs).union(stage_totals_rows(followed), all=True).order_by()
        return Statement.compile(rows, [pipeline_stand_in, *stage_stand_ins])

    key = ("totals", user.pk, view_all, _filters_key(filters), len(stage_ids))
    statement = cached_statement(key, build)
    if statement is None:
        return None
    values = {pipeline_stand_in: pipeline_id, **dict(zip(stage_stand_ins, stage_ids, strict=True))}
    columns = {stage.pk: Column(stage=stage) for stage in stages}
    for row in statement.rows(values):
        add_to_column(columns[row["stage"]], row)
    return list(columns.values())
