"""What hangs off an opportunity's record: notes, tasks and the contact's communication log.

None of these change the opportunity row itself, so none of them bump its `version`:
a rep adding a note never makes a colleague's open edit form stale.
"""

from datetime import date, datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from opportunities.models import Communication, CommunicationKind, Note, Opportunity, Task
from opportunities.selectors import contacts_visible_to, users_who_can_see
from opportunities.services.access import ensure_visible


def _require(user, permission: str, message: str) -> None:
    if not user.has_perm(f"opportunities.{permission}"):
        raise PermissionDenied(message)


def _own_note(note: Note, user) -> None:
    if note.author_id != user.pk:
        raise PermissionDenied("You can only change your own notes.")


@transaction.atomic
def note_create(*, opportunity: Opportunity, author, body: str) -> Note:
    """Invariant: a note has an author and a non-blank body."""
    _require(author, "add_note", "You are not allowed to add notes.")
    ensure_visible(author, opportunity)
    now = timezone.now()
    note = Note(opportunity=opportunity, author=author, body=body.strip(), created_at=now)
    note.updated_at = now
    note.full_clean()
    note.save()
    return note


@transaction.atomic
def note_update(*, note: Note, user, body: str) -> Note:
    """Invariant: only the author edits a note; the body stays non-blank."""
    _require(user, "change_note", "You are not allowed to edit notes.")
    ensure_visible(user, note.opportunity)
    _own_note(note, user)
    note.body = body.strip()
    note.updated_at = timezone.now()
    note.full_clean()
    note.save(update_fields=["body", "updated_at"])
    return note


@transaction.atomic
def note_delete(*, note: Note, user) -> None:
    """Invariant: only the author deletes a note."""
    _require(user, "delete_note", "You are not allowed to delete notes.")
    ensure_visible(user, note.opportunity)
    _own_note(note, user)
    note.delete()


@transaction.atomic
def task_create(
    *,
    opportunity: Opportunity,
    user,
    title: str,
    due_on: date | None = None,
    assigned_to=None,
) -> Task:
    """Invariant: a new task is open and assigned (by default to the opportunity's owner)."""
    _require(user, "add_task", "You are not allowed to add tasks.")
    ensure_visible(user, opportunity)
    assigned_to = assigned_to if assigned_to is not None else opportunity.assigned_to
    _check_assignee(opportunity, assigned_to)
    task = Task(
        opportunity=opportunity,
        title=title.strip(),
        due_on=due_on,
        assigned_to=assigned_to,
        created_by=user if user.is_authenticated else None,
    )
    task.full_clean()
    task.save()
    return task


def _check_assignee(opportunity: Opportunity, assigned_to) -> None:
    if (
        assigned_to is not None
        and not users_who_can_see(opportunity).filter(pk=assigned_to.pk).exists()
    ):
        # Their "My tasks" would never show it.
        name = assigned_to.get_full_name() or assigned_to.username
        raise ValidationError({"assigned_to": f"{name} cannot see this opportunity."})


@transaction.atomic
def task_update(*, task: Task, user, title: str, due_on: date | None, assigned_to) -> Task:
    """Invariants: the title stays non-blank; the assignee can see the deal."""
    _require(user, "change_task", "You are not allowed to change tasks.")
    ensure_visible(user, task.opportunity)
    _check_assignee(task.opportunity, assigned_to)
    task.title, task.due_on, task.assigned_to = title.strip(), due_on, assigned_to
    task.full_clean()
    task.save(update_fields=["title", "due_on", "assigned_to"])
    return task


@transaction.atomic
def task_delete(*, task: Task, user) -> None:
    _require(user, "delete_task", "You are not allowed to delete tasks.")
    ensure_visible(user, task.opportunity)
    task.delete()


@transaction.atomic
def task_set_done(*, task: Task, user, done: bool) -> Task:
    """Invariant: done_at is set when done and cleared when reopened; unchanged if already so."""
    _require(user, "change_task", "You are not allowed to change tasks.")
    ensure_visible(user, task.opportunity)
    if done and task.done_at is None:
        task.done_at = timezone.now()
    elif not done:
        task.done_at = None
    task.save(update_fields=["done_at"])
    return task


@transaction.atomic
def communication_log(
    *,
    opportunity: Opportunity,
    user,
    kind: str,
    summary: str,
    occurred_at: datetime | None = None,
) -> Communication:
    """Log a call, email, meeting or message with the opportunity's contact.

    Invariant: the entry belongs to the contact (so every deal of that contact shows it)
    and remembers the opportunity it was logged from.
    """
    _require(user, "add_communication", "You are not allowed to log communication.")
    ensure_visible(user, opportunity)
    if opportunity.contact_id is None:
        raise ValidationError({"summary": "Add a contact to this opportunity first."})
    if kind not in CommunicationKind.values:
        raise ValidationError({"kind": "Choose call, email, meeting or message."})
    now = timezone.now()
    entry = Communication(
        contact_id=opportunity.contact_id,
        opportunity=opportunity,
        kind=kind,
        summary=summary.strip(),
        occurred_at=occurred_at or now,
        author=user,
        created_at=now,
    )
    entry.full_clean()
    entry.save()
    return entry


def _ensure_contact_visible(user, contact_id: int) -> None:
    if not contacts_visible_to(user).filter(pk=contact_id).exists():
        raise Communication.DoesNotExist("No such contact.")


@transaction.atomic
def communication_update(
    *, entry: Communication, user, kind: str, summary: str, occurred_at: datetime
) -> Communication:
    """Invariant: an entry stays on its contact; only its kind, summary and time change."""
    _require(user, "change_communication", "You are not allowed to change the log.")
    _ensure_contact_visible(user, entry.contact_id)
    if kind not in CommunicationKind.values:
        raise ValidationError({"kind": "Choose call, email, meeting or message."})
    entry.kind, entry.summary, entry.occurred_at = kind, summary.strip(), occurred_at
    entry.full_clean()
    entry.save(update_fields=["kind", "summary", "occurred_at"])
    return entry


@transaction.atomic
def communication_delete(*, entry: Communication, user) -> None:
    _require(user, "delete_communication", "You are not allowed to delete log entries.")
    _ensure_contact_visible(user, entry.contact_id)
    entry.delete()
