"""The kanban board in real Chromium: drags with the mouse, filters, conflicts, the
keyboard-only "Move to stage…" menu and marking a card lost; every action is checked in
the database, not only on the page."""

import re

import pytest
from playwright.sync_api import expect

from opportunities.models import Opportunity, Status
from tests import factories
from tests.e2e.helpers import sortable_drag

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONFLICT = "This card was changed by someone else"


@pytest.fixture
def board(roles):
    pipeline, stages = factories.pipeline_with_stages()
    rep = factories.rep(username="rita")
    cards = {}
    for stage, names in zip(stages, [["Acme", "Bolt", "Cirrus"], ["Delta"], []], strict=False):
        for name in names:
            cards[name] = factories.OpportunityFactory(
                stage=stage, name=name, assigned_to=rep, value=1000
            )
    cards["Won deal"] = factories.OpportunityFactory(
        stage=stages[0], name="Won deal", assigned_to=rep, status=Status.WON
    )
    return pipeline, stages, cards, rep


@pytest.fixture(autouse=True)
def no_csp_violations(page):
    """Every test also proves the board runs under the strict CSP (no blocked script/style)."""
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


def column_names(page, stage):
    return page.locator(f"#cards-{stage.pk} > .card").evaluate_all(
        "cards => cards.map(card => card.querySelector('.card-title').textContent)"
    )


def names_in(stage):
    return list(
        Opportunity.objects.filter(stage=stage, status=Status.OPEN)
        .order_by("rank", "id")
        .values_list("name", flat=True)
    )


def tab_to(page, target, limit=80):
    """Press Tab until `target` has the focus, as a keyboard user would."""
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{target} cannot be reached with Tab")


def is_move(response):
    return "/move/" in response.url and response.request.method == "POST"


