"""axe-core (from npm) finds no serious or critical problems on the main pages, light or dark."""

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from opportunities.models import Status
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}


def sign_in(context, live_server, user):
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def blocking_violations(page) -> list[str]:
    """axe's serious and critical findings, one readable line each (empty when clean)."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}) at {' '.join(node['target'])}: "
        + " ".join(node["failureSummary"].split())
        for v in violations
        if v["impact"] in BLOCKING
        for node in v["nodes"]
    ]


def assert_accessible(page):
    found = blocking_violations(page)
    assert not found, "axe found:\n" + "\n".join(found)


@pytest.fixture(params=["light", "dark"])
def scheme(request):
    return request.param


@pytest.fixture
def axe_page(browser, scheme):
    # axe is injected as a script: the strict CSP would refuse it, so this context bypasses it.
    context = browser.new_context(bypass_csp=True, color_scheme=scheme)
    yield context.new_page()
    context.close()


@pytest.fixture
def data(transactional_db):
    factories.ensure_roles()
    pipeline, stages = factories.pipeline_with_stages()
    factories.PipelineFactory(name="Renewals")
    manager = factories.manager(username="mia", first_name="Mia", last_name="Lind")
    opportunities = [
        factories.OpportunityFactory(stage=stages[0], name="Acme renewal", assigned_to=manager),
        factories.OpportunityFactory(stage=stages[1], name="Globex pilot", status=Status.WON),
        factories.OpportunityFactory(stage=stages[1], name="Initech seats", status=Status.LOST),
        factories.OpportunityFactory(stage=stages[2], name="Umbrella", status=Status.ABANDONED),
    ]
    factories.TaskFactory(opportunity=opportunities[0], title="Call back")
    factories.NoteFactory(opportunity=opportunities[0], author=manager)
    return pipeline, stages, opportunities, manager


def test_login_page_has_no_serious_violations(axe_page, live_server, data):
    axe_page.goto(f"{live_server.url}/accounts/login/")
    expect(axe_page.get_by_label("Username")).to_be_visible()
    assert_accessible(axe_page)


def test_board_has_no_serious_violations(axe_page, live_server, data):
    pipeline, *_, manager = data
    sign_in(axe_page.context, live_server, manager)
    # All statuses, so the won / lost / abandoned badges are checked too.
    axe_page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/?status=all")
    expect(axe_page.locator("#board .badge").first).to_be_visible()
    assert_accessible(axe_page)


def test_board_with_a_card_menu_open_and_a_card_picked_up_has_no_serious_violations(
    axe_page, live_server, data
):
    pipeline, _, opportunities, manager = data
    sign_in(axe_page.context, live_server, manager)
    axe_page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    card = axe_page.locator(f"#opportunity-{opportunities[0].pk}")
    card.get_by_label(f"Actions for {opportunities[0].name}").first.click()
    expect(card.get_by_role("button", name="Mark won")).to_be_visible()
    card.focus()
    axe_page.keyboard.press("Space")
    expect(card).to_have_class("card status-open is-grabbed")
    assert_accessible(axe_page)


def test_board_on_a_phone_has_no_serious_violations(browser, live_server, data, scheme):
    pipeline, *_, manager = data
    context = browser.new_context(
        bypass_csp=True,
        color_scheme=scheme,
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
    )
    try:
        page = context.new_page()
        sign_in(context, live_server, manager)
        page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
        expect(page.get_by_role("navigation", name="Stages")).to_be_visible()
        assert_accessible(page)
    finally:
        context.close()


def test_record_page_has_no_serious_violations(axe_page, live_server, data):
    _, _, opportunities, manager = data
    sign_in(axe_page.context, live_server, manager)
    axe_page.goto(f"{live_server.url}/opportunities/{opportunities[0].pk}/")
    expect(axe_page.get_by_role("heading", name="Acme renewal")).to_be_visible()
    assert_accessible(axe_page)


def test_list_page_has_no_serious_violations(axe_page, live_server, data):
    *_, manager = data
    sign_in(axe_page.context, live_server, manager)
    axe_page.goto(f"{live_server.url}/opportunities/?status=all")
    expect(axe_page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(axe_page)


def test_board_keyboard_move_and_live_refresh_break_no_csp_rule(page, live_server, data):
    """The same pages under the real CSP: no inline style or script is refused."""
    pipeline, stages, opportunities, manager = data
    refused = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    sign_in(page.context, live_server, manager)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    card = page.locator(f"#opportunity-{opportunities[0].pk}")
    cursor = page.locator("#board").get_attribute("data-event-cursor")
    card.focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    with page.expect_response(lambda r: "/move/" in r.url):
        page.keyboard.press("Space")
    # Our own move is an event: the next poll brings it back as a delta and applies it.
    expect(page.locator("#board")).not_to_have_attribute("data-event-cursor", cursor)
    expect(
        page.locator(f"#cards-{stages[1].pk} #opportunity-{opportunities[0].pk}")
    ).to_be_visible()
    assert refused == []


def test_header_fits_a_phone_without_overlaps(browser, live_server, data):
    pipeline, *_, manager = data
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    try:
        page = context.new_page()
        sign_in(context, live_server, manager)
        page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
        header = page.locator("header.topbar")
        expect(header.get_by_role("link", name="Board")).to_be_visible()
        parts = [
            header.locator(".brand"),
            *header.locator(".mainnav a").all(),
            header.locator(".usermenu .avatar"),
            header.get_by_role("button", name="Sign out"),
        ]
        boxes = [part.bounding_box() for part in parts]
        for box in boxes:
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        for index, one in enumerate(boxes):
            for other in boxes[index + 1 :]:
                apart = (
                    one["x"] + one["width"] <= other["x"]
                    or other["x"] + other["width"] <= one["x"]
                    or one["y"] + one["height"] <= other["y"]
                    or other["y"] + other["height"] <= one["y"]
                )
                assert apart, (one, other)
        # The board starts below the header, not under it.
        top = page.locator("#main").bounding_box()["y"]
        assert top >= header.bounding_box()["y"] + header.bounding_box()["height"] - 1
    finally:
        context.close()


def test_record_of_a_deal_with_a_contact_has_no_serious_violations(axe_page, live_server, data):
    _, stages, _, manager = data
    contact = factories.ContactFactory(
        name="Wanda Maximoff", email="wanda@westview.example", company="Westview"
    )
    deal = factories.OpportunityFactory(
        stage=stages[0], name="Westview deal", contact=contact, assigned_to=manager
    )
    sign_in(axe_page.context, live_server, manager)
    axe_page.goto(f"{live_server.url}/opportunities/{deal.pk}/")
    expect(axe_page.get_by_role("heading", name="Westview deal")).to_be_visible()
    assert_accessible(axe_page)


def test_my_tasks_page_has_no_serious_violations(axe_page, live_server, data):
    *_, manager = data
    sign_in(axe_page.context, live_server, manager)
    axe_page.goto(f"{live_server.url}/tasks/")
    expect(axe_page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(axe_page)
