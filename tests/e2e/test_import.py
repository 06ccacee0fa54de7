"""The import in Chromium: upload, review, confirm, then the progress page runs to the end."""

import pytest
from playwright.sync_api import expect

from opportunities.models import Opportunity
from opportunities.services import imports
from opportunities.views import manager
from tests import factories


@pytest.fixture
def sales(roles):
    return factories.pipeline_with_stages(name="Sales")


def test_a_big_import_runs_to_its_end_from_the_progress_page(
    login_as, live_server, sales, monkeypatch
):
    monkeypatch.setattr(imports, "BATCH_SIZE", 10)
    monkeypatch.setattr(manager, "IMPORT_STEP_SECONDS", 0)  # one chunk per request
    page = login_as(factories.manager(username="mia"))
    page.goto(live_server.url + "/opportunities/import/")
    content = ("name\n" + "".join(f"Deal {index}\n" for index in range(35))).encode()
    page.set_input_files(
        'input[name="file"]', {"name": "deals.csv", "mimeType": "text/csv", "buffer": content}
    )
    page.get_by_role("button", name="Check the file").click()
    page.get_by_role("button", name="Import 35 rows").click()

    expect(page.get_by_role("heading", name="Importing deals.csv")).to_be_visible()
    # htmx posts the next step by itself until the import is done.
    expect(page.get_by_role("link", name="See the opportunities")).to_be_visible(timeout=20_000)
    expect(page.locator("#import-progress")).to_contain_text("35 of 35 rows (100%)")
    assert Opportunity.objects.count() == 35
