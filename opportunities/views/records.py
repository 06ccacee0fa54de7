from django.shortcuts import get_object_or_404, render

from opportunities.selectors import opportunities_visible_to


def detail(request, pk: int):
    opportunity = get_object_or_404(
        opportunities_visible_to(request.user).select_related(
            "pipeline", "stage", "contact", "assigned_to", "lost_reason"
        ),
        pk=pk,
    )
    return render(request, "opportunities/detail.html", {"opportunity": opportunity})
