from django.utils import timezone

from opportunities.models import Opportunity, OpportunityHistory


def history_record(
    *,
    opportunity: Opportunity,
    user,
    from_stage_id: int | None,
    to_stage_id: int | None,
    from_status: str,
    to_status: str,
    at=None,
) -> OpportunityHistory:
    return OpportunityHistory.objects.create(
        opportunity=opportunity,
        from_stage_id=from_stage_id,
        to_stage_id=to_stage_id,
        from_status=from_status,
        to_status=to_status,
        user=user if getattr(user, "is_authenticated", False) else None,
        at=at or timezone.now(),
    )
