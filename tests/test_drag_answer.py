"""The drag answer's column headers: read by the compiled totals statement when it serves
the board's filters, by the filterset otherwise (an owner filter); the same figures, the
rep's visibility kept, and the same queries either way."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import Status
from tests import factories
from tests.test_board_views import DRAG_QUERIES, column_heads

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def drag(client, deal, stage, filters: str = ""):
    data = {"stage": stage.pk, "version": deal.version, "from_stage": deal.stage_id}
    if filters:
        data["filters"] = filters
    return client.post(reverse("opportunities:move", args=[deal.pk]), data, **HTMX)


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
def test_a_reps_drag_answers_the_totals_of_what_the_rep_sees(client, board, filters):
    _, stages, rep, _ = board
    client.force_login(rep)
    deal = factories.OpportunityFactory(stage=stages[0], value=50, assigned_to=rep)
    response = drag(client, deal, stages[1], filters)
    assert response.status_code == 200
    statuses = {"": {"open"}, "status=all": {"open", "won"}, "status=won": {"won"}}[filters]
    expected = {}
    for stage in stages[:2]:
        shown = [
            deal.value
            for deal in stage.opportunities.filter(assigned_to=rep)
            if deal.status in statuses
        ]
        expected[stage.pk] = (len(shown), sum(shown, Decimal(0)))
    assert column_heads(response.content.decode()) == expected


def test_an_owner_filter_is_read_through_the_filterset_with_the_same_figures(client, board):
    _, stages, _, other = board
    client.force_login(factories.manager(username="mia"))
    deal = factories.OpportunityFactory(stage=stages[0], value=50, assigned_to=other)
    response = drag(client, deal, stages[1], f"owner={other.pk}")
    assert response.status_code == 200
    heads = column_heads(response.content.decode())
    assert heads == {stages[0].pk: (1, Decimal(1600)), stages[1].pk: (2, Decimal(850))}


def test_the_compiled_and_the_filterset_reads_cost_the_same_queries(client, board):
    _, stages, _, other = board
    client.force_login(factories.manager(username="mia"))
    counts = []
    for filters in ("status=all", f"owner={other.pk}"):
        deal = factories.OpportunityFactory(stage=stages[0], assigned_to=other)
        drag(client, deal, stages[2], filters)  # compiles the statement, caches permissions
        deal.refresh_from_db()
        with CaptureQueriesContext(connection) as queries:
            assert drag(client, deal, stages[3], filters).status_code == 200
        counts.append(len(queries))
    # PostgreSQL adds the stage lock and the event append lock (SQLite has one writer).
    assert counts[0] <= DRAG_QUERIES + (2 if connection.vendor == "postgresql" else 0)
    # The owner filter reads the owner once more (the filter checks they are active).
    assert counts[1] <= counts[0] + 1
