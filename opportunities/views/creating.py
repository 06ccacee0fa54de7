"""Creating opportunities: the full "new opportunity" form and the board's quick-add."""

from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from opportunities.forms import first_error
from opportunities.forms_fields import NewDealExtrasForm
from opportunities.forms_records import (
    SOURCE_LIST_ID,
    ContactForm,
    OpportunityCreateForm,
    QuickAddForm,
)
from opportunities.models import Status
from opportunities.selectors import (
    Column,
    header_columns,
    opportunities_visible_to,
    pipelines_for_board,
    source_choices,
    stages_of,
    with_card_fields,
)
from opportunities.services import editing
from opportunities.services.related import opportunity_set_custom_values
from opportunities.views.board import board_context, filtered
from opportunities.views.contacts import CONTACT_NOT_VISIBLE
from opportunities.views.htmx import answer, safe_next
from opportunities.views.record_details import apply_service_errors
from opportunities.views.records import refused
from pipelines.models import Pipeline, Stage

BOARD = "opportunities/board.html"
ARCHIVED = "The pipeline “{}” is archived; new opportunities go into an active pipeline."


@require_http_methods(["GET", "POST"])
@permission_required("opportunities.add_opportunity", raise_exception=True)
def create(request):
    """The full "new opportunity" form (pipeline, stage, status, value, source, contact, owner)."""
    if request.method == "GET":
        initial = {"assigned_to": request.user.pk, "status": Status.OPEN}
        for key in ("pipeline", "stage", "name", "value"):
            if request.GET.get(key):
                initial[key] = request.GET[key]
        if "pipeline" not in initial:
            stage = Stage.objects.filter(pk=_id_or_none(request.GET.get("stage"))).first()
            pipelines = pipelines_for_board()
            if stage is not None:
                initial["pipeline"] = stage.pipeline_id
            elif len(pipelines) == 1:
                initial["pipeline"] = pipelines[0].pk
        form = OpportunityCreateForm(initial=initial)
        contact_form = ContactForm(
            initial={"name": request.GET.get("contact_name", "")}, user=request.user
        )
        return _create_page(request, form, contact_form, NewDealExtrasForm())

    form = OpportunityCreateForm(request.POST)
    contact_form = ContactForm(request.POST, user=request.user)
    extras = NewDealExtrasForm(request.POST)
    error = None
    forms_ok = form.is_valid() & contact_form.is_valid() & extras.is_valid()
    custom_values = extras.values_for(form.cleaned_data["pipeline"]) if forms_ok else {}
    forms_ok = forms_ok and extras.is_valid()
    if contact_form.picks_an_unknown_contact:
        raise Http404(CONTACT_NOT_VISIBLE)
    if forms_ok:
        data = form.cleaned_data
        try:
            with transaction.atomic():
                opportunity = _create_with_fields(
                    request, data, contact_form, extras, custom_values
                )
        except PermissionDenied as exc:
            return refused(request, str(exc) or "You are not allowed to do that.", status=403)
        except ValidationError as exc:
            error = apply_service_errors(exc, form, contact_form)
        else:
            if opportunities_visible_to(request.user).filter(pk=opportunity.pk).exists():
                target = reverse("opportunities:detail", args=[opportunity.pk])
            else:
                target = reverse("opportunities:board", args=[opportunity.pipeline_id])
            message = f"Created “{opportunity.name}”."
            return answer(request, message=message, redirect_to=target, htmx_redirect=True)
    return _create_page(request, form, contact_form, extras, status=400, form_error=error)


def _create_with_fields(request, data, contact_form, extras, custom_values):
    """The deal with its contact and close date, then its custom fields (one transaction)."""
    opportunity = editing.opportunity_create_with_contact(
        user=request.user,
        pipeline=data["pipeline"],
        stage=data["stage"],
        name=data["name"],
        value=data["value"],
        source=data["source"],
        assigned_to=data["assigned_to"],
        status=data["status"],
        lost_reason=data["lost_reason"],
        contact=contact_form.picked,
        contact_details=contact_form.details,
        expected_close_date=extras.cleaned_data["expected_close_date"],
    )
    if custom_values:
        opportunity = opportunity_set_custom_values(
            opportunity=opportunity, user=request.user, values=custom_values
        )
    return opportunity


def _id_or_none(value) -> int | None:
    """A row id from a query parameter, or None for anything that cannot be one."""
    text = (value or "").strip()
    if text.isascii() and text.isdigit() and 0 < int(text) < 2**63:
        return int(text)
    return None


def _create_page(request, form, contact_form, extras=None, *, status=200, **extra):
    context = {
        "form": form,
        "contact_form": contact_form,
        "extras": extras,
        "sources": source_choices(request.user),
        "source_list_id": SOURCE_LIST_ID,
        **extra,
    }
    return render(request, "opportunities/record_new.html", context, status=status)


def _card_and_head(request, pipeline, stage, filterset, opportunity_id) -> str:
    """The new card as the board shows it (if the filters show it) and its column's header."""
    context = board_context(request, pipeline, filterset, stages_of(pipeline))
    queryset: QuerySet = filterset.qs
    card = with_card_fields(queryset.filter(pk=opportunity_id)).first()
    html = ""
    if card is not None:
        html += render_to_string(f"{BOARD}#card", {**context, "card": card}, request)
    (column,) = header_columns(queryset, [stage])
    return html + render_to_string(
        f"{BOARD}#column_head", {**context, "column": column, "oob": True}, request
    )


@require_POST
@permission_required("opportunities.add_opportunity", raise_exception=True)
def quick_add(request, pipeline_id: int, stage_id: int):
    """The form at the top of a column: name, contact, value; lands on top, Open, mine."""
    pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
    stage = get_object_or_404(pipeline.stages, pk=stage_id)
    form = QuickAddForm(request.POST)
    error = None if form.is_valid() else first_error(form)
    if error is None and pipeline.is_archived:
        error = ARCHIVED.format(pipeline.name)
    if error is None:
        contact_name = form.cleaned_data["contact_name"].strip()
        try:
            opportunity = editing.opportunity_create_with_contact(
                user=request.user,
                pipeline=pipeline,
                stage=stage,
                name=form.cleaned_data["name"],
                value=form.cleaned_data["value"] or 0,
                assigned_to=request.user,
                contact_details={"name": contact_name} if contact_name else None,
            )
        except PermissionDenied as exc:
            return refused(request, str(exc) or "You are not allowed to do that.", status=403)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if error is not None:
        context = {
            "quick_form": form,
            "quick_column": Column(stage=stage),
            "pipeline": pipeline,
            "stage": stage,
            "error": error,
        }
        return answer(
            request,
            message=error,
            status=400,
            page=lambda status: render(
                request, "opportunities/record_new.html", context, status=status
            ),
        )
    return answer(
        request,
        message=f"Added “{opportunity.name}” to {stage.name}.",
        # The board's filters come along in the form's `filters` field (its hx-vals).
        fragment=lambda: _card_and_head(
            request, pipeline, stage, filtered(request, pipeline), opportunity.pk
        ),
        redirect_to=safe_next(request, reverse("opportunities:board", args=[pipeline.pk])),
    )
