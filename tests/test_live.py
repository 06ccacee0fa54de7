"""The board's live poll: deltas from the event log, filtered like the rep's board."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.events import last_event_id
from opportunities.models import Status
from opportunities.selectors import stages_of
from opportunities.selectors_live import DELTA_LIMIT, stages_key
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import (
    opportunity_create,
    opportunity_delete,
    opportunity_update,
)
from opportunities.services.related import opportunity_set_followers
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(client):
    """A rep's board: three of their cards in the first column, one of another rep's."""
    pipeline, stages = factories.pipeline_with_stages()
    rep = factories.rep(username="rita")
    cards = [factories.OpportunityFactory(stage=stages[0], assigned_to=rep) for _ in range(3)]
    client.force_login(rep)
    return pipeline, stages, cards, rep


@pytest.fixture
def manager():
    return factories.manager(username="mia")


def poll(client, pipeline, cursor=None, stages=None, **filters):
    """What board_live.js asks: its cursor as the ETag, its filters and stages key."""
    query = {**filters, "stages": stages or stages_key(stages_of(pipeline))}
    headers = {"If-None-Match": f'"e{cursor}"'} if cursor is not None else {}
    url = reverse("opportunities:board_version", args=[pipeline.pk])
    return client.get(url, query, headers=headers)


def placed(response) -> dict[int, dict]:
    """{card id: {"stage": id, "after": id or None}} for the cards the answer places."""
    cards = {}
    for pk, stage, after in re.findall(
        r'<template data-card="(\d+)" data-stage="(\d+)" data-after="(\d*)">',
        response.content.decode(),
    ):
        cards[int(pk)] = {"stage": int(stage), "after": int(after) if after else None}
    return cards


def removed(response) -> set[int]:
    return {
        int(pk)
        for pk in re.findall(r'<template data-card="(\d+)" data-remove>', response.content.decode())
    }


def test_without_a_cursor_the_poll_says_where_to_start(client, board):
    pipeline, *_ = board
    response = poll(client, pipeline)
    assert response.status_code == 200
    assert response["X-Event-Cursor"] == str(last_event_id())
    assert "no-cache" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_board_page_carries_the_cursor_and_stages_key(client, board):
    pipeline, stages, *_ = board
    html = client.get(reverse("opportunities:board", args=[pipeline.pk])).content.decode()
    assert f'data-event-cursor="{last_event_id()}"' in html
    assert f'data-stages-key="{stages_key(stages)}"' in html


def test_nothing_changed_is_304_in_at_most_two_queries(
    client, board, django_assert_max_num_queries
):
    pipeline, stages, *_ = board
    cursor, key = last_event_id(), stages_key(stages)
    poll(client, pipeline, cursor)  # the user's permissions are cached from here on
    with django_assert_max_num_queries(2):
        response = poll(client, pipeline, cursor, stages=key)
    assert response.status_code == 304
    assert response.content == b""


def test_a_change_in_another_pipeline_is_204_with_the_new_cursor(client, board, manager):
    pipeline, *_ = board
    cursor = last_event_id()
    other, other_stages = factories.pipeline_with_stages(names=["Elsewhere"])
    opportunity_create(user=manager, name="Far away", pipeline=other, stage=other_stages[0])
    response = poll(client, pipeline, cursor)
    assert response.status_code == 204
    assert int(response["X-Event-Cursor"]) > cursor


def test_a_move_by_another_user_sends_the_card_in_its_place_and_the_headers(client, board, manager):
    pipeline, stages, cards, _ = board
    below = factories.OpportunityFactory(stage=stages[1], assigned_to=cards[0].assigned_to)
    cursor = last_event_id()
    opportunity_move(
        opportunity=cards[0], to_stage=stages[1], version=1, user=manager, after_id=below.pk
    )
    response = poll(client, pipeline, cursor)
    html = response.content.decode()
    assert response.status_code == 200
    assert placed(response) == {cards[0].pk: {"stage": stages[1].pk, "after": None}}
    assert 'data-version="2"' in html
    # The headers of the two columns the card left and entered; the others did not change.
    heads = [f'id="column-head-{stage.pk}" hx-swap-oob="true"' in html for stage in stages]
    assert heads == [True, True, False, False]
    # The toolbar totals are added up in the browser from every header's figures.
    assert 'id="board-summary"' not in html
    assert f'id="column-head-{stages[1].pk}" hx-swap-oob="true" data-count="2"' in html
    assert response["X-Event-Cursor"] == str(last_event_id())
    assert "<form" not in html


def test_a_reorder_places_the_card_after_its_new_neighbour(client, board, manager):
    pipeline, stages, cards, _ = board
    cursor = last_event_id()
    opportunity_move(
        opportunity=cards[0],
        to_stage=stages[0],
        version=1,
        user=manager,
        before_id=cards[1].pk,
        after_id=cards[2].pk,
    )
    assert placed(poll(client, pipeline, cursor)) == {
        cards[0].pk: {"stage": stages[0].pk, "after": cards[1].pk}
    }


def test_a_status_change_out_of_the_filter_removes_the_card(client, board, manager):
    pipeline, _, cards, _ = board
    cursor = last_event_id()
    opportunity_set_status(opportunity=cards[1], status=Status.WON, version=1, user=manager)
    response = poll(client, pipeline, cursor, status="open")
    assert removed(response) == {cards[1].pk}
    assert placed(response) == {}
    # The same change seen by a board showing every status: the card stays, now Won.
    every = poll(client, pipeline, cursor, status="all")
    assert cards[1].pk in placed(every)
    assert "badge-won" in every.content.decode()


def test_an_edit_sends_the_card_again(client, board, manager):
    pipeline, _, cards, _ = board
    cursor = last_event_id()
    opportunity_update(opportunity=cards[2], user=manager, version=1, value=4321, name="Renamed")
    response = poll(client, pipeline, cursor)
    assert list(placed(response)) == [cards[2].pk]
    assert "Renamed" in response.content.decode()
    assert "$4,321" in response.content.decode()


def test_a_new_card_appears_on_top_of_its_column(client, board, manager):
    pipeline, stages, _, rep = board
    cursor = last_event_id()
    new = opportunity_create(
        user=manager, name="Fresh lead", pipeline=pipeline, stage=stages[2], assigned_to=rep
    )
    response = poll(client, pipeline, cursor)
    assert placed(response) == {new.pk: {"stage": stages[2].pk, "after": None}}
    assert "Fresh lead" in response.content.decode()


def test_a_deleted_card_is_removed(client, board, manager):
    pipeline, _, cards, _ = board
    cursor = last_event_id()
    opportunity_delete(opportunity=cards[0], user=factories.UserFactory(is_superuser=True))
    assert removed(poll(client, pipeline, cursor)) == {cards[0].pk}


def test_another_reps_card_never_appears(client, board, manager):
    pipeline, stages, _, _ = board
    otto = factories.rep(username="otto")
    cursor = last_event_id()
    opportunity_create(
        user=manager, name="Otto's deal", pipeline=pipeline, stage=stages[0], assigned_to=otto
    )
    response = poll(client, pipeline, cursor)
    # Nothing on this rep's board changed: only the new cursor, no card, no header.
    assert response.status_code == 204
    assert response.content == b""
    assert response["X-Event-Cursor"] == str(last_event_id())


def test_another_reps_move_is_answered_in_five_queries(client, board, manager):
    pipeline, stages, _, _ = board
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    poll(client, pipeline, 0)  # the user's permissions are cached from here on
    cursor = last_event_id()
    opportunity_move(opportunity=theirs, to_stage=stages[1], version=1, user=manager)
    key = stages_key(stages)
    with CaptureQueriesContext(connection) as captured:
        response = poll(client, pipeline, cursor, stages=key)
    assert response.status_code == 204
    # user, newest event, stages with the pipeline, events, does the rep follow them
    assert len(captured) == 5


def test_a_followed_card_deleted_by_someone_else_is_removed(client, board, manager):
    pipeline, stages, _, rep = board
    followed = factories.OpportunityFactory(stage=stages[1], assigned_to=factories.rep())
    followed.followers.add(rep)
    cursor = last_event_id()
    opportunity_delete(opportunity=followed, user=factories.UserFactory(is_superuser=True))
    response = poll(client, pipeline, cursor)
    assert removed(response) == {followed.pk}
    assert f'id="column-head-{stages[1].pk}" hx-swap-oob="true"' in response.content.decode()


def test_a_card_the_rep_no_longer_follows_disappears(client, board, manager):
    pipeline, stages, _, rep = board
    followed = factories.OpportunityFactory(stage=stages[2], assigned_to=factories.rep())
    followed.followers.add(rep)
    cursor = last_event_id()
    opportunity_set_followers(opportunity=followed, user=manager, followers=[])
    response = poll(client, pipeline, cursor)
    assert removed(response) == {followed.pk}
    assert f'id="column-head-{stages[2].pk}" hx-swap-oob="true"' in response.content.decode()


def test_a_card_that_becomes_the_reps_appears(client, board, manager):
    pipeline, stages, _, rep = board
    theirs = factories.OpportunityFactory(stage=stages[3], assigned_to=factories.rep())
    cursor = last_event_id()
    opportunity_update(opportunity=theirs, user=manager, version=1, assigned_to=rep)
    assert placed(poll(client, pipeline, cursor)) == {
        theirs.pk: {"stage": stages[3].pk, "after": None}
    }


def test_a_card_reassigned_away_from_the_rep_disappears(client, board, manager):
    pipeline, _, cards, _ = board
    cursor = last_event_id()
    opportunity_update(
        opportunity=cards[0], user=manager, version=1, assigned_to=factories.rep(username="otto")
    )
    assert removed(poll(client, pipeline, cursor)) == {cards[0].pk}


def test_a_card_that_leaves_the_search_filter_disappears(client, board, manager):
    pipeline, _, cards, _ = board
    opportunity_update(opportunity=cards[0], user=manager, version=1, name="Acme renewal")
    cursor = last_event_id()
    opportunity_update(opportunity=cards[0], user=manager, version=2, name="Globex renewal")
    assert removed(poll(client, pipeline, cursor, q="acme")) == {cards[0].pk}


def test_many_changes_send_the_whole_board(client, board, manager):
    pipeline, stages, cards, _ = board
    cursor = last_event_id()
    card = cards[0]
    for index in range(DELTA_LIMIT + 1):
        card = opportunity_move(
            opportunity=card, to_stage=stages[index % 2], version=card.version, user=manager
        )
    response = poll(client, pipeline, cursor)
    assert response["X-Board-Full"] == "1"
    assert response.content.decode().strip().startswith('<div id="board"')


def test_changed_stages_send_the_whole_board(client, board, manager):
    pipeline, stages, cards, _ = board
    cursor = last_event_id()
    old_key = stages_key(stages)
    stages[2].name = "Demo booked"
    stages[2].save()
    opportunity_set_status(opportunity=cards[0], status=Status.WON, version=1, user=manager)
    response = poll(client, pipeline, cursor, stages=old_key)
    assert response["X-Board-Full"] == "1"
    assert "Demo booked" in response.content.decode()


@pytest.mark.parametrize("others", [0, 60])
def test_a_delta_runs_the_same_queries_at_any_size(client, board, manager, others):
    pipeline, stages, cards, rep = board
    for index in range(others):
        factories.OpportunityFactory(stage=stages[index % 4], assigned_to=rep)
    poll(client, pipeline, 0)  # the user's permissions are cached from here on
    cursor = last_event_id()
    opportunity_move(opportunity=cards[0], to_stage=stages[1], version=1, user=manager)

    key = stages_key(stages)
    with CaptureQueriesContext(connection) as captured:
        response = poll(client, pipeline, cursor, stages=key)
    assert response.status_code == 200
    # user, newest event, stages with the pipeline, events, cards with the card above
    # each, totals
    assert len(captured) == 6


def test_anonymous_poll_is_sent_to_the_login_page(client, board):
    pipeline, *_ = board
    client.logout()
    response = poll(client, pipeline, 0)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]
