"""Reads for the opportunity record: its activity, the history timeline, contacts, my tasks."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from opportunities.models import (
    Communication,
    Contact,
    Note,
    Opportunity,
    OpportunityHistory,
    Status,
    Task,
    TrackedField,
)
from opportunities.selectors import contacts_visible_to, opportunities_visible_to
from pipelines.models import Stage

CONTACT_SEARCH_LIMIT = 10


@dataclass
class TimelineEntry:
    """One line of the record's history, whatever it came from."""

    kind: str  # created, stage, status, note, task, task_done, communication, automation
    at: datetime
    user: object = None
    item: object = None  # the Note, Task, Communication or automation run, for those kinds
    from_stage: Stage | None = None
    to_stage: Stage | None = None
    from_status: str = ""
    to_status: str = ""
    lost_reason: object = None
    # For stage changes: how long the opportunity had been in `from_stage`.
    time_in_previous_stage: timedelta | None = None
    # For the deal's other fields (kind "field"): what changed, from what to what.
    label: str = ""
    old_text: str = ""
    new_text: str = ""

    @property
    def from_status_label(self) -> str:
        return Status(self.from_status).label if self.from_status else ""

    @property
    def to_status_label(self) -> str:
        return Status(self.to_status).label if self.to_status else ""


@dataclass
class StageTime:
    stage: Stage
    duration: timedelta
    is_current: bool = False


@dataclass
class RecordActivity:
    notes: list[Note] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    communications: list[Communication] = field(default_factory=list)
    history: list[OpportunityHistory] = field(default_factory=list)

    @property
    def open_tasks(self) -> list[Task]:
        return [task for task in self.tasks if not task.is_done]


def record_opportunity(user, pk: int) -> QuerySet[Opportunity]:
    """The opportunity with everything its record shows, within the user's visibility."""
    return (
        opportunities_visible_to(user)
        .filter(pk=pk)
        .select_related("pipeline", "stage", "contact", "assigned_to", "lost_reason")
    )


def record_notes(opportunity: Opportunity) -> list[Note]:
    return list(opportunity.notes.select_related("author").order_by("-created_at", "-id"))


def record_tasks(opportunity: Opportunity) -> list[Task]:
    """Open tasks first, soonest due first (undated last), then the done ones."""
    return list(
        opportunity.tasks.select_related("assigned_to", "created_by").order_by(
            F("done_at").asc(nulls_first=True), F("due_on").asc(nulls_last=True), "id"
        )
    )


def record_communications(opportunity: Opportunity) -> list[Communication]:
    """The contact's whole log, from every deal of that contact: newest first."""
    if opportunity.contact_id is None:
        return []
    return list(
        Communication.objects.filter(contact_id=opportunity.contact_id)
        .select_related("author", "opportunity")
        .order_by("-occurred_at", "-id")
    )


def record_history(opportunity: Opportunity) -> list[OpportunityHistory]:
    return list(
        opportunity.history.select_related("from_stage", "to_stage", "user").order_by("at", "id")
    )


def record_activity(opportunity: Opportunity) -> RecordActivity:
    """Everything under the record in four queries, whatever its size."""
    return RecordActivity(
        notes=record_notes(opportunity),
        tasks=record_tasks(opportunity),
        communications=record_communications(opportunity),
        history=record_history(opportunity),
    )


def _history_entries(opportunity: Opportunity, history: list[OpportunityHistory]):
    """Creation, stage and status rows as timeline entries (see `_row_kinds`)."""
    entered_at = None
    last_lost = None
    entries = []
    for row in history:
        if row.field in FIELD_ROWS:
            entries.append(_field_entry(row))
            continue
        kinds = _row_kinds(row)
        if "created" in kinds:
            entries.append(
                TimelineEntry(
                    kind="created",
                    at=row.at,
                    user=row.user,
                    to_stage=row.to_stage,
                    to_status=row.to_status,
                )
            )
            entered_at = row.at
            continue
        if "stage" in kinds:
            entries.append(
                TimelineEntry(
                    kind="stage",
                    at=row.at,
                    user=row.user,
                    from_stage=row.from_stage,
                    to_stage=row.to_stage,
                    time_in_previous_stage=(row.at - entered_at) if entered_at else None,
                )
            )
            entered_at = row.at
        if "status" in kinds:
            entry = TimelineEntry(
                kind="status",
                at=row.at,
                user=row.user,
                from_status=row.from_status,
                to_status=row.to_status,
            )
            entries.append(entry)
            if row.to_status == Status.LOST:
                last_lost = entry
    # History rows do not store the reason; the current one belongs to the latest loss.
    if last_lost is not None and opportunity.status == Status.LOST:
        last_lost.lost_reason = opportunity.lost_reason
    return entries


# History rows of the deal's other fields shown on the timeline (kind "field").
def _row_kinds(row: OpportunityHistory) -> set[str]:
    """What a history row tells the timeline: "created", "stage", "status", or nothing.

    A row records one tracked field and carries the stage and status the deal had after
    it, so only the field says what changed: a value, owner or lost-reason row is not a
    stage or status change (the reason is shown with the loss it belongs to).
    """
    if row.field == TrackedField.CREATED:
        return {"created"}
    if row.field == TrackedField.STAGE:
        kinds = {"stage"} if row.from_stage_id != row.to_stage_id else set()
        if row.from_status != row.to_status:  # an older row that changed both at once
            kinds.add("status")
        return kinds
    if row.field == TrackedField.STATUS:
        return {"status"}
    if row.field:
        return set()
    # Rows written before history was kept per field: one row per stage or status change.
    if row.from_stage_id is None and row.from_status == "":
        return {"created"}
    kinds = {"stage"} if row.from_stage_id != row.to_stage_id else set()
    if row.from_status != row.to_status or row.to_status == Status.LOST:
        kinds.add("status")
    return kinds


