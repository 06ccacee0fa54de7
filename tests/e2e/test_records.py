"""The opportunity record in real Chromium: quick-add on the board, the side panel,
editing the value, notes, tasks, and losing the deal with a reason."""

import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from opportunities.models import Note, Opportunity, Status, Task
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(context, live_server, user):
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


@pytest.fixture
def setup(transactional_db):
    factories.ensure_roles()
    pipeline, stages = factories.pipeline_with_stages()
    user = factories.rep(username="rita")
    factories.OpportunityFactory(stage=stages[1], assigned_to=user, value=1000, name="Existing")
    reason = factories.LostReasonFactory(name="Chose a competitor")
    return pipeline, stages, user, reason


def test_quick_add_open_edit_note_task_and_lose_it(page, live_server, setup):
    pipeline, stages, user, reason = setup
    stage = stages[1]
    csp_violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and csp_violations.append(message.text)
        ),
    )
    sign_in(page.context, live_server, user)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    total = page.locator(f"#column-head-{stage.pk} .total")
    expect(total).to_have_text("$1,000")

    # Quick-add at the top of the column: the card appears in place, the total follows.
    page.locator(f"#quick-add-{stage.pk} summary").click()
    form = page.locator(f"#quick-add-{stage.pk} form")
    form.get_by_placeholder("Opportunity name").fill("Globex pilot")
    form.get_by_placeholder("Contact name").fill("Hank Scorpio")
    form.get_by_placeholder("Value").fill("250")
    with page.expect_response(lambda r: "/quick-add/" in r.url) as answer:
        form.get_by_role("button", name="Add").click()
    assert answer.value.status == 200
    created = Opportunity.objects.get(name="Globex pilot")
    assert (created.stage, created.status, created.assigned_to) == (stage, Status.OPEN, user)
    assert created.contact.name == "Hank Scorpio"
    first_card = page.locator(f"#cards-{stage.pk} > .card").first
    expect(first_card).to_have_attribute("id", f"opportunity-{created.pk}")
    expect(total).to_have_text("$1,250")
    expect(form.get_by_placeholder("Opportunity name")).to_have_value("")

    # Open it in the side panel and change the value: the board's column total follows.
    first_card.get_by_role("link", name="Globex pilot").click()
    panel = page.locator("#record-panel")
    expect(panel.locator(".record-title")).to_contain_text("Globex pilot")
    panel.get_by_label("Value").fill("5000")
    with page.expect_response(lambda r: r.url.endswith("/edit/")) as answer:
        panel.get_by_role("button", name="Save changes").click()
    assert answer.value.status == 200
    expect(total).to_have_text("$6,000")
    expect(panel.locator(".record-value")).to_have_text("$5,000")
    created.refresh_from_db()
    assert created.value == 5000 and created.version == 2

    # A note, with its line break kept.
    panel.get_by_role("textbox", name="Note").fill("Spoke with Hank.\nWants a pilot in March.")
    panel.get_by_role("button", name="Add note").click()
    expect(panel.locator(".note-body").first).to_contain_text("Wants a pilot in March.")
    assert Note.objects.get(opportunity=created).body == "Spoke with Hank.\nWants a pilot in March."

    # A task, assigned to the owner by default.
    panel.locator("#task_title").fill("Send pilot agreement")
    panel.locator("#task_due_on").fill("2030-03-01")
    panel.get_by_role("button", name="Add task").click()
    expect(panel.locator(".task-title")).to_have_text(["Send pilot agreement"])
    task = Task.objects.get(opportunity=created)
    assert (task.title, task.assigned_to, str(task.due_on)) == (
        "Send pilot agreement",
        user,
        "2030-03-01",
    )

    # Lost, with a reason; the history says so.
    panel.locator(".lost-pop summary").click()
    panel.get_by_label("Why was it lost?").select_option(label="Chose a competitor")
    with page.expect_response(lambda r: "/record-status/" in r.url):
        panel.get_by_role("button", name="Mark lost").click()
    history = panel.locator(".timeline")
    expect(history.locator(".tl-status").first).to_contain_text(
        re.compile(r"Open\s*→\s*Lost\s*\(Chose a competitor\)")
    )
    expect(history).to_contain_text("Task added: Send pilot agreement")
    created.refresh_from_db()
    assert (created.status, created.lost_reason) == (Status.LOST, reason)
    # The board (showing Open) dropped the lost card and its value.
    expect(total).to_have_text("$1,000")
    assert csp_violations == []


def test_record_page_keeps_bad_input_with_the_message(page, live_server, setup):
    """The full page: a bad phone re-renders with the input kept and the message shown."""
    user = setup[2]
    opportunity = Opportunity.objects.get(name="Existing")
    sign_in(page.context, live_server, user)
    page.goto(f"{live_server.url}/opportunities/{opportunity.pk}/")
    page.get_by_label("Phone").fill("call me")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".field-phone .error")).to_contain_text("Use digits, spaces")
    expect(page.get_by_label("Phone")).to_have_value("call me")
    assert Opportunity.objects.get(pk=opportunity.pk).version == 1
