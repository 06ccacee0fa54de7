"""Bulk actions in Chromium: filter the list, select all matching, mark them Lost with a
reason, and the board's totals follow."""

import re

import pytest
from playwright.sync_api import expect

from opportunities.models import Opportunity, OpportunityHistory, Status, TrackedField
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sales(roles):
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    factories.LostReasonFactory(name="Went with a competitor")
    for index in range(3):
        factories.OpportunityFactory(
            name=f"Fair lead {index}", stage=stages[0], source="Trade fair", value=1000
        )
    factories.OpportunityFactory(name="Web lead", stage=stages[0], source="Website", value=500)
    return pipeline, stages


def test_manager_marks_all_matching_lost_and_the_board_follows(login_as, live_server, sales):
    pipeline, stages = sales
    page = login_as(factories.manager())
    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    head = page.locator(f"#column-head-{stages[0].pk}")
    expect(head.locator(".count")).to_have_text("4")

    page.goto(live_server.url + "/opportunities/")
    page.locator("summary", has_text="More filters").click()
    page.locator("#list-source").select_option("Trade fair")
    expect(page).to_have_url(re.compile(r"source=Trade(\+|%20)fair"))
    expect(page.locator("#results tr[id^=opportunity-row-]")).to_have_count(3)

    page.locator("#bulk-all").check()
    page.locator("#bulk-action").select_option("status")
    page.locator("#bulk-status").select_option("lost")
    # Lost without a reason is refused; the reason is asked once for all of them.
    page.locator("#bulk-preview-button").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose why this opportunity was lost.")
    assert not Opportunity.objects.filter(status=Status.LOST).exists()
    page.go_back()

    page.locator("#bulk-all").check()
    page.locator("#bulk-action").select_option("status")
    page.locator("#bulk-status").select_option("lost")
    page.locator("#bulk-lost-reason").select_option(label="Went with a competitor")
    page.locator("#bulk-preview-button").click()
    expect(page.locator('[data-stat="would-change"]')).to_have_text("3")
    page.locator("#bulk-apply").click()
    expect(page.locator('[data-stat="changed"]')).to_have_text("3")

    lost = Opportunity.objects.filter(status=Status.LOST)
    assert sorted(lost.values_list("name", flat=True)) == [f"Fair lead {i}" for i in range(3)]
    assert set(lost.values_list("lost_reason__name", flat=True)) == {"Went with a competitor"}
    assert OpportunityHistory.objects.filter(field=TrackedField.STATUS).count() == 3

    page.goto(f"{live_server.url}/pipelines/{pipeline.pk}/board/")
    expect(head.locator(".count")).to_have_text("1")
    expect(head.locator(".total")).to_have_attribute("data-total", re.compile(r"^500(\.00)?$"))
