"""The board page's column headers: for a rep, the deals they own plus the ones they
follow (read apart by the compiled totals statement), never anyone else's; the same
figures through the filterset when a filter the statement does not serve is set."""

from decimal import Decimal

import pytest
from django.urls import reverse

from opportunities.services.related import opportunity_set_followers
from tests import factories
from tests.test_board_views import column_heads

pytestmark = pytest.mark.django_db


@pytest.fixture
def board():
    pipeline, stages = factories.pipeline_with_stages()
    rita, otto = factories.rep(username="rita"), factories.rep(username="otto")
    manager = factories.manager(username="mia")
    factories.OpportunityFactory(stage=stages[0], value=100, assigned_to=rita)
    factories.OpportunityFactory(stage=stages[1], value=200, assigned_to=rita)
    followed = factories.OpportunityFactory(stage=stages[1], value=400, assigned_to=otto)
    opportunity_set_followers(opportunity=followed, user=manager, followers=[rita])
    factories.OpportunityFactory(stage=stages[0], value=800, assigned_to=otto)  # not hers
    factories.OpportunityFactory(stage=stages[2], value=1600, assigned_to=otto)  # not hers
    return pipeline, stages, rita, otto


def heads(client, pipeline, query: str = "") -> dict:
    response = client.get(reverse("opportunities:board", args=[pipeline.pk]) + query)
    assert response.status_code == 200
    return column_heads(response.content.decode())


def test_a_reps_headers_count_what_they_own_and_follow(client, board):
    pipeline, stages, rita, _ = board
    client.force_login(rita)
    shown = heads(client, pipeline)
    assert shown[stages[0].pk] == (1, Decimal(100))
    assert shown[stages[1].pk] == (2, Decimal(600))
    assert shown[stages[2].pk] == (0, Decimal(0))


def test_an_owner_filter_gives_the_same_figures_through_the_filterset(client, board):
    pipeline, stages, rita, otto = board
    client.force_login(rita)
    shown = heads(client, pipeline, f"?owner={otto.pk}")
    assert shown[stages[0].pk] == (0, Decimal(0))  # otto's own card there is not hers
    assert shown[stages[1].pk] == (1, Decimal(400))  # the one she follows


def test_a_manager_sees_every_deal_in_the_headers(client, board):
    pipeline, stages, _, _ = board
    client.force_login(factories.manager(username="max"))
    shown = heads(client, pipeline)
    assert shown[stages[0].pk] == (2, Decimal(900))
    assert shown[stages[1].pk] == (2, Decimal(600))
    assert shown[stages[2].pk] == (1, Decimal(1600))