FIELD_ROWS = {
    TrackedField.CLOSE_DATE,
    TrackedField.PROBABILITY,
    TrackedField.TAGS,
    TrackedField.FOLLOWERS,
    TrackedField.CUSTOM_FIELD,
    TrackedField.DELETED,
    TrackedField.RESTORED,
}


def _field_entry(row: OpportunityHistory) -> TimelineEntry:
    label, old, new = TrackedField(row.field).label, row.old_value, row.new_value
    if row.field == TrackedField.CUSTOM_FIELD:
        # Stored as "key: value"; the key names the field.
        key, _, old = old.partition(": ")
        new = new.partition(": ")[2]
        label = key
    elif row.field == TrackedField.FOLLOWERS:
        # Ids of users: the count says enough on the timeline.
        old = _count_of(old, "follower")
        new = _count_of(new, "follower")
    elif row.field == TrackedField.PROBABILITY:
        old, new = (f"{v} %" if v else "" for v in (old, new))
    elif row.field in (TrackedField.DELETED, TrackedField.RESTORED):
        old = new = ""
    return TimelineEntry(
        kind="field", at=row.at, user=row.user, label=label, old_text=old, new_text=new
    )


def _count_of(ids: str, noun: str) -> str:
    count = len([part for part in ids.replace(",", " ").split() if part.strip("[]")])
    return f"{count} {noun}{'' if count == 1 else 's'}"


# Runs still queued, or whose rule did not apply (conditions unmet, its own change), did
# nothing on the deal. Plain strings: opportunities never imports automation (arrows).
AUTOMATION_RUNS_HIDDEN = ("pending", "skipped")


def record_automation_runs(opportunity: Opportunity) -> list:
    """What automation rules did (or were refused) on the deal, with their rule: one query."""
    return list(
        opportunity.automation_runs.exclude(outcome__in=AUTOMATION_RUNS_HIDDEN)
        .select_related("rule")
        .order_by("id")
    )


def timeline(opportunity: Opportunity, activity: RecordActivity) -> list[TimelineEntry]:
    """Stage and status changes, notes, tasks, communication and automation runs in one
    list, newest first."""
    entries = _history_entries(opportunity, activity.history)
    entries += [
        TimelineEntry(kind="note", at=note.created_at, user=note.author, item=note)
        for note in activity.notes
    ]
    for task in activity.tasks:
        entries.append(
            TimelineEntry(kind="task", at=task.created_at, user=task.created_by, item=task)
        )
        if task.done_at:
            entries.append(TimelineEntry(kind="task_done", at=task.done_at, item=task))
    entries += [
        TimelineEntry(kind="communication", at=entry.occurred_at, user=entry.author, item=entry)
        for entry in activity.communications
    ]
    # A run sits where its actions ran (after the task it created); older runs lack the time.
    entries += [
        TimelineEntry(kind="automation", at=run.finished_at or run.created_at, item=run)
        for run in record_automation_runs(opportunity)
    ]
    # Stable: equal times keep the order above (a status change after its stage change).
    ordered = sorted(enumerate(entries), key=lambda pair: (pair[1].at, pair[0]), reverse=True)
    return [entry for _, entry in ordered]


def time_in_stages(
    opportunity: Opportunity, history: list[OpportunityHistory], stages: list[Stage]
) -> list[StageTime]:
    """How long the opportunity spent in each stage it visited, in pipeline order.

    The clock of the current stage runs until now, or until the deal was closed.
    """
    totals: dict[int, timedelta] = {}
    current_id, entered_at = None, None
    for row in history:
        if row.to_stage_id == row.from_stage_id:
            continue
        if current_id is not None and entered_at is not None:
            totals[current_id] = totals.get(current_id, timedelta()) + (row.at - entered_at)
        current_id, entered_at = row.to_stage_id, row.at
    end = opportunity.closed_at if opportunity.is_closed and opportunity.closed_at else None
    end = end or timezone.now()
    start = opportunity.stage_entered_at
    if start is not None:
        totals[opportunity.stage_id] = totals.get(opportunity.stage_id, timedelta()) + max(
            end - start, timedelta()
        )
    return [
        StageTime(
            stage=stage, duration=totals[stage.pk], is_current=stage.pk == opportunity.stage_id
        )
        for stage in stages
        if stage.pk in totals
    ]


def contacts_matching(user, query: str, *, limit: int = CONTACT_SEARCH_LIMIT) -> list[Contact]:
    """Contacts the user can see whose name, email, phone or company contains the text."""
    query = query.strip()
    # No detail is longer than an e-mail address (254); SQLite also refuses LIKE patterns
    # past 50,000 bytes, so a longer text matches nothing without asking.
    if not query or len(query) > 254:
        return []
    return list(
        contacts_visible_to(user)
        .filter(
            Q(name__icontains=query)
            | Q(email__icontains=query)
            | Q(phone__icontains=query)
            | Q(company__icontains=query)
        )
        .order_by("name", "id")[:limit]
    )


def open_tasks_for(user) -> list[Task]:
    """The user's open tasks on opportunities they can see: soonest due first, undated last."""
    return list(
        Task.objects.filter(
            assigned_to=user,
            done_at__isnull=True,
            opportunity__in=opportunities_visible_to(user),
        )
        .select_related("opportunity", "opportunity__stage", "opportunity__contact")
        .order_by(F("due_on").asc(nulls_last=True), "id")
    )
