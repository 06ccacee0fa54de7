"""Reads for the board's live updates."""

from django.db.models import Count, Max, Sum

from pipelines.models import Pipeline


def board_fingerprint(pipeline_id: int) -> str | None:
    """What changes whenever any card of the pipeline's board changes; None if no pipeline.

    One aggregate query, answered from the (pipeline, updated_at, version) index. Every
    write service sets `updated_at` and bumps `version`: a new card or a delete changes
    the count, any edit raises the version sum (even when a slower transaction commits an
    older `updated_at` after a newer one). Computed over the whole pipeline rather than
    what this user sees, so it needs no permission lookups; a change a rep cannot see
    only costs them one refetch of an identical board.
    """
    row = (
        Pipeline.objects.filter(pk=pipeline_id)
        .order_by()
        .annotate(
            cards=Count("opportunities"),
            latest=Max("opportunities__updated_at"),
            versions=Sum("opportunities__version"),
        )
        .values_list("cards", "latest", "versions")
        .first()
    )
    if row is None:
        return None
    cards, latest, versions = row
    stamp = latest.timestamp() if latest else 0
    return f"{cards}-{stamp:.6f}-{versions or 0}"
