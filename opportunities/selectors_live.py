"""Reads for the board's live updates."""

from django.db.models import Count, Max, Min, Sum

from opportunities.models import Opportunity

# How many of the pipeline's most recently changed cards the fingerprint looks at.
RECENT = 100


def board_fingerprint(pipeline_id: int) -> str:
    """A value that changes whenever a card of the pipeline's board changes.

    One query over the RECENT most recently updated opportunities of the pipeline, read
    backwards from the (pipeline, updated_at, version) index: its cost does not grow
    with the pipeline's history. Every write service sets `updated_at` and bumps
    `version`, so:
    - a move, edit, status change or new card makes the newest `updated_at` newer;
    - a transaction that commits after a newer one, with an older `updated_at`, still
      raises the sum of versions of the recent cards;
    - deleting a recent card changes which cards are recent. (Deleting an old card, which
      only an admin can do, shows up with the next change or a reload.)
    Computed over the whole pipeline, not over what this user may see, so it needs no
    permission lookups; a change a rep cannot see only costs them one identical refetch.
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
