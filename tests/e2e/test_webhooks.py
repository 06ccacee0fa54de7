"""Webhooks end to end, with a real HTTP receiver on 127.0.0.1: a drag on the board in
Chromium, an API status change over HTTP and a CSV import each give the right signed
deliveries; a receiver answering 500 gets the retry; a worker killed mid-delivery loses
nothing."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect
from standardwebhooks.webhooks import Webhook

from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery
from integrations.pump import pump_once
from integrations.tokens import api_token_create
from opportunities.models import Opportunity
from opportunities.services.imports import import_apply
from tests import factories
from tests.e2e.helpers import sortable_drag
from tests.webhook_receiver import Receiver, webhook_manager
from tests.worker_helpers import pump_and_work, run_worker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def hooks(roles, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    with Receiver() as receiver:
        manager = webhook_manager(username="hooks-manager")
        subscription = webhooks.subscription_create(
            user=manager, url=receiver.url, event_types=webhooks.EVENT_TYPES
        )
        yield receiver, subscription, manager


@pytest.fixture
def sales(roles):
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    rep = factories.rep(username="rita")
    acme = factories.OpportunityFactory(stage=stages[0], name="Acme", assigned_to=rep)
    delta = factories.OpportunityFactory(stage=stages[2], name="Delta", assigned_to=rep)
    return pipeline, stages, rep, acme, delta


def verified(receiver, subscription) -> list[dict]:
    """Every request's body, after checking its Standard Webhooks signature."""
    messages = []
    for request in receiver.requests:
        headers = {key.lower(): value for key, value in request["headers"].items()}
        Webhook(subscription.secret).verify(request["body"], headers)
        messages.append(json.loads(request["body"]))
    return messages


def test_a_drag_on_the_board_is_delivered_signed(page, live_server, login_as, hooks, sales):
    receiver, subscription, _ = hooks
    pipeline, stages, rep, acme, delta = sales
    login_as(rep)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    source = page.locator(f"#opportunity-{acme.pk}")
    expect(source).to_be_visible()
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        sortable_drag(page, source, page.locator(f"#opportunity-{delta.pk}"))
    assert answer.value.status == 200
    assert Opportunity.objects.get(pk=acme.pk).stage == stages[2]

    pump_and_work()
    messages = verified(receiver, subscription)
    stage_updates = [m for m in messages if m["type"] == "OpportunityStageUpdate"]
    assert len(stage_updates) == 1
    assert stage_updates[0]["data"]["id"] == str(acme.pk)
    assert stage_updates[0]["data"]["pipelineStageId"] == str(stages[2].pk)
    assert stage_updates[0]["changes"]["pipelineStageId"]["new"] == str(stages[2].pk)


def api_put(live_server, token: str, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{live_server.url}/api/v1{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_an_api_status_change_is_delivered(live_server, hooks, sales):
    receiver, subscription, _ = hooks
    _, _, rep, acme, _ = sales
    _, token = api_token_create(user=rep, name="e2e")
    assert api_put(live_server, token, f"/opportunities/{acme.pk}/status", {"status": "won"}) == 200
    pump_and_work()
    messages = verified(receiver, subscription)
    assert [m["type"] for m in messages if m["data"]["id"] == str(acme.pk)] == [
        "OpportunityStatusUpdate"
    ]
    assert messages[0]["data"]["status"] == "won"
    assert messages[0]["changes"]["status"] == {"old": "open", "new": "won"}


def test_an_import_is_delivered_one_event_per_row(hooks, sales):
    receiver, subscription, manager = hooks
    text = "name,pipeline,stage,value\nImported A,Sales,Prospecting,100\nImported B,Sales,,50\n"
    import_apply(text=text, user=manager)
    pump_and_work()
    created = [m for m in verified(receiver, subscription) if m["type"] == "OpportunityCreate"]
    assert sorted(m["data"]["name"] for m in created) == ["Imported A", "Imported B"]


def test_a_receiver_answering_500_gets_the_retry(live_server, hooks, sales):
    receiver, subscription, _ = hooks
    _, _, rep, acme, _ = sales
    receiver.script = [500]
    _, token = api_token_create(user=rep, name="e2e")
    api_put(live_server, token, f"/opportunities/{acme.pk}", {"monetaryValue": 4321})
    pump_and_work()
    assert [r["status"] for r in receiver.requests] == [500]
    delivery = WebhookDelivery.objects.order_by("event_id").first()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at

    # Time passes: the retry is due.
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.update(run_after=timezone.now())
    run_worker()
    statuses = [r["status"] for r in receiver.requests]
    assert statuses[:2] == [500, 200]
    ids = {r["headers"]["webhook-id"] for r in receiver.requests[:2]}
    assert len(ids) == 1  # the same message, so the receiver can de-duplicate
    verified(receiver, subscription)


@pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="a worker process needs a database it can share (the SQLite test database is in memory)",
)
def test_killing_the_worker_mid_delivery_loses_nothing(hooks, sales):
    receiver, subscription, manager = hooks
    _, _, _, acme, _ = sales
    db = connection.settings_dict
    url = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    receiver.hold.set()  # the first request hangs, like a slow receiver
    from opportunities.services.opportunities import opportunity_update

    opportunity_update(opportunity=acme, user=manager, name="Acme renamed")
    pump_once()
    worker = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.1",
        ],
        cwd=django_settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": url, "WEBHOOKS_ALLOW_PRIVATE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while receiver.arrived == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.arrived == 1, "the worker never sent the delivery"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    receiver.release()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.claimed_until

    # The dead worker's claim runs out; the periodic sweep queues the delivery again.
    WebhookDelivery.objects.update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert webhooks.sweep() == 1
    run_worker()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [m["type"] for m in verified(receiver, subscription)] == ["OpportunityUpdate"]
