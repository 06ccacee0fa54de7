"""Reads for the board's live updates: what changed since the board's last event.

The board remembers the id of the last event (opportunities.events) it reflects. A poll
asks for the events of its pipeline after that id and gets back only the cards they
touched, read again through the rep's filters and visibility, each with the card it now
follows in its column, so the browser can put it in place.
"""

import hashlib
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, QuerySet, Sum

from opportunities.events import last_event_id
from opportunities.models import Opportunity, OpportunityEvent
from opportunities.selectors import with_card_fields

# More events than this since the board's cursor: the whole board is sent again.
DELTA_LIMIT = 50
# How many of the pipeline's most recently changed cards the fingerprint looks at.
RECENT = 100


def board_fingerprint(pipeline_id: int) -> str:
    """A value that changes whenever a card of the pipeline's board is written.

    Beside the event cursor in the board page cache's key, for writes that append no
    event (a bulk update in a data migration, test factories). One query over the RECENT
    most recently updated opportunities, read backwards from the (pipeline, updated_at,
    version) index: a new `updated_at`, a higher version, or a recent card gone.
    """
    recent = (
        Opportunity.objects.filter(pipeline_id=pipeline_id)
        .order_by("-updated_at")
        .values("updated_at", "version")[:RECENT]
    )
    row = recent.aggregate(
        cards=Count("*"),
        newest=Max("updated_at"),
        oldest=Min("updated_at"),
        versions=Sum("version"),
    )
    stamps = [row[key].timestamp() if row[key] else 0 for key in ("newest", "oldest")]
    return "{cards}-{:.6f}-{:.6f}-{versions}".format(*stamps, **row)


def events_cursor() -> int:
    """The id of the newest event: read before the board it describes is read."""
    return last_event_id()


def stages_key(stages) -> str:
    """Changes when a column is added, removed, renamed, reordered or re-weighted."""
    rows = [(s.pk, s.name, s.position, s.probability, s.rotting_days) for s in stages]
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def changed_opportunity_ids(pipeline_id: int, after: int, upto: int) -> list[int] | None:
    """The opportunities of the pipeline with events in (after, upto], oldest change first.

    None when there are more than DELTA_LIMIT events: cheaper to send the whole board.
    """
    rows = list(
        OpportunityEvent.objects.filter(id__gt=after, id__lte=upto, pipeline_id=pipeline_id)
        .order_by("id")
        .values_list("opportunity_id", flat=True)[: DELTA_LIMIT + 1]
    )
    if len(rows) > DELTA_LIMIT:
        return None
    return list(dict.fromkeys(rows))


@dataclass
class PlacedCard:
    card: Opportunity
    after_id: int | None  # the card above it in its column (same filters); None: on top


def placed_cards(queryset: QuerySet[Opportunity], ids: list[int]) -> list[PlacedCard]:
    """The given cards as `queryset` (filters, visibility) shows them, with their places.

    A card missing from the answer left the board for this rep (filtered out, no longer
    visible, deleted, moved to another pipeline).
    """
    placed = []
    for card in with_card_fields(queryset.filter(pk__in=ids)).order_by("rank", "id"):
        above = (
            queryset.filter(stage_id=card.stage_id)
            .filter(Q(rank__lt=card.rank) | Q(rank=card.rank, id__lt=card.pk))
            .order_by("-rank", "-id")
            .values_list("id", flat=True)
            .first()
        )
        placed.append(PlacedCard(card=card, after_id=above))
    return placed
