"""The record's deal fields in real Chromium: a wrong value is refused in place with the
input kept, the corrected one saved; a follower is added; the forecast then counts it."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from opportunities.models import CustomField, Opportunity
from opportunities.services.related import custom_values_of
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(context, live_server, user):
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def test_refused_then_saved_follower_added_and_forecast(page, live_server, transactional_db):
    factories.ensure_roles()
    _, stages = factories.pipeline_with_stages()
    user = factories.rep(username="rita")
    colleague = factories.rep(username="colin", first_name="Colin", last_name="Coe")
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=user, value=1000)
    CustomField.objects.create(name="Seats", key="seats", field_type="number")
    csp_violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and csp_violations.append(message.text)
        ),
    )
    sign_in(page.context, live_server, user)
    page.goto(f"{live_server.url}/opportunities/{deal.pk}/")

    page.fill("#dealf_tags", "vip, <script>")
    close = (timezone.localdate().replace(day=1) + timedelta(days=45)).replace(day=15)
    page.fill("#dealf_expected_close_date", close.isoformat())
    page.fill("#dealf_probability", "40")
    page.fill("#dealf_cf_seats", "12")
    with page.expect_response(lambda r: "/fields/" in r.url) as refused:
        page.click(".deal-fields button[type=submit]")
    assert refused.value.status == 422
    expect(page.locator(".deal-fields .error")).to_contain_text("a tag is 1–50 characters")
    expect(page.locator("#dealf_tags")).to_have_value("vip, <script>")
    assert Opportunity.objects.get(pk=deal.pk).probability is None

    page.fill("#dealf_tags", "vip, renewal")
    with page.expect_response(lambda r: "/fields/" in r.url) as saved:
        page.click(".deal-fields button[type=submit]")
    assert saved.value.status == 200
    expect(page.locator(".deal-fields .tag-chip")).to_have_count(2)
    deal.refresh_from_db()
    assert deal.probability == 40 and deal.expected_close_date == close
    assert custom_values_of(deal)["seats"] == 12

    page.select_option("#follow_add", str(colleague.pk))
    with page.expect_response(lambda r: "/followers/" in r.url):
        page.click(".follower-add button")
    expect(page.locator(".follower-name")).to_have_text(["Colin Coe"])
    assert list(deal.followers.all()) == [colleague]

    page.goto(f"{live_server.url}/forecast/")
    expect(page.locator(".forecast-summary")).to_contain_text(close.strftime("%B %Y"))
    expect(page.locator(".forecast-kpis")).to_contain_text("$400")
    assert not csp_violations
