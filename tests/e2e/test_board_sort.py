"""The board's column order and the card menu's "Move to another pipeline…" in real
Chromium; every change is checked in the database too."""

import re

import pytest
from playwright.sync_api import expect

from opportunities.models import Opportunity
from tests import factories
from tests.e2e.helpers import sortable_drag

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def board(roles):
    pipeline, stages = factories.pipeline_with_stages()
    rep = factories.rep(username="rita")
    cards = {}
    for name, value in [("Acme", 300), ("Bolt", 900), ("Cirrus", 600)]:
        cards[name] = factories.OpportunityFactory(
            stage=stages[0], name=name, assigned_to=rep, value=value
        )
    cards["Delta"] = factories.OpportunityFactory(
        stage=stages[1], name="Delta", assigned_to=rep, value=100
    )
    return pipeline, stages, cards, rep


@pytest.fixture(autouse=True)
def no_csp_violations(page):
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield
    assert violations == []


def open_board(page, live_server, pipeline, query=""):
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/{query}")
    expect(page.locator("#board .card").first).to_be_visible()


def card(page, opportunity):
    return page.locator(f"#opportunity-{opportunity.pk}")


def titles(page, stage):
    return page.locator(f"#cards-{stage.pk} > .card .card-title")


def test_choosing_value_reorders_the_cards_and_offers_no_drag_within_a_column(
    page, live_server, login_as, board
):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    expect(titles(page, stages[0])).to_have_text(["Acme", "Bolt", "Cirrus"])

    with page.expect_response(lambda r: "/board/" in r.url and "sort=value" in r.url):
        page.select_option("#id_sort", "value")
    expect(titles(page, stages[0])).to_have_text(["Bolt", "Cirrus", "Acme"])
    expect(page).to_have_url(re.compile(r"sort=value"))
    expect(page.locator("#board-sort-hint")).to_contain_text("Switch to Manual order")

    # A drag within the sorted column changes nothing and sends nothing.
    moves = []
    page.on("request", lambda r: moves.append(r.url) if "/move/" in r.url else None)
    sortable_drag(page, card(page, cards["Acme"]), card(page, cards["Bolt"]))
    page.wait_for_timeout(300)
    assert moves == []
    expect(titles(page, stages[0])).to_have_text(["Bolt", "Cirrus", "Acme"])
    before = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (before.stage_id, before.version) == (stages[0].pk, 1)

    # Into another column it still moves, and lands where the order puts it.
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        sortable_drag(page, card(page, cards["Acme"]), card(page, cards["Delta"]))
    assert answer.value.status == 200
    expect(titles(page, stages[1])).to_have_text(["Acme", "Delta"])
    assert Opportunity.objects.get(pk=cards["Acme"].pk).stage_id == stages[1].pk

    # The order survives a reload (it is in the URL).
    page.reload()
    expect(titles(page, stages[0])).to_have_text(["Bolt", "Cirrus"])
    expect(page.locator("#id_sort")).to_have_value("value")


def test_move_a_card_to_another_pipeline_from_its_menu(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    _, targets = factories.pipeline_with_stages(("New", "Demo"), name="Partners")
    login_as(rep)
    open_board(page, live_server, pipeline)
    acme = card(page, cards["Acme"])
    acme.locator("summary").click()
    select = acme.locator("select[name=stage]").nth(1)
    expect(select).to_be_visible()
    select.select_option(label="Partners › Demo")
    with page.expect_response(lambda r: "/menu/pipeline/" in r.url) as answer:
        acme.locator("form.move-pipeline button").click()
    assert answer.value.status == 200
    expect(acme).to_have_count(0)
    expect(page.locator(f"#column-head-{stages[0].pk} .count")).to_have_text("2")
    expect(page.locator(f"#column-head-{stages[0].pk} .total")).to_have_text("$1,500")
    moved = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (moved.pipeline_id, moved.stage_id) == (targets[1].pipeline_id, targets[1].pk)


def test_a_refused_pipeline_move_shows_its_message_in_the_menu(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    factories.pipeline_with_stages(("New",), name="Partners")
    login_as(rep)
    open_board(page, live_server, pipeline)
    bolt = card(page, cards["Bolt"])
    bolt.locator("summary").click()
    expect(bolt.locator("form.move-pipeline")).to_be_visible()
    # Someone else changes the card while the menu is open.
    Opportunity.objects.filter(pk=cards["Bolt"].pk).update(version=7)
    bolt.locator("form.move-pipeline select").select_option(label="Partners › New")
    with page.expect_response(lambda r: "/menu/pipeline/" in r.url) as answer:
        bolt.locator("form.move-pipeline button").click()
    assert answer.value.status == 409
    expect(bolt.locator("[data-menu-error]")).to_contain_text("changed by someone else")
    assert Opportunity.objects.get(pk=cards["Bolt"].pk).stage_id == stages[0].pk
