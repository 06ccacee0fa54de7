"""The event pump (cursors advanced with the consumers' work) and periodic jobs."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from integrations.models import EventCursor, PeriodicJobRun
from integrations.pump import pump_once, start_due_jobs
from opportunities.models import OpportunityEvent
from opportunities.services.opportunities import opportunity_create
from tests import factories
from tests.webhook_receiver import webhook_manager
from tests.worker_helpers import run_worker

pytestmark = pytest.mark.django_db

seen: list[int] = []


def record(events):
    seen.extend(event.pk for event in events)


def explode(events):
    OpportunityEvent.objects.none()  # a consumer that fails half-way
    raise RuntimeError("consumer broke")


def count_job():
    seen.append(-1)
    return "ran"


@pytest.fixture(autouse=True)
def _clean():
    seen.clear()
    yield
    seen.clear()


@pytest.fixture
def events():
    user = factories.manager(username="pump-manager")
    pipeline, _ = factories.pipeline_with_stages(("A", "B"))
    for number in range(3):
        opportunity_create(user=user, name=f"Pumped {number}", pipeline=pipeline)
    return list(OpportunityEvent.objects.order_by("id"))


def test_pump_hands_each_event_once_in_order(settings, events):
    settings.EVENT_CONSUMERS = ["tests.test_worker.record"]
    assert pump_once() == len(events)
    assert pump_once() == 0
    assert seen == [event.pk for event in events]
    assert EventCursor.objects.get(name="tests.test_worker.record").last_id == events[-1].pk


def test_each_consumer_has_its_own_cursor(settings, events):
    settings.EVENT_CONSUMERS = ["tests.test_worker.record"]
    pump_once()
    settings.EVENT_CONSUMERS = ["tests.test_worker.record", "integrations.webhooks.consume"]
    pump_once()
    assert seen == [event.pk for event in events]
    assert EventCursor.objects.get(name="integrations.webhooks.consume").last_id == events[-1].pk


def test_a_failing_consumer_keeps_its_cursor_and_others_go_on(settings, events):
    settings.EVENT_CONSUMERS = ["tests.test_worker.explode", "tests.test_worker.record"]
    pump_once()
    assert seen == [event.pk for event in events]
    assert not EventCursor.objects.filter(name="tests.test_worker.explode", last_id__gt=0)


def test_pump_reads_in_batches(settings, events):
    settings.EVENT_CONSUMERS = ["tests.test_worker.record"]
    assert pump_once(limit=2) == 2
    assert pump_once(limit=2) == 1
    assert seen == [event.pk for event in events]


def test_periodic_job_starts_once_per_interval(settings):
    settings.PERIODIC_JOBS = [("tests.test_worker.count_job", 3600)]
    assert start_due_jobs() == ["tests.test_worker.count_job"]
    assert start_due_jobs() == []
    run_worker()
    assert seen == [-1]
    PeriodicJobRun.objects.update(last_run_at=timezone.now() - timedelta(hours=2))
    assert start_due_jobs() == ["tests.test_worker.count_job"]


def test_prune_job_deletes_old_events(settings, events):
    from integrations.jobs import prune_events

    OpportunityEvent.objects.filter(pk=events[0].pk).update(
        created_at=timezone.now() - timedelta(days=settings.EVENT_RETENTION_DAYS + 1)
    )
    assert prune_events() == 1
    assert OpportunityEvent.objects.count() == len(events) - 1


def test_webhook_consumer_enqueues_with_the_cursor(settings):
    from integrations import webhooks

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    manager = webhook_manager(username="pump-hooks")
    webhooks.subscription_create(
        user=manager, url="http://127.0.0.1:9/hook", event_types=["OpportunityCreate"]
    )
    pipeline, _ = factories.pipeline_with_stages(("A", "B"))
    for number in range(3):
        opportunity_create(user=manager, name=f"Hooked {number}", pipeline=pipeline)
    pump_once()
    assert DBTaskResult.objects.filter(task_path__endswith="deliver_webhooks").count() == 3
    cursor = EventCursor.objects.get(name="integrations.webhooks.consume")
    assert cursor.last_id == OpportunityEvent.objects.order_by("id").last().pk


def test_create_api_token_prints_a_working_token(client, capsys):
    factories.rep(username="scripted")
    call_command("create_api_token", "scripted")
    token = capsys.readouterr().out.strip()
    assert token.startswith("crm_")
    response = client.get(
        "/api/v1/opportunities/pipelines", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


def test_create_api_token_for_unknown_user_fails():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody-here")
