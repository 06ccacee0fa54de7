"""The trash: deals deleted by someone, restorable by managers until they are purged."""

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet

from opportunities.models import Opportunity
from opportunities.selectors import can_view_all

TRASH_PAGE_SIZE = 50


def may_manage_trash(user) -> bool:
    """Managers: they may delete and they see every deal (what opportunity_restore asks)."""
    return can_view_all(user) and user.has_perm("opportunities.delete_opportunity")


def trashed_opportunities(user) -> QuerySet[Opportunity]:
    """Deals in the trash, newest deletion first; none for users who may not restore."""
    if not may_manage_trash(user):
        return Opportunity.objects.none()
    return (
        Opportunity.objects.filter(deleted_at__isnull=False)
        .select_related("pipeline", "stage", "assigned_to", "deleted_by", "contact")
        .order_by("-deleted_at", "-id")
    )


def purge_date(opportunity: Opportunity):
    """When the periodic purge deletes this deal for good."""
    return opportunity.deleted_at + timedelta(days=settings.TRASH_RETENTION_DAYS)
