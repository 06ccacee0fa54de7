"""Who may change what: every service asks here before it writes.

A view forgetting a decorator must not open a hole, so the services check the permission
and the visibility rule themselves. An invisible deal is reported as missing (404), not
forbidden, so its existence does not leak.
"""

from django.core.exceptions import PermissionDenied

from opportunities.models import Opportunity
from opportunities.selectors import opportunity_is_visible_to

MESSAGES = {
    "add_opportunity": "You are not allowed to add opportunities.",
    "change_opportunity": "You are not allowed to change opportunities.",
    "delete_opportunity": "You are not allowed to delete opportunities.",
}


def ensure_permission(user, permission: str, message: str | None = None) -> None:
    if not (user.is_authenticated and user.has_perm(f"opportunities.{permission}")):
        raise PermissionDenied(message or MESSAGES.get(permission, "You are not allowed."))


def ensure_visible(user, opportunity: Opportunity) -> None:
    if not opportunity_is_visible_to(user, opportunity):
        raise Opportunity.DoesNotExist("No such opportunity.")


def ensure_may_change(user, opportunity: Opportunity, permission="change_opportunity") -> None:
    ensure_permission(user, permission)
    ensure_visible(user, opportunity)
