"""API tokens, webhook subscriptions and deliveries, and the event pump's bookkeeping.

Arrows point down: integrations reads the event log of `opportunities` and changes
opportunities only through its services.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    """A personal access token. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The first characters, kept in clear so the owner can tell tokens apart.
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class WebhookSubscription(models.Model):
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Event types of the event log (OpportunityCreate, OpportunityStageUpdate, …).
    event_types = models.JSONField(default=list)
    secret = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="webhook_subscriptions",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Set by the first failed attempt after a success; an endpoint failing for
    # WEBHOOKS_DISABLE_AFTER seconds is switched off and the page says why.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        permissions = [("manage_webhooks", "Can manage webhook subscriptions")]

    def __str__(self) -> str:
        return self.url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event for one subscription: the signed message and its attempts."""

    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The event log is pruned; a delivery keeps what it needs to be sent again.
    event_id = models.BigIntegerField()
    event_type = models.CharField(max_length=60)
    opportunity_id = models.BigIntegerField()
    body = models.TextField()
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker sending this delivery holds the claim; it expires if the worker dies.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_id"], name="webhook_delivery_once_per_event"
            )
        ]
        indexes = [
            # The next delivery of one opportunity for one endpoint (order is kept per deal).
            models.Index(
                fields=["subscription", "opportunity_id", "status", "event_id"],
                name="webhook_delivery_queue",
            ),
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_id} → {self.subscription_id}"

    @property
    def message_id(self) -> str:
        # Stable across retries and redeliveries, so receivers can de-duplicate.
        return f"msg_{self.subscription_id}_{self.event_id}"


class EventCursor(models.Model):
    """How far one consumer of the event log has read (advanced with its work)."""

    name = models.CharField(max_length=200, unique=True)
    last_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_id}"


class PeriodicJobRun(models.Model):
    """When each of settings.PERIODIC_JOBS last started (claimed by one pump)."""

    name = models.CharField(max_length=200, unique=True)
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name
