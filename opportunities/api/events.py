"""/api/v1/events: the change feed from the event log, filtered by visibility."""

from ninja import Query, Router

from opportunities.api.schemas import ERRORS, EventsOut
from opportunities.models import OpportunityEvent
from opportunities.selectors import can_view_all

router = Router(tags=["Events"])


@router.get("", response={200: EventsOut, **ERRORS}, summary="Events after an id")
def events(
    request,
    after: int = Query(0, ge=0, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=1000),
):
    """Changes after event id `after`, oldest first. Keep the last id you handled and ask
    again with it: ids only grow and a late commit is never skipped. A user without
    "view all opportunities" sees the events of deals assigned to them at the time."""
    from opportunities.events import events_after

    user = request.user
    if can_view_all(user):
        rows = events_after(after, limit)
    else:
        rows = list(
            OpportunityEvent.objects.filter(
                id__gt=after, payload__opportunity__assignedTo=str(user.pk)
            ).order_by("id")[:limit]
        )
    return {
        "events": [
            {
                "id": str(event.pk),
                "type": event.type,
                "opportunityId": str(event.opportunity_id),
                "pipelineId": None if event.pipeline_id is None else str(event.pipeline_id),
                "actorId": None if event.actor_id is None else str(event.actor_id),
                "createdAt": event.created_at.isoformat(),
                "opportunity": (event.payload or {}).get("opportunity"),
                "changes": (event.payload or {}).get("changes") or {},
            }
            for event in rows
        ],
        "meta": {"lastId": str(rows[-1].pk) if rows else str(after)},
    }
