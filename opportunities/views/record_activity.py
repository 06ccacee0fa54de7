"""What happens around a deal, from its record: notes, tasks, the communication log.

A change answers with its section and the timeline (htmx), or a redirect back to the
record; invalid input with the section's form and its errors (422, or the page: 400).
"""

from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from opportunities.forms_records import CommunicationForm, NoteForm, TaskForm
from opportunities.models import Note, Opportunity, Task
from opportunities.selectors_records import open_tasks_for
from opportunities.services import records
from opportunities.views.htmx import INVALID, answer
from opportunities.views.records import record_answer, record_or_404, refused


def _saved(request, opportunity, section: str, message: str, *, changed=False):
    """A change was saved: the section and the timeline, or back to the record."""
    return record_answer(
        request, opportunity, [section, "timeline"], message=message, changed=changed
    )


def _invalid(request, opportunity, section: str, **forms):
    return record_answer(request, opportunity, [section], status=INVALID, **forms)


# --- Notes --------------------------------------------------------------------------------


@require_POST
@permission_required("opportunities.add_note", raise_exception=True)
def note_add(request, pk: int):
    opportunity = record_or_404(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            records.note_create(
                opportunity=opportunity, author=request.user, body=form.cleaned_data["body"]
            )
        except ValidationError as exc:
            form.add_error(None, exc)
    if form.errors:
        return _invalid(request, opportunity, "notes", note_form=form)
    return _saved(request, opportunity, "notes", "Note added.")


def _note_or_404(request, note_id: int) -> tuple[Note, Opportunity]:
    note = get_object_or_404(Note.objects.select_related("author"), pk=note_id)
    return note, record_or_404(request, note.opportunity_id)


@require_http_methods(["GET", "POST"])
@permission_required("opportunities.change_note", raise_exception=True)
def note_edit(request, note_id: int):
    """GET: the note as a form in place; POST: save it. Only the author may."""
    note, opportunity = _note_or_404(request, note_id)
    if note.author_id != request.user.pk:
        return refused(request, "You can only change your own notes.", status=403)
    form = NoteForm(request.POST if request.method == "POST" else None, instance=note)
    if request.method == "POST" and form.is_valid():
        try:
            records.note_update(note=note, user=request.user, body=form.cleaned_data["body"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return _saved(request, opportunity, "notes", "Note saved.")
    return record_answer(
        request,
        opportunity,
        ["notes"],
        status=INVALID if form.errors else 200,
        with_page=True,
        editing_note_id=note.pk,
        edit_note_form=form,
    )


@require_POST
@permission_required("opportunities.delete_note", raise_exception=True)
def note_delete(request, note_id: int):
    note, opportunity = _note_or_404(request, note_id)
    try:
        records.note_delete(note=note, user=request.user)
    except PermissionDenied as exc:
        return refused(request, str(exc) or "You are not allowed to do that.", status=403)
    return _saved(request, opportunity, "notes", "Note deleted.")


# --- Tasks --------------------------------------------------------------------------------


@require_POST
@permission_required("opportunities.add_task", raise_exception=True)
def task_add(request, pk: int):
    opportunity = record_or_404(request, pk)
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
        return _invalid(request, opportunity, "tasks", task_form=form)
    return _saved(request, opportunity, "tasks", "Task added.", changed=True)


@require_POST
@permission_required("opportunities.change_task", raise_exception=True)
def task_done(request, task_id: int):
    """Mark a task done (done=1) or open again (done=0), from the record or from My tasks."""
    task = get_object_or_404(Task, pk=task_id)
    opportunity = record_or_404(request, task.opportunity_id)
    done = request.POST.get("done") == "1"
    records.task_set_done(task=task, user=request.user, done=done)
    message = f"“{task.title}” {'done' if done else 'reopened'}."
    if request.POST.get("from") == "my_tasks":
        return answer(request, message=message, redirect_to=reverse("opportunities:my_tasks"))
    return _saved(request, opportunity, "tasks", message, changed=True)


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
    """Log a call, email, meeting or message with the opportunity's own contact."""
    opportunity = record_or_404(request, pk)
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
        return _invalid(request, opportunity, "comms", comm_form=form)
    return _saved(request, opportunity, "comms", "Communication logged.")
