"""CSV export: exactly the filtered, visible rows, streamed, with a header and ISO dates."""

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from django.http import QueryDict
from django.utils import timezone

from opportunities.exports import HEADER, csv_lines
from opportunities.filters_manager import ManagerOpportunityFilter
from opportunities.models import Opportunity, Status
from tests import factories

pytestmark = pytest.mark.django_db

EXPORT_URL = "/opportunities/export.csv"


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def mixed():
    _, stages = factories.pipeline_with_stages()
    reason = factories.LostReasonFactory(name="Price")
    rep = factories.rep(username="rita")
    made = [
        factories.OpportunityFactory(stage=stages[0], value=100, assigned_to=rep),
        factories.OpportunityFactory(
            stage=stages[1], status=Status.WON, value=2500, closed_at=timezone.now()
        ),
        factories.OpportunityFactory(
            stage=stages[2],
            status=Status.LOST,
            lost_reason=reason,
            value=700,
            assigned_to=rep,
            closed_at=timezone.now(),
        ),
        factories.OpportunityFactory(stage=stages[2], status=Status.LOST, lost_reason=reason),
    ]
    return {"rep": rep, "made": made}


def test_export_is_a_streamed_csv_attachment(client, mixed):
    client.force_login(factories.manager())
    response = client.get(EXPORT_URL)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="opportunities-')


def test_export_has_a_header_row(client, mixed):
    client.force_login(factories.manager())
    body = b"".join(client.get(EXPORT_URL).streaming_content).decode()
    assert body.splitlines()[0].split(",") == HEADER


@pytest.mark.parametrize("query", ["", "status=lost", "status=won&status=open", "value_min=500"])
def test_export_rows_equal_the_filtered_queryset(client, mixed, query):
    client.force_login(factories.manager())
    rows = read_csv(client.get(f"{EXPORT_URL}?{query}"))
    expected = ManagerOpportunityFilter(QueryDict(query), queryset=Opportunity.objects.all()).qs
    assert [int(row["id"]) for row in rows] == list(expected.values_list("id", flat=True))


def test_export_respects_visibility_for_reps(client, mixed):
    client.force_login(mixed["rep"])
    rows = read_csv(client.get(EXPORT_URL))
    assert sorted(int(row["id"]) for row in rows) == sorted(
        o.pk for o in mixed["made"] if o.assigned_to_id == mixed["rep"].pk
    )


def test_export_without_permission_is_limited_to_own_even_with_view_all(client, mixed):
    viewer = factories.rep_with_view_all(username="vera")
    mine = factories.OpportunityFactory(assigned_to=viewer)
    client.force_login(viewer)
    assert [int(row["id"]) for row in read_csv(client.get(EXPORT_URL))] == [mine.pk]


def test_export_writes_values_names_and_iso_dates(client):
    created = timezone.make_aware(datetime(2026, 5, 4, 9, 30))
    closed = timezone.make_aware(datetime(2026, 5, 14, 18, 0))
    contact = factories.ContactFactory(name="Ada Lovelace", email="ada@example.com")
    opportunity = factories.OpportunityFactory(
        name="Engine",
        contact=contact,
        status=Status.WON,
        value=Decimal("1234.50"),
        created_at=created,
        closed_at=closed,
        assigned_to=factories.rep(username="rita"),
        source="Referral",
    )
    client.force_login(factories.manager())
    (row,) = read_csv(client.get(EXPORT_URL))
    assert row["id"] == str(opportunity.pk)
    assert row["name"] == "Engine"
    assert (row["contact"], row["contact_email"]) == ("Ada Lovelace", "ada@example.com")
    assert (row["status"], row["value"], row["owner"]) == ("won", "1234.50", "rita")
    assert row["pipeline"] == opportunity.pipeline.name
    assert row["stage"] == opportunity.stage.name
    assert row["created"] == "2026-05-04T09:30:00+00:00"
    assert row["closed"] == "2026-05-14T18:00:00+00:00"
    assert row["days_open"] == "10"
    assert row["lost_reason"] == ""


def test_export_defuses_spreadsheet_formulas(client):
    factories.OpportunityFactory(name='=HYPERLINK("http://evil")')
    client.force_login(factories.manager())
    (row,) = read_csv(client.get(EXPORT_URL))
    assert row["name"] == '\'=HYPERLINK("http://evil")'


def test_export_header_is_sent_before_the_database_is_read(django_assert_num_queries):
    factories.OpportunityFactory.create_batch(5)
    lines = csv_lines(Opportunity.objects.all())
    with django_assert_num_queries(0):
        assert next(lines).startswith("id,name,")
    with django_assert_num_queries(1):
        assert "".join(lines).count("\n") == 5


def test_export_sends_rows_in_pieces_not_line_by_line(monkeypatch):
    monkeypatch.setattr("opportunities.exports.PIECE_SIZE", 500)
    factories.OpportunityFactory.create_batch(20)
    pieces = list(csv_lines(Opportunity.objects.all()))[1:]
    assert 1 < len(pieces) < 20
    assert sum(piece.count("\n") for piece in pieces) == 20
