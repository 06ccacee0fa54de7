"""The record page (or the board's side panel), its details form and its status buttons."""

from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from opportunities.errors import StaleVersion
from opportunities.forms import StatusForm, first_error
from opportunities.forms_records import ContactForm, OpportunityEditForm
from opportunities.models import Opportunity, Status
from opportunities.selectors import opportunities_visible_to
from opportunities.services import editing
from opportunities.services.moves import opportunity_set_status
from opportunities.templatetags.crm import money
from opportunities.views.contacts import CONTACT_NOT_VISIBLE
from opportunities.views.htmx import INVALID, answer
from opportunities.views.records import (
    DETAIL,
    PANEL_TARGET,
    record_answer,
    record_context,
    record_or_404,
    record_page,
    record_url,
    refused,
)


@require_GET
def detail(request, pk: int):
    """The record page; for htmx, the side panel the board opens, or just the record."""
    opportunity = record_or_404(request, pk)
    if request.htmx and request.htmx.target == PANEL_TARGET:
        return render(request, f"{DETAIL}#panel", record_context(request, opportunity))
    if request.htmx:
        return render(request, f"{DETAIL}#record", record_context(request, opportunity))
    return record_page(request, opportunity)


def _conflict_rows(opportunity: Opportunity, form, contact_form) -> list[dict]:
    """The fields where what the user typed differs from what is now stored."""
    rows = []
    if form.is_valid():
        for name in ("name", "value", "source", "assigned_to", "stage", "status", "lost_reason"):
            mine, current = form.cleaned_data.get(name), getattr(opportunity, name)
            if (mine or None) != (current or None):
                rows.append(_conflict_row(form[name], mine, current))
    if contact_form.is_valid():
        contact = opportunity.contact
        for name, mine in contact_form.details.items():
            current = getattr(contact, name) if contact else ""
            if mine != current:
                rows.append(_conflict_row(contact_form[name], mine, current))
    return rows


def _conflict_row(bound_field, mine, current) -> dict:
    field = bound_field.field

    def shown(value):
        if value in (None, ""):
            return "—"
        if bound_field.name == "value":
            return money(value)
        if hasattr(field, "label_from_instance") and not isinstance(value, str):
            return field.label_from_instance(value)
        if bound_field.name == "status":
            return Status(value).label
        return str(value)

    return {"label": bound_field.label, "mine": shown(mine), "current": shown(current)}


def apply_service_errors(exc: ValidationError, form, contact_form) -> str | None:
    """Put a service's field errors next to the fields; return what fits no field."""
    leftover = []
    for key, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        if key.startswith("contact_") and key[8:] in contact_form.fields:
            contact_form.add_error(key[8:], errors)
        elif key in form.fields:
            form.add_error(key, errors)
        else:
            leftover += errors
    return " ".join(leftover) or None


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def edit(request, pk: int):
    """Save the details form: deal fields and contact, guarded by `version`."""
    opportunity = record_or_404(request, pk)
    form = OpportunityEditForm(request.POST, instance=opportunity)
    contact_form = ContactForm(request.POST, instance=opportunity.contact, user=request.user)
    forms_ok = form.is_valid() & contact_form.is_valid()
    if contact_form.picks_an_unknown_contact:
        raise Http404(CONTACT_NOT_VISIBLE)
    error = None
    if forms_ok:
        data = form.cleaned_data
        try:
            opportunity = editing.opportunity_update_with_contact(
                opportunity=opportunity,
                version=data["version"],
                user=request.user,
                contact=contact_form.picked,
                contact_details=contact_form.details,
                name=data["name"],
                value=data["value"],
                source=data["source"],
                assigned_to=data["assigned_to"],
                stage=data["stage"],
                status=data["status"],
                lost_reason=data["lost_reason"],
            )
        except StaleVersion:
            return _edit_conflict(request, pk, form, contact_form)
        except PermissionDenied as exc:
            return refused(request, str(exc) or "You are not allowed to do that.", status=403)
        except ValidationError as exc:
            error = apply_service_errors(exc, form, contact_form)
    if not forms_ok or error is not None:
        return record_answer(
            request,
            opportunity,
            ["details"],
            status=INVALID,
            reload=True,
            edit_form=form,
            contact_form=contact_form,
            form_error=error,
        )
    if not opportunities_visible_to(request.user).filter(pk=pk).exists():
        # Reassigned to someone else: this rep can no longer see it.
        return answer(
            request,
            message=f"Saved “{opportunity.name}”; it is now assigned to someone else.",
            redirect_to=reverse("opportunities:board", args=[opportunity.pipeline_id]),
            htmx_redirect=True,
        )
    return record_answer(
        request,
        opportunity,
        ["record"],
        message=f"Saved “{opportunity.name}”.",
        changed=True,
        reload=True,
    )


def _edit_conflict(request, pk, form, contact_form) -> HttpResponse:
    """Someone saved first: show the stored values, and what this user typed beside them."""
    current = record_or_404(request, pk)
    resubmit = [
        (key, value)
        for key, values in request.POST.lists()
        if key not in ("csrfmiddlewaretoken", "version")
        for value in values
    ] + [("version", str(current.version))]
    conflict = {"rows": _conflict_rows(current, form, contact_form), "resubmit": resubmit}
    return record_answer(request, current, ["record"], status=409, conflict=conflict)


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def set_status(request, pk: int):
    """Won / Lost (with reason) / Abandoned / Reopen from the record, via the board's service."""
    opportunity = record_or_404(request, pk)
    form = StatusForm(request.POST)
    error = None if form.is_valid() else first_error(form)
    if error is None:
        try:
            opportunity_set_status(
                opportunity=opportunity,
                status=form.cleaned_data["status"],
                lost_reason=form.cleaned_data["lost_reason"],
                version=form.cleaned_data["version"],
                user=request.user,
            )
        except StaleVersion as exc:
            return record_answer(
                request,
                opportunity,
                ["record"],
                reload=True,
                status=409,
                message=exc.message.replace("card", "opportunity"),
                level="error",
                with_page=False,
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if error:
        return refused(request, error, redirect_to=record_url(request, opportunity))
    return record_answer(
        request,
        opportunity,
        ["record"],
        message=f"“{opportunity.name}” is now {Status(opportunity.status).label}.",
        changed=True,
        reload=True,
    )
