"""Webhook subscriptions and their deliveries (Standard Webhooks signatures).

The pump hands new events to `consume`, which records one delivery per matching active
subscription and enqueues a `deliver_webhooks` task per (subscription, opportunity), in
the transaction that advances the pump's cursor: nothing is lost, nothing is doubled.
A task sends the oldest pending delivery of its opportunity first and stops at the first
failure, so a receiver sees each deal's events in order. Retries back off exponentially
for about a day (then the delivery fails); an endpoint failing for a day is disabled.
"""

import base64
import json
import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from integrations import net
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

MANAGE_PERMISSION = "integrations.manage_webhooks"
EVENT_TYPES = [
    "OpportunityCreate",
    "OpportunityUpdate",
    "OpportunityDelete",
    "OpportunityStageUpdate",
    "OpportunityStatusUpdate",
    "OpportunityMonetaryValueUpdate",
    "OpportunityAssignedToUpdate",
]
CLAIM_SECONDS = 60


# --- subscriptions -------------------------------------------------------------------


def can_manage_webhooks(user) -> bool:
    return user.is_authenticated and user.has_perm(MANAGE_PERMISSION)


def _require_manager(user) -> None:
    if not can_manage_webhooks(user):
        raise PermissionDenied("Only managers and admins manage webhooks.")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _clean_subscription(url: str, event_types: list[str]) -> tuple[str, list[str]]:
    errors: dict[str, list[str]] = {}
    url = (url or "").strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
        if len(url) > 2000:
            raise ValidationError("At most 2000 characters.")
    except ValidationError:
        errors["url"] = ["Enter an http or https URL."]
    else:
        try:
            net.resolve_checked(url)
        except net.AddressRefused as exc:
            errors["url"] = [str(exc)]
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        errors["event_types"] = [f"Unknown event types: {', '.join(map(str, unknown))[:200]}."]
    elif not event_types:
        errors["event_types"] = ["Choose at least one event type."]
    if errors:
        raise ValidationError(errors)
    return url, [name for name in EVENT_TYPES if name in event_types]


@transaction.atomic
def subscription_create(
    *, user, url: str, event_types: list[str], description: str = ""
) -> WebhookSubscription:
    """A new active subscription with a fresh secret (shown to its creator once)."""
    _require_manager(user)
    url, event_types = _clean_subscription(url, list(event_types or []))
    return WebhookSubscription.objects.create(
        url=url,
        event_types=event_types,
        description=(description or "").strip()[:200],
        secret=new_secret(),
        created_by=user,
    )


@transaction.atomic
def subscription_set_active(
    *, subscription: WebhookSubscription, user, active: bool
) -> WebhookSubscription:
    _require_manager(user)
    subscription.is_active = active
    if active:
        subscription.disabled_at = None
        subscription.disabled_reason = ""
        subscription.failing_since = None
    else:
        subscription.disabled_at = timezone.now()
        subscription.disabled_reason = "Switched off by hand."
    subscription.save(
        update_fields=["is_active", "disabled_at", "disabled_reason", "failing_since"]
    )
    if active:
        sweep()  # what waited while it was off goes out now
    return subscription


@transaction.atomic
def subscription_delete(*, subscription: WebhookSubscription, user) -> None:
    _require_manager(user)
    subscription.delete()


def subscriptions_for(user):
    _require_manager(user)
    return WebhookSubscription.objects.all()


@transaction.atomic
def delivery_redeliver(*, delivery: WebhookDelivery, user) -> WebhookDelivery:
    """Send a delivery again now (a fresh round of retries), e.g. after fixing the receiver."""
    _require_manager(user)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        first_attempt_at=None,
        claimed_until=None,
    )
    delivery.refresh_from_db()
    from integrations.tasks import deliver_webhooks

    # Tasks are rows of this database: the job commits with the reset, or neither does.
    deliver_webhooks.enqueue(delivery.subscription_id, delivery.opportunity_id)
    return delivery


# --- messages ------------------------------------------------------------------------


def message_body(event) -> str:
    """{"type", "timestamp", "data"} with the opportunity as the API shows it."""
    payload = event.payload or {}
    created = event.created_at
    message = {
        "type": event.type,
        "timestamp": created.isoformat() if isinstance(created, datetime) else str(created),
        "data": payload.get("opportunity") or {"id": str(event.opportunity_id)},
        # Our extra: what changed, with old and new values.
        "changes": payload.get("changes") or {},
        "eventId": str(event.pk),
    }
    return json.dumps(message, cls=DjangoJSONEncoder, separators=(",", ":"))


