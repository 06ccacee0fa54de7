"""Webhooks: subscriptions, signed deliveries to a real receiver on 127.0.0.1, order,
retries, giving up, disabling, redelivery and the address guard."""

import json
import socket
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from standardwebhooks.webhooks import Webhook

from integrations import net, webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.pump import pump_once
from opportunities.services.moves import opportunity_set_status
from opportunities.services.opportunities import opportunity_create, opportunity_update
from tests import factories
from tests.webhook_receiver import Receiver, webhook_manager
from tests.worker_helpers import pump_and_work, run_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def manager():
    return webhook_manager(username="hook-manager")


@pytest.fixture
def allow_loopback(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True


@pytest.fixture
def pipeline():
    return factories.pipeline_with_stages(("Lead", "Qualified", "Won"))


@pytest.fixture
def subscription(allow_loopback, manager, receiver):
    return webhooks.subscription_create(
        user=manager, url=receiver.url, event_types=webhooks.EVENT_TYPES
    )


deliver_all = pump_and_work


def make_due(queryset=None):
    (queryset or WebhookDelivery.objects.all()).filter(status=DeliveryStatus.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    DBTaskResult.objects.update(run_after=timezone.now() - timedelta(seconds=1))


# --- subscriptions -------------------------------------------------------------------------


def test_secret_looks_like_standard_webhooks(subscription):
    assert subscription.secret.startswith("whsec_")
    Webhook(subscription.secret)  # decodes


def test_rep_cannot_create_a_subscription(allow_loopback, receiver):
    with pytest.raises(PermissionDenied):
        webhooks.subscription_create(
            user=factories.rep(), url=receiver.url, event_types=["OpportunityCreate"]
        )


def test_private_url_is_refused_without_the_setting(manager, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    for url in ["http://127.0.0.1:8000/x", "http://10.0.0.5/x", "http://169.254.169.254/"]:
        with pytest.raises(ValidationError) as refused:
            webhooks.subscription_create(user=manager, url=url, event_types=["OpportunityCreate"])
        assert "private" in str(refused.value)
    assert not WebhookSubscription.objects.exists()


def test_unknown_event_type_is_refused(manager, allow_loopback, receiver):
    with pytest.raises(ValidationError):
        webhooks.subscription_create(user=manager, url=receiver.url, event_types=["Nope"])


# --- the address guard ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_internal_addresses_are_not_public(address):
    assert not net.is_public_address(address)


def test_public_address_is_public():
    assert net.is_public_address("93.184.216.34")


def test_guard_refuses_before_connecting(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE = False

    def no_connection(*args, **kwargs):
        raise AssertionError("the guard let a connection through")

    monkeypatch.setattr(socket, "create_connection", no_connection)
    monkeypatch.setattr(socket.socket, "connect", no_connection)
    result = net.post_json("http://169.254.169.254/latest/meta-data", b"{}", {}, timeout=1)
    assert result.status_code is None
    assert "private" in result.error


def test_guard_checks_every_resolved_address(settings, monkeypatch):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(net.AddressRefused):
        net.resolve_checked("http://rebind.example/hook")


# --- deliveries ------------------------------------------------------------------------------


def test_status_change_is_delivered_signed(subscription, receiver, manager, pipeline):
    pipe, stages = pipeline
    deal = opportunity_create(user=manager, name="Signed", pipeline=pipe, stage=stages[0])
    reason = factories.LostReasonFactory(name="Price")
    opportunity_set_status(
        opportunity=deal, status="lost", version=deal.version, user=manager, lost_reason=reason
    )
    deliver_all()
    requests = receiver.wait_for(2)
    types = [json.loads(request["body"])["type"] for request in requests]
    assert types[0] == "OpportunityCreate"
    assert "OpportunityStatusUpdate" in types
    for request in requests:
        headers = {key.lower(): value for key, value in request["headers"].items()}
        Webhook(subscription.secret).verify(request["body"], headers)  # raises if wrong
        body = json.loads(request["body"])
        assert set(body) >= {"type", "timestamp", "data"}
        assert body["data"]["id"] == str(deal.pk)
    status_update = next(
        json.loads(r["body"]) for r in requests if b"OpportunityStatusUpdate" in r["body"]
    )
    assert status_update["data"]["status"] == "lost"
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == len(requests)


def test_only_subscribed_event_types_are_delivered(allow_loopback, manager, receiver, pipeline):
    webhooks.subscription_create(
        user=manager, url=receiver.url, event_types=["OpportunityStatusUpdate"]
    )
    pipe, _ = pipeline
    opportunity_create(user=manager, name="Quiet", pipeline=pipe)
    deliver_all()
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_failed_delivery_is_retried_later_and_order_is_kept(
    subscription, receiver, manager, pipeline
):
    pipe, stages = pipeline
    receiver.script = [500]
    deal = opportunity_create(user=manager, name="Retry", pipeline=pipe, stage=stages[0])
    deal = opportunity_update(opportunity=deal, user=manager, name="Renamed")
    deliver_all()
    # The first attempt failed: the later event of the same deal waits behind it.
    assert [r["status"] for r in receiver.requests] == [500]
    first = WebhookDelivery.objects.order_by("event_id").first()
    assert first.status == DeliveryStatus.PENDING
    assert first.attempts == 1 and first.last_status_code == 500
    assert first.next_attempt_at > timezone.now()
    make_due()
    run_worker()
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert [b["type"] for b in bodies] == ["OpportunityCreate", "OpportunityCreate"] + [
        b["type"] for b in bodies[2:]
    ]
    event_ids = [int(b["eventId"]) for b in bodies[1:]]
    assert event_ids == sorted(event_ids)
    assert not WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
    # The retry carries the same webhook-id, so the receiver can de-duplicate.
    ids = [r["headers"]["webhook-id"] for r in receiver.requests[:2]]
    assert ids[0] == ids[1]


def test_delivery_gives_up_after_a_day(subscription, receiver, manager, pipeline):
    receiver.script = [500] * 5
    opportunity_create(user=manager, name="Doomed", pipeline=pipeline[0])
    pump_once()
    WebhookDelivery.objects.update(first_attempt_at=timezone.now() - timedelta(hours=25))
    run_worker()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.next_attempt_at is None


def test_endpoint_failing_for_a_day_is_disabled(subscription, receiver, manager, pipeline):
    receiver.script = [503]
    WebhookSubscription.objects.update(failing_since=timezone.now() - timedelta(hours=25))
    opportunity_create(user=manager, name="Down", pipeline=pipeline[0])
    deliver_all()
    subscription.refresh_from_db()
    assert not subscription.is_active
    assert "failed for a day" in subscription.disabled_reason


def test_success_clears_failing_since(subscription, receiver, manager, pipeline):
    WebhookSubscription.objects.update(failing_since=timezone.now() - timedelta(hours=2))
    opportunity_create(user=manager, name="Back", pipeline=pipeline[0])
    deliver_all()
    subscription.refresh_from_db()
    assert subscription.failing_since is None and subscription.is_active


def test_events_written_while_the_worker_is_down_are_delivered(
    subscription, receiver, manager, pipeline
):
    for number in range(5):
        opportunity_create(user=manager, name=f"Offline {number}", pipeline=pipeline[0])
    assert receiver.requests == []
    deliver_all()
    assert len(receiver.wait_for(5)) == 5


def test_a_lost_task_is_recovered_by_the_sweep(subscription, receiver, manager, pipeline):
    opportunity_create(user=manager, name="Lost task", pipeline=pipeline[0])
    pump_once()
    DBTaskResult.objects.all().delete()  # the worker died with the job
    run_worker()
    assert receiver.requests == []
    assert webhooks.sweep() == 1
    run_worker()
    assert len(receiver.requests) == 1


def test_a_claimed_delivery_is_not_sent_twice(subscription, receiver, manager, pipeline):
    opportunity_create(user=manager, name="Claimed", pipeline=pipeline[0])
    pump_once()
    WebhookDelivery.objects.update(claimed_until=timezone.now() + timedelta(seconds=30))
    run_worker()
    assert receiver.requests == []


def test_redeliver_sends_again(subscription, receiver, manager, pipeline, client):
    opportunity_create(user=manager, name="Again", pipeline=pipeline[0])
    deliver_all()
    delivery = WebhookDelivery.objects.get()
    client.force_login(manager)
    response = client.post(
        f"/settings/webhooks/{subscription.pk}/deliveries/{delivery.pk}/redeliver/"
    )
    assert response.status_code == 302
    run_worker()
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]


def test_a_new_subscription_does_not_get_past_events(allow_loopback, manager, receiver, pipeline):
    opportunity_create(user=manager, name="Before", pipeline=pipeline[0])
    webhooks.subscription_create(user=manager, url=receiver.url, event_types=webhooks.EVENT_TYPES)
    deliver_all()
    assert receiver.requests == []


def test_inactive_subscription_gets_nothing(subscription, receiver, manager, pipeline):
    webhooks.subscription_set_active(subscription=subscription, user=manager, active=False)
    opportunity_create(user=manager, name="Off", pipeline=pipeline[0])
    deliver_all()
    assert receiver.requests == []
