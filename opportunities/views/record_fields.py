"""The record's deal fields: close date, probability, tags, custom fields, followers,
a move to another pipeline and the move to the trash.

Each view reads the deal through the visibility selector (404 for others' deals), parses
with a form (opportunities.forms_fields), calls the services and answers with the whole
record (every form on it carries the deal's version, which each write moves on), or
without JavaScript a redirect back, or the page with the input kept when refused.
"""

from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.views.decorators.http import require_POST

from opportunities.errors import StaleVersion
from opportunities.forms import first_error
from opportunities.forms_fields import (
    DealFieldsForm,
    FollowerForm,
    PipelineMoveForm,
    VersionForm,
)
from opportunities.selectors import opportunities_visible_to
from opportunities.services.opportunities import opportunity_delete, opportunity_update
from opportunities.services.related import (
    opportunity_set_custom_values,
    opportunity_set_followers,
    opportunity_set_tags,
)
from opportunities.views.deal_context import DealFields
from opportunities.views.htmx import INVALID, answer
from opportunities.views.records import record_answer, record_or_404, record_url, refused

STALE = "Someone else changed this opportunity first; it now shows the latest values."


def _refused_with_form(request, pk: int, **bound):
    """The record again (as stored: nothing was saved) with the refused input and messages."""
    opportunity = record_or_404(request, pk)
    deal = DealFields(request, opportunity, **bound)
    return record_answer(request, opportunity, ["record"], status=INVALID, deal=deal)


def _stale(request, opportunity):
    return record_answer(
        request,
        opportunity,
        ["record"],
        reload=True,
        status=409,
        message=STALE,
        level="error",
        with_page=False,
    )


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def fields_save(request, pk: int):
    """Save close date, probability, tags and custom fields together, or none of them."""
    opportunity = record_or_404(request, pk)
    form = DealFieldsForm(request.POST, opportunity=opportunity)
    if not form.is_valid():
        return _refused_with_form(request, pk, form=form)
    data = form.cleaned_data
    try:
        with transaction.atomic():
            if opportunity.version != data["version"]:
                raise StaleVersion(opportunity.pk)
            opportunity = opportunity_update(
                opportunity=opportunity,
                user=request.user,
                expected_close_date=data["expected_close_date"],
                probability=data["probability"],
            )
            opportunity = opportunity_set_tags(
                opportunity=opportunity, user=request.user, names=data["tags"]
            )
            opportunity = opportunity_set_custom_values(
                opportunity=opportunity, user=request.user, values=form.custom_values
            )
    except StaleVersion:
        return _stale(request, opportunity)
    except PermissionDenied as exc:
        return refused(request, str(exc) or "You are not allowed to do that.", status=403)
    except ValidationError as exc:
        _errors_onto(form, exc)
        return _refused_with_form(request, pk, form=form)
    return record_answer(
        request, opportunity, ["record"], message="Saved.", changed=True, reload=True
    )


def _errors_onto(form: DealFieldsForm, exc: ValidationError) -> None:
    """A service's refusal shown on the form (custom field messages name their field)."""
    for key, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
        if key in form.fields and key != "version":
            form.add_error(key, messages)
        else:
            form.add_error(None, messages)


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def followers_save(request, pk: int):
    """Add or remove a follower; followers then see and change the deal."""
    opportunity = record_or_404(request, pk)
    followers = list(opportunity.followers.all())
    form = FollowerForm(request.POST, opportunity=opportunity, followers=followers)
    if not form.is_valid():
        return _refused_with_form(request, pk, follower_error=first_error(form))
    try:
        opportunity = opportunity_set_followers(
            opportunity=opportunity,
            user=request.user,
            followers=form.new_followers,
            version=form.cleaned_data["version"],
        )
    except StaleVersion:
        return _stale(request, opportunity)
    except PermissionDenied as exc:
        return refused(request, str(exc) or "You are not allowed to do that.", status=403)
    except ValidationError as exc:
        return _refused_with_form(request, pk, follower_error=" ".join(exc.messages))
    added, removed = form.cleaned_data.get("add"), form.cleaned_data.get("remove")
    person = added or removed
    name = person.get_full_name() or person.get_username()
    message = f"{name} now follows it." if added else f"{name} no longer follows it."
    if not opportunities_visible_to(request.user).filter(pk=pk).exists():
        # The user unfollowed a deal they saw only as a follower.
        return answer(
            request,
            message=message,
            redirect_to=reverse("opportunities:board", args=[opportunity.pipeline_id]),
            htmx_redirect=True,
        )
    return record_answer(
        request, opportunity, ["record"], message=message, changed=True, reload=True
    )


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def pipeline_move(request, pk: int):
    """Move the deal to a stage of another pipeline (history keeps both pipelines)."""
    opportunity = record_or_404(request, pk)
    form = PipelineMoveForm(request.POST, opportunity=opportunity)
    if not form.is_valid():
        return _refused_with_form(request, pk, move_error=first_error(form))
    stage = form.cleaned_data["stage"]
    try:
        opportunity = opportunity_update(
            opportunity=opportunity,
            user=request.user,
            version=form.cleaned_data["version"],
            pipeline=stage.pipeline,
            stage=stage,
        )
    except StaleVersion:
        return _stale(request, opportunity)
    except PermissionDenied as exc:
        return refused(request, str(exc) or "You are not allowed to do that.", status=403)
    except ValidationError as exc:
        return _refused_with_form(request, pk, move_error=" ".join(exc.messages))
    return record_answer(
        request,
        opportunity,
        ["record"],
        message=f"Moved to {stage.pipeline.name} › {stage.name}.",
        changed=True,
        reload=True,
    )


@require_POST
@permission_required("opportunities.delete_opportunity", raise_exception=True)
def delete(request, pk: int):
    """Move the deal to the trash (managers can restore it for 30 days)."""
    opportunity = record_or_404(request, pk)
    form = VersionForm(request.POST)
    if not form.is_valid():
        return refused(request, first_error(form), redirect_to=record_url(request, opportunity))
    try:
        opportunity_delete(
            opportunity=opportunity, user=request.user, version=form.cleaned_data["version"]
        )
    except StaleVersion:
        return _stale(request, opportunity)
    except PermissionDenied as exc:
        return refused(request, str(exc) or "You are not allowed to do that.", status=403)
    return answer(
        request,
        message=f"“{opportunity.name}” is in the trash.",
        redirect_to=reverse("opportunities:board", args=[opportunity.pipeline_id]),
        htmx_redirect=True,
    )
