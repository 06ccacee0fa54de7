"""The search builds its page from values() rows and answers without ninja re-validating
it: the same opportunities, key for key, as every other read, and SearchOut's shape."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from opportunities.api.opportunities import _with_related
from opportunities.api.schemas import SearchOut
from opportunities.custom_fields import columns_for
from opportunities.models import (
    CustomField,
    CustomFieldType,
    CustomFieldValue,
    Opportunity,
    Tag,
)
from opportunities.serializers import opportunity_as_api
from tests import factories
from tests.test_api import Api, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def as_manager(client):
    return Api(client, token_for(factories.manager(username="answer-manager")))


@pytest.fixture
def deals():
    _, stages = factories.pipeline_with_stages(("Lead", "Won"))
    kinds = [
        ("budget", CustomFieldType.MONEY, [], Decimal("1234.50")),
        ("seats", CustomFieldType.NUMBER, [], Decimal("12")),
        ("start", CustomFieldType.DATE, [], date(2026, 12, 31)),
        ("signed", CustomFieldType.CHECKBOX, [], False),
        ("topics", CustomFieldType.MULTIPLE_CHOICE, ["Cloud", "Edge"], ["Cloud", "Edge"]),
        ("region", CustomFieldType.SINGLE_CHOICE, ["North"], "North"),
        ("note", CustomFieldType.TEXT, [], "Ünïcode <b>"),
    ]
    full = factories.OpportunityFactory(
        stage=stages[0], name="Full", expected_close_date=date(2027, 1, 5), probability=40
    )
    # Positions out of key order: the answer lists fields by position, then id.
    for position, (key, kind, choices, value) in enumerate(reversed(kinds)):
        field = CustomField.objects.create(
            name=key.title(), key=key, field_type=kind, choices=choices, position=position
        )
        CustomFieldValue.objects.create(opportunity=full, field=field, **columns_for(field, value))
    full.tags.set([Tag.objects.create(name=n, color="#2563eb") for n in ("zeta", "Alpha")])
    full.followers.set([factories.rep(username=f"f{i}") for i in (2, 10)])
    lost = factories.OpportunityFactory(
        stage=stages[1], name="Lost", status="lost", lost_reason=factories.LostReasonFactory()
    )
    bare = factories.OpportunityFactory(stage=stages[0], name="Bare", contact=None)
    return [full, lost, bare]


def test_search_answers_what_every_other_read_answers(as_manager, deals):
    body = as_manager.get("/opportunities/search", limit=100).json()
    by_id = {row["id"]: row for row in body["opportunities"]}
    expected = _with_related(Opportunity.objects.select_related("contact"))
    for deal in expected.filter(pk__in=[d.pk for d in deals]):
        assert by_id[str(deal.pk)] == opportunity_as_api(deal)
    full = by_id[str(deals[0].pk)]
    assert [f["key"] for f in full["customFields"]][:2] == ["note", "region"]
    assert full["tags"] == ["Alpha", "zeta"]
    assert by_id[str(deals[2].pk)]["contact"] is None


def test_search_answer_fits_its_schema(as_manager, deals):
    response = as_manager.get("/opportunities/search", limit=2)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    answer = SearchOut.model_validate(response.json())
    assert answer.meta.total == 3 and answer.meta.nextPageUrl


def test_a_first_page_holding_every_match_skips_the_count(as_manager, deals):
    as_manager.get("/opportunities/search")  # the token's last-used time, written once
    with CaptureQueriesContext(connection) as queries:
        body = as_manager.get("/opportunities/search", limit=10).json()
    assert body["meta"]["total"] == 3
    # The search's count (the cache's state read counts recent deals, not matches).
    assert not any('"__count"' in query["sql"] for query in queries.captured_queries)
    # A full page still counts every match (once the cached total is gone) ...
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        body = as_manager.get("/opportunities/search", limit=1).json()
    assert body["meta"]["total"] == 3
    assert sum('"__count"' in query["sql"] for query in queries.captured_queries) == 1
    # ... and the later pages of the same search take that total instead of counting.
    with CaptureQueriesContext(connection) as queries:
        later = as_manager.get(
            "/opportunities/search", limit=10, startAfterId=body["meta"]["startAfterId"]
        ).json()
    assert not any('"__count"' in query["sql"] for query in queries.captured_queries)
    assert later["meta"]["total"] == 3 and len(later["opportunities"]) == 2
