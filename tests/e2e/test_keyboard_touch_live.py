"""The board without a mouse: keyboard moves, touch drags, and live updates between reps."""

import re

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from opportunities.models import Opportunity
from opportunities.services.moves import opportunity_move
from opportunities.services.opportunities import opportunity_create
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIVE_WAIT_MS = 10_000  # the promise: another rep's change shows within 10 s


def sign_in(context, live_server, user):
    """Give the browser context a session of `user` (the login form has its own tests)."""
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def ordered_names(stage):
    return list(
        Opportunity.objects.filter(stage=stage)
        .order_by("rank", "id")
        .values_list("name", flat=True)
    )


@pytest.fixture
def board(transactional_db):
    factories.ensure_roles()
    pipeline, stages = factories.pipeline_with_stages()
    manager = factories.manager(username="mia")
    cards = {}
    for stage, names in zip(
        stages, [["Alpha", "Bravo"], ["Charlie"], ["Delta", "Echo", "Foxtrot"]], strict=False
    ):
        for name in names:
            cards[name] = factories.OpportunityFactory(stage=stage, name=name, assigned_to=manager)
    return pipeline, stages, cards, manager


def open_board(page, live_server, pipeline, user):
    sign_in(page.context, live_server, user)
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    expect(page.locator("#board .card").first).to_be_visible()


def card(page, opportunity):
    return page.locator(f"#opportunity-{opportunity.pk}")


def focused_id(page):
    return page.evaluate("document.activeElement && document.activeElement.id")


# ----- Keyboard ------------------------------------------------------------------------


def test_keyboard_only_move_across_two_columns_is_saved(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)
    announcer = page.locator("#board-announcer")

    card(page, cards["Alpha"]).focus()
    page.keyboard.press("Space")
    expect(announcer).to_contain_text("Picked up Alpha")
    page.keyboard.press("ArrowRight")
    expect(announcer).to_contain_text(f"Alpha, {stages[1].name}, position 1 of 2")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    expect(announcer).to_contain_text(f"Alpha, {stages[2].name}, position 2 of 4")
    with page.expect_response(lambda r: "/move/" in r.url) as response:
        page.keyboard.press("Space")
    assert response.value.ok

    expect(announcer).to_have_text(f"Alpha moved to {stages[2].name}, position 2 of 4.")
    assert ordered_names(stages[2]) == ["Delta", "Alpha", "Echo", "Foxtrot"]
    assert ordered_names(stages[0]) == ["Bravo"]
    # Focus stays on the moved card (the server swapped in a fresh element).
    expect(card(page, cards["Alpha"])).to_be_focused()
    assert card(page, cards["Alpha"]).get_attribute("data-version") == "2"
    # The columns' names for screen readers follow the new counts.
    expect(page.locator(f"#cards-{stages[2].pk}")).to_have_accessible_name(
        re.compile(rf"^{stages[2].name}, 4 opportunities, ")
    )
    expect(page.locator(f"#cards-{stages[0].pk}")).to_have_accessible_name(
        re.compile(rf"^{stages[0].name}, 1 opportunity, ")
    )


def test_keyboard_move_within_a_column_is_saved(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)

    card(page, cards["Foxtrot"]).focus()
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    with page.expect_response(lambda r: "/move/" in r.url):
        page.keyboard.press("Enter")

    expect(page.locator("#board-announcer")).to_have_text(
        f"Foxtrot moved to {stages[2].name}, position 1 of 3."
    )
    assert ordered_names(stages[2]) == ["Foxtrot", "Delta", "Echo"]


def test_escape_puts_the_card_back_and_announces_it(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)
    moves = []
    page.on("request", lambda r: moves.append(r.url) if "/move/" in r.url else None)

    card(page, cards["Bravo"]).focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowRight")
    expect(page.locator(f"#cards-{stages[1].pk} #opportunity-{cards['Bravo'].pk}")).to_be_attached()
    page.keyboard.press("Escape")

    expect(page.locator("#board-announcer")).to_contain_text("Move cancelled")
    names = page.locator(f"#cards-{stages[0].pk} .card").evaluate_all(
        "cards => cards.map(c => c.querySelector('.card-title').textContent)"
    )
    assert names == ["Alpha", "Bravo"]
    expect(card(page, cards["Bravo"])).to_be_focused()
    expect(card(page, cards["Bravo"])).not_to_have_class("is-grabbed")
    assert moves == []
    assert Opportunity.objects.get(pk=cards["Bravo"].pk).version == 1


