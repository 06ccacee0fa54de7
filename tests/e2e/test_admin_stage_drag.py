"""Admins reorder the stages of a pipeline by dragging rows of the inline, in Chromium."""

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def sign_in(context, live_server, user):
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
    )


def sortable_drag(page, source, target):
    """A drag that SortableJS accepts (see RECIPES.md): small first move, then steps."""
    start, end = source.bounding_box(), target.bounding_box()
    sx, sy = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    tx, ty = end["x"] + end["width"] / 2, end["y"] + end["height"] / 4
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 5, sy + 5, steps=2)
    page.wait_for_timeout(50)
    page.mouse.move(tx, ty, steps=10)
    page.wait_for_timeout(100)
    page.mouse.move(tx + 1, ty + 1)
    page.wait_for_timeout(50)
    page.mouse.up()


def test_dragging_a_stage_row_to_the_top_saves_the_new_order(live_server, context, page):
    pipeline, _ = factories.pipeline_with_stages()
    sign_in(context, live_server, factories.admin())
    csp_errors = []
    page.on(
        "console",
        lambda message: (
            csp_errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(live_server.url + reverse("admin:pipelines_pipeline_change", args=[pipeline.pk]))

    rows = page.locator("#stages-group tbody tr.has_original")
    assert rows.count() == 4
    sortable_drag(page, rows.nth(3).locator("td.original p"), rows.nth(0))
    page.locator("input[name=_save]").click()
    page.wait_for_url("**/admin/pipelines/pipeline/")

    assert list(pipeline.stages.values_list("name", flat=True)) == [
        "Negotiation",
        "Prospecting",
        "Qualification",
        "Proposal",
    ]
    assert csp_errors == []
