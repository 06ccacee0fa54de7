"""The opportunity record: page or board side panel, its edits, notes, tasks, communication.

Every view reads the opportunity through the visibility selector (404 for others'
opportunities), checks the model permission for writes (403), calls one service and
renders the record page or, for htmx, the partial of the same template that changed.
Invalid input answers 422 with the form re-rendered (records.js lets htmx swap it).
"""

from functools import cached_property

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from opportunities.errors import StaleVersion
from opportunities.filters import OpportunityFilter
from opportunities.forms import StatusForm, first_error
from opportunities.forms_records import (
    SOURCE_LIST_ID,
    CommunicationForm,
    ContactForm,
    NoteForm,
    OpportunityCreateForm,
    OpportunityEditForm,
    QuickAddForm,
    TaskForm,
)
from opportunities.models import Contact, LostReason, Note, Opportunity, Status, Task
from opportunities.selectors import (
    Column,
    opportunities_visible_to,
    pipelines_for_board,
    source_choices,
    stage_totals,
    stages_of,
    with_card_fields,
)
from opportunities.selectors_records import (
    contacts_matching,
    open_tasks_for,
    record_activity,
    record_opportunity,
    time_in_stages,
    timeline,
)
from opportunities.services import editing, records
from opportunities.services.moves import opportunity_set_status
from opportunities.templatetags.crm import money
from opportunities.views.board import _board_context  # the card partial needs its context
from opportunities.views.htmx import NOT_VISIBLE, error_response, safe_next, with_toast
from pipelines.models import Pipeline, Stage

DETAIL = "opportunities/detail.html"
BOARD = "opportunities/board.html"
PANEL_TARGET = "record-panel"
# Tells an open board to redraw itself (records.js listens), e.g. after the value changed.
CHANGED_EVENT = "crm:opportunity-changed"
INVALID = 422


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
        return source_choices()

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


def _can(request, codename: str) -> bool:
    return request.user.has_perm(f"opportunities.{codename}")


def _record_or_404(request, pk: int) -> Opportunity:
    opportunity = record_opportunity(request.user, pk).first()
    if opportunity is None:
        raise Http404(NOT_VISIBLE)
    return opportunity


def _context(request, opportunity: Opportunity, **overrides) -> dict:
    context = {
        "opportunity": opportunity,
        "record": Record(request, opportunity),
        "edit_form": OpportunityEditForm(instance=opportunity),
        "contact_form": ContactForm(instance=opportunity.contact),
        "note_form": NoteForm(),
        "task_form": TaskForm(opportunity=opportunity),
        "comm_form": CommunicationForm(),
        "source_list_id": SOURCE_LIST_ID,
        "today": timezone.localdate(),
        "can_change": _can(request, "change_opportunity"),
        "can_add_note": _can(request, "add_note"),
        "can_add_task": _can(request, "add_task"),
        "can_change_task": _can(request, "change_task"),
        "can_log": _can(request, "add_communication"),
        "editing_note_id": None,
    }
    context.update(overrides)
    return context


def _page(request, opportunity: Opportunity, *, status: int = 200, **overrides) -> HttpResponse:
    return render(request, DETAIL, _context(request, opportunity, **overrides), status=status)


def _partials(request, opportunity, names, *, status=200, toast=None, changed=False, **overrides):
    """Several partials of the record in one htmx answer; the first is the swap target,
    the others carry hx-swap-oob."""
    context = _context(request, opportunity, **overrides)
    html = "".join(
        render_to_string(f"{DETAIL}#{name}", {**context, "oob": index > 0}, request)
        for index, name in enumerate(names)
    )
    response = HttpResponse(html, status=status)
    if changed:
        response = trigger_client_event(response, CHANGED_EVENT, {"id": opportunity.pk})
    if toast:
        response = with_toast(response, toast)
    return response


def _back_to_record(request, opportunity: Opportunity, message: str | None = None):
    if message:
        messages.success(request, message)
    return redirect(safe_next(request, reverse("opportunities:detail", args=[opportunity.pk])))


def _denied(request, exc: PermissionDenied):
    message = str(exc) or "You are not allowed to do that."
    if request.htmx:
        return error_response(message, status=403)
    raise exc


# --- The record ---------------------------------------------------------------------------