def test_arrow_keys_move_focus_between_cards_and_columns(page, live_server, board):
    pipeline, _, cards, manager = board
    open_board(page, live_server, pipeline, manager)

    card(page, cards["Alpha"]).focus()
    page.keyboard.press("ArrowDown")
    assert focused_id(page) == f"opportunity-{cards['Bravo'].pk}"
    page.keyboard.press("ArrowRight")  # the next column has one card: clamp to it
    assert focused_id(page) == f"opportunity-{cards['Charlie'].pk}"
    page.keyboard.press("ArrowRight")
    assert focused_id(page) == f"opportunity-{cards['Delta'].pk}"
    page.keyboard.press("End")
    assert focused_id(page) == f"opportunity-{cards['Foxtrot'].pk}"
    page.keyboard.press("ArrowLeft")
    assert focused_id(page) == f"opportunity-{cards['Charlie'].pk}"


def test_columns_are_lists_named_with_count_and_total(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)
    total = sum(cards[name].value for name in ("Delta", "Echo", "Foxtrot"))

    expect(
        page.get_by_role("list", name=f"{stages[2].name}, 3 opportunities, ${total:,.0f}")
    ).to_be_visible()
    expect(page.get_by_role("list", name=f"{stages[1].name}, 1 opportunity,")).to_be_visible()
    expect(page.get_by_role("listitem", name="Charlie,")).to_be_visible()


def test_a_move_from_the_card_menu_is_announced_by_the_toast_live_region(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)
    bravo = card(page, cards["Bravo"])

    bravo.get_by_label("Actions for Bravo").first.click()
    bravo.get_by_label("Move to stage…").select_option(str(stages[3].pk))
    with page.expect_response(lambda r: "/move/" in r.url):
        bravo.get_by_role("button", name="Move", exact=True).click()

    toasts = page.locator("#toasts")
    expect(toasts).to_have_attribute("aria-live", "polite")
    expect(toasts).to_contain_text(f"Moved “Bravo” to {stages[3].name}")
    assert Opportunity.objects.get(pk=cards["Bravo"].pk).stage == stages[3]


# ----- Live updates --------------------------------------------------------------------


def test_a_move_by_one_rep_appears_on_another_reps_board(browser, live_server, board):
    pipeline, stages, cards, manager = board
    rep = factories.rep_with_view_all(username="ravi")
    mover = browser.new_context()
    watcher = browser.new_context()
    try:
        page_a, page_b = mover.new_page(), watcher.new_page()
        open_board(page_a, live_server, pipeline, manager)
        open_board(page_b, live_server, pipeline, rep)
        echo_on_b = page_b.locator(f"#opportunity-{cards['Echo'].pk}")
        expect(echo_on_b).to_have_attribute("data-stage-id", str(stages[2].pk))

        card(page_a, cards["Echo"]).focus()
        page_a.keyboard.press("Space")
        page_a.keyboard.press("ArrowLeft")
        with page_a.expect_response(lambda r: "/move/" in r.url):
            page_a.keyboard.press("Space")

        assert Opportunity.objects.get(pk=cards["Echo"].pk).stage == stages[1]
        expect(
            page_b.locator(f"#cards-{stages[1].pk} #opportunity-{cards['Echo'].pk}")
        ).to_be_visible(timeout=LIVE_WAIT_MS)
        expect(page_b.locator(f"#column-head-{stages[1].pk} .count")).to_have_text("2")
    finally:
        mover.close()
        watcher.close()


def test_a_new_opportunity_appears_without_a_reload(page, live_server, board):
    pipeline, stages, _, manager = board
    open_board(page, live_server, pipeline, manager)
    page.evaluate("window.notReloaded = true")

    # Through the write path, like every door (it appends the event the poll reads).
    opportunity_create(
        user=manager, name="Golf", pipeline=pipeline, stage=stages[3], assigned_to=manager
    )

    expect(page.locator(f"#cards-{stages[3].pk} .card", has_text="Golf")).to_be_visible(
        timeout=LIVE_WAIT_MS
    )
    assert page.evaluate("window.notReloaded") is True