def signed_headers(delivery: WebhookDelivery, *, at: datetime | None = None) -> dict[str, str]:
    at = at or timezone.now()
    signature = Webhook(delivery.subscription.secret).sign(delivery.message_id, at, delivery.body)
    return {
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


# --- the pump's consumer -------------------------------------------------------------


def consume(events) -> None:
    """Record deliveries for `events` and enqueue their sending (caller's transaction)."""
    from integrations.tasks import deliver_webhooks

    subscriptions = list(WebhookSubscription.objects.filter(is_active=True))
    if not subscriptions or not events:
        return
    now = timezone.now()
    rows = []
    for event in events:
        body = None
        for subscription in subscriptions:
            # A new endpoint hears about what happens from now on, not the past.
            if event.type not in subscription.event_types or (
                event.created_at < subscription.created_at
            ):
                continue
            body = body or message_body(event)
            rows.append(
                WebhookDelivery(
                    subscription=subscription,
                    event_id=event.pk,
                    event_type=event.type,
                    opportunity_id=event.opportunity_id,
                    body=body,
                    next_attempt_at=now,
                )
            )
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    for subscription_id, opportunity_id in dict.fromkeys(
        (row.subscription_id, row.opportunity_id) for row in rows
    ):
        deliver_webhooks.enqueue(subscription_id, opportunity_id)


def delivery_enqueue(*, subscription: WebhookSubscription, event) -> tuple[WebhookDelivery, bool]:
    """Queue one event for one subscription, whatever its event types (automation's
    "send a webhook" action); returns (delivery, created).

    The same signed body, retries, log and per-deal order as the pump's deliveries; an
    event already queued for that subscription is not queued twice (receivers see one
    message id). Runs in the caller's transaction: the task row commits with it.
    """
    from integrations.tasks import deliver_webhooks

    if not subscription.is_active:
        raise ValidationError(f"The webhook {subscription.url} is switched off.")
    delivery, created = WebhookDelivery.objects.get_or_create(
        subscription=subscription,
        event_id=event.pk,
        defaults={
            "event_type": event.type,
            "opportunity_id": event.opportunity_id,
            "body": message_body(event),
            "next_attempt_at": timezone.now(),
        },
    )
    if created:
        deliver_webhooks.enqueue(subscription.pk, event.opportunity_id)
    return delivery, created


# --- sending -------------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s … doubling (WEBHOOKS_FIRST_RETRY): about a day after 14 attempts."""
    return timedelta(seconds=settings.WEBHOOKS_FIRST_RETRY * 2 ** max(attempts - 1, 0))


def _claim_next(subscription_id: int, opportunity_id: int) -> WebhookDelivery | None:
    """The oldest pending delivery of this deal for this endpoint, if due and unclaimed."""
    now = timezone.now()
    head = (
        WebhookDelivery.objects.filter(
            subscription_id=subscription_id,
            opportunity_id=opportunity_id,
            status=DeliveryStatus.PENDING,
        )
        .order_by("event_id")
        .first()
    )
    if head is None or (head.next_attempt_at and head.next_attempt_at > now):
        return None
    claimed = (
        WebhookDelivery.objects.filter(pk=head.pk, status=DeliveryStatus.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
    )
    if not claimed:
        return None  # another worker is sending it, and will carry on with the rest
    head.refresh_from_db()
    return head


def _record_attempt(delivery: WebhookDelivery, result: net.HttpResult) -> bool:
    now = timezone.now()
    ok = result.status_code is not None and 200 <= result.status_code < 300
    delivery.attempts += 1
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error[:300]
    delivery.last_duration_ms = result.duration_ms
    delivery.claimed_until = None
    subscription = delivery.subscription
    if ok:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        if subscription.failing_since is not None:
            WebhookSubscription.objects.filter(pk=subscription.pk).update(failing_since=None)
    else:
        next_at = now + retry_delay(delivery.attempts)
        gave_up = next_at - delivery.first_attempt_at > timedelta(
            seconds=settings.WEBHOOKS_RETRY_FOR
        )
        delivery.status = DeliveryStatus.FAILED if gave_up else DeliveryStatus.PENDING
        delivery.next_attempt_at = None if gave_up else next_at
        _note_failure(subscription, now)
    delivery.save(
        update_fields=[
            "attempts",
            "first_attempt_at",
            "last_status_code",
            "last_error",
            "last_duration_ms",
            "claimed_until",
            "status",
            "delivered_at",
            "next_attempt_at",
        ]
    )
    return ok


def _note_failure(subscription: WebhookSubscription, now) -> None:
    WebhookSubscription.objects.filter(pk=subscription.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    limit = now - timedelta(seconds=settings.WEBHOOKS_DISABLE_AFTER)
    WebhookSubscription.objects.filter(
        pk=subscription.pk, is_active=True, failing_since__lt=limit
    ).update(
        is_active=False,
        disabled_at=now,
        disabled_reason=(
            "Disabled automatically: every delivery failed for a day. Fix the receiver, "
            "then switch the webhook on again (pending deliveries are sent then)."
        ),
    )


def deliver_pending(subscription_id: int, opportunity_id: int, *, max_messages: int = 100) -> int:
    """Send this deal's due deliveries to one endpoint in event order; returns how many
    succeeded. Stops at the first failure (the retry is scheduled) so order is kept."""
    from integrations.tasks import deliver_webhooks

    sent = 0
    for _ in range(max_messages):
        subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
        if subscription is None or not subscription.is_active:
            return sent
        delivery = _claim_next(subscription_id, opportunity_id)
        if delivery is None:
            return sent
        delivery.subscription = subscription
        body = delivery.body.encode()
        result = net.post_json(
            subscription.url,
            body,
            signed_headers(delivery),
            timeout=settings.WEBHOOKS_TIMEOUT,
        )
        if not _record_attempt(delivery, result):
            if delivery.status == DeliveryStatus.PENDING:
                deliver_webhooks.using(run_after=delivery.next_attempt_at).enqueue(
                    subscription_id, opportunity_id
                )
            else:
                # Given up: the next event of this deal may go now.
                continue
            return sent
        sent += 1
    # More than one batch waiting: carry on in a new task, letting others in between.
    deliver_webhooks.enqueue(subscription_id, opportunity_id)
    return sent


def sweep() -> int:
    """Enqueue sending for due deliveries nobody is working on (a worker died, a task was
    lost, an endpoint came back on). Safe to run any time: claims prevent doubles."""
    from integrations.tasks import deliver_webhooks

    now = timezone.now()
    pairs = (
        WebhookDelivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            subscription__is_active=True,
        )
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .values_list("subscription_id", "opportunity_id")
        .distinct()[:1000]
    )
    count = 0
    for subscription_id, opportunity_id in pairs:
        deliver_webhooks.enqueue(subscription_id, opportunity_id)
        count += 1
    return count
