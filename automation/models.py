"""Automation rules (trigger → conditions → actions), their run log and notifications.

A rule is data only; `automation.engine` reads events after a cursor and runs the
rules' actions through the opportunities services, acting as the rule's user.
"""

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from automation import placeholders
from integrations.models import WebhookSubscription
from opportunities.models import CustomField, LostReason, Opportunity, Status
from pipelines.models import Pipeline, Stage


class Trigger(models.TextChoices):
    CREATED = "created", "Deal created"
    STAGE_ENTERED = "stage_entered", "Enters stage"
    STAGE_LEFT = "stage_left", "Leaves stage"
    STATUS_BECAME = "status_became", "Status becomes"
    VALUE_CHANGED = "value_changed", "Value changed"
    OWNER_CHANGED = "owner_changed", "Owner changed"
    STALE = "stale", "Stale (rotting: days without a stage change)"


# Which event type each trigger listens to (HighLevel's webhook names).
TRIGGER_EVENT_TYPES = {
    Trigger.CREATED: "OpportunityCreate",
    Trigger.STAGE_ENTERED: "OpportunityStageUpdate",
    Trigger.STAGE_LEFT: "OpportunityStageUpdate",
    Trigger.STATUS_BECAME: "OpportunityStatusUpdate",
    Trigger.VALUE_CHANGED: "OpportunityMonetaryValueUpdate",
    Trigger.OWNER_CHANGED: "OpportunityAssignedToUpdate",
}


class Rule(models.Model):
    name = models.CharField(max_length=120)
    pipeline = models.ForeignKey(
        Pipeline,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="automation_rules",
        help_text="Empty: every pipeline.",
    )
    enabled = models.BooleanField(default=True)
    position = models.PositiveIntegerField(default=0, help_text="Rules run in this order.")
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    stage = models.ForeignKey(
        Stage,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="For “enters stage” and “leaves stage”.",
    )
    status = models.CharField(
        max_length=20,
        choices=Status.choices,
        blank=True,
        help_text="For “status becomes”.",
    )
    stale_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=(
            "For “stale”: days in the current stage without a stage change; empty: the "
            "stage's own rotting days."
        ),
    )
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The rule acts as this user (same permissions and visibility).",
    )
    # Set when a run was refused because the world changed after the rule was saved.
    problem = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["enabled", "trigger"], name="rule_enabled_trigger")]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        if self.trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT):
            if self.stage_id is None:
                errors["stage"] = "Choose the stage this rule watches."
            elif self.pipeline_id is not None and self.stage.pipeline_id != self.pipeline_id:
                errors["stage"] = "That stage belongs to another pipeline."
        if self.trigger == Trigger.STATUS_BECAME and not self.status:
            errors["status"] = "Choose the status this rule watches."
        if self.acting_user_id is not None and not self.acting_user.is_active:
            errors["acting_user"] = "That user is deactivated; choose an active user."
        if errors:
            raise ValidationError(errors)

    @property
    def actor_name(self) -> str:
        return f"Automation ‘{self.name}’"


class ConditionKind(models.TextChoices):
    VALUE_GTE = "value_gte", "Value ≥"
    VALUE_LTE = "value_lte", "Value ≤"
    SOURCE_IS = "source_is", "Source is"
    OWNER_IS = "owner_is", "Owner is"
    OWNER_IN_GROUP = "owner_in_group", "Owner is in group"
    STATUS_IS = "status_is", "Status is"
    TAG_HAS = "tag_has", "Has tag"
    CUSTOM_FIELD_EQUALS = "custom_field_equals", "Custom field equals"