def test_live_update_waits_until_the_carried_card_is_dropped(page, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(page, live_server, pipeline, manager)
    version_url = f"/pipelines/{pipeline.pk}/board/version/"

    card(page, cards["Alpha"]).focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    charlie = cards["Charlie"]
    opportunity_move(opportunity=charlie, to_stage=stages[3], version=charlie.version, user=manager)
    # The poll sees the change...
    with page.expect_response(
        lambda r: version_url in r.url and r.status == 200, timeout=LIVE_WAIT_MS
    ):
        pass
    with page.expect_response(lambda r: version_url in r.url, timeout=LIVE_WAIT_MS):
        pass
    # ...but the board is not swapped under the carried card.
    expect(card(page, cards["Alpha"])).to_have_class("card status-open is-grabbed")
    expect(page.locator(f"#cards-{stages[1].pk} #opportunity-{charlie.pk}")).to_be_attached()

    page.keyboard.press("Escape")
    expect(page.locator(f"#cards-{stages[3].pk} #opportunity-{charlie.pk}")).to_be_attached(
        timeout=LIVE_WAIT_MS
    )
    expect(card(page, cards["Alpha"])).to_be_focused()


# ----- Touch and narrow screens --------------------------------------------------------


def touch_drag(page, source, target):
    """A long press on `source`, then a slide onto `target`, as raw touch events (CDP)."""
    cdp = page.context.new_cdp_session(page)
    s, t = source.bounding_box(), target.bounding_box()
    x, y = s["x"] + s["width"] / 2, s["y"] + s["height"] / 2
    tx, ty = t["x"] + t["width"] / 2, t["y"] + t["height"] / 4

    def touch(kind, px, py):
        points = [] if kind == "touchEnd" else [{"x": px, "y": py, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", x, y)
    page.wait_for_timeout(350)  # the long press: board.js waits 200 ms before a touch drag
    for step in range(1, 11):
        touch("touchMove", x + (tx - x) * step / 10, y + (ty - y) * step / 10)
        page.wait_for_timeout(20)
    touch("touchMove", tx, ty - 1)
    page.wait_for_timeout(150)  # SortableJS re-checks the spot under a finger every 50 ms
    touch("touchEnd", tx, ty)


@pytest.fixture
def phone(browser):
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        has_touch=True,
        is_mobile=True,
        device_scale_factor=2,
    )
    yield context.new_page()
    context.close()


def test_a_touch_drag_moves_a_card(phone, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(phone, live_server, pipeline, manager)

    with phone.expect_response(lambda r: "/move/" in r.url) as response:
        touch_drag(phone, card(phone, cards["Bravo"]), card(phone, cards["Alpha"]))
    assert response.value.ok
    assert ordered_names(stages[0]) == ["Bravo", "Alpha"]


def test_a_touch_drag_to_the_screen_edge_scrolls_on_to_the_next_column(phone, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(phone, live_server, pipeline, manager)
    cdp = phone.context.new_cdp_session(phone)
    box = card(phone, cards["Alpha"]).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    edge = phone.viewport_size["width"] - 20

    def touch(kind, px=0, py=0):
        points = [] if kind == "touchEnd" else [{"x": px, "y": py, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def scrolled():
        return phone.evaluate("document.getElementById('board').scrollLeft")

    touch("touchStart", x, y)
    phone.wait_for_timeout(350)  # long press
    for step in range(1, 6):
        touch("touchMove", x + (edge - x) * step / 5, y)
    for wiggle in range(100):  # hold the finger at the edge until the board has scrolled
        if scrolled() >= 200:
            break
        touch("touchMove", edge - wiggle % 2, y)
        phone.wait_for_timeout(30)
    assert scrolled() >= 200
    with phone.expect_response(lambda r: "/move/" in r.url) as response:
        touch("touchMove", 250, y)
        touch("touchMove", 251, y + 1)
        phone.wait_for_timeout(150)  # SortableJS re-checks the spot under a finger every 50 ms
        touch("touchEnd")
    assert response.value.ok
    assert Opportunity.objects.get(pk=cards["Alpha"].pk).stage == stages[1]


def test_a_phone_page_is_no_wider_than_the_screen(phone, live_server, board):
    pipeline, *_, manager = board
    open_board(phone, live_server, pipeline, manager)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_stage_switcher_brings_a_column_into_view_on_a_phone(phone, live_server, board):
    pipeline, stages, cards, manager = board
    open_board(phone, live_server, pipeline, manager)
    switcher = phone.get_by_role("navigation", name="Stages")
    expect(switcher).to_be_visible()
    expect(card(phone, cards["Delta"])).not_to_be_in_viewport()

    switcher.get_by_role("link", name=stages[2].name).click()

    expect(card(phone, cards["Delta"])).to_be_in_viewport()
    expect(switcher.get_by_role("link", name=stages[2].name)).to_have_attribute(
        "aria-current", "true"
    )
