"""The manager's list in Chromium: quick views and filters without reload, then the CSV."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from opportunities.filters_manager import month_start
from opportunities.models import Opportunity, Status
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deals(roles):
    _, stages = factories.pipeline_with_stages(name="Sales")
    price = factories.LostReasonFactory(name="Price")
    now = timezone.now()

    def lost(name, closed_at):
        return factories.OpportunityFactory(
            name=name, stage=stages[1], status=Status.LOST, lost_reason=price, closed_at=closed_at
        )

    lost("Lost to Initech", now)
    lost("Lost to Globex", now)
    lost("Lost long ago", month_start() - timedelta(days=5))
    factories.OpportunityFactory(name="Won Acme", stage=stages[2], status=Status.WON, closed_at=now)
    factories.OpportunityFactory(name="Still open", stage=stages[0])


def test_manager_filters_lost_this_month_and_downloads_the_csv(login_as, live_server, deals):
    page = login_as(factories.manager())
    page.goto(live_server.url + "/opportunities/")
    expect(page.locator("#results tr[id^=opportunity-row-]")).to_have_count(5)
    # A marker on the window survives htmx swaps but not a page load.
    page.evaluate("window.notReloaded = true")

    page.get_by_role("link", name=re.compile("^Lost this month")).click()

    expect(page).to_have_url(re.compile(r"\?view=lost_this_month$"))
    rows = page.locator("#results tr[id^=opportunity-row-]")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Lost to Initech")).to_have_count(1)
    expect(rows.filter(has_text="Lost to Globex")).to_have_count(1)
    expect(page.locator('[data-kpi="count"]')).to_have_text("2")
    assert page.evaluate("window.notReloaded") is True

    with page.expect_download() as download_info:
        page.locator("#export-csv").click()
    download = download_info.value
    assert download.suggested_filename.startswith("opportunities-")
    with open(download.path(), encoding="utf-8") as handle:
        exported = list(csv.DictReader(io.StringIO(handle.read())))

    expected = Opportunity.objects.filter(
        status=Status.LOST, closed_at__gte=month_start()
    ).values_list("id", flat=True)
    assert sorted(int(row["id"]) for row in exported) == sorted(expected)
    assert {row["status"] for row in exported} == {"lost"}


def test_status_filter_and_sorting_update_the_table_in_place(login_as, live_server, deals):
    page = login_as(factories.manager())
    page.goto(live_server.url + "/opportunities/")
    page.evaluate("window.notReloaded = true")

    page.locator(".chip", has_text="Won").click()
    expect(page).to_have_url(re.compile(r"status=won"))
    expect(page.locator("#results tr[id^=opportunity-row-]")).to_have_count(1)
    expect(page.locator('[data-kpi="win-rate"]')).to_have_text("100.0%")

    page.locator(".chip", has_text="Lost").click()
    expect(page.locator("#results tr[id^=opportunity-row-]")).to_have_count(4)

    page.get_by_role("link", name=re.compile("^Opportunity")).click()
    expect(page.locator("th[aria-sort='ascending']")).to_contain_text("Opportunity")
    expect(page.locator("#results tr[id^=opportunity-row-]").first).to_contain_text("Lost long ago")
    expect(page).to_have_url(re.compile(r"sort=name"))
    assert page.evaluate("window.notReloaded") is True
