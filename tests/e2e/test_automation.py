"""Automation in real Chromium: a drag into Proposal creates the follow-up task on the deal's
record once the pump and the worker have run; a stale deal rings the owner's bell."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from automation import engine
from automation.demo import seed_demo_rules
from integrations.pump import pump_once
from opportunities.models import Opportunity, Task
from tests import factories
from tests.e2e.helpers import sortable_drag

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sales(roles):
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    rep = factories.rep(username="rita")
    factories.manager(username="manager")
    seed_demo_rules()
    acme = factories.OpportunityFactory(stage=stages[0], name="Acme", assigned_to=rep)
    delta = factories.OpportunityFactory(stage=stages[2], name="Delta", assigned_to=rep)
    return pipeline, stages, rep, acme, delta


def run_worker():
    """What `make run` does in the background: the pump, then the worker's queued runs."""
    pump_once()
    engine.run_pending()


def test_dragging_into_proposal_creates_the_task_on_the_record(page, live_server, login_as, sales):
    pipeline, stages, rep, acme, delta = sales
    run_worker()  # the seeded deals' own events
    login_as(rep)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    source, target = (
        page.locator(f"#opportunity-{acme.pk}"),
        page.locator(f"#opportunity-{delta.pk}"),
    )
    expect(source).to_be_visible()
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        sortable_drag(page, source, target)
    assert answer.value.status == 200
    assert Opportunity.objects.get(pk=acme.pk).stage == stages[2]

    run_worker()
    task = Task.objects.get(opportunity=acme)
    assert (task.title, task.assigned_to) == ("Send the proposal", rep)
    page.goto(f"{live_server.url}/opportunities/{acme.pk}/")
    expect(page.locator(f"#tasks-{acme.pk}")).to_contain_text("Send the proposal")
    expect(page.locator(f"#automation-panel-{acme.pk}")).to_contain_text(
        "Automation ‘Proposal follow-up’ created task ‘Send the proposal’"
    )


def test_a_backdated_deal_rings_the_owners_bell(page, live_server, login_as, sales):
    pipeline, _, rep, acme, _ = sales
    Opportunity.objects.filter(pk=acme.pk).update(
        stage_entered_at=timezone.now() - timedelta(days=31)
    )
    engine.stale_check()
    login_as(rep)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    count = page.get_by_test_id("bell-count")
    expect(count).to_have_text("1")
    page.locator("#notification-bell summary").click()
    link = page.get_by_role("link", name="Acme has not changed stage for 30 days")
    expect(link).to_be_visible()
    page.get_by_role("button", name="Mark all read").click()
    expect(count).to_have_count(0)
