"""The manager's list page: rendering, htmx fragments, visibility and query counts."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Opportunity, Status
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = "/opportunities/"


def test_list_urls_resolve_to_the_manager_paths():
    assert reverse("opportunities:list") == LIST_URL
    assert reverse("opportunities:export") == "/opportunities/export.csv"
    assert reverse("opportunities:import") == "/opportunities/import/"


def test_list_requires_sign_in(client):
    response = client.get(LIST_URL)
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_list_shows_rows_summary_and_charts(client):
    _, stages = factories.pipeline_with_stages()
    reason = factories.LostReasonFactory(name="Budget")
    factories.OpportunityFactory(name="Acme renewal", stage=stages[1], value=1200)
    factories.OpportunityFactory(
        name="Globex",
        stage=stages[0],
        status=Status.LOST,
        lost_reason=reason,
        value=300,
        closed_at=timezone.now(),
    )
    client.force_login(factories.manager())
    html = client.get(LIST_URL).content.decode()
    assert "Acme renewal" in html and "Globex" in html
    assert 'data-kpi="count">2<' in html
    assert 'data-kpi="total">$1,500<' in html
    assert 'data-kpi="win-rate">0.0%<' in html
    assert "Budget" in html
    assert 'class="funnel-chart"' in html
    assert 'class="months-chart"' in html


def test_rep_sees_only_their_own_opportunities(client):
    _, stages = factories.pipeline_with_stages()
    rep = factories.rep()
    factories.OpportunityFactory(name="Mine", stage=stages[0], assigned_to=rep, value=100)
    factories.OpportunityFactory(name="Theirs", stage=stages[0], value=9999)
    client.force_login(rep)
    html = client.get(LIST_URL).content.decode()
    assert "Mine" in html
    assert "Theirs" not in html
    assert 'data-kpi="total">$100<' in html


def test_htmx_filter_change_returns_only_the_results(client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(name="Won deal", stage=stages[0], status=Status.WON)
    factories.OpportunityFactory(name="Open deal", stage=stages[0])
    client.force_login(factories.manager())
    response = client.get(
        LIST_URL + "?status=won", headers={"HX-Request": "true", "HX-Target": "results"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "Won deal" in html and "Open deal" not in html
    assert "<html" not in html and 'id="list-filters"' not in html


def test_htmx_quick_view_link_returns_the_panel_with_filters(client):
    client.force_login(factories.manager())
    response = client.get(
        LIST_URL + "?view=abandoned", headers={"HX-Request": "true", "HX-Target": "manager"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="manager"')
    assert 'name="view" value="abandoned"' in html
    assert "<html" not in html


def test_sort_header_links_toggle_direction(client):
    factories.OpportunityFactory()
    client.force_login(factories.manager())
    html = client.get(LIST_URL + "?sort=value").content.decode()
    assert re.search(r'aria-sort="ascending">\s*<a class="sort-link" href="\?sort=-value"', html)


def test_list_pages_by_fifty(client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory.create_batch(51, stage=stages[0])
    client.force_login(factories.manager())
    first = client.get(LIST_URL).content.decode()
    second = client.get(LIST_URL + "?page=2").content.decode()
    assert first.count('id="opportunity-row-') == 50
    assert second.count('id="opportunity-row-') == 1
    assert "Page 2 of 2" in second


def test_page_beyond_the_end_shows_the_last_page(client):
    factories.OpportunityFactory()
    client.force_login(factories.manager())
    response = client.get(LIST_URL + "?page=999")
    assert response.status_code == 200
    assert response.content.decode().count('id="opportunity-row-') == 1


def test_invalid_filter_values_are_reported_not_crashing(client):
    factories.OpportunityFactory(name="Still listed")
    client.force_login(factories.manager())
    response = client.get(LIST_URL + "?value_min=lots&created_after=yesterday&sort=secret")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters were ignored" in html
    assert "Still listed" in html


def test_list_query_count_does_not_grow_with_rows(client):
    _, stages = factories.pipeline_with_stages()
    manager = factories.manager()
    client.force_login(manager)
    factories.OpportunityFactory.create_batch(3, stage=stages[0], assigned_to=manager)
    with CaptureQueriesContext(connection) as few:
        client.get(LIST_URL + "?sort=owner")
    factories.OpportunityFactory.create_batch(
        30, stage=stages[1], assigned_to=factories.rep(), status=Status.WON
    )
    with CaptureQueriesContext(connection) as many:
        client.get(LIST_URL + "?sort=owner")
    assert len(many) == len(few)


def test_import_page_is_forbidden_for_reps(client):
    client.force_login(factories.rep())
    assert client.get("/opportunities/import/").status_code == 403
    assert client.post("/opportunities/import/", {"step": "preview"}).status_code == 403


def test_import_link_shown_only_to_importers(client):
    client.force_login(factories.rep())
    assert "Import CSV" not in client.get(LIST_URL).content.decode()
    client.force_login(factories.manager())
    assert "Import CSV" in client.get(LIST_URL).content.decode()


def test_nav_links_to_the_list(client):
    client.force_login(factories.manager())
    html = client.get(LIST_URL).content.decode()
    assert '<a href="/opportunities/" aria-current="page">Opportunities</a>' in html


def test_list_response_varies_on_htmx_headers(client):
    client.force_login(factories.manager())
    vary = client.get(LIST_URL)["Vary"]
    assert "HX-Request" in vary and "HX-Target" in vary


def test_quick_views_show_their_counts(client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory.create_batch(2, stage=stages[0], status=Status.ABANDONED)
    client.force_login(factories.manager())
    html = client.get(LIST_URL).content.decode()
    assert re.search(r'quick-view-abandoned".*?<span class="quick-count">2</span>', html, re.S)


def test_import_upload_of_a_non_text_file_is_refused_with_the_reason(client):
    client.force_login(factories.manager())
    upload = SimpleUploadedFile("photo.csv", bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D]) * 20)
    response = client.post("/opportunities/import/", {"step": "preview", "file": upload})
    assert response.status_code == 400
    assert "The file is not text" in response.content.decode()


def test_import_confirm_after_the_data_changed_shows_the_preview_again(client):
    _, stages = factories.pipeline_with_stages(("Lead", "Won over"))
    client.force_login(factories.manager())
    upload = SimpleUploadedFile("deals.csv", b"name,stage\nA,Won over\n", "text/csv")
    form = client.post("/opportunities/import/", {"step": "preview", "file": upload}).context[
        "confirm"
    ]
    stages[1].delete()
    response = client.post(
        "/opportunities/import/",
        {
            "step": "confirm",
            "token": form["token"].value(),
            "fingerprint": form["fingerprint"].value(),
        },
    )
    assert response.status_code == 200
    assert "The data changed since the preview" in response.content.decode()
    assert not Opportunity.objects.exists()
