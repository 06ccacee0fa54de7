"""The opportunity record: what its page shows and how its views answer.

The record's views live in record_details.py (the page, its edit form, status),
record_activity.py (notes, tasks, communication), contacts.py and creating.py. Each
reads the opportunity through the visibility selector (404 for others' opportunities),
checks the model permission for writes (403), calls one service and answers with
`record_answer`: for htmx the partials of the record template that changed, without
JavaScript a redirect back to the record (or the whole page when the input was refused).
Invalid input answers 422 with the form re-rendered (records.js lets htmx swap it).
"""

from functools import cached_property

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from opportunities.forms_records import (
    SOURCE_LIST_ID,
    CommunicationForm,
    ContactForm,
    NoteForm,
    OpportunityEditForm,
    TaskForm,
)
from opportunities.models import LostReason, Opportunity
from opportunities.selectors import source_choices, stages_of
from opportunities.selectors_records import (
    record_activity,
    record_opportunity,
    time_in_stages,
    timeline,
)
from opportunities.views.deal_context import deal_fields_context
from opportunities.views.htmx import NOT_VISIBLE, answer, safe_next

DETAIL = "opportunities/detail.html"
PANEL_TARGET = "record-panel"
# Tells an open board to redraw itself (records.js listens), e.g. after the value changed.
CHANGED_EVENT = "crm:opportunity-changed"


class Record:
    """What the record template shows; each part is read only if the template uses it."""

    def __init__(self, request, opportunity: Opportunity):
        self.request, self.opportunity = request, opportunity

    @cached_property
    def activity(self):
        return record_activity(self.opportunity)

    @cached_property
    def timeline(self):
        return timeline(self.opportunity, self.activity)

    @cached_property
    def stages(self):
        return stages_of(self.opportunity.pipeline)

    @cached_property
    def stage_times(self):
        return time_in_stages(self.opportunity, self.activity.history, self.stages)

    @cached_property
    def sources(self):
        return source_choices(self.request.user)

    @cached_property
    def lost_reasons(self) -> list[LostReason]:
        return list(LostReason.objects.filter(is_active=True))

    @property
    def stage_track(self) -> list[tuple[object, str]]:
        """Each stage of the pipeline with "done", "current" or "todo", for the progress bar."""
        track, state = [], "done"
        for stage in self.stages:
            if stage.pk == self.opportunity.stage_id:
                track.append((stage, "current"))
                state = "todo"
            else:
                track.append((stage, state))
        return track


def can(request, codename: str) -> bool:
    return request.user.has_perm(f"opportunities.{codename}")


def record_or_404(request, pk: int) -> Opportunity:
    opportunity = record_opportunity(request.user, pk).first()
    if opportunity is None:
        raise Http404(NOT_VISIBLE)
    return opportunity


def record_context(request, opportunity: Opportunity, **overrides) -> dict:
    context = {
        "opportunity": opportunity,
        "record": Record(request, opportunity),
        "edit_form": OpportunityEditForm(instance=opportunity),
        "contact_form": ContactForm(instance=opportunity.contact, user=request.user),
        "note_form": NoteForm(),
        "task_form": TaskForm(opportunity=opportunity),
        "comm_form": CommunicationForm(),
        "source_list_id": SOURCE_LIST_ID,
        "today": timezone.localdate(),
        "can_change": can(request, "change_opportunity"),
        "can_add_note": can(request, "add_note"),
        "can_add_task": can(request, "add_task"),
        "can_change_task": can(request, "change_task"),
        "can_log": can(request, "add_communication"),
        "editing_note_id": None,
        **deal_fields_context(request, opportunity),
    }
    context.update(overrides)
    return context


def record_page(request, opportunity: Opportunity, *, status: int = 200, **overrides):
    return render(request, DETAIL, record_context(request, opportunity, **overrides), status=status)


def record_partials(request, opportunity: Opportunity, names: list[str], **overrides) -> str:
    """Several partials of the record; the first is the swap target, the others carry
    hx-swap-oob."""
    context = record_context(request, opportunity, **overrides)
    return "".join(
        render_to_string(f"{DETAIL}#{name}", {**context, "oob": index > 0}, request)
        for index, name in enumerate(names)
    )


def record_url(request, opportunity: Opportunity) -> str:
    """Where a no-JavaScript form returns to: its `next`, or the record."""
    return safe_next(request, reverse("opportunities:detail", args=[opportunity.pk]))


def record_answer(
    request,
    opportunity: Opportunity,
    sections: list[str],
    *,
    message: str = "",
    level: str = "success",
    status: int = 200,
    changed: bool = False,
    with_page: bool | None = None,
    reload: bool = False,
    **overrides,
) -> HttpResponse:
    """The record's answer to a write, for htmx and without JavaScript (see `answer`).

    htmx: the `sections` partials (with `overrides` in their context). Without
    JavaScript: a refusal (status >= 400) shows the whole page with the same overrides
    unless `with_page` is False; otherwise a redirect back with `message`. `reload`
    reads the opportunity again before rendering it (after a write); a redirect does not.
    """
    with_page = status >= 400 if with_page is None else with_page

    def fresh() -> Opportunity:
        return record_or_404(request, opportunity.pk) if reload else opportunity

    return answer(
        request,
        message=message,
        level=level,
        status=status,
        fragment=lambda: record_partials(request, fresh(), sections, **overrides),
        page=(
            (lambda code: record_page(request, fresh(), status=code, **overrides))
            if with_page
            else None
        ),
        redirect_to=record_url(request, opportunity),
        events={CHANGED_EVENT: {"id": opportunity.pk}} if changed else None,
    )


def refused(request, message: str, *, status: int = 400, redirect_to: str = "/") -> HttpResponse:
    """A refusal with no form to show: plain text for htmx (403 without JavaScript
    raises PermissionDenied, anything else goes back with the message)."""
    return answer(request, message=message, level="error", status=status, redirect_to=redirect_to)
