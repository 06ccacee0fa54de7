"""The board's column order (?sort=) and the card menu's "Move to another pipeline…"."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Opportunity, OpportunityEvent, OpportunityHistory
from opportunities.selectors import BOARD_PAGE_SIZE, BOARD_SORTS
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def pipeline_and_stages():
    return factories.pipeline_with_stages()


@pytest.fixture
def manager(client):
    user = factories.manager(username="mia")
    client.force_login(user)
    return user


def board_url(pipeline, query=""):
    return reverse("opportunities:board", args=[pipeline.pk]) + (f"?{query}" if query else "")


def column_ids(html: str, stage) -> list[int]:
    """The card ids of one column, in page order."""
    column = re.search(rf'<ol class="cards" id="cards-{stage.pk}".*?</ol>', html, re.S).group(0)
    return [int(pk) for pk in re.findall(r'<li class="card [^"]*" id="opportunity-(\d+)"', column)]


def page_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="card [^"]*" id="opportunity-(\d+)"', html)]


def more_link(html: str) -> str | None:
    match = re.search(r'hx-get="([^"]*/cards/\?[^"]*)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def five(pipeline_and_stages):
    """Five deals in the first column whose every order differs from the manual one."""
    _, stages = pipeline_and_stages
    now = timezone.now()
    specs = [
        # name, value, close date, created days ago, stage entered days ago
        ("A", 300, date(2030, 5, 1), 9, 2),
        ("B", 900, None, 3, 7),
        ("C", 100, date(2030, 1, 1), 1, 5),
        ("D", 500, date(2030, 3, 1), 7, 1),
        ("E", 700, None, 5, 9),
    ]
    deals = {}
    for name, value, close, created, entered in specs:
        deals[name] = factories.OpportunityFactory(
            stage=stages[0],
            name=name,
            value=value,
            expected_close_date=close,
            created_at=now - timedelta(days=created),
            stage_entered_at=now - timedelta(days=entered),
        )
    return deals


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("", "ABCDE"),
        ("manual", "ABCDE"),
        ("value", "BEDAC"),
        ("close", "CDABE"),  # soonest first, the undated last (by id)
        ("created", "CBEDA"),
        ("activity", "DACBE"),
        ("nonsense", "ABCDE"),  # unknown: the manual order, no error
    ],
)
def test_sort_orders_the_cards_of_each_column(
    client, manager, pipeline_and_stages, five, sort, expected
):
    pipeline, stages = pipeline_and_stages
    response = client.get(board_url(pipeline, f"sort={sort}"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Some filters were ignored" not in html
    by_id = {deal.pk: name for name, deal in five.items()}
    assert "".join(by_id[pk] for pk in column_ids(html, stages[0])) == expected


def test_the_toolbar_select_shows_the_chosen_sort(client, manager, pipeline_and_stages, five):
    pipeline, _ = pipeline_and_stages
    html = client.get(board_url(pipeline, "sort=value")).content.decode()
    assert '<option value="value" selected>' in html
    assert 'data-sort="value"' in html
    assert "Switch to Manual order to drag cards within a column" in html
    manual = client.get(board_url(pipeline, "sort=bogus")).content.decode()
    assert '<option value="manual" selected>' in manual
    assert 'data-sort="manual"' in manual
    assert "Switch to Manual order" not in manual


def test_the_sort_is_kept_in_the_board_fragment_links_and_menus(
    client, manager, pipeline_and_stages, five
):
    pipeline, _ = pipeline_and_stages
    html = client.get(
        board_url(pipeline, "sort=close&status=open"), HTTP_HX_TARGET="board", **HTMX
    ).content.decode()
    # The fragment's filter query (live poll, menus' filters, no-JS "next") carries it.
    assert 'data-filter-query="sort=close&amp;status=open"' in html
    deal = five["A"]
    menu = client.get(
        reverse("opportunities:card_menu", args=[deal.pk]), {"filters": "sort=close"}, **HTMX
    ).content.decode()
    assert "sort%3Dclose" in menu  # the forms return to the board in this order


@pytest.mark.parametrize("sort", ["manual", "value", "close", "created", "activity"])
def test_load_more_pages_through_a_column_in_the_sorted_order(
    client, manager, pipeline_and_stages, sort
):
    pipeline, stages = pipeline_and_stages
    now = timezone.now()
    for index in range(60):
        factories.OpportunityFactory(
            stage=stages[0],
            value=(index * 37) % 11 * 100,  # ties, so the id decides among them
            expected_close_date=None if index % 4 == 0 else date(2030, 1, 1 + index % 9),
            created_at=now - timedelta(hours=(index * 7) % 13),
            stage_entered_at=now - timedelta(hours=(index * 5) % 17),
        )
    factories.OpportunityFactory(stage=stages[1])  # another column stays out of the pages
    html = client.get(board_url(pipeline, f"sort={sort}")).content.decode()
    seen = column_ids(html, stages[0])
    pages = 0
    while link := more_link(html):
        assert f"sort={sort}" in link and "after_key=" in link
        html = client.get(link, **HTMX).content.decode()
        seen += page_ids(html)
        pages += 1
    expected = list(
        Opportunity.objects.filter(stage=stages[0])
        .order_by(*BOARD_SORTS[sort].order)
        .values_list("pk", flat=True)
    )
    assert pages == 2
    assert seen == expected


def test_load_more_with_a_key_that_does_not_parse_is_a_readable_400(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    url = reverse("opportunities:column_more", args=[pipeline.pk, stages[0].pk])
    for query in (
        {"sort": "value", "after_key": "lots", "after_id": "1"},
        {"sort": "close", "after_key": "2030-13-45", "after_id": "1"},
        {"sort": "created", "after_key": "yesterday", "after_id": "1"},
        {"sort": "value", "after_key": "1", "after_id": str(2**70)},
    ):
        response = client.get(url, query, **HTMX)
        assert response.status_code == 400, query
        assert "reload" in response.content.decode()


def test_load_more_still_reads_the_manual_orders_old_links(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    deals = [factories.OpportunityFactory(stage=stages[0]) for _ in range(BOARD_PAGE_SIZE + 2)]
    last = deals[BOARD_PAGE_SIZE - 1]
    url = reverse("opportunities:column_more", args=[pipeline.pk, stages[0].pk])
    html = client.get(url, {"after_rank": last.rank, "after_id": last.pk}, **HTMX)
    assert page_ids(html.content.decode()) == [deal.pk for deal in deals[BOARD_PAGE_SIZE:]]


def board_queries(client, pipeline, sort) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(board_url(pipeline, f"sort={sort}"), HTTP_HX_TARGET="board", **HTMX)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("sort", ["value", "close", "created", "activity"])
def test_every_sort_reads_the_board_in_the_manual_orders_queries(
    client, manager, pipeline_and_stages, sort
):
    pipeline, stages = pipeline_and_stages

    def add(count):
        for index in range(count):
            deal = factories.OpportunityFactory(
                stage=stages[index % len(stages)],
                expected_close_date=None if index % 3 else date(2030, 1, 1),
            )
            factories.TaskFactory(opportunity=deal, due_on="2030-01-01")

    client.get(board_url(pipeline))  # the user's permissions are cached from here on
    add(10)
    small = board_queries(client, pipeline, sort)
    assert small == board_queries(client, pipeline, "manual")
    add(150)
    assert board_queries(client, pipeline, sort) == small


def test_a_drop_in_a_sorted_board_ignores_the_neighbours_and_redraws_both_columns(
    client, manager, pipeline_and_stages, five
):
    _, stages = pipeline_and_stages
    target = [factories.OpportunityFactory(stage=stages[1], value=v) for v in (100, 800)]
    deal = five["A"]
    response = client.post(
        reverse("opportunities:move", args=[deal.pk]),
        {
            "stage": stages[1].pk,
            "version": deal.version,
            "from_stage": stages[0].pk,
            "before": target[0].pk,  # where the drop landed on the page, not a rank neighbour
            "after": target[1].pk,
            "filters": "sort=value",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage_id == stages[1].pk
    # Placed by rank at the top of its new column (not between the two it was dropped near).
    ranks = list(
        Opportunity.objects.filter(stage=stages[1])
        .order_by("rank", "id")
        .values_list("pk", flat=True)
    )
    assert ranks[0] == deal.pk
    # Both columns come back whole, in value order.
    assert column_ids(html, stages[1]) == [target[1].pk, deal.pk, target[0].pk]
    assert f'id="column-{stages[0].pk}"' in html


# ----- Move to another pipeline from the card menu -------------------------------------------


@pytest.fixture
def partners():
    return factories.pipeline_with_stages(("New", "Demo"), name="Partners")


def pipeline_move(client, deal, stage_pk, *, version=None, htmx=True, **extra):
    data = {"stage": stage_pk, "version": deal.version if version is None else version, **extra}
    headers = HTMX if htmx else {}
    return client.post(reverse("opportunities:card_pipeline_move", args=[deal.pk]), data, **headers)


def test_card_menu_offers_the_stages_of_the_other_pipelines(
    client, manager, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0])
    html = client.get(reverse("opportunities:card_menu", args=[deal.pk]), **HTMX).content.decode()
    assert "Move to another pipeline…" in html
    assert '<optgroup label="Partners">' in html
    assert f'<option value="{targets[1].pk}" >Partners › Demo</option>' in html
    assert f'hx-post="/opportunities/{deal.pk}/menu/pipeline/"' in html
    # Only other pipelines: its own stages are offered by "Move to stage…".
    pmove = html.split("Move to another pipeline…")[1]
    assert f'<option value="{stages[1].pk}"' not in pmove


def test_move_to_another_pipeline_removes_the_card_and_updates_the_totals(
    client, manager, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0], value=400, name="Acme")
    factories.OpportunityFactory(stage=stages[0], value=100)
    response = pipeline_move(client, deal, targets[1].pk, filters="status=open")
    html = response.content.decode()
    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.pipeline_id, deal.stage_id) == (targets[1].pipeline_id, targets[1].pk)
    # The card (the swap target) is replaced by nothing; the header and the toolbar follow.
    assert f'id="opportunity-{deal.pk}"' not in html
    head = re.search(rf'id="column-head-{stages[0].pk}".*?</header>', html, re.S).group(0)
    assert '<span class="count" title="Opportunities">1</span>' in head
    assert 'data-total="100' in head
    assert 'id="board-summary" hx-swap-oob="true"' in html
    message = json.loads(response["HX-Trigger"])["toast"]["message"]
    assert message == "Moved “Acme” to Partners › Demo."


def test_move_to_another_pipeline_keeps_both_pipelines_in_history_and_the_event(
    client, manager, pipeline_and_stages, partners
):
    pipeline, stages = pipeline_and_stages
    other, targets = partners
    deal = factories.OpportunityFactory(stage=stages[2])
    pipeline_move(client, deal, targets[0].pk)
    row = OpportunityHistory.objects.get(opportunity=deal, field="pipeline")
    assert (row.old_value, row.new_value) == (str(pipeline.pk), str(other.pk))
    stage_row = OpportunityHistory.objects.get(opportunity=deal, field="stage")
    assert (stage_row.from_stage_id, stage_row.to_stage_id) == (stages[2].pk, targets[0].pk)
    assert stage_row.user == manager
    event = OpportunityEvent.objects.filter(opportunity_id=deal.pk).latest("id")
    assert event.payload["changes"]["pipelineId"] == {
        "old": str(pipeline.pk),
        "new": str(other.pk),
    }


@pytest.mark.parametrize(
    ("choice", "extra", "message"),
    [
        ("own", {}, "Choose one of the listed stages."),
        ("missing", {}, "Choose one of the listed stages."),
        ("", {}, "Choose the pipeline and stage to move to."),
        ("target", {"pipeline": "999999"}, "That stage belongs to another pipeline."),
        ("archived", {}, "Choose one of the listed stages."),
    ],
)
def test_move_to_another_pipeline_refuses_bad_input_and_changes_nothing(
    client, manager, pipeline_and_stages, partners, choice, extra, message
):
    _, stages = pipeline_and_stages
    _, targets = partners
    _, archived_stages = factories.pipeline_with_stages(("Old",), is_archived=True)
    stage_pk = {
        "own": stages[1].pk,
        "missing": 999999,
        "": "",
        "target": targets[0].pk,
        "archived": archived_stages[0].pk,
    }[choice]
    deal = factories.OpportunityFactory(stage=stages[0])
    response = pipeline_move(client, deal, stage_pk, **extra)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert message in response.content.decode()
    assert response["HX-Reswap"] == "none"
    fresh = Opportunity.objects.get(pk=deal.pk)
    assert (fresh.stage_id, fresh.version) == (stages[0].pk, deal.version)
    assert not OpportunityHistory.objects.filter(opportunity=deal, field="pipeline").exists()


def test_move_to_another_pipeline_with_a_stale_version_is_409_and_changes_nothing(
    client, manager, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0], version=4)
    response = pipeline_move(client, deal, targets[0].pk, version=3)
    assert response.status_code == 409
    assert "changed by someone else" in response.content.decode()
    assert response["HX-Reswap"] == "none"  # the card stays; the menu shows the text
    deal.refresh_from_db()
    assert (deal.stage_id, deal.version) == (stages[0].pk, 4)


def test_move_to_another_pipeline_of_someone_elses_card_is_404_for_a_rep(
    client, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    client.force_login(factories.rep(username="rita"))
    response = pipeline_move(client, theirs, targets[0].pk)
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.stage_id == stages[0].pk


def test_move_to_another_pipeline_without_javascript_returns_to_the_board(
    client, manager, pipeline_and_stages, partners
):
    pipeline, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme")
    next_url = board_url(pipeline, "sort=value")
    response = pipeline_move(client, deal, targets[1].pk, htmx=False, next=next_url)
    assert response.status_code == 302 and response["Location"] == next_url
    deal.refresh_from_db()
    assert deal.stage_id == targets[1].pk
    page = client.get(next_url).content.decode()
    assert "Moved “Acme” to Partners › Demo." in page


def test_actions_page_has_the_pipeline_form_and_shows_a_refusal_with_the_choice_kept(
    client, manager, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0], version=5)
    page = client.get(reverse("opportunities:card_menu", args=[deal.pk])).content.decode()
    assert f'action="/opportunities/{deal.pk}/menu/pipeline/"' in page
    response = pipeline_move(client, deal, targets[1].pk, version=4, htmx=False)
    html = response.content.decode()
    assert response.status_code == 409
    assert "<html" in html and "Close and reopen its menu" in html
    assert f'<option value="{targets[1].pk}" selected>Partners › Demo</option>' in html
    assert 'name="version" value="5"' in html  # the form now carries the current version
    deal.refresh_from_db()
    assert deal.stage_id == stages[0].pk


def test_move_to_another_pipeline_is_post_only_and_needs_the_change_permission(
    client, pipeline_and_stages, partners
):
    _, stages = pipeline_and_stages
    _, targets = partners
    viewer = factories.UserFactory()
    viewer.user_permissions.add(
        *factories.Permission.objects.filter(codename="view_all_opportunities")
    )
    deal = factories.OpportunityFactory(stage=stages[0])
    client.force_login(viewer)
    url = reverse("opportunities:card_pipeline_move", args=[deal.pk])
    assert client.get(url).status_code == 405
    assert pipeline_move(client, deal, targets[0].pk).status_code == 403
    deal.refresh_from_db()
    assert deal.stage_id == stages[0].pk


def test_moved_value_leaves_the_old_boards_totals(client, manager, pipeline_and_stages, partners):
    pipeline, stages = pipeline_and_stages
    _, targets = partners
    deal = factories.OpportunityFactory(stage=stages[0], value=Decimal("250.00"))
    pipeline_move(client, deal, targets[0].pk)
    html = client.get(board_url(pipeline)).content.decode()
    assert f'id="opportunity-{deal.pk}"' not in html
