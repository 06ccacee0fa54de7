"""Reads for the board's live updates: what changed since the board's last event.

The board remembers the id of the last event (opportunities.events) it reflects. A poll
asks for the events of its pipeline after that id and gets back only the cards they
touched, read again through the rep's filters and visibility, each with the card it now
follows in its column, so the browser can put it in place.
"""

import hashlib
from dataclasses import dataclass

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

from opportunities.events import last_event_id
from opportunities.models import Opportunity, OpportunityEvent
from opportunities.selectors import can_view_all, with_card_fields

# More events than this since the board's cursor: the whole board is sent again.
DELTA_LIMIT = 50
# How many of the pipeline's most recently changed cards the fingerprint looks at.
RECENT = 100
# The largest id a database integer holds: a URL's larger number names no pipeline (and a
# foreign-key filter with it would overflow on SQLite).
MAX_ID = 2**63 - 1


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
    return Subquery(OpportunityEvent.objects.order_by("-id").values("id")[:1])


def events_cursor() -> int:
    """The id of the newest event: read before the board it describes is read."""
    return last_event_id()


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
    rows = list(
        OpportunityEvent.objects.filter(id__gt=after, id__lte=upto, pipeline_id=pipeline_id)
        .order_by("id")
        .values_list("opportunity_id", "payload")[: DELTA_LIMIT + 1]
    )
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
    follows = Opportunity.followers.through.objects.filter(user_id=user.pk)
    return follows.filter(opportunity_id__in=changes.ids).exists()


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
    above = (
        queryset.filter(stage_id=OuterRef("stage_id"))
        .filter(Q(rank__lt=OuterRef("rank")) | Q(rank=OuterRef("rank"), id__lt=OuterRef("pk")))
        .order_by("-rank", "-id")
        .values("id")[:1]
    )
    cards = with_card_fields(queryset.filter(pk__in=ids)).annotate(above_id=Subquery(above))
    return [PlacedCard(card=card, after_id=card.above_id) for card in cards.order_by("rank", "id")]