class Condition(models.Model):
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="conditions")
    kind = models.CharField(max_length=20, choices=ConditionKind.choices)
    value = models.CharField(
        max_length=200, blank=True, help_text="A number, a source, a status, a tag or a value."
    )
    custom_field = models.ForeignKey(
        CustomField, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        target = self.user or self.group or self.value
        return f"{self.get_kind_display()} {target}"

    def clean(self):
        if self.kind in (ConditionKind.VALUE_GTE, ConditionKind.VALUE_LTE):
            try:
                float(self.value)
            except ValueError:
                raise ValidationError({"value": "Give a number."}) from None
        elif self.kind == ConditionKind.SOURCE_IS and not self.value.strip():
            raise ValidationError({"value": "Give the source."})
        elif self.kind == ConditionKind.STATUS_IS and self.value not in Status.values:
            raise ValidationError({"value": f"Give one of {', '.join(Status.values)}."})
        elif self.kind == ConditionKind.OWNER_IS and self.user_id is None:
            raise ValidationError({"user": "Choose the user."})
        elif self.kind == ConditionKind.OWNER_IN_GROUP and self.group_id is None:
            raise ValidationError({"group": "Choose the group."})
        elif self.kind == ConditionKind.TAG_HAS and not self.value.strip():
            raise ValidationError({"value": "Give the tag."})
        elif self.kind == ConditionKind.CUSTOM_FIELD_EQUALS and self.custom_field_id is None:
            raise ValidationError({"custom_field": "Choose the custom field."})


class ActionKind(models.TextChoices):
    CREATE_TASK = "create_task", "Create a task"
    ASSIGN_OWNER = "assign_owner", "Assign an owner"
    MOVE_STAGE = "move_stage", "Move to stage"
    SET_STATUS = "set_status", "Set status"
    ADD_NOTE = "add_note", "Add a note"
    NOTIFY = "notify", "Notify"
    ADD_TAG = "add_tag", "Add a tag"
    REMOVE_TAG = "remove_tag", "Remove a tag"
    EMAIL_CONTACT = "email_contact", "E-mail the contact"
    SEND_WEBHOOK = "send_webhook", "Send a webhook"


class Recipient(models.TextChoices):
    OWNER = "owner", "The deal's owner"
    USER = "user", "A named user"
    FOLLOWERS = "followers", "The deal's followers"
    GROUP = "group", "A group (round-robin for owners; everyone for notifications)"


class Action(models.Model):
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="actions")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=ActionKind.choices)
    recipient = models.CharField(
        max_length=10, choices=Recipient.choices, default=Recipient.OWNER, blank=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    group = models.ForeignKey(
        Group, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Task title, note body, notification text or tag; the e-mail's subject and body.
    title = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    due_in_days = models.IntegerField(null=True, blank=True, help_text="For tasks.")
    stage = models.ForeignKey(
        Stage, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, blank=True)
    lost_reason = models.ForeignKey(
        LostReason, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Deleting the subscription empties this: the rule's next run is refused and flagged.
    webhook = models.ForeignKey(
        WebhookSubscription,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="For “send a webhook”: the triggering event goes to this subscription.",
    )
    # Round-robin position for "assign an owner among a group".
    next_index = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        if self.kind == ActionKind.SEND_WEBHOOK and self.webhook_id:
            return f"{self.get_kind_display()} to {self.webhook}"
        return f"{self.get_kind_display()}: {self.title}" if self.title else self.get_kind_display()

    def clean(self):
        problem = action_problem(self)
        if problem:
            raise ValidationError({problem[0]: problem[1]})


class Outcome(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    REFUSED = "refused", "Refused"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class RuleRun(models.Model):
    """One rule against one event (or one stale spell): what its actions did, or why not.

    The unique constraints make a run idempotent: re-reading events (a trailing window,
    a retried batch) or re-checking a still-stale deal never runs a rule twice.
    """

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs")
    event_id = models.BigIntegerField(null=True, blank=True)
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, null=True, related_name="automation_runs"
    )
    # For stale runs: when the deal entered the stage it went stale in.
    stale_since = models.DateTimeField(null=True, blank=True)
    # Rule ids whose actions led to this run (loop protection and depth limit).
    chain = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    # [{"action": "Create a task", "outcome": "done", "detail": "created task ‘…’"}, …]
    results = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    # When its actions ran (the deal's timeline places the run there); empty while pending.
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "event_id"],
                condition=Q(event_id__isnull=False),
                name="rulerun_once_per_event",
            ),
            models.UniqueConstraint(
                fields=["rule", "opportunity", "stale_since"],
                condition=Q(stale_since__isnull=False),
                name="rulerun_once_per_stale_spell",
            ),
        ]
        indexes = [
            models.Index(fields=["opportunity", "id"], name="rulerun_opportunity"),
            # The worker's queue: pending runs, oldest first.
            models.Index(fields=["id"], condition=Q(outcome="pending"), name="rulerun_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} on {self.event_id or 'stale check'}: {self.outcome}"

    @property
    def summary(self) -> str:
        done = [r["detail"] for r in self.results if r.get("outcome") == Outcome.DONE]
        refused = [r["detail"] for r in self.results if r.get("outcome") != Outcome.DONE]
        return "; ".join(done + refused) or self.get_outcome_display()


class CausedEvent(models.Model):
    """An event written by a rule's action, and the chain of rules behind it.

    The engine records these while it runs actions, so when the event comes back
    through the pump it knows which rules caused it (and how deep the chain is).
    """

    event_id = models.BigIntegerField(primary_key=True)
    chain = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"event {self.event_id} from rules {self.chain}"


class EmailTemplate(models.Model):
    """A reusable e-mail to a deal's contact, for the record's "Send e-mail" form."""

    name = models.CharField(max_length=100, unique=True)
    subject = models.CharField(max_length=200)
    body = models.TextField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = {}
        for field in ("subject", "body"):
            try:
                placeholders.check(getattr(self, field))
            except ValidationError as exc:
                errors[field] = exc.messages
        if errors:
            raise ValidationError(errors)


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "read_at", "id"], name="notification_unread")]

    def __str__(self) -> str:
        return self.text


