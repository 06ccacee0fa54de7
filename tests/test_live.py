"""The board's live-update poll: 304 while nothing changed, a new ETag when something did."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Opportunity, Status
from opportunities.selectors_live import RECENT, board_fingerprint
from opportunities.services.moves import opportunity_move, opportunity_set_status
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(client):
    pipeline, stages = factories.pipeline_with_stages()
    cards = [factories.OpportunityFactory(stage=stages[0]) for _ in range(3)]
    user = factories.rep()
    client.force_login(user)
    return pipeline, stages, cards, user


def poll(client, pipeline, etag=None):
    headers = {"If-None-Match": etag} if etag else {}
    return client.get(reverse("opportunities:board_version", args=[pipeline.pk]), headers=headers)


def test_first_poll_answers_200_with_an_etag(client, board):
    pipeline, *_ = board
    response = poll(client, pipeline)
    assert response.status_code == 200
    assert response["ETag"].startswith('"')
    assert "no-cache" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_unchanged_board_answers_304_in_at_most_two_queries(
    client, board, django_assert_max_num_queries
):
    pipeline, *_ = board
    etag = poll(client, pipeline)["ETag"]
    with django_assert_max_num_queries(2):
        response = poll(client, pipeline, etag)
    assert response.status_code == 304
    assert response["ETag"] == etag
    assert response.content == b""


def test_a_move_changes_the_etag(client, board):
    pipeline, stages, cards, user = board
    etag = poll(client, pipeline)["ETag"]
    opportunity_move(opportunity=cards[0], to_stage=stages[2], version=cards[0].version, user=user)
    response = poll(client, pipeline, etag)
    assert response.status_code == 200
    assert response["ETag"] != etag


def test_a_reorder_within_a_column_changes_the_etag(client, board):
    pipeline, stages, cards, user = board
    etag = poll(client, pipeline)["ETag"]
    opportunity_move(
        opportunity=cards[2],
        to_stage=stages[0],
        version=cards[2].version,
        user=user,
        before_id=None,
        after_id=cards[0].pk,
    )
    assert poll(client, pipeline, etag).status_code == 200


def test_a_status_change_changes_the_etag(client, board):
    pipeline, _, cards, user = board
    etag = poll(client, pipeline)["ETag"]
    opportunity_set_status(
        opportunity=cards[1], status=Status.WON, version=cards[1].version, user=user
    )
    assert poll(client, pipeline, etag).status_code == 200


def test_a_new_opportunity_changes_the_etag(client, board):
    pipeline, stages, *_ = board
    etag = poll(client, pipeline)["ETag"]
    factories.OpportunityFactory(stage=stages[1])
    assert poll(client, pipeline, etag).status_code == 200


def test_deleting_a_recently_changed_opportunity_changes_the_etag(client, board):
    pipeline, _, cards, _ = board
    etag = poll(client, pipeline)["ETag"]
    Opportunity.objects.filter(pk=cards[0].pk).delete()
    assert poll(client, pipeline, etag).status_code == 200


def test_a_write_committed_after_a_newer_one_still_changes_the_etag(client, board):
    # Two reps save at once; the slower transaction commits the older updated_at last.
    pipeline, _, cards, _ = board
    now = timezone.now()
    Opportunity.objects.filter(pk=cards[0].pk).update(updated_at=now)
    etag = poll(client, pipeline)["ETag"]
    Opportunity.objects.filter(pk=cards[1].pk).update(
        updated_at=now - timedelta(seconds=2), version=F("version") + 1
    )
    assert poll(client, pipeline, etag).status_code == 200


def test_the_fingerprint_reads_only_the_most_recently_changed_cards(
    board, django_assert_num_queries
):
    pipeline, stages, *_ = board
    old = timezone.now() - timedelta(days=30)
    factories.OpportunityFactory.create_batch(RECENT + 5, stage=stages[3], updated_at=old)
    with django_assert_num_queries(1) as captured:
        board_fingerprint(pipeline.pk)
    assert f"LIMIT {RECENT}" in captured.captured_queries[0]["sql"]


def test_an_unknown_pipeline_has_the_etag_of_an_empty_board(client, board):
    pipeline, *_ = board
    empty, _ = factories.pipeline_with_stages()
    unknown = type(pipeline)(pk=999_999)
    assert poll(client, unknown)["ETag"] == poll(client, empty)["ETag"]


def test_a_change_in_another_pipeline_keeps_the_etag(client, board):
    pipeline, *_ = board
    etag = poll(client, pipeline)["ETag"]
    factories.OpportunityFactory()
    assert poll(client, pipeline, etag).status_code == 304


def test_an_empty_pipeline_has_an_etag(client):
    pipeline, _ = factories.pipeline_with_stages()
    client.force_login(factories.rep())
    etag = poll(client, pipeline)["ETag"]
    assert poll(client, pipeline, etag).status_code == 304


def test_anonymous_poll_is_sent_to_the_login_page(client, board):
    pipeline, *_ = board
    client.logout()
    response = poll(client, pipeline)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]
