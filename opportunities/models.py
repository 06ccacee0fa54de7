from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pipelines.models import Pipeline, Stage


class BytewiseCharField(models.CharField):
    """A CharField that sorts by raw bytes on every backend.

    Rank keys are fractional indexes compared character by character; PostgreSQL's
    default locale collation would ignore case and punctuation, so the column uses
    the "C" collation there. SQLite's default BINARY collation already is bytewise.
    """

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class Contact(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True, db_index=True)
    phone = models.CharField(max_length=40, blank=True)
    company = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.company})" if self.company else self.name


class LostReason(models.Model):
    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Status(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    ABANDONED = "abandoned", "Abandoned"


CLOSED_STATUSES = (Status.WON, Status.LOST, Status.ABANDONED)


class Opportunity(models.Model):
    name = models.CharField(max_length=200)
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="opportunities")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="opportunities")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    value = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    source = models.CharField(max_length=100, blank=True, db_index=True)
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, null=True, blank=True, related_name="opportunities"
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_opportunities",
    )
    lost_reason = models.ForeignKey(
        LostReason, on_delete=models.PROTECT, null=True, blank=True, related_name="opportunities"
    )
    # Place of the card in its column: a fractional-index key (see opportunities/ranking.py).
    rank = BytewiseCharField(max_length=128, default="V")
    # Optimistic lock: every write bumps it; a write carrying an older value is refused.
    version = models.PositiveIntegerField(default=1)
    stage_entered_at = models.DateTimeField(default=timezone.now)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Whole days from creation to closing, written when the deal closes: reports average
    # a stored number instead of computing a date difference per row.
    days_to_close = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["stage__position", "rank", "id"]
        permissions = [
            ("view_all_opportunities", "Can view all opportunities (not only assigned ones)"),
            ("export_opportunities", "Can export opportunities as CSV"),
            ("import_opportunities", "Can import opportunities from CSV"),
        ]
        indexes = [
            models.Index(fields=["stage", "status", "rank", "id"], name="opp_board_column"),
            # Column totals (count and sum of value per stage) read only this index (id
            # for PostgreSQL's index-only scan); it also serves every (pipeline, status)
            # filter the old two-column index did.
            models.Index(
                fields=["pipeline", "status", "stage", "value", "id"], name="opp_pipeline_totals"
            ),
            models.Index(fields=["assigned_to", "status"], name="opp_owner_status"),
            # A move reads its new neighbours by (rank, id) within the stage, any status.
            models.Index(fields=["stage", "rank", "id"], name="opp_stage_rank"),
            # A rep's column totals: the same index-only read as the manager's.
            models.Index(
                fields=["assigned_to", "pipeline", "status", "stage", "value"],
                name="opp_owner_totals",
            ),
            # Covers the board's live-update poll (count, max updated_at, sum of versions
            # per pipeline) so it reads only this index.
            models.Index(fields=["pipeline", "updated_at", "version"], name="opp_pipeline_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__gte=0), name="opportunity_value_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[choice.value for choice in Status]),
                name="opportunity_status_valid",
            ),
            models.CheckConstraint(
                condition=(Q(status=Status.LOST) & Q(lost_reason__isnull=False))
                | (~Q(status=Status.LOST) & Q(lost_reason__isnull=True)),
                name="opportunity_lost_reason_iff_lost",
            ),
            models.CheckConstraint(condition=~Q(rank=""), name="opportunity_rank_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_closed(self) -> bool:
        return self.status != Status.OPEN


class TrackedField(models.TextChoices):
    CREATED = "created", "Created"
    STAGE = "stage", "Stage"
    STATUS = "status", "Status"
    VALUE = "value", "Value"
    OWNER = "owner", "Owner"
    PIPELINE = "pipeline", "Pipeline"
    LOST_REASON = "lost_reason", "Lost reason"


class OpportunityHistory(models.Model):
    """One row per tracked field that changed, so reports are queries, not guesses.

    Every row carries the stage and status the deal had after the change; a stage row
    also its previous stage, a status row its previous status. Other fields keep their
    old and new values as text (ids for relations, amounts for the value).
    """

    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="history")
    field = models.CharField(max_length=20, choices=TrackedField.choices)
    from_stage = models.ForeignKey(
        Stage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_stage = models.ForeignKey(
        Stage, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    from_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    to_status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    old_value = models.CharField(max_length=100, blank=True)
    new_value = models.CharField(max_length=100, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "opportunity history"

    def __str__(self) -> str:
        return f"{self.opportunity_id} {self.field} at {self.at:%Y-%m-%d %H:%M}"


class EventType(models.TextChoices):
    """HighLevel's webhook event names; one change can announce several."""

    CREATE = "OpportunityCreate", "OpportunityCreate"
    UPDATE = "OpportunityUpdate", "OpportunityUpdate"
    DELETE = "OpportunityDelete", "OpportunityDelete"
    STAGE_UPDATE = "OpportunityStageUpdate", "OpportunityStageUpdate"
    STATUS_UPDATE = "OpportunityStatusUpdate", "OpportunityStatusUpdate"
    VALUE_UPDATE = "OpportunityMonetaryValueUpdate", "OpportunityMonetaryValueUpdate"
    ASSIGNED_TO_UPDATE = "OpportunityAssignedToUpdate", "OpportunityAssignedToUpdate"


class OpportunityEvent(models.Model):
    """The event log: an append-only outbox written in the transaction of the change.

    Consumers (the board's live poll, webhooks, automation, the API's change feed) read
    "events after id N" through opportunities.events. The opportunity and pipeline are
    plain ids, not foreign keys: an event outlives the deal it announces the deletion of.
    """

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    opportunity_id = models.BigIntegerField(db_index=True)
    pipeline_id = models.BigIntegerField(null=True, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    payload = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} {self.opportunity_id}"


class Note(models.Model):
    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.body[:50]


class Task(models.Model):
    opportunity = models.ForeignKey(Opportunity, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=200)
    due_on = models.DateField(null=True, blank=True)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["done_at", "due_on", "id"]
        indexes = [models.Index(fields=["assigned_to", "done_at", "due_on"], name="task_todo")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_done(self) -> bool:
        return self.done_at is not None

    @property
    def is_overdue(self) -> bool:
        return not self.is_done and self.due_on is not None and self.due_on < timezone.localdate()


class CommunicationKind(models.TextChoices):
    CALL = "call", "Call"
    EMAIL = "email", "Email"
    MEETING = "meeting", "Meeting"
    MESSAGE = "message", "Message"


class Communication(models.Model):
    """An entry of the communication log, kept on the contact (seen from all its deals)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="communications")
    opportunity = models.ForeignKey(
        Opportunity,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="communications",
        help_text="Where it was logged from.",
    )
    kind = models.CharField(max_length=20, choices=CommunicationKind.choices)
    summary = models.TextField()
    occurred_at = models.DateTimeField(default=timezone.now)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.summary[:40]}"
