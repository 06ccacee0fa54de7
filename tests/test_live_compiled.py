"""The live poll's reads compiled once per process (selectors_live.changed_cards,
column_totals) answer exactly as the filterset reads of the board do, and the headers
they send carry what the browser needs to add up the toolbar totals."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.http import QueryDict
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportunities.events import last_event_id
from opportunities.filters import OpportunityFilter
from opportunities.models import Status, Tag
from opportunities.selectors import header_columns, opportunities_visible_to, stages_of
from opportunities.selectors_live import (
    changed_cards,
    column_totals,
    compiled_reads_serve,
    placed_cards,
    stages_key,
)
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import opportunity_update
from tests import factories

pytestmark = pytest.mark.django_db

FILTERS = [
    "",
    "status=open",
    "status=all",
    "status=won",
    "status=open&q=acme&owner=&source=&tags=&sort=manual",
    "tags=vip",
    "source=website",
    "status=all&sort=value",
    "status=bogus",
]


@pytest.fixture
def deals():
    """Owned, followed and other reps' deals of a pipeline with probabilities, with
    contacts, tags, tasks and a rotting stage; decimal values that floats cannot hold."""
    pipeline, stages = factories.pipeline_with_stages()
    for stage, probability in zip(stages, [10, None, 50, 80], strict=True):
        stage.probability = probability
    stages[0].rotting_days = 3
    for stage in stages:
        stage.save()
    rep, other = factories.rep(username="rita"), factories.rep(username="otto")
    vip = Tag.objects.create(name="VIP", color="#ff0000")
    cards = []
    for index in range(24):
        owner = [rep, other, None][index % 3]
        card = factories.OpportunityFactory(
            stage=stages[index % 4],
            assigned_to=owner,
            name=f"{'Acme' if index % 5 == 0 else 'Globex'} deal {index}",
            value=Decimal("1234.57") * (index + 1) + Decimal("0.10"),
            status=[Status.OPEN, Status.OPEN, Status.WON, Status.LOST][
                index % 4 if index > 3 else 0
            ],
            contact=factories.ContactFactory(company="Initech") if index % 2 else None,
            source="Website" if index % 3 else "Referral",
            stage_entered_at=timezone.now() - timedelta(days=index),
        )
        if index % 4 == 1:
            card.followers.add(rep)
        if index % 6 == 0:
            card.tags.add(vip)
        if index % 7 == 0:
            factories.TaskFactory(opportunity=card, due_on=timezone.localdate() + timedelta(1))
        cards.append(card)
    return pipeline, stages, cards, rep, other


def _board(user, pipeline, query: str) -> QueryDict:
    filters = QueryDict(query)
    visible = opportunities_visible_to(user).filter(pipeline=pipeline)
    return filters, OpportunityFilter(filters, queryset=visible).qs


def _card_html(card) -> str:
    context = {"card": card, "can_change": True, "opportunity_prefix": "/opportunities/"}
    return render_to_string("opportunities/board.html#card", context)


def _figures(columns) -> list[tuple]:
    return [
        (c.stage.pk, c.count, c.total, c.open_count, c.open_total, c.weighted_total)
        for c in columns
    ]


@pytest.mark.parametrize("query", FILTERS)
@pytest.mark.parametrize("who", ["rep", "manager"])
def test_compiled_cards_are_the_filtersets_cards(deals, query, who):
    pipeline, stages, cards, rep, _ = deals
    user = rep if who == "rep" else factories.manager()
    filters, board = _board(user, pipeline, query)
    ids = [card.pk for card in cards[::-1][:23]]  # 23 cards: a statement for 32, padded
    expected = placed_cards(board, ids)
    compiled = changed_cards(user, pipeline.pk, filters, ids, stages)
    assert [(p.card.pk, p.after_id) for p in compiled] == [
        (p.card.pk, p.after_id) for p in expected
    ]
    assert expected  # every filter here shows some of these cards to both
    with CaptureQueriesContext(connection) as captured:
        html = [_card_html(p.card) for p in compiled]
    assert html == [_card_html(p.card) for p in expected]
    assert len(captured) == 0  # nothing the card shows was left unread


@pytest.mark.parametrize("query", FILTERS)
@pytest.mark.parametrize("who", ["rep", "manager"])
def test_compiled_totals_are_the_filtersets_totals(deals, query, who):
    pipeline, stages, _, rep, _ = deals
    user = rep if who == "rep" else factories.manager()
    filters, board = _board(user, pipeline, query)
    for some in (stages, stages[1:3], stages[3:]):
        assert _figures(column_totals(user, pipeline.pk, filters, some)) == _figures(
            header_columns(board, some)
        )


def test_a_rep_counts_a_deal_they_own_and_follow_once(deals):
    pipeline, stages, cards, rep, _ = deals
    owned = next(card for card in cards if card.assigned_to == rep and card.stage == stages[0])
    owned.followers.add(rep)
    filters, board = _board(rep, pipeline, "status=all")
    compiled = column_totals(rep, pipeline.pk, filters, stages[:1])
    assert _figures(compiled) == _figures(header_columns(board, stages[:1]))


def test_an_owner_filter_is_read_through_the_filterset(client, deals):
    pipeline, stages, cards, rep, other = deals
    assert not compiled_reads_serve(QueryDict(f"owner={rep.pk}"))
    assert compiled_reads_serve(QueryDict("owner=&status=open"))
    mine = next(c for c in cards if c.assigned_to == rep and c.status == Status.OPEN)
    client.force_login(rep)
    cursor = last_event_id()
    opportunity_move(opportunity=mine, to_stage=stages[2], version=1, user=factories.manager())
    url = reverse("opportunities:board_version", args=[pipeline.pk])
    query = {"owner": rep.pk, "stages": stages_key(stages_of(pipeline))}
    html = client.get(url, query, headers={"If-None-Match": f'"e{cursor}"'}).content.decode()
    assert f'<template data-card="{mine.pk}" data-stage="{stages[2].pk}"' in html
    query["owner"] = other.pk
    html = client.get(url, query, headers={"If-None-Match": f'"e{cursor}"'}).content.decode()
    assert f'<template data-card="{mine.pk}" data-remove>' in html


# ----- What the browser adds up ---------------------------------------------------------


def _heads(html: str) -> dict[str, dict]:
    heads = {}
    for pk, count, total, weighted in re.findall(
        r'<header class="column-head" id="column-head-(\d+)" (?:hx-swap-oob="true" )?'
        r'data-count="(\d+)" data-total="([\d.]+)" data-weighted="([\d.]*)"[^>]*>',
        html,
    ):
        heads[pk] = {"count": count, "total": total, "weighted": weighted}
    return heads


def _summary(html: str) -> tuple:
    summary = re.search(r'<p class="board-summary".*?</p>', html, re.S).group(0)
    count = re.search(r'data-sum="count">(\d+)<', summary).group(1)
    total = re.search(r'data-sum="total">([^<]+)<', summary).group(1)
    weighted = re.search(
        r'data-sum="weighted"( hidden)?>.*?data-sum="weighted-total">([^<]*)<', summary
    )
    return count, total, None if weighted.group(1) else weighted.group(2)


def _money(amount: Decimal) -> str:
    return f"${amount:,.0f}"


def _added_up(heads: dict[str, dict]) -> tuple:
    """What board_live.js computes from the headers."""
    weighted = [Decimal(h["weighted"]) for h in heads.values() if h["weighted"]]
    return (
        str(sum(int(h["count"]) for h in heads.values())),
        _money(sum((Decimal(h["total"]) for h in heads.values()), Decimal(0))),
        _money(sum(weighted, Decimal(0))) if weighted else None,
    )


@pytest.mark.parametrize("query", ["", "status=all", "status=won", "status=lost"])
def test_the_pages_totals_are_the_sums_of_its_headers(client, deals, query):
    pipeline, _, _, rep, _ = deals
    client.force_login(rep)
    html = client.get(reverse("opportunities:board", args=[pipeline.pk]) + "?" + query)
    html = html.content.decode()
    assert _added_up(_heads(html)) == _summary(html)


def test_after_a_delta_the_headers_add_up_to_a_fresh_pages_totals(client, deals):
    pipeline, stages, cards, rep, _ = deals
    client.force_login(rep)
    board_url = reverse("opportunities:board", args=[pipeline.pk])
    before = _heads(client.get(board_url).content.decode())
    cursor = last_event_id()
    manager = factories.manager()
    mine = [c for c in cards if c.assigned_to == rep and c.status == Status.OPEN]
    left = {str(mine[0].stage_id), str(mine[1].stage_id)}
    # Into a column with a probability, and one out of the open board.
    opportunity_move(opportunity=mine[0], to_stage=stages[3], version=1, user=manager)
    opportunity_set_status(opportunity=mine[1], status=Status.WON, version=1, user=manager)
    poll = client.get(
        reverse("opportunities:board_version", args=[pipeline.pk]),
        {"status": "open", "stages": stages_key(stages)},
        headers={"If-None-Match": f'"e{cursor}"'},
    )
    sent = _heads(poll.content.decode())
    assert set(sent) == left | {str(stages[3].pk)}
    fresh = client.get(board_url).content.decode()
    assert _heads(fresh) == before | sent
    assert _added_up(before | sent) == _summary(fresh)


def test_the_own_card_poll_runs_six_queries_and_the_same_again(client, deals):
    pipeline, stages, cards, rep, _ = deals
    client.force_login(rep)
    url = reverse("opportunities:board_version", args=[pipeline.pk])
    client.get(url, {"stages": stages_key(stages)})  # the user's permissions are cached
    manager = factories.manager()
    mine = next(c for c in cards if c.assigned_to == rep and c.status == Status.OPEN)
    for round_trip, stage in enumerate([stages[2], stages[1], stages[2]]):
        cursor = last_event_id()
        mine = opportunity_update(
            opportunity=mine, user=manager, version=mine.version, name=f"Renamed {round_trip}"
        )
        opportunity_move(opportunity=mine, to_stage=stage, version=mine.version, user=manager)
        mine.refresh_from_db()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(
                url,
                {"status": "open", "stages": stages_key(stages)},
                headers={"If-None-Match": f'"e{cursor}"'},
            )
        assert response.status_code == 200
        assert f"Renamed {round_trip}" in response.content.decode()
        # user, newest event, stages with the pipeline, events, the cards with the card
        # above each, the affected columns' totals
        assert len(captured) == 6
