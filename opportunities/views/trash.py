"""The trash page: managers see deleted deals (who, when, purge date) and restore them."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from opportunities.selectors_trash import (
    TRASH_PAGE_SIZE,
    may_manage_trash,
    purge_date,
    trashed_opportunities,
)
from opportunities.services.opportunities import opportunity_restore
from opportunities.views.htmx import answer

TRASH = "opportunities/trash.html"
ONLY_MANAGERS = "Only managers see the trash."


def _managers_only(request) -> None:
    if not may_manage_trash(request.user):
        raise PermissionDenied(ONLY_MANAGERS)


@require_GET
def trash(request):
    _managers_only(request)
    page = Paginator(trashed_opportunities(request.user), TRASH_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for row in page:
        row.purge_on = purge_date(row)
    context = {"nav": "list", "page": page, "retention_days": settings.TRASH_RETENTION_DAYS}
    return render(request, TRASH, context)


@require_POST
def restore(request, pk: int):
    """Take a deal out of the trash, back where it was on its board."""
    _managers_only(request)
    opportunity = trashed_opportunities(request.user).filter(pk=pk).first()
    if opportunity is None:
        raise Http404("That opportunity is not in the trash.")
    back = reverse("opportunities:trash")
    try:
        opportunity_restore(opportunity=opportunity, user=request.user)
    except ValidationError as exc:
        return answer(request, message=" ".join(exc.messages), level="error", redirect_to=back)
    link = reverse("opportunities:detail", args=[opportunity.pk])
    message = f"Restored “{opportunity.name}” to {opportunity.stage.name}."
    if request.htmx:
        # The row leaves the table; the toast says where the deal went.
        return answer(request, message=message, fragment=lambda: "", redirect_to=back)
    return answer(request, message=message, redirect_to=link)
