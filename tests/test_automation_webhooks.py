# ruff: noqa: RUF059  (each test unpacks the whole `sales` fixture for readability)
"""Automation's "send a webhook" action (through the webhook delivery machinery, to a real
receiver on 127.0.0.1) and automation runs on the deal's history timeline."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from standardwebhooks.webhooks import Webhook

from automation.models import Action, ActionKind, Outcome, Rule, RuleRun, Trigger
from integrations import webhooks
from integrations.models import DeliveryStatus, WebhookDelivery
from opportunities.models import OpportunityEvent
from opportunities.services.moves import opportunity_move
from tests import factories
from tests.test_webhooks import make_due
from tests.webhook_receiver import Receiver, webhook_manager
from tests.worker_helpers import pump_and_work, run_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def sales(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    rep = factories.rep(username="rep")
    boss = webhook_manager(username="boss")
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=rep, pipeline=pipeline)
    return pipeline, stages, rep, boss, deal


def subscribe(boss, receiver, event_types=("OpportunityStatusUpdate",)):
    # By default not to stage changes: what arrives then came from the rule's action.
    return webhooks.subscription_create(user=boss, url=receiver.url, event_types=event_types)


def webhook_rule(pipeline, stage, boss, subscription, **fields) -> Rule:
    rule = Rule.objects.create(
        name=fields.pop("name", "Tell the ERP"),
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stage,
        acting_user=fields.pop("acting_user", boss),
        **fields,
    )
    Action.objects.create(rule=rule, kind=ActionKind.SEND_WEBHOOK, webhook=subscription)
    return rule


def move(deal, stage, user):
    deal.refresh_from_db()
    return opportunity_move(opportunity=deal, to_stage=stage, version=deal.version, user=user)


def bodies(receiver) -> list[dict]:
    return [json.loads(request["body"]) for request in receiver.requests]


# --- the action ------------------------------------------------------------------------------


def test_the_action_delivers_the_triggering_event_signed(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    webhook_rule(pipeline, stages[2], boss, subscription)
    move(deal, stages[2], rep)
    event = OpportunityEvent.objects.filter(type="OpportunityStageUpdate").latest("id")

    pump_and_work()

    [request] = receiver.wait_for(1)
    headers = {key.lower(): value for key, value in request["headers"].items()}
    Webhook(subscription.secret).verify(request["body"], headers)  # raises if wrong
    body = json.loads(request["body"])
    assert body["type"] == "OpportunityStageUpdate"
    assert set(body) >= {"type", "timestamp", "data"}
    assert body["data"]["id"] == str(deal.pk)
    assert body["eventId"] == str(event.pk)
    assert headers["webhook-id"] == f"msg_{subscription.pk}_{event.pk}"
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event_id, delivery.status) == (event.pk, DeliveryStatus.SUCCEEDED)
    run = RuleRun.objects.get()
    assert run.outcome == Outcome.DONE
    assert run.summary == f"queued webhook OpportunityStageUpdate to {receiver.url}"


def test_an_event_the_subscription_already_gets_is_sent_once(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver, event_types=webhooks.EVENT_TYPES)
    webhook_rule(pipeline, stages[2], boss, subscription)
    move(deal, stages[2], rep)

    pump_and_work()

    assert [body["type"] for body in bodies(receiver)] == ["OpportunityStageUpdate"]
    assert RuleRun.objects.get().summary.startswith("already queued webhook")


def test_a_failed_delivery_is_retried_and_logged(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    webhook_rule(pipeline, stages[2], boss, subscription)
    receiver.script = [503]
    move(deal, stages[2], rep)

    pump_and_work()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 503)

    make_due()
    run_worker()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCEEDED, 2)
    assert [request["status"] for request in receiver.requests] == [503, 200]


def test_a_rule_whose_user_cannot_see_the_deal_sends_nothing(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    stranger = factories.rep(username="stranger")
    webhook_rule(pipeline, stages[2], boss, subscription, acting_user=stranger)
    move(deal, stages[2], rep)

    pump_and_work()

    run = RuleRun.objects.get()
    assert run.outcome == Outcome.REFUSED
    assert "cannot see this deal" in run.summary
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_delivery_enqueue_refuses_a_switched_off_subscription(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    move(deal, stages[1], rep)
    event = OpportunityEvent.objects.latest("id")
    with pytest.raises(ValidationError, match="switched off"):
        webhooks.delivery_enqueue(subscription=subscription, event=event)
    assert not WebhookDelivery.objects.exists()


# --- refused when saved --------------------------------------------------------------------


def _action(rule, **fields) -> Action:
    return Action(rule=rule, kind=ActionKind.SEND_WEBHOOK, **fields)


def test_saving_without_a_subscription_is_refused(sales):
    pipeline, stages, rep, boss, deal = sales
    rule = Rule(name="r", trigger=Trigger.CREATED, acting_user=boss)
    with pytest.raises(ValidationError, match="Choose the webhook subscription"):
        _action(rule).clean()


def test_saving_with_a_switched_off_subscription_is_refused(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    rule = Rule(name="r", trigger=Trigger.CREATED, acting_user=boss)
    with pytest.raises(ValidationError, match="is switched off"):
        _action(rule, webhook=subscription).clean()


def test_a_stale_rule_cannot_send_a_webhook(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    rule = Rule(name="r", trigger=Trigger.STALE, acting_user=boss)
    with pytest.raises(ValidationError, match="stale check"):
        _action(rule, webhook=subscribe(boss, receiver)).clean()


# --- the world changed after saving ----------------------------------------------------------


def test_a_subscription_switched_off_later_refuses_the_run_and_flags_the_rule(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    rule = webhook_rule(pipeline, stages[2], boss, subscription)
    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    move(deal, stages[2], rep)

    pump_and_work()

    run = RuleRun.objects.get()
    assert run.outcome == Outcome.REFUSED
    assert "is switched off" in run.summary
    rule.refresh_from_db()
    assert "Send a webhook" in rule.problem and "switched off" in rule.problem
    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []


def test_a_deleted_subscription_refuses_the_run_and_flags_the_rule(sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    rule = webhook_rule(pipeline, stages[2], boss, subscription)
    webhooks.subscription_delete(subscription=subscription, user=boss)
    move(deal, stages[2], rep)

    pump_and_work()

    assert RuleRun.objects.get().outcome == Outcome.REFUSED
    rule.refresh_from_db()
    assert "may have been deleted" in rule.problem
    assert receiver.requests == []


# --- the forms -------------------------------------------------------------------------------


def _rule_post(pipeline, stage, user, webhook) -> dict:
    return {
        "name": "Tell the ERP",
        "enabled": "on",
        "position": "0",
        "pipeline": pipeline.pk,
        "trigger": "stage_entered",
        "stage": stage.pk,
        "acting_user": user.pk,
        "conditions-TOTAL_FORMS": "0",
        "conditions-INITIAL_FORMS": "0",
        "actions-TOTAL_FORMS": "1",
        "actions-INITIAL_FORMS": "0",
        "actions-0-position": "0",
        "actions-0-kind": "send_webhook",
        "actions-0-webhook": webhook.pk,
    }


def test_settings_automation_offers_the_action_and_refuses_a_switched_off_one(
    client, sales, receiver
):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    client.force_login(boss)
    form = client.get(reverse("automation:rule_create")).content.decode()
    assert 'value="send_webhook"' in form and receiver.url in form

    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    data = _rule_post(pipeline, stages[2], boss, subscription)
    answer = client.post(reverse("automation:rule_create"), data)
    assert answer.status_code == 422
    html = answer.content.decode()
    assert "is switched off; switch it on under Settings → Webhooks" in html
    assert f"{receiver.url} (switched off)" in html
    assert not Rule.objects.exists()

    webhooks.subscription_set_active(subscription=subscription, user=boss, active=True)
    assert client.post(reverse("automation:rule_create"), data).status_code == 302
    assert Rule.objects.get().actions.get().webhook == subscription


def test_admin_offers_the_action_and_refuses_a_switched_off_one(client, sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    admin = factories.admin()
    client.force_login(admin)
    subscription = subscribe(boss, receiver)
    assert receiver.url in client.get(reverse("admin:automation_rule_add")).content.decode()

    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    data = _rule_post(pipeline, stages[2], admin, subscription)
    answer = client.post(reverse("admin:automation_rule_add"), data)
    assert answer.status_code == 200
    assert "is switched off" in answer.content.decode()
    assert not Rule.objects.exists()

    webhooks.subscription_set_active(subscription=subscription, user=boss, active=True)
    assert client.post(reverse("admin:automation_rule_add"), data).status_code == 302
    assert Rule.objects.get().actions.get().kind == ActionKind.SEND_WEBHOOK


# --- the deal's history timeline ---------------------------------------------------------


def task_rule(pipeline, stage, boss, name="Proposal follow-up") -> Rule:
    rule = Rule.objects.create(
        name=name, pipeline=pipeline, trigger=Trigger.STAGE_ENTERED, stage=stage, acting_user=boss
    )
    Action.objects.create(rule=rule, kind=ActionKind.CREATE_TASK, title="Send the proposal")
    return rule


def timeline_html(client, deal) -> str:
    html = client.get(reverse("opportunities:detail", args=[deal.pk])).content.decode()
    return html[html.index('id="timeline-') :]


def test_the_timeline_shows_what_a_run_did_in_time_order(client, sales):
    pipeline, stages, rep, boss, deal = sales
    task_rule(pipeline, stages[2], boss)
    move(deal, stages[2], rep)
    pump_and_work()

    client.force_login(rep)
    html = timeline_html(client, deal)
    line = "Automation ‘Proposal follow-up’ created task ‘Send the proposal’"
    assert line in html
    # Newest first: the run ran after the stage change that started it.
    assert html.index(line) < html.index("Stage <strong>Prospecting</strong>")


def test_the_timeline_shows_a_refused_run_with_its_reason(client, sales, receiver):
    pipeline, stages, rep, boss, deal = sales
    subscription = subscribe(boss, receiver)
    webhook_rule(pipeline, stages[2], boss, subscription)
    webhooks.subscription_set_active(subscription=subscription, user=boss, active=False)
    # A rule whose conditions fail is left out: it did nothing on the deal.
    skipped = task_rule(pipeline, stages[2], boss, name="Big deals only")
    skipped.conditions.create(kind="value_gte", value="99999999")
    move(deal, stages[2], rep)
    pump_and_work()

    client.force_login(rep)
    html = timeline_html(client, deal)
    assert 'Automation ‘Tell the ERP’ <span class="error">refused: the rule cannot run' in html
    assert "is switched off" in html
    assert "Big deals only" not in html


def test_the_timeline_reads_the_runs_in_one_query_however_many(client, sales):
    pipeline, stages, rep, boss, deal = sales
    client.force_login(rep)
    for n in range(2):
        task_rule(pipeline, stages[1], boss, name=f"Rule {n}")
    move(deal, stages[1], rep)
    pump_and_work()
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("opportunities:detail", args=[deal.pk])).status_code == 200

    for n in range(2, 8):
        task_rule(pipeline, stages[2], boss, name=f"Rule {n}")
    move(deal, stages[2], rep)
    pump_and_work()
    with CaptureQueriesContext(connection) as many:
        html = client.get(reverse("opportunities:detail", args=[deal.pk])).content.decode()
    assert html.count("Automation ‘Rule ") == 8
    assert len(many.captured_queries) == len(few.captured_queries)
