from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pipelines.models import Pipeline, Stage

# The largest id a database integer (a BigAutoField) holds. A larger number from a URL,
# a form or the API names no row; used as a raw parameter it would overflow on SQLite.
MAX_ID = 2**63 - 1


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
    # The contact asked not to be e-mailed: automated and manual e-mails are refused.
    do_not_email = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.company})" if self.company else self.name


class ContactHistory(models.Model):
    """One row per edit of a contact's details: who changed what, from and to."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="history")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    # {field: {"old": ..., "new": ...}}
    changes = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "contact history"

    def __str__(self) -> str:
        return f"{self.contact_id} at {self.at:%Y-%m-%d %H:%M}"


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
# Deals not in the trash: what every read of the board and lists is about.
LIVE = Q(deleted_at__isnull=True)


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
    expected_close_date = models.DateField(null=True, blank=True, db_index=True)
    # Times the expected close date was moved later (kept with the date's history rows).
    close_date_slips = models.PositiveIntegerField(default=0)
    # Chance of winning in percent; None means "the stage's probability".
    probability = models.PositiveSmallIntegerField(null=True, blank=True)
    tags = models.ManyToManyField("Tag", blank=True, related_name="opportunities")
    followers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="followed_opportunities"
    )
    # In the trash since then (restorable for TRASH_RETENTION_DAYS, then purged).
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
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
            # The board's indexes cover live deals only (deals in the trash are never on
            # it): the partial condition keeps index-only reads without a heap check.
            models.Index(
                fields=["stage", "status", "rank", "id"], name="opp_board_column", condition=LIVE
            ),
            # Column totals (count and sum of value per stage) read only this index (id
            # for PostgreSQL's index-only scan); it also serves every (pipeline, status)
            # filter the old two-column index did.
            models.Index(
                fields=["pipeline", "status", "stage", "value", "id"],
                name="opp_pipeline_totals",
                condition=LIVE,
            ),
            models.Index(fields=["assigned_to", "status"], name="opp_owner_status"),
            # The API's search of a pipeline, newest first, keyset-paged on (created_at, id).
            models.Index(
                fields=["pipeline", "created_at", "id"], name="opp_pipeline_created", condition=LIVE
            ),
            # The stale check: open deals by how long they have been in their stage.
            models.Index(
                fields=["status", "stage_entered_at"], name="opp_open_since", condition=LIVE
            ),
            # A column sorted by expected close date (the board's "Close date" order) reads
            # this index in order instead of sorting the whole stage.
            models.Index(
                fields=["stage", "status", "expected_close_date", "id"],
                name="opp_board_close",
                condition=LIVE,
            ),
            # A move reads its new neighbours by (rank, id) within the stage, any status.
            models.Index(fields=["stage", "rank", "id"], name="opp_stage_rank", condition=LIVE),
            # A rep's column totals: the same index-only read as the manager's.
            models.Index(
                fields=["assigned_to", "pipeline", "status", "stage", "value"],
                name="opp_owner_totals",
                condition=LIVE,
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
            models.CheckConstraint(
                condition=Q(probability__isnull=True) | Q(probability__lte=100),
                name="opportunity_probability_percent",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_closed(self) -> bool:
        return self.status != Status.OPEN

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Tag(models.Model):
    """A label typed on deals; created on first use."""

    name = models.CharField(max_length=50)
    color = models.CharField(max_length=7, default="#64748b", help_text="A #rrggbb colour.")

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(models.functions.Lower("name"), name="tag_name_unique_ci"),
            models.CheckConstraint(
                condition=Q(color__regex=r"^#[0-9a-fA-F]{6}$"), name="tag_color_hex"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CustomFieldType(models.TextChoices):
    TEXT = "text", "Text"
    LONG_TEXT = "long_text", "Long text"
    NUMBER = "number", "Number"
    MONEY = "money", "Money"
    DATE = "date", "Date"
    SINGLE_CHOICE = "single_choice", "Single choice"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
    CHECKBOX = "checkbox", "Checkbox"
    URL = "url", "URL"


class CustomField(models.Model):
    """An extra field on deals, defined by admins (HighLevel's opportunity custom fields)."""

    name = models.CharField(max_length=100)
    key = models.SlugField(max_length=100, unique=True, help_text="Used by import and the API.")
    field_type = models.CharField(max_length=20, choices=CustomFieldType.choices)
    required = models.BooleanField(default=False)
    # Options of single/multiple choice fields, in order.
    choices = models.JSONField(default=list, blank=True)
    # Empty: the field applies to every pipeline.
    pipelines = models.ManyToManyField(Pipeline, blank=True, related_name="custom_fields")
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class CustomFieldValue(models.Model):
    """One deal's value of one custom field, in the column of its type.

    A typed table rather than JSON: each type is filtered by an index on (field, value),
    so "amount > 1000" or "region = North" stays an index range at any number of deals.
    Multiple choices are kept as "\n"-joined text (contains-filtering).
    """

    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, related_name="custom_values"
    )
    field = models.ForeignKey(CustomField, on_delete=models.CASCADE, related_name="values")
    text = models.TextField(blank=True)
    number = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    date = models.DateField(null=True, blank=True)
    flag = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["opportunity", "field"], name="custom_value_once"),
        ]
        indexes = [
            models.Index(fields=["field", "number", "opportunity"], name="custom_value_number"),
            models.Index(fields=["field", "date", "opportunity"], name="custom_value_date"),
            models.Index(fields=["field", "flag", "opportunity"], name="custom_value_flag"),
        ]

    def __str__(self) -> str:
        return f"{self.field_id}={self.text or self.number or self.date or self.flag}"


class TrackedField(models.TextChoices):
    CREATED = "created", "Created"
    STAGE = "stage", "Stage"
    STATUS = "status", "Status"
    VALUE = "value", "Value"
    OWNER = "owner", "Owner"
    PIPELINE = "pipeline", "Pipeline"
    LOST_REASON = "lost_reason", "Lost reason"
    CLOSE_DATE = "close_date", "Expected close date"
    PROBABILITY = "probability", "Probability"
    TAGS = "tags", "Tags"
    FOLLOWERS = "followers", "Followers"
    CUSTOM_FIELD = "custom_field", "Custom field"
    DELETED = "deleted", "Moved to trash"
    RESTORED = "restored", "Restored"


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
    old_value = models.CharField(max_length=500, blank=True)
    new_value = models.CharField(max_length=500, blank=True)
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
