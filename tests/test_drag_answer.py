"""After a drag the browser shows the card's value moved between two headers, and the
live poll brings the server's figures for both columns: those of what the dragging rep
sees, with their filters (the compiled totals statement, or the filterset for an owner
filter). The drag itself reads no totals, whatever the filters."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.events import last_event_id
from opportunities.models import Status
from opportunities.selectors import stages_of
from opportunities.selectors_live import stages_key
from tests import factories
from tests.test_board_views import DRAG_QUERIES, column_heads

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def drag(client, deal, stage, filters: str = ""):
    data = {"stage": stage.pk, "version": deal.version, "from_stage": deal.stage_id}
    if filters:
        data["filters"] = filters
    return client.post(reverse("opportunities:move", args=[deal.pk]), data, **HTMX)


def poll(client, pipeline, cursor: int, filters: str = "") -> str:
    """The live poll's answer since `cursor`, for a board with `filters`."""
    query = dict(part.split("=") for part in filters.split("&") if part)
    query["stages"] = stages_key(stages_of(pipeline))
    url = reverse("opportunities:board_version", args=[pipeline.pk])
    answer = client.get(url, query, headers={"If-None-Match": f'"e{cursor}"'})
    assert answer.status_code == 200
    return answer.content.decode()


@pytest.fixture
def board():
    pipeline, stages = factories.pipeline_with_stages()
    rep, other = factories.rep(username="rita"), factories.rep(username="otto")
    for value, stage, owner, status in [
        (100, 0, rep, Status.OPEN),
        (200, 1, rep, Status.OPEN),
        (400, 1, rep, Status.WON),
        (800, 1, other, Status.OPEN),  # the rep does not see it
        (1600, 0, other, Status.OPEN),
    ]:
        factories.OpportunityFactory(
            stage=stages[stage], value=value, assigned_to=owner, status=status
        )
    return pipeline, stages, rep, other


@pytest.mark.parametrize("filters", ["", "status=all", "status=won"])
def test_after_a_reps_drag_the_poll_brings_the_totals_of_what_the_rep_sees(client, board, filters):
    pipeline, stages, rep, _ = board
    client.force_login(rep)
    deal = factories.OpportunityFactory(stage=stages[0], value=50, assigned_to=rep)
    cursor = last_event_id()
    response = drag(client, deal, stages[1], filters)
    assert response.status_code == 200
    assert column_heads(response.content.decode()) == {}
    statuses = {"": {"open"}, "status=all": {"open", "won"}, "status=won": {"won"}}[filters]
    expected = {}
    for stage in stages[:2]:
        shown = [
            deal.value
            for deal in stage.opportunities.filter(assigned_to=rep)
            if deal.status in statuses
        ]
        expected[stage.pk] = (len(shown), sum(shown, Decimal(0)))
    assert column_heads(poll(client, pipeline, cursor, filters)) == expected


def test_an_owner_filter_is_read_through_the_filterset_with_the_same_figures(client, board):
    pipeline, stages, _, other = board
    client.force_login(factories.manager(username="mia"))
    deal = factories.OpportunityFactory(stage=stages[0], value=50, assigned_to=other)
    cursor = last_event_id()
    assert drag(client, deal, stages[1], f"owner={other.pk}").status_code == 200
    heads = column_heads(poll(client, pipeline, cursor, f"owner={other.pk}"))
    assert heads == {stages[0].pk: (1, Decimal(1600)), stages[1].pk: (2, Decimal(850))}


@pytest.mark.parametrize("filters", ["status=all", "owner", "status=won&q=deal"])
def test_a_drag_costs_the_same_queries_whatever_the_filters(client, board, filters):
    _, stages, _, other = board
    client.force_login(factories.manager(username="mia"))
    filters = filters.replace("owner", f"owner={other.pk}")
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=other)
    drag(client, deal, stages[2], filters)  # caches the user's permissions
    deal.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        assert drag(client, deal, stages[3], filters).status_code == 200
    # PostgreSQL adds the stage lock and the event append lock (SQLite has one writer).
    assert len(queries) == DRAG_QUERIES + (2 if connection.vendor == "postgresql" else 0)