@require_GET
def detail(request, pk: int):
    """The record page; for htmx, the side panel the board opens, or just the record."""
    opportunity = _record_or_404(request, pk)
    if request.htmx and request.htmx.target == PANEL_TARGET:
        return render(request, f"{DETAIL}#panel", _context(request, opportunity))
    if request.htmx:
        return render(request, f"{DETAIL}#record", _context(request, opportunity))
    return _page(request, opportunity)


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


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def edit(request, pk: int):
    """Save the details form: deal fields and contact, guarded by `version`."""
    opportunity = _record_or_404(request, pk)
    form = OpportunityEditForm(request.POST, instance=opportunity)
    contact_form = ContactForm(request.POST, instance=opportunity.contact)
    forms_ok = form.is_valid() & contact_form.is_valid()
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
            return _denied(request, exc)
        except ValidationError as exc:
            error = _apply_service_errors(exc, form, contact_form)
    if not forms_ok or error is not None:
        overrides = {"edit_form": form, "contact_form": contact_form, "form_error": error}
        opportunity = _record_or_404(request, pk)
        if request.htmx:
            return _partials(request, opportunity, ["details"], status=INVALID, **overrides)
        return _page(request, opportunity, status=400, **overrides)

    if not opportunities_visible_to(request.user).filter(pk=pk).exists():
        # Reassigned to someone else: this rep can no longer see it.
        message = f"Saved “{opportunity.name}”; it is now assigned to someone else."
        board_url = reverse("opportunities:board", args=[opportunity.pipeline_id])
        messages.success(request, message)
        if request.htmx:
            response = HttpResponse("")
            response["HX-Redirect"] = board_url
            return response
        return redirect(board_url)
    message = f"Saved “{opportunity.name}”."
    if not request.htmx:
        return _back_to_record(request, opportunity, message)
    opportunity = _record_or_404(request, pk)
    return _partials(request, opportunity, ["record"], toast=message, changed=True)


def _apply_service_errors(exc: ValidationError, form, contact_form) -> str | None:
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


def _edit_conflict(request, pk, form, contact_form) -> HttpResponse:
    """Someone saved first: show the stored values, and what this user typed beside them."""
    current = _record_or_404(request, pk)
    resubmit = [
        (key, value)
        for key, values in request.POST.lists()
        if key not in ("csrfmiddlewaretoken", "version")
        for value in values
    ] + [("version", str(current.version))]
    overrides = {
        "conflict": {"rows": _conflict_rows(current, form, contact_form), "resubmit": resubmit},
    }
    if request.htmx:
        return _partials(request, current, ["record"], status=409, **overrides)
    return _page(request, current, status=409, **overrides)


@require_POST
@permission_required("opportunities.change_opportunity", raise_exception=True)
def set_status(request, pk: int):
    """Won / Lost (with reason) / Abandoned / Reopen from the record, via the board's service."""
    opportunity = _record_or_404(request, pk)
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
            current = _record_or_404(request, pk)
            if request.htmx:
                response = _partials(request, current, ["record"], status=409)
                return with_toast(response, exc.message.replace("card", "opportunity"), "error")
            messages.error(request, exc.message)
            return _back_to_record(request, current)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if error:
        if request.htmx:
            return error_response(error)
        messages.error(request, error)
        return _back_to_record(request, opportunity)
    message = f"“{opportunity.name}” is now {Status(opportunity.status).label}."
    if not request.htmx:
        return _back_to_record(request, opportunity, message)
    opportunity = _record_or_404(request, pk)
    return _partials(request, opportunity, ["record"], toast=message, changed=True)


# --- Contacts ---------------------------------------------------------------------------


@require_GET
@permission_required("opportunities.view_contact", raise_exception=True)
def contact_search(request):
    """Search as you type in the record form: at most ten matching contacts."""
    query = request.GET.get("contact-search", request.GET.get("q", ""))
    context = {"contacts": contacts_matching(query), "query": query.strip()}
    return render(request, f"{DETAIL}#contact_results", context)


@require_GET
@permission_required("opportunities.view_contact", raise_exception=True)
def contact_pick(request):
    """The contact block filled with a picked contact, or blank for a new one."""
    contact = None
    if request.GET.get("id"):
        contact = get_object_or_404(Contact, pk=request.GET["id"])
    context = {"contact_form": ContactForm(instance=contact), "picked": True}
    return render(request, f"{DETAIL}#contact_fields", context)


# --- Notes --------------------------------------------------------------------------------


