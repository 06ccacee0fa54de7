"""The toolbar totals in real Chromium: board_live.js adds them up from the column headers
after a live update or a drag, and they read exactly as a freshly rendered board's."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from opportunities.models import Opportunity, Status
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import opportunity_create
from tests import factories
from tests.e2e.helpers import sortable_drag

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIVE_WAIT_MS = 10_000


@pytest.fixture
def board(roles):
    """A rep's deals in columns weighted 10 %, unweighted, 50 % and 80 %, with cents that
    round half to even and odd; one deal they only follow; another rep's deal."""
    pipeline, stages = factories.pipeline_with_stages()
    for stage, probability in zip(stages, [10, None, 50, 80], strict=True):
        stage.probability = probability
        stage.save()
    rep = factories.rep(username="rita")
    cards = {}
    values = {"Acme": "1000.50", "Bolt": "2500.25", "Cirrus": "999.49", "Delta": "1234.50"}
    for (name, value), stage in zip(values.items(), [0, 0, 1, 2], strict=True):
        cards[name] = factories.OpportunityFactory(
            stage=stages[stage], name=name, assigned_to=rep, value=Decimal(value)
        )
    cards["Echo"] = factories.OpportunityFactory(
        stage=stages[3], name="Echo", assigned_to=factories.rep(), value=Decimal("700.05")
    )
    cards["Echo"].followers.add(rep)
    factories.OpportunityFactory(stage=stages[0], name="Theirs", assigned_to=factories.rep())
    return pipeline, stages, cards, rep


def open_board(page, live_server, pipeline):
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    expect(page.locator("#board .card").first).to_be_visible()


def totals(page) -> dict:
    """What the toolbar and every column header show, and what screen readers hear."""
    return page.evaluate(
        """() => ({
            summary: document.getElementById("board-summary").innerText,
            heads: [...document.querySelectorAll("#board .column-head")].map(h => h.innerText),
            labels: [...document.querySelectorAll("#board .column-head .visually-hidden")]
                .map(label => label.textContent),
        })"""
    )


def drag_onto(page, deal, onto) -> int:
    """Drag `deal`'s card onto `onto`'s; the status of the move's answer."""
    with page.expect_response(lambda r: "/move/" in r.url) as answer:
        sortable_drag(
            page, page.locator(f"#opportunity-{deal.pk}"), page.locator(f"#opportunity-{onto.pk}")
        )
    return answer.value.status


def fresh_totals(page, live_server, pipeline) -> dict:
    fresh = page.context.new_page()
    try:
        open_board(fresh, live_server, pipeline)
        return totals(fresh)
    finally:
        fresh.close()


def test_after_live_changes_the_totals_are_a_fresh_boards(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    before = totals(page)
    assert "5 open deals · $6,435 · " in before["summary"]

    manager = factories.manager()
    acme, bolt = cards["Acme"], cards["Bolt"]
    opportunity_move(opportunity=acme, to_stage=stages[3], version=acme.version, user=manager)
    opportunity_set_status(opportunity=bolt, status=Status.WON, version=1, user=manager)
    new = opportunity_create(
        user=manager,
        name="Golf",
        pipeline=pipeline,
        stage=stages[2],
        assigned_to=rep,
        value=Decimal("999.96"),
    )

    expect(page.locator(f"#cards-{stages[2].pk} #opportunity-{new.pk}")).to_be_visible(
        timeout=LIVE_WAIT_MS
    )
    expect(page.locator(f"#opportunity-{bolt.pk}")).to_have_count(0)
    expect(page.locator(f"#cards-{stages[3].pk} #opportunity-{acme.pk}")).to_be_attached()
    after = totals(page)
    assert after == fresh_totals(page, live_server, pipeline)
    # 4,934.50 rounds half to even, as the server's Decimal does.
    assert "5 open deals · $4,934 · " in after["summary"]


def test_the_last_open_deal_of_a_weighted_board_hides_the_weighted_total(
    page, live_server, login_as, board
):
    pipeline, _, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    weighted = page.locator("#board-summary [data-sum='weighted']")
    expect(weighted).to_be_visible()
    manager = factories.manager()
    for name in ["Acme", "Bolt", "Delta", "Echo"]:
        deal = Opportunity.objects.get(pk=cards[name].pk)
        opportunity_set_status(
            opportunity=deal, status=Status.WON, version=deal.version, user=manager
        )
    # Only Cirrus stays open, in the column without a probability.
    expect(page.locator("#board .card")).to_have_count(1, timeout=LIVE_WAIT_MS)
    expect(weighted).to_be_hidden()
    assert totals(page) == fresh_totals(page, live_server, pipeline)


def test_after_a_drag_the_weighted_total_is_a_fresh_boards(page, live_server, login_as, board):
    pipeline, stages, cards, rep = board
    login_as(rep)
    open_board(page, live_server, pipeline)
    before = totals(page)["summary"]
    assert drag_onto(page, cards["Acme"], cards["Delta"]) == 200
    assert Opportunity.objects.get(pk=cards["Acme"].pk).stage == stages[2]
    # 10 % of 1,000.50 became 50 %: the weighted total follows the headers at once.
    expect(page.locator("#board-summary")).not_to_have_text(before)
    assert totals(page) == fresh_totals(page, live_server, pipeline)


def test_a_drag_moves_the_cards_value_between_the_headers_without_the_poll(
    page, live_server, login_as, board
):
    """The drag's answer carries no figures: board_live.js moves the card's value from one
    header to the other. With the live poll cut off, what it shows after each drag is
    what a freshly rendered board shows."""
    pipeline, stages, cards, rep = board
    polls = []
    page.route("**/board/version/**", lambda route: (polls.append(1), route.abort()))
    login_as(rep)
    open_board(page, live_server, pipeline)
    # 10 % -> 50 %; then the last open card of the 10 % column (the other is not the
    # rep's) into the column without a probability: its weighted figure goes away.
    for name, target in [("Acme", "Delta"), ("Bolt", "Cirrus")]:
        assert drag_onto(page, cards[name], cards[target]) == 200
        expect(page.locator(f"#opportunity-{cards[name].pk}")).not_to_have_class("is-saving")
        expected = fresh_totals(page, live_server, pipeline)
        expect(page.locator("#board-summary")).to_have_text(expected["summary"])
        assert totals(page) == expected
    assert Opportunity.objects.get(pk=cards["Bolt"].pk).stage == stages[1]
    head = page.locator(f"#column-head-{stages[0].pk}")
    expect(head.locator(".count")).to_have_text("0")
    expect(head.locator(".weighted")).to_have_count(0)
    # The poll was tried and cut off: the figures above were the browser's own.
    page.wait_for_timeout(4500)
    assert polls
