"""The API search answers a repeated request from the cache, and any change to what the
answer shows (through the services or a raw write) gives the next request a fresh one."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities.api.opportunities import _with_related
from opportunities.models import CustomField, CustomFieldType, Opportunity, Tag
from opportunities.serializers import opportunity_as_api
from opportunities.services.editing import contact_resolve
from opportunities.services.imports import import_apply
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import (
    opportunity_delete,
    opportunity_restore,
    opportunity_update,
)
from opportunities.services.related import (
    opportunity_set_custom_values,
    opportunity_set_followers,
    opportunity_set_tags,
)
from tests import factories
from tests.test_api import Api, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world():
    pipeline, stages = factories.pipeline_with_stages(("Lead", "Qualified", "Won"))
    admin = factories.admin(username="cache-admin")
    rep = factories.rep(username="cache-rep")
    deals = [
        factories.OpportunityFactory(stage=stages[0], name=f"Deal {i}", assigned_to=rep)
        for i in range(3)
    ]
    factories.OpportunityFactory(stage=stages[0], name="Not the rep's")
    CustomField.objects.create(name="Budget", key="budget", field_type=CustomFieldType.MONEY)
    return {"pipeline": pipeline, "stages": stages, "admin": admin, "rep": rep, "deals": deals}


def _search(api, **params):
    return api.get("/opportunities/search", limit=100, **params).json()


def _shown(body, deal) -> dict | None:
    return next((row for row in body["opportunities"] if row["id"] == str(deal.pk)), None)


def _as_read(deal) -> dict:
    return opportunity_as_api(
        _with_related(Opportunity.objects.select_related("contact")).get(pk=deal.pk)
    )


def test_a_repeated_search_answers_from_the_cache(client, world):
    api = Api(client, token_for(factories.manager(username="cache-manager")))
    first = _search(api)  # also writes the token's last-used time
    with CaptureQueriesContext(connection) as queries:
        again = _search(api)
    assert again == first
    # The token with its user, then the cache's state: no permission, page or count read.
    assert len(queries.captured_queries) == 2
    assert "integrations_apitoken" in queries.captured_queries[0]["sql"]


def _move(world, deal):
    opportunity_move(
        opportunity=deal, to_stage=world["stages"][1], version=deal.version, user=world["admin"]
    )


def _status(world, deal):
    opportunity_set_status(
        opportunity=deal, status="won", version=deal.version, user=world["admin"]
    )


def _value(world, deal):
    opportunity_update(
        opportunity=deal, version=deal.version, user=world["admin"], value=Decimal("999")
    )


def _contact(world, deal):
    contact_resolve(
        user=world["admin"],
        contact=deal.contact,
        name="Renamed Person",
        email="renamed@example.test",
        phone="+1 555 0100",
        company="Renamed Inc",
    )


def _tag(world, deal):
    opportunity_set_tags(opportunity=deal, user=world["admin"], names=["hot"])


def _follower(world, deal):
    follower = factories.rep(username="cache-follower")
    opportunity_set_followers(opportunity=deal, user=world["admin"], followers=[follower])


def _custom_value(world, deal):
    opportunity_set_custom_values(opportunity=deal, user=world["admin"], values={"budget": "12.5"})


def _raw_bulk_write(world, deal):
    # As a data migration or script would: no service, no event, updated_at set.
    Opportunity.objects.filter(pk=deal.pk).update(
        value=Decimal("4321"), version=deal.version + 1, updated_at=timezone.now()
    )


def _tag_renamed(world, deal):
    opportunity_set_tags(opportunity=deal, user=world["admin"], names=["warm"])
    cache.clear()
    _search(world["api"])
    Tag.objects.filter(name="warm").update(name="cold")  # the admin's tag page saves it so


def _field_key_changed(world, deal):
    opportunity_set_custom_values(opportunity=deal, user=world["admin"], values={"budget": "7"})
    cache.clear()
    _search(world["api"])
    CustomField.objects.filter(key="budget").update(key="budget_eur")


@pytest.mark.parametrize(
    "change",
    [
        _move,
        _status,
        _value,
        _contact,
        _tag,
        _follower,
        _custom_value,
        _raw_bulk_write,
        _tag_renamed,
        _field_key_changed,
    ],
)
def test_every_change_to_a_shown_deal_shows_at_once(client, world, change):
    world["api"] = api = Api(client, token_for(factories.manager(username="cache-manager")))
    deal = world["deals"][0]
    _search(api)
    change(world, Opportunity.objects.select_related("contact").get(pk=deal.pk))
    assert _shown(_search(api), deal) == _as_read(deal)


def test_trash_and_restore_show_at_once(client, world):
    api = Api(client, token_for(factories.manager(username="cache-manager")))
    deal = world["deals"][0]
    assert _shown(_search(api), deal) is not None
    opportunity_delete(opportunity=deal, user=world["admin"])
    assert _shown(_search(api), deal) is None
    opportunity_restore(opportunity=Opportunity.objects.get(pk=deal.pk), user=world["admin"])
    assert _shown(_search(api), deal) == _as_read(deal)


def test_a_deal_created_by_import_shows_at_once(client, world):
    api = Api(client, token_for(factories.manager(username="cache-manager")))
    before = _search(api)["meta"]["total"]
    pipeline = world["pipeline"].name
    import_apply(text=f"name,pipeline\nImported deal,{pipeline}\n", user=world["admin"])
    body = _search(api)
    assert body["meta"]["total"] == before + 1
    assert "Imported deal" in [row["name"] for row in body["opportunities"]]


def test_a_rep_never_gets_the_managers_cached_answer(client, world):
    manager = Api(client, token_for(factories.manager(username="cache-manager")))
    rep = Api(client, token_for(world["rep"]))
    assert _search(manager)["meta"]["total"] == 4
    mine = {str(deal.pk) for deal in world["deals"]}
    body = _search(rep)
    assert {row["id"] for row in body["opportunities"]} == mine
    assert body["meta"]["total"] == 3


def test_a_grant_or_revocation_of_view_all_shows_at_once(client, world):
    rep = world["rep"]
    api = Api(client, token_for(rep))
    assert _search(api)["meta"]["total"] == 3
    view_all = Permission.objects.get(codename="view_all_opportunities")
    rep.user_permissions.add(view_all)
    assert _search(api)["meta"]["total"] == 4
    rep.user_permissions.remove(view_all)
    assert _search(api)["meta"]["total"] == 3


def test_later_pages_share_the_first_pages_total_until_a_change(client, world):
    api = Api(client, token_for(factories.manager(username="cache-manager")))
    first = api.get("/opportunities/search", limit=2).json()
    assert first["meta"]["total"] == 4
    factories.OpportunityFactory(stage=world["stages"][0], name="New one")
    later = api.get(
        "/opportunities/search", limit=2, startAfterId=first["meta"]["startAfterId"]
    ).json()
    assert later["meta"]["total"] == 5


def test_parameters_in_another_order_share_the_answer(client, world):
    api = Api(client, token_for(factories.manager(username="cache-manager")))
    pipeline = str(world["pipeline"].pk)
    path = "/api/v1/opportunities/search"
    first = client.get(f"{path}?limit=1&pipeline_id={pipeline}", headers=api.headers).json()
    with CaptureQueriesContext(connection) as queries:
        second = client.get(f"{path}?pipeline_id={pipeline}&limit=1", headers=api.headers).json()
    assert second == first and len(queries.captured_queries) == 2
    assert first["meta"]["nextPageUrl"].index("limit") < first["meta"]["nextPageUrl"].index(
        "pipeline_id"
    )
