"""The forecast page: open deals by expected close month, weighted and not, won deals by
the month they closed, per pipeline and owner, each figure a link to its deals."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Status
from opportunities.selectors_forecast import OVERDUE, month_starts, sales_forecast
from tests import factories

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 15)
FORECAST = reverse("opportunities:forecast")


@pytest.fixture
def world():
    """Two pipelines, two reps; stage probabilities 10 % and 50 %."""
    sales, (early, late) = factories.pipeline_with_stages(("Early", "Late"), name="Sales")
    early.probability, late.probability = 10, 50
    early.save(), late.save()
    partners, (intro,) = factories.pipeline_with_stages(("Intro",), name="Partners")
    ana = factories.rep(username="ana", first_name="Ana", last_name="A")
    ben = factories.rep(username="ben", first_name="Ben", last_name="B")
    make = factories.OpportunityFactory
    deals = {
        # December: 1000 at the stage's 10 % + 2000 at its own 80 % = 100 + 1600 weighted.
        "dec_a": make(stage=early, assigned_to=ana, value=1000, expected_close_date=TODAY),
        "dec_b": make(
            stage=late,
            assigned_to=ben,
            value=2000,
            probability=80,
            expected_close_date=date(2026, 12, 31),
        ),
        # March: 4000 in a stage with no probability: weighted 0.
        "mar": make(stage=intro, assigned_to=ana, value=4000, expected_close_date=date(2027, 3, 1)),
        # Overdue (still open, date passed) and beyond the twelve months.
        "late": make(stage=late, assigned_to=ben, value=300, expected_close_date=date(2026, 10, 2)),
        "far": make(stage=late, assigned_to=ben, value=9, expected_close_date=date(2027, 12, 1)),
        # Closed deals with a close date do not count as open.
        "lost": make(
            stage=late, assigned_to=ana, value=5, status=Status.LOST, expected_close_date=TODAY
        ),
    }
    won = make(stage=late, assigned_to=ana, value=700, status=Status.WON)
    won.closed_at = timezone.make_aware(datetime(2026, 12, 3, 12))
    won.save()
    deals["won"] = won
    return {"ana": ana, "ben": ben, "sales": sales, "partners": partners, **deals}


def test_twelve_months_from_this_one():
    months = month_starts(TODAY)
    assert months[0] == date(2026, 12, 1) and months[-1] == date(2027, 11, 1) and len(months) == 12


def test_forecast_figures_per_month(world):
    forecast = sales_forecast(factories.manager(), today=TODAY)
    december = forecast.total.cell(date(2026, 12, 1))
    assert (december.count, december.value, december.weighted) == (2, 3000, Decimal("1700.00"))
    assert (december.won_count, december.won_value) == (1, 700)
    march = forecast.total.cell(date(2027, 3, 1))
    assert (march.count, march.value, march.weighted) == (1, 4000, 0)
    overdue = forecast.total.cell(OVERDUE)
    assert (overdue.count, overdue.value, overdue.weighted) == (1, 300, Decimal("150.00"))
    assert forecast.grand.count == 4  # the deal closing in Dec 2027 is beyond the 12 months


def test_forecast_per_pipeline_and_owner(world):
    forecast = sales_forecast(factories.manager(), today=TODAY)
    by_pipeline = {row.label: row for row in forecast.by_pipeline}
    assert by_pipeline["Sales"].cell(date(2026, 12, 1)).value == 3000
    assert by_pipeline["Partners"].cell(date(2027, 3, 1)).value == 4000
    by_owner = {row.label: row for row in forecast.by_owner}
    assert by_owner["Ana A"].cell(date(2026, 12, 1)).weighted == Decimal("100.00")
    assert by_owner["Ben B"].cell(date(2026, 12, 1)).weighted == Decimal("1600.00")


def test_each_cell_links_to_the_list_filtered_to_its_deals(client, world):
    manager = factories.manager()
    forecast = sales_forecast(manager, today=TODAY)
    ana_row = next(row for row in forecast.by_owner if row.label == "Ana A")
    url = ana_row.cell(date(2026, 12, 1)).url
    params = parse_qs(urlsplit(url).query)
    assert params == {
        "status": ["open"],
        "owner": [str(world["ana"].pk)],
        "expected_close_after": ["2026-12-01"],
        "expected_close_before": ["2026-12-31"],
    }
    client.force_login(manager)
    html = client.get(url).content.decode()
    assert world["dec_a"].name in html and world["dec_b"].name not in html
    won_url = ana_row.cell(date(2026, 12, 1)).won_url
    html = client.get(won_url).content.decode()
    assert world["won"].name in html and world["dec_a"].name not in html


def test_a_rep_sees_only_their_own_and_followed_deals(world):
    forecast = sales_forecast(world["ben"], today=TODAY)
    assert forecast.total.cell(date(2026, 12, 1)).value == 2000
    world["dec_a"].followers.add(world["ben"])
    forecast = sales_forecast(world["ben"], today=TODAY)
    assert forecast.total.cell(date(2026, 12, 1)).value == 3000


def test_forecast_reads_in_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    manager = factories.manager()
    for index in range(30):
        factories.OpportunityFactory(
            stage=world["dec_a"].stage, expected_close_date=TODAY + timedelta(days=index * 9)
        )
    with django_assert_max_num_queries(8):
        sales_forecast(manager, today=TODAY)


def test_forecast_page_renders_for_reps_and_managers(client, world):
    client.force_login(world["ana"])
    html = client.get(FORECAST).content.decode()
    assert "Forecast" in html and "By owner" in html and "Ana A" in html and "Ben B" not in html
    client.force_login(factories.manager())
    html = client.get(FORECAST).content.decode()
    assert "By pipeline" in html and "Partners" in html and 'aria-current="page">Forecast' in html


def test_forecast_page_without_close_dates_explains_what_to_do(client):
    client.force_login(factories.manager())
    factories.OpportunityFactory()
    html = client.get(FORECAST).content.decode()
    assert "No expected close dates yet" in html