def _section_response(request, opportunity, section, *, toast=None, changed=False, **overrides):
    return _partials(
        request, opportunity, [section, "timeline"], toast=toast, changed=changed, **overrides
    )


@require_POST
@permission_required("opportunities.add_note", raise_exception=True)
def note_add(request, pk: int):
    opportunity = _record_or_404(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            records.note_create(
                opportunity=opportunity, author=request.user, body=form.cleaned_data["body"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if form.errors:
        if request.htmx:
            return _partials(request, opportunity, ["notes"], status=INVALID, note_form=form)
        return _page(request, opportunity, status=400, note_form=form)
    if not request.htmx:
        return _back_to_record(request, opportunity, "Note added.")
    return _section_response(request, opportunity, "notes", toast="Note added.")


def _note_or_404(request, note_id: int) -> tuple[Note, Opportunity]:
    note = get_object_or_404(Note.objects.select_related("author"), pk=note_id)
    return note, _record_or_404(request, note.opportunity_id)


@require_http_methods(["GET", "POST"])
@permission_required("opportunities.change_note", raise_exception=True)
def note_edit(request, note_id: int):
    """GET: the note as a form in place; POST: save it. Only the author may."""
    note, opportunity = _note_or_404(request, note_id)
    if note.author_id != request.user.pk:
        return _denied(request, PermissionDenied("You can only change your own notes."))
    form = NoteForm(request.POST if request.method == "POST" else None, instance=note)
    if request.method == "POST" and form.is_valid():
        try:
            records.note_update(note=note, user=request.user, body=form.cleaned_data["body"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            if not request.htmx:
                return _back_to_record(request, opportunity, "Note saved.")
            return _section_response(request, opportunity, "notes", toast="Note saved.")
    status = INVALID if form.errors else 200
    overrides = {"editing_note_id": note.pk, "edit_note_form": form}
    if request.htmx:
        return _partials(request, opportunity, ["notes"], status=status, **overrides)
    return _page(request, opportunity, status=400 if form.errors else 200, **overrides)


@require_POST
@permission_required("opportunities.delete_note", raise_exception=True)
def note_delete(request, note_id: int):
    note, opportunity = _note_or_404(request, note_id)
    try:
        records.note_delete(note=note, user=request.user)
    except PermissionDenied as exc:
        return _denied(request, exc)
    if not request.htmx:
        return _back_to_record(request, opportunity, "Note deleted.")
    return _section_response(request, opportunity, "notes", toast="Note deleted.")


# --- Tasks --------------------------------------------------------------------------------


@require_POST
@permission_required("opportunities.add_task", raise_exception=True)
def task_add(request, pk: int):
    opportunity = _record_or_404(request, pk)
    form = TaskForm(request.POST, opportunity=opportunity)
    if form.is_valid():
        try:
            records.task_create(
                opportunity=opportunity,
                user=request.user,
                title=form.cleaned_data["title"],
                due_on=form.cleaned_data["due_on"],
                assigned_to=form.cleaned_data["assigned_to"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if form.errors:
        if request.htmx:
            return _partials(request, opportunity, ["tasks"], status=INVALID, task_form=form)
        return _page(request, opportunity, status=400, task_form=form)
    if not request.htmx:
        return _back_to_record(request, opportunity, "Task added.")
    return _section_response(request, opportunity, "tasks", toast="Task added.", changed=True)


@require_POST
@permission_required("opportunities.change_task", raise_exception=True)
def task_done(request, task_id: int):
    """Mark a task done (done=1) or open again (done=0), from the record or from My tasks."""
    task = get_object_or_404(Task, pk=task_id)
    opportunity = _record_or_404(request, task.opportunity_id)
    done = request.POST.get("done") == "1"
    records.task_set_done(task=task, user=request.user, done=done)
    message = f"“{task.title}” {'done' if done else 'reopened'}."
    if request.POST.get("from") == "my_tasks":
        if not request.htmx:
            messages.success(request, message)
            return redirect("opportunities:my_tasks")
        return with_toast(HttpResponse(""), message)
    if not request.htmx:
        return _back_to_record(request, opportunity, message)
    return _section_response(request, opportunity, "tasks", toast=message, changed=True)


@require_GET
def my_tasks(request):
    """The signed-in user's open tasks across the opportunities they can see."""
    tasks = open_tasks_for(request.user)
    today = timezone.localdate()
    overdue = sum(1 for task in tasks if task.due_on and task.due_on < today)
    context = {"tasks": tasks, "today": today, "overdue_count": overdue, "nav": "tasks"}
    return render(request, "opportunities/my_tasks.html", context)


# --- Communication log ----------------------------------------------------------------------


@require_POST
@permission_required("opportunities.add_communication", raise_exception=True)
def communication_add(request, pk: int):
    opportunity = _record_or_404(request, pk)
    form = CommunicationForm(request.POST)
    if form.is_valid():
        try:
            records.communication_log(
                opportunity=opportunity,
                user=request.user,
                kind=form.cleaned_data["kind"],
                summary=form.cleaned_data["summary"],
                occurred_at=form.cleaned_data["occurred_at"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if form.errors:
        if request.htmx:
            return _partials(request, opportunity, ["comms"], status=INVALID, comm_form=form)
        return _page(request, opportunity, status=400, comm_form=form)
    message = "Communication logged."
    if not request.htmx:
        return _back_to_record(request, opportunity, message)
    return _section_response(request, opportunity, "comms", toast=message)


# --- Creating -----------------------------------------------------------------------------


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
            stage = Stage.objects.filter(pk=_int_or_none(request.GET.get("stage"))).first()
            pipelines = pipelines_for_board()
            if stage is not None:
                initial["pipeline"] = stage.pipeline_id
            elif len(pipelines) == 1:
                initial["pipeline"] = pipelines[0].pk
        form = OpportunityCreateForm(initial=initial)
        contact_form = ContactForm(initial={"name": request.GET.get("contact_name", "")})
        return _create_page(request, form, contact_form)

    form = OpportunityCreateForm(request.POST)
    contact_form = ContactForm(request.POST)
    error = None
    if form.is_valid() & contact_form.is_valid():
        data = form.cleaned_data
        try:
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
            )
        except PermissionDenied as exc:
            return _denied(request, exc)
        except ValidationError as exc:
            error = _apply_service_errors(exc, form, contact_form)
        else:
            messages.success(request, f"Created “{opportunity.name}”.")
            if opportunities_visible_to(request.user).filter(pk=opportunity.pk).exists():
                return redirect("opportunities:detail", pk=opportunity.pk)
            return redirect("opportunities:board", pipeline_id=opportunity.pipeline_id)
    return _create_page(request, form, contact_form, status=400, form_error=error)


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _create_page(request, form, contact_form, *, status=200, **extra):
    context = {
        "form": form,
        "contact_form": contact_form,
        "sources": source_choices(),
        "source_list_id": SOURCE_LIST_ID,
        **extra,
    }
    return render(request, "opportunities/record_new.html", context, status=status)


def _board_filters(request, pipeline: Pipeline) -> OpportunityFilter:
    """The board's filters as the quick-add form carried them (the board's hx-vals)."""
    visible = opportunities_visible_to(request.user).filter(pipeline=pipeline)
    return OpportunityFilter(QueryDict(request.POST.get("filters", "")), queryset=visible)


def _card_and_head(request, pipeline, stage, filterset, opportunity_id) -> str:
    """The new card as the board shows it (if the filters show it) and its column's header."""
    context = _board_context(request, pipeline, filterset, stages_of(pipeline))
    queryset: QuerySet = filterset.qs
    card = with_card_fields(queryset.filter(pk=opportunity_id)).first()
    html = ""
    if card is not None:
        html += render_to_string(f"{BOARD}#card", {**context, "card": card}, request)
    count, total = stage_totals(queryset, [stage]).get(stage.pk, (0, 0))
    column = Column(stage=stage, count=count, total=total)
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
            return _denied(request, exc)
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if error is not None:
        if request.htmx:
            return error_response(error)
        context = {
            "quick_form": form,
            "quick_column": Column(stage=stage),
            "pipeline": pipeline,
            "stage": stage,
            "error": error,
        }
        return render(request, "opportunities/record_new.html", context, status=400)

    message = f"Added “{opportunity.name}” to {stage.name}."
    if not request.htmx:
        messages.success(request, message)
        return redirect(safe_next(request, reverse("opportunities:board", args=[pipeline.pk])))
    filterset = _board_filters(request, pipeline)
    html = _card_and_head(request, pipeline, stage, filterset, opportunity.pk)
    return with_toast(HttpResponse(html), message)