class NotificationSetting(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_setting"
    )
    email = models.BooleanField(default=True, help_text="Also send notifications by e-mail.")

    def __str__(self) -> str:
        return f"{self.user}: e-mail {'on' if self.email else 'off'}"


def action_problem(action: Action) -> tuple[str, str] | None:
    """(field, message) when the action cannot run as configured, else None.

    Checked when the action is saved and again before each run: the world (stages,
    users, groups) can change after a rule was saved.
    """
    kind = action.kind
    # An inline form's action points to its (possibly not yet saved) rule.
    rule = action.rule if action.rule_id or Action.rule.is_cached(action) else None
    needs_user = action.recipient == Recipient.USER or (
        kind == ActionKind.ASSIGN_OWNER and action.recipient != Recipient.GROUP
    )
    texts = (ActionKind.CREATE_TASK, ActionKind.ADD_NOTE, ActionKind.NOTIFY)
    if kind in texts and not (action.title.strip() or action.body.strip()):
        return ("title", "Give the text.")
    if kind == ActionKind.CREATE_TASK and (action.due_in_days or 0) < 0:
        return ("due_in_days", "A task cannot be due in the past: give 0 days or more.")
    if kind in (ActionKind.CREATE_TASK, ActionKind.ASSIGN_OWNER, ActionKind.NOTIFY):
        if needs_user:
            if action.user_id is None:
                return ("user", "Choose the user.")
            if not action.user.is_active:
                return ("user", f"{action.user} is deactivated; choose an active user.")
        if action.recipient == Recipient.GROUP:
            if action.group_id is None:
                return ("group", "Choose the group.")
            if not action.group.user_set.filter(is_active=True).exists():
                return ("group", f"The group “{action.group}” has no active members.")
    if kind == ActionKind.MOVE_STAGE:
        if action.stage_id is None:
            return ("stage", "Choose the stage (it may have been deleted).")
        if rule is not None and rule.pipeline_id is None:
            return ("stage", "Moving needs a rule limited to one pipeline.")
        if rule is not None and action.stage.pipeline_id != rule.pipeline_id:
            return ("stage", "That stage belongs to another pipeline.")
    if kind == ActionKind.SET_STATUS:
        if action.status not in Status.values:
            return ("status", "Choose the status.")
        if action.status == Status.LOST and action.lost_reason_id is None:
            return ("lost_reason", "Lost needs a reason: choose it in the rule.")
        if action.status == Status.LOST and not action.lost_reason.is_active:
            return ("lost_reason", "That lost reason is no longer offered.")
    if kind in (ActionKind.ADD_TAG, ActionKind.REMOVE_TAG) and not action.title.strip():
        return ("title", "Give the tag in the title.")
    if kind == ActionKind.ASSIGN_OWNER and action.recipient == Recipient.FOLLOWERS:
        return ("recipient", "Assign to a named user or round-robin in a group.")
    if kind == ActionKind.EMAIL_CONTACT and not (action.title.strip() and action.body.strip()):
        return ("body", "Give the e-mail's subject and body.")
    if kind == ActionKind.SEND_WEBHOOK:
        if action.webhook_id is None:
            return ("webhook", "Choose the webhook subscription (it may have been deleted).")
        if not action.webhook.is_active:
            return (
                "webhook",
                f"The webhook {action.webhook} is switched off; switch it on under "
                "Settings → Webhooks or choose another.",
            )
        if rule is not None and rule.trigger == Trigger.STALE:
            return ("webhook", "A stale check is no event to send: use another trigger.")
    if kind in (ActionKind.EMAIL_CONTACT, ActionKind.NOTIFY, ActionKind.CREATE_TASK):
        for field in ("title", "body"):
            try:
                placeholders.check(getattr(action, field))
            except ValidationError as exc:
                return (field, exc.messages[0])
    return None
