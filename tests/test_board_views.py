"""The board page, its htmx fragments, and the move / status endpoints."""

import json
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import Opportunity, OpportunityHistory, Status
from opportunities.selectors import BOARD_PAGE_SIZE
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
CONFLICT = "This card was changed by someone else"


@pytest.fixture
def pipeline_and_stages():
    return factories.pipeline_with_stages()


@pytest.fixture
def manager(client):
    user = factories.manager(username="mia")
    client.force_login(user)
    return user


def board_url(pipeline, **query):
    url = reverse("opportunities:board", args=[pipeline.pk])
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


def card_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="card [^"]*" id="opportunity-(\d+)"', html)]


def toast(response) -> dict:
    return json.loads(response["HX-Trigger"])["toast"]


def move(client, opportunity, stage, *, version=None, htmx=True, **extra):
    data = {
        "stage": stage.pk,
        "version": opportunity.version if version is None else version,
        "from_stage": opportunity.stage_id,
        **extra,
    }
    headers = HTMX if htmx else {}
    return client.post(reverse("opportunities:move", args=[opportunity.pk]), data, **headers)


# ----- The page and its fragments ------------------------------------------------------


def test_board_page_shows_toolbar_columns_and_cards(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    factories.OpportunityFactory(stage=stages[1], name="Acme renewal", value=1200)
    response = client.get(board_url(pipeline))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="board-filters"' in html
    assert all(f'id="column-{stage.pk}"' in html for stage in stages)
    assert "Acme renewal" in html
    assert "$1,200" in html


def test_home_redirects_to_the_first_pipeline_board(client, manager, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == board_url(pipeline)


def test_htmx_request_targeting_board_gets_only_the_board_partial(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    factories.OpportunityFactory(stage=stages[0], name="Acme renewal")
    response = client.get(board_url(pipeline), HTTP_HX_TARGET="board", **HTMX)
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<div id="board"')
    assert "board-filters" not in html
    assert "<html" not in html
    assert "Acme renewal" in html


def test_htmx_request_with_another_target_gets_the_whole_page(client, manager, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    response = client.get(board_url(pipeline), HTTP_HX_TARGET="main", **HTMX)
    assert "<html" in response.content.decode()


def test_board_of_unknown_pipeline_is_404(client, manager):
    assert client.get(reverse("opportunities:board", args=[999_999])).status_code == 404


def test_board_requires_sign_in(client, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    response = client.get(board_url(pipeline))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_column_shows_first_page_and_a_load_more_link(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    deals = [factories.OpportunityFactory(stage=stages[0]) for _ in range(BOARD_PAGE_SIZE + 3)]
    html = client.get(board_url(pipeline)).content.decode()
    assert card_ids(html) == [deal.pk for deal in deals[:BOARD_PAGE_SIZE]]
    assert f'id="load-more-{stages[0].pk}"' in html
    assert f'id="load-more-{stages[1].pk}"' not in html


def test_load_more_returns_the_next_page_without_duplicates(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    deals = [factories.OpportunityFactory(stage=stages[0]) for _ in range(60)]
    elsewhere = factories.OpportunityFactory(stage=stages[1])  # stays out of the pages
    html = client.get(board_url(pipeline)).content.decode()
    seen, pages = [pk for pk in card_ids(html) if pk != elsewhere.pk], []
    while match := re.search(r'hx-get="([^"]*/cards/\?[^"]*)"', html):
        assert match.group(1).count("after_key=") == 1
        html = client.get(match.group(1).replace("&amp;", "&"), **HTMX).content.decode()
        assert "<html" not in html
        pages.append(card_ids(html))
        seen += pages[-1]
    assert [len(page) for page in pages] == [25, 10]
    assert seen == [deal.pk for deal in deals]


def test_load_more_keeps_the_filters(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    for index in range(40):
        factories.OpportunityFactory(stage=stages[0], status=Status.WON, name=f"Won {index}")
        factories.OpportunityFactory(stage=stages[0], name=f"Open {index}")
    html = client.get(board_url(pipeline, status="won")).content.decode()
    link = re.search(r'hx-get="([^"]*/cards/\?[^"]*)"', html).group(1).replace("&amp;", "&")
    page = client.get(link, **HTMX).content.decode()
    names = re.findall(r'class="card-title"[^>]*>([^<]+)<', page)
    assert len(names) == 15
    assert all(name.startswith("Won") for name in names)


def test_load_more_without_a_position_is_a_readable_400(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    url = reverse("opportunities:column_more", args=[pipeline.pk, stages[0].pk])
    response = client.get(url, **HTMX)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "reload" in response.content.decode()


# ----- Filters --------------------------------------------------------------------------


@pytest.fixture
def filter_cards(pipeline_and_stages):
    _, stages = pipeline_and_stages
    owner = factories.UserFactory(username="olly")
    contact = factories.ContactFactory(
        name="Wanda Maximoff", email="wanda@westview.example", phone="+1 555 0199"
    )
    make = factories.OpportunityFactory
    return {
        "open": make(stage=stages[0], name="Open deal", source="Referral"),
        "won": make(stage=stages[1], name="Won deal", status=Status.WON),
        "lost": make(stage=stages[1], name="Lost deal", status=Status.LOST),
        "abandoned": make(stage=stages[2], name="Abandoned deal", status=Status.ABANDONED),
        "owned": make(stage=stages[2], name="Olly's deal", assigned_to=owner),
        "contact": make(stage=stages[3], name="Westview", contact=contact),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, {"open", "owned", "contact"}),
        ({"status": "open"}, {"open", "owned", "contact"}),
        ({"status": "won"}, {"won"}),
        ({"status": "lost"}, {"lost"}),
        ({"status": "abandoned"}, {"abandoned"}),
        ({"status": "all"}, {"open", "won", "lost", "abandoned", "owned", "contact"}),
        ({"owner": "OWNER"}, {"owned"}),
        ({"source": "referral"}, {"open"}),
        ({"q": "open+deal"}, {"open"}),
        ({"q": "maximoff"}, {"contact"}),
        ({"q": "westview.example"}, {"contact"}),
        ({"q": "0199"}, {"contact"}),
    ],
    ids=lambda value: (
        "&".join(f"{k}={v}" for k, v in value.items()) or "default"
        if isinstance(value, dict)
        else ""
    ),
)
def test_filters_choose_the_cards(
    client, manager, pipeline_and_stages, filter_cards, query, expected
):
    pipeline, _ = pipeline_and_stages
    if query.get("owner") == "OWNER":
        query = {**query, "owner": filter_cards["owned"].assigned_to_id}
    html = client.get(board_url(pipeline, **query), HTTP_HX_TARGET="board", **HTMX)
    assert set(card_ids(html.content.decode())) == {filter_cards[key].pk for key in expected}


def test_status_chip_of_the_current_filter_is_checked(client, manager, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    html = client.get(board_url(pipeline, status="lost")).content.decode()
    assert re.search(r'value="lost"\s+checked', html)
    assert not re.search(r'value="open"\s+checked', html)


def test_unknown_status_is_reported_not_a_500(client, manager, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    response = client.get(board_url(pipeline, status="bogus"))
    assert response.status_code == 200
    assert "Some filters were ignored" in response.content.decode()


# ----- Totals and visibility ----------------------------------------------------------


def column_heads(html: str) -> dict[int, tuple[int, Decimal]]:
    heads = {}
    for stage_id, count, total in re.findall(
        r'id="column-head-(\d+)".*?class="count"[^>]*>(\d+)<.*?data-total="([\d.]+)"', html, re.S
    ):
        heads[int(stage_id)] = (int(count), Decimal(total))
    return heads


def test_totals_equal_the_sum_of_the_filtered_visible_cards(client, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    rep = factories.rep(username="rita")
    other = factories.rep(username="otto")
    values = {stages[0]: [100, 250], stages[1]: [1000], stages[2]: []}
    for stage, amounts in values.items():
        for amount in amounts:
            factories.OpportunityFactory(stage=stage, assigned_to=rep, value=amount)
        factories.OpportunityFactory(stage=stage, assigned_to=other, value=99_999)
        factories.OpportunityFactory(stage=stage, assigned_to=rep, value=5_000, status="won")
    # Beyond the first page: totals count cards the page does not show yet.
    for _ in range(BOARD_PAGE_SIZE):
        factories.OpportunityFactory(stage=stages[3], assigned_to=rep, value=10)
    client.force_login(rep)
    html = client.get(board_url(pipeline)).content.decode()
    heads = column_heads(html)
    assert heads[stages[0].pk] == (2, Decimal("350.00"))
    assert heads[stages[1].pk] == (1, Decimal("1000.00"))
    assert heads[stages[2].pk] == (0, Decimal(0))
    assert heads[stages[3].pk] == (BOARD_PAGE_SIZE, Decimal("250.00"))
    shown = Opportunity.objects.filter(pk__in=card_ids(html))
    assert {card.assigned_to for card in shown} == {rep}
    assert sum(card.value for card in shown if card.stage == stages[0]) == Decimal(350)


def test_weighted_total_uses_the_stage_probability(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    stages[0].probability = 25
    stages[0].save()
    factories.OpportunityFactory(stage=stages[0], value=1000)
    html = client.get(board_url(pipeline)).content.decode()
    assert "$250 weighted" in html


def board_queries(client, pipeline) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(board_url(pipeline))
    assert response.status_code == 200
    return len(queries)


def test_board_query_count_does_not_grow_with_opportunities(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    owners = [factories.UserFactory() for _ in range(3)]

    def add(count):
        for index in range(count):
            deal = factories.OpportunityFactory(
                stage=stages[index % len(stages)], assigned_to=owners[index % 3]
            )
            factories.TaskFactory(opportunity=deal, due_on="2030-01-01")

    client.get(board_url(pipeline))  # the user's permissions are cached from here on
    add(10)
    small = board_queries(client, pipeline)
    add(290)
    large = board_queries(client, pipeline)
    assert small == large
    assert large <= 12


# ----- Moving ---------------------------------------------------------------------------


def test_drag_to_another_stage_answers_only_the_new_version(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], value=700)
    factories.OpportunityFactory(stage=stages[1], value=300)
    response = move(client, deal, stages[1])
    deal.refresh_from_db()
    assert response.status_code == 200
    assert (deal.stage, deal.version) == (stages[1], 2)
    # Lean: the browser keeps the dropped card and moves its value between the headers
    # (board_live.js); it learns the version from a header.
    assert response["X-Card-Version"] == "2"
    assert Decimal(response["X-Card-Value"]) == Decimal(700)
    assert response["HX-Reswap"] == "none"
    assert response.content == b""


def test_the_board_gives_the_browser_what_it_moves_between_headers(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    factories.OpportunityFactory(stage=stages[0], value=Decimal("700.50"))
    factories.OpportunityFactory(stage=stages[0], value=300, status=Status.WON)
    factories.OpportunityFactory(stage=stages[1], value=200)
    url = reverse("opportunities:board", args=[pipeline.pk])

    def heads(query):
        html = client.get(url, query).content.decode()
        found = re.findall(r'<header class="column-head" id="column-head-(\d+)"([^>]*)>', html)
        return {
            int(pk): dict(re.findall(r'data-([a-z-]+)="([^"]*)"', attrs)) for pk, attrs in found
        }

    shown = heads({"status": "all"})
    first, second = shown[stages[0].pk], shown[stages[1].pk]
    assert (int(first["count"]), Decimal(first["total"])) == (2, Decimal("1000.50"))
    # The open deals' figures, where they differ from the column's (a won deal is shown).
    assert (int(first["open-count"]), Decimal(first["open-total"])) == (1, Decimal("700.50"))
    assert "open-count" not in second and "open-total" not in second
    probability = stages[0].probability
    assert first["probability"] == ("" if probability is None else str(probability))
    assert all("open-count" not in head for head in heads({}).values())


# session (cached), user, transaction start, the card with its pipeline, both stages and
# the ranks around the drop (read before the transaction), UPDATE, history, event,
# transaction end; PostgreSQL adds the stage lock and the event log's append lock.
DRAG_QUERIES = 7


@pytest.mark.parametrize("others", [1, 40])
def test_drag_runs_the_same_seven_queries_at_any_size(client, manager, pipeline_and_stages, others):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    above, below = (factories.OpportunityFactory(stage=stages[1]) for _ in range(2))
    for index in range(others):
        factories.OpportunityFactory(stage=stages[index % 4])
    move(client, above, stages[1], after=below.pk)  # the user's permissions are cached
    above.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        response = move(client, deal, stages[1], before=above.pk, after=below.pk)
    assert response.status_code == 200
    expected = DRAG_QUERIES + (2 if connection.vendor == "postgresql" else 0)
    assert len(queries) == expected, [query["sql"][:60] for query in queries]
    column = list(Opportunity.objects.filter(stage=stages[1]).order_by("rank", "id"))
    assert column.index(above) + 1 == column.index(deal) == column.index(below) - 1


def test_a_followers_drag_takes_the_same_queries(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    rep = factories.rep()
    client.force_login(rep)
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    deal.followers.add(rep)
    mine = factories.OpportunityFactory(stage=stages[2], assigned_to=rep)
    move(client, mine, stages[3])  # the user's permissions are cached
    with CaptureQueriesContext(connection) as queries:
        response = move(client, deal, stages[1])
    assert response.status_code == 200
    assert len(queries) == DRAG_QUERIES + (2 if connection.vendor == "postgresql" else 0)
    assert Opportunity.objects.get(pk=deal.pk).stage == stages[1]


@pytest.mark.parametrize(
    ("stage", "message"),
    [("abc", "That stage does not exist any more."), ("", "Choose a stage."), ("0", "exist")],
)
def test_drag_with_a_malformed_stage_is_a_readable_400(
    client, manager, pipeline_and_stages, stage, message
):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    url = reverse("opportunities:move", args=[deal.pk])
    response = client.post(url, {"stage": stage, "version": 1}, **HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Opportunity.objects.get(pk=deal.pk).version == 1


def test_drag_to_a_stage_that_does_not_exist_is_a_readable_400(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    url = reverse("opportunities:move", args=[deal.pk])
    response = client.post(url, {"stage": 10**9, "version": 1}, **HTMX)
    assert response.status_code == 400
    assert "not part of this opportunity's pipeline" in response.content.decode()


def test_refused_move_without_javascript_returns_to_the_board_with_the_message(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    url = reverse("opportunities:move", args=[deal.pk])
    response = client.post(url, {"stage": "abc", "version": 1}, follow=True)
    assert response.redirect_chain[-1][0] == board_url(pipeline)
    assert "That stage does not exist any more." in response.content.decode()


@pytest.mark.parametrize("htmx", [True, False])
def test_refused_move_of_an_invisible_card_is_404(client, pipeline_and_stages, htmx):
    _, stages = pipeline_and_stages
    client.force_login(factories.rep())
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    url = reverse("opportunities:move", args=[theirs.pk])
    headers = HTMX if htmx else {}
    assert client.post(url, {"stage": "abc", "version": 1}, **headers).status_code == 404


def test_move_between_neighbours_orders_the_card_between_them(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    first, second = (factories.OpportunityFactory(stage=stages[1]) for _ in range(2))
    deal = factories.OpportunityFactory(stage=stages[0])
    response = move(client, deal, stages[1], before=first.pk, after=second.pk)
    assert response.status_code == 200
    column = Opportunity.objects.filter(stage=stages[1]).order_by("rank", "id")
    assert list(column) == [first, deal, second]


def test_move_is_one_update_one_history_insert_and_one_event(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    neighbour = factories.OpportunityFactory(stage=stages[1])
    with CaptureQueriesContext(connection) as queries:
        response = move(client, deal, stages[1], after=neighbour.pk)
    assert response.status_code == 200
    writes = [q["sql"] for q in queries if re.match(r"\s*(UPDATE|INSERT|DELETE)", q["sql"])]
    updates = [sql for sql in writes if sql.lstrip().startswith("UPDATE")]
    inserts = [sql for sql in writes if sql.lstrip().startswith("INSERT")]
    assert len(updates) == 1
    assert '"opportunities_opportunity"' in updates[0]
    assert '"version" = ' in updates[0]
    assert len(inserts) == 2
    assert '"opportunities_opportunityhistory"' in inserts[0]
    assert '"opportunities_opportunityevent"' in inserts[1]
    assert len(writes) == 3


def test_reorder_within_a_stage_is_one_update_one_event_and_no_history(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    top, deal = (factories.OpportunityFactory(stage=stages[0]) for _ in range(2))
    with CaptureQueriesContext(connection) as queries:
        response = move(client, deal, stages[0], after=top.pk)
    assert response.status_code == 200
    writes = [q["sql"] for q in queries if re.match(r"\s*(UPDATE|INSERT|DELETE)", q["sql"])]
    assert len(writes) == 2
    assert writes[0].lstrip().startswith('UPDATE "opportunities_opportunity"')
    assert writes[1].lstrip().startswith('INSERT INTO "opportunities_opportunityevent"')
    assert not OpportunityHistory.objects.exists()
    assert list(Opportunity.objects.order_by("rank", "id")) == [deal, top]


def test_move_with_stale_version_is_409_with_the_true_columns(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], version=3)
    response = move(client, deal, stages[1], version=2)
    html = response.content.decode()
    assert response.status_code == 409
    assert CONFLICT in toast(response)["message"]
    assert toast(response)["level"] == "error"
    assert response["HX-Reswap"] == "none"
    # Both columns come back whole, out-of-band, with the card where it really is.
    for stage in stages[:2]:
        assert f'<section class="column" id="column-{stage.pk}"' in html
    assert html.count('hx-swap-oob="true"') >= 2
    column_zero = html.split(f'id="column-{stages[1].pk}"')[0]
    assert f'id="opportunity-{deal.pk}"' in column_zero
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages[0], 3)


def test_move_into_another_pipelines_stage_is_400_with_a_message(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    _, foreign_stages = factories.pipeline_with_stages(names=["Elsewhere"])
    deal = factories.OpportunityFactory(stage=stages[0])
    response = move(client, deal, foreign_stages[0])
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "not part of this opportunity's pipeline" in response.content.decode()
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages[0], 1)


def test_rep_moving_someone_elses_card_gets_404_and_nothing_changes(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    rep = factories.rep(username="rita")
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    client.force_login(rep)
    response = move(client, theirs, stages[1])
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.stage, theirs.version) == (stages[0], 1)
    assert not OpportunityHistory.objects.exists()


def test_rep_moves_their_own_card(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    rep = factories.rep(username="rita")
    mine = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    client.force_login(rep)
    assert move(client, mine, stages[1]).status_code == 200
    mine.refresh_from_db()
    assert mine.stage == stages[1]


def test_move_without_change_permission_is_403(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    viewer = factories.UserFactory()
    viewer.user_permissions.add(
        *factories.Permission.objects.filter(codename="view_all_opportunities")
    )
    deal = factories.OpportunityFactory(stage=stages[0])
    client.force_login(viewer)
    assert move(client, deal, stages[1]).status_code == 403
    deal.refresh_from_db()
    assert deal.stage == stages[0]


def test_move_to_stage_form_without_javascript_redirects_back_with_the_card_moved(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    already = factories.OpportunityFactory(stage=stages[2])
    deal = factories.OpportunityFactory(stage=stages[0])
    back = board_url(pipeline, status="open")
    response = move(client, deal, stages[2], htmx=False, via="menu", next=back)
    assert response.status_code == 302
    assert response["Location"] == back
    deal.refresh_from_db()
    assert deal.stage == stages[2]
    # "Move to stage…" puts the card on top of its new column.
    assert list(Opportunity.objects.filter(stage=stages[2]).order_by("rank", "id")) == [
        deal,
        already,
    ]
    page = client.get(back).content.decode()
    assert "Moved “" in page


def test_move_to_stage_form_refuses_a_foreign_next_url(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = move(client, deal, stages[1], htmx=False, next="https://evil.example/")
    assert response["Location"] == board_url(pipeline)


def test_move_to_stage_menu_with_htmx_redraws_both_columns(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = move(client, deal, stages[3], via="menu")
    html = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Reswap"] == "none"
    for stage in (stages[0], stages[3]):
        assert f'<section class="column" id="column-{stage.pk}"' in html
    assert "Moved" in toast(response)["message"]


def test_move_with_a_bad_version_is_a_readable_400(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = move(client, deal, stages[1], version="abc")
    assert response.status_code == 400
    assert "number" in response.content.decode().lower()


def test_move_is_post_only(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    assert client.get(reverse("opportunities:move", args=[deal.pk])).status_code == 405


# ----- Status -------------------------------------------------------------------------


def set_status(client, deal, status, *, htmx=True, **extra):
    data = {"status": status, "version": deal.version, **extra}
    headers = HTMX if htmx else {}
    return client.post(reverse("opportunities:status", args=[deal.pk]), data, **headers)


def test_mark_won_returns_the_card_with_a_badge_and_the_column_head(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], value=800)
    response = set_status(client, deal, "won", filters="status=all")
    html = response.content.decode()
    deal.refresh_from_db()
    assert response.status_code == 200
    assert deal.status == Status.WON
    assert deal.closed_at is not None
    assert "badge-won" in html
    assert f'id="column-head-{stages[0].pk}"' in html
    assert "won" in toast(response)["message"].lower()


def test_mark_won_under_the_open_filter_removes_the_card_and_updates_the_count(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], value=800)
    response = set_status(client, deal, "won", filters="status=open")
    html = response.content.decode()
    assert f'id="opportunity-{deal.pk}"' not in html
    assert column_heads(html) == {stages[0].pk: (0, Decimal(0))}


def test_mark_lost_without_a_reason_is_a_readable_400(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = set_status(client, deal, "lost")
    assert response.status_code == 400
    assert "lost" in response.content.decode().lower()
    deal.refresh_from_db()
    assert deal.status == Status.OPEN


def test_mark_lost_with_a_reason_saves_it(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    reason = factories.LostReasonFactory(name="Budget")
    deal = factories.OpportunityFactory(stage=stages[0])
    response = set_status(client, deal, "lost", lost_reason=reason.pk)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason) == (Status.LOST, reason)
    history = OpportunityHistory.objects.get(opportunity=deal, field="status")
    assert (history.from_status, history.to_status) == ("open", "lost")


def test_mark_lost_without_javascript_and_without_reason_redirects_with_a_message(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = set_status(client, deal, "lost", htmx=False)
    assert response["Location"] == board_url(pipeline)
    page = client.get(response["Location"]).content.decode()
    assert "Choose why this opportunity was lost" in page
    deal.refresh_from_db()
    assert deal.status == Status.OPEN


def test_reopen_clears_closed_at(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], status=Status.LOST)
    response = set_status(client, deal, "open", filters="status=all")
    assert response.status_code == 200
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason, deal.closed_at) == (Status.OPEN, None, None)


def test_status_with_stale_version_is_409(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], version=4)
    response = client.post(
        reverse("opportunities:status", args=[deal.pk]),
        {"status": "won", "version": 3},
        **HTMX,
    )
    assert response.status_code == 409
    assert CONFLICT in toast(response)["message"]
    deal.refresh_from_db()
    assert deal.status == Status.OPEN


def test_rep_changing_status_of_someone_elses_card_gets_404(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    rep = factories.rep(username="rita")
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    client.force_login(rep)
    assert set_status(client, theirs, "won").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Status.OPEN


def test_lost_form_fragment_asks_for_a_reason(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    factories.LostReasonFactory(name="Budget")
    factories.LostReasonFactory(name="Retired", is_active=False)
    deal = factories.OpportunityFactory(stage=stages[0])
    response = client.get(reverse("opportunities:lost_form", args=[deal.pk]), **HTMX)
    html = response.content.decode().strip()
    assert html.startswith(f'<li class="card card-editing" id="opportunity-{deal.pk}"')
    assert "Budget" in html
    assert "Retired" not in html


def test_lost_form_without_javascript_is_a_page(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    response = client.get(reverse("opportunities:lost_form", args=[deal.pk]))
    assert "<html" in response.content.decode()
    assert "Why was" in response.content.decode()


def test_card_fragment_is_what_cancel_fetches(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme")
    response = client.get(reverse("opportunities:card", args=[deal.pk]), **HTMX)
    assert (
        response.content.decode()
        .strip()
        .startswith(f'<li class="card status-open" id="opportunity-{deal.pk}"')
    )


# ----- The light card and its menu on demand -------------------------------------------


def test_a_card_carries_no_forms_and_stays_under_a_kilobyte(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    contact = factories.ContactFactory(name="Wanda Maximoff", company="Westview Holdings")
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme renewal", contact=contact)
    html = client.get(board_url(pipeline)).content.decode()
    card = re.search(rf'<li class="card [^"]*" id="opportunity-{deal.pk}".*?</li>', html, re.S)
    assert len(card.group(0).encode()) <= 1024
    assert "<form" not in card.group(0)
    # Without JavaScript the menu is a plain link to the same actions.
    assert f'href="/opportunities/{deal.pk}/menu/"' in card.group(0)


def test_card_menu_for_htmx_is_the_actions_of_the_card(client, manager, pipeline_and_stages):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], version=3)
    url = reverse("opportunities:card_menu", args=[deal.pk])
    response = client.get(url, {"filters": "status=all"}, **HTMX)
    html = response.content.decode().strip()
    assert response.status_code == 200
    assert html.startswith('<div class="menu" role="group"')
    assert 'name="version" value="3"' in html
    assert f'hx-post="/opportunities/{deal.pk}/status/"' in html
    assert all(f'<option value="{stage.pk}"' in html for stage in stages)
    assert "status%3Dall" in html  # the forms return to the board with its filters


def test_card_menu_without_javascript_is_a_page_of_plain_forms(
    client, manager, pipeline_and_stages
):
    _, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme")
    response = client.get(reverse("opportunities:card_menu", args=[deal.pk]))
    html = response.content.decode()
    assert "<html" in html
    assert "Actions for “Acme”" in html
    assert f'action="/opportunities/{deal.pk}/move/"' in html
    assert "hx-post" not in html.split('id="main"')[1]


def test_card_menu_of_someone_elses_card_is_404_for_a_rep(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    client.force_login(factories.rep(username="rita"))
    response = client.get(reverse("opportunities:card_menu", args=[theirs.pk]), **HTMX)
    assert response.status_code == 404


def test_card_menu_without_change_permission_is_403(client, pipeline_and_stages):
    _, stages = pipeline_and_stages
    viewer = factories.UserFactory()
    viewer.user_permissions.add(
        *factories.Permission.objects.filter(codename="view_all_opportunities")
    )
    deal = factories.OpportunityFactory(stage=stages[0])
    client.force_login(viewer)
    response = client.get(reverse("opportunities:card_menu", args=[deal.pk]), **HTMX)
    assert response.status_code == 403


# ----- The cached board page and its ETag ------------------------------------------------


def csp_nonce(response) -> str:
    return re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)


def test_board_page_is_served_from_the_cache_in_two_queries(
    client, manager, pipeline_and_stages, django_assert_num_queries
):
    pipeline, stages = pipeline_and_stages
    factories.OpportunityFactory(stage=stages[0], name="Acme renewal")
    first = client.get(board_url(pipeline))
    # user; pipelines with their stages, newest event and recently written cards in one
    with django_assert_num_queries(2):
        again = client.get(board_url(pipeline))
    assert "Acme renewal" in again.content.decode()
    assert card_ids(again.content.decode()) == card_ids(first.content.decode())


def test_cached_board_page_gets_this_requests_csrf_token_and_csp_nonce(
    client, manager, pipeline_and_stages
):
    pipeline, _ = pipeline_and_stages
    client.get(board_url(pipeline))
    response = client.get(board_url(pipeline))
    html = response.content.decode()
    assert "-placeholder" not in html
    nonce = csp_nonce(response)
    assert html.count(f'nonce="{nonce}"') >= 2
    token = re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
    assert len(token) == 64


def test_unchanged_board_answers_304_without_a_new_csp(client, manager, pipeline_and_stages):
    pipeline, _ = pipeline_and_stages
    client.get(board_url(pipeline))  # sets the CSRF cookie the ETag depends on
    etag = client.get(board_url(pipeline))["ETag"]
    response = client.get(board_url(pipeline), headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert "Content-Security-Policy" not in response
    assert "no-cache" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_a_move_changes_the_board_page_and_its_etag(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0])
    client.get(board_url(pipeline))
    etag = client.get(board_url(pipeline))["ETag"]
    move(client, deal, stages[2])
    response = client.get(board_url(pipeline), headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert response["ETag"] != etag
    column = response.content.decode().split(f'id="column-{stages[2].pk}"')[1]
    assert f'id="opportunity-{deal.pk}"' in column.split("</section>")[0]


def test_cached_board_page_is_per_user_and_per_filter(client, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    rita, otto = factories.rep(username="rita"), factories.rep(username="otto")
    mine = factories.OpportunityFactory(stage=stages[0], assigned_to=rita)
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=otto, status=Status.WON)
    client.force_login(rita)
    assert card_ids(client.get(board_url(pipeline)).content.decode()) == [mine.pk]
    client.force_login(otto)
    assert card_ids(client.get(board_url(pipeline)).content.decode()) == []
    won = client.get(board_url(pipeline, status="won")).content.decode()
    assert card_ids(won) == [theirs.pk]


def test_renamed_stage_is_shown_at_once(client, manager, pipeline_and_stages):
    pipeline, stages = pipeline_and_stages
    client.get(board_url(pipeline))
    stages[1].name = "Demo booked"
    stages[1].save()
    assert "Demo booked" in client.get(board_url(pipeline)).content.decode()


def test_a_message_after_a_form_is_shown_on_the_board_not_cached(
    client, manager, pipeline_and_stages
):
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme")
    client.get(board_url(pipeline))
    response = move(client, deal, stages[3], htmx=False, via="menu")
    assert "Moved “Acme”" in client.get(response["Location"]).content.decode()
    assert "Moved “Acme”" not in client.get(board_url(pipeline)).content.decode()


def test_writes_without_an_event_change_the_cached_page(client, manager, pipeline_and_stages):
    """The recent-cards fingerprint, read in the key's one query, sees them."""
    pipeline, stages = pipeline_and_stages
    deal = factories.OpportunityFactory(stage=stages[0], name="Acme")
    client.get(board_url(pipeline))
    added = factories.OpportunityFactory(stage=stages[1], name="Globex")  # no event
    assert "Globex" in client.get(board_url(pipeline)).content.decode()
    Opportunity.objects.filter(pk=deal.pk).update(name="Initech", version=2)
    assert "Initech" in client.get(board_url(pipeline)).content.decode()
    Opportunity.objects.filter(pk=added.pk).delete()
    assert "Globex" not in client.get(board_url(pipeline)).content.decode()