def test_drag_to_another_stage_persists(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    with page.expect_response(is_move) as answer:
        sortable_drag(page, card(page, cards["Acme"]), card(page, cards["Delta"]))
    assert answer.value.status == 200
    moved = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (moved.stage, moved.version) == (stages[1], 2)
    expect(page.locator(f"#column-head-{stages[1].pk} .count")).to_have_text("2")
    expect(page.locator(f"#column-head-{stages[1].pk} .total")).to_have_text("$2,000")
    expect(page.locator(f"#column-head-{stages[0].pk} .count")).to_have_text("2")
    expect(card(page, cards["Acme"])).to_have_attribute("data-version", "2")

    page.reload()
    expect(page.locator(f"#cards-{stages[1].pk} #opportunity-{cards['Acme'].pk}")).to_be_visible()
    assert column_names(page, stages[1]) == names_in(stages[1])


def test_reorder_within_a_column_persists(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    with page.expect_response(is_move) as answer:
        sortable_drag(page, card(page, cards["Cirrus"]), card(page, cards["Acme"]))
    assert answer.value.status == 200
    assert names_in(stages[0]) == ["Cirrus", "Acme", "Bolt"]
    assert Opportunity.objects.get(pk=cards["Cirrus"].pk).stage == stages[0]

    page.reload()
    expect(page.locator(f"#cards-{stages[0].pk} > .card .card-title").first).to_have_text("Cirrus")
    assert column_names(page, stages[0]) == ["Cirrus", "Acme", "Bolt"]


def test_status_chips_change_what_is_shown(page, live_server, login_as, board):
    pipeline, _, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    expect(card(page, cards["Won deal"])).to_have_count(0)

    with page.expect_response(lambda r: "/board/" in r.url and "status=won" in r.url):
        page.locator(".chip", has_text="Won").click()
    expect(card(page, cards["Won deal"])).to_be_visible()
    expect(card(page, cards["Acme"])).to_have_count(0)
    expect(page).to_have_url(re.compile(r"status=won"))
    expect(card(page, cards["Won deal"]).locator(".badge-won")).to_have_text("Won")

    with page.expect_response(lambda r: "/board/" in r.url and "status=all" in r.url):
        page.locator(".chip", has_text="All").click()
    expect(page.locator("#board .card")).to_have_count(5)

    # The back button returns to the Won view (the URL holds the filters).
    page.go_back()
    expect(page).to_have_url(re.compile(r"status=won"))
    expect(page.locator("#board .card")).to_have_count(1)


def test_stale_move_shows_the_conflict_and_the_true_columns(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    # Someone else moves Acme to the third stage behind this page's back.
    Opportunity.objects.filter(pk=cards["Acme"].pk).update(stage=stages[2], version=7)

    with page.expect_response(is_move) as answer:
        sortable_drag(page, card(page, cards["Acme"]), card(page, cards["Delta"]))
    assert answer.value.status == 409
    expect(page.locator(".toast-error")).to_contain_text(CONFLICT)
    # The page now shows where the card really is, with its fresh version.
    expect(
        page.locator(f"#cards-{stages[2].pk} #opportunity-{cards['Acme'].pk}")
    ).to_have_attribute("data-version", "7")
    expect(page.locator(f"#cards-{stages[1].pk} > .card")).to_have_count(1)
    expect(page.locator(f"#column-head-{stages[2].pk} .count")).to_have_text("1")
    acme = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (acme.stage, acme.version) == (stages[2], 7)


def test_move_to_stage_works_with_the_keyboard_only(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    menu = card(page, cards["Bolt"]).locator("summary")
    tab_to(page, menu)
    page.keyboard.press("Enter")
    expect(card(page, cards["Bolt"]).locator(".card-menu")).to_have_attribute("open", "")
    select = page.locator(f"#move-{cards['Bolt'].pk}")
    # The menu's forms arrive from the server when it opens.
    expect(select).to_be_visible()
    tab_to(page, select)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect(select).to_have_value(str(stages[2].pk))
    page.keyboard.press("Tab")
    with page.expect_response(is_move) as answer:
        page.keyboard.press("Enter")
    assert answer.value.status == 200
    assert Opportunity.objects.get(pk=cards["Bolt"].pk).stage == stages[2]
    expect(page.locator(f"#cards-{stages[2].pk} #opportunity-{cards['Bolt'].pk}")).to_be_visible()
    expect(page.locator(f"#column-head-{stages[2].pk} .count")).to_have_text("1")
    expect(page.locator(".toast-success")).to_contain_text("Moved")


def test_marking_lost_asks_for_the_reason_in_place_and_cancel_changes_nothing(
    page, live_server, login_as, board
):
    pipeline, stages, cards, rep = board
    reason = factories.LostReasonFactory(name="Went with a competitor")
    login_as(rep)
    open_board(page, live_server, pipeline)
    acme = card(page, cards["Acme"])
    acme.locator("summary").click()
    with page.expect_response(lambda r: "/lost/" in r.url):
        acme.get_by_text("Mark lost…").click()
    reason_box = acme.get_by_label("Lost reason")
    expect(reason_box).to_be_visible()
    expect(reason_box).to_be_focused()

    with page.expect_response(lambda r: "/card/" in r.url):
        acme.get_by_role("link", name="Cancel").click()
    expect(acme.locator(".card-title")).to_have_text("Acme")
    assert Opportunity.objects.get(pk=cards["Acme"].pk).status == Status.OPEN
    assert Opportunity.objects.get(pk=cards["Acme"].pk).version == 1

    # Now for real: the reason is required, then the card leaves the Open board.
    acme.locator("summary").click()
    with page.expect_response(lambda r: "/lost/" in r.url):
        acme.get_by_text("Mark lost…").click()
    acme.get_by_label("Lost reason").select_option(label=reason.name)
    with page.expect_response(lambda r: "/status/" in r.url) as answer:
        acme.get_by_role("button", name="Mark lost").click()
    assert answer.value.status == 200
    lost = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (lost.status, lost.lost_reason) == (Status.LOST, reason)
    expect(acme).to_have_count(0)
    expect(page.locator(f"#column-head-{stages[0].pk} .count")).to_have_text("2")


@pytest.mark.parametrize("failure", ["network", "server error"])
def test_failed_move_shows_a_message_and_restores_the_board(
    page, live_server, login_as, board, failure
):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)

    def fail(route):
        if failure == "network":
            route.abort()
        else:
            route.fulfill(status=500, body="<h1>Server Error</h1>", content_type="text/html")

    page.route("**/move/", fail)
    with page.expect_response(lambda r: "/board/" in r.url and r.request.method == "GET"):
        sortable_drag(page, card(page, cards["Acme"]), card(page, cards["Delta"]))
    expected = "Cannot reach the server" if failure == "network" else "went wrong"
    expect(page.locator(".toast-error")).to_contain_text(expected)
    # The board was fetched again: Acme is back where the database has it.
    expect(page.locator(f"#cards-{stages[0].pk} #opportunity-{cards['Acme'].pk}")).to_be_visible()
    expect(page.locator(f"#cards-{stages[1].pk} > .card")).to_have_count(1)
    acme = Opportunity.objects.get(pk=cards["Acme"].pk)
    assert (acme.stage, acme.version) == (stages[0], 1)


def test_mark_won_from_the_menu_takes_the_card_off_the_open_board(
    page, live_server, login_as, board
):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    expect(page.locator("#board-summary")).to_contain_text("4 open deals")
    bolt = card(page, cards["Bolt"])
    bolt.locator("summary").click()
    with page.expect_response(lambda r: "/status/" in r.url) as answer:
        bolt.get_by_role("button", name="Mark won").click()
    assert answer.value.status == 200
    won = Opportunity.objects.get(pk=cards["Bolt"].pk)
    assert won.status == Status.WON
    assert won.closed_at is not None
    expect(bolt).to_have_count(0)
    expect(page.locator(f"#column-head-{stages[0].pk} .count")).to_have_text("2")
    expect(page.locator("#board-summary")).to_contain_text("3 open deals")
    expect(page.locator(".toast-success")).to_contain_text("marked Won")


def test_drag_into_an_empty_column_persists(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    empty = page.locator(f"#cards-{stages[2].pk}")
    expect(empty.locator(".column-empty")).to_be_visible()
    with page.expect_response(is_move) as answer:
        sortable_drag(page, card(page, cards["Bolt"]), empty)
    assert answer.value.status == 200
    assert Opportunity.objects.get(pk=cards["Bolt"].pk).stage == stages[2]
    expect(empty.locator(".column-empty")).to_be_hidden()
    expect(page.locator(f"#column-head-{stages[2].pk} .count")).to_have_text("1")
