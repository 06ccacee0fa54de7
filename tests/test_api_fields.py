"""The API's tags, followers, custom fields, close date and probability (HighLevel's shape)."""

from decimal import Decimal

import pytest
from django.core.cache import cache

from opportunities.models import (
    Contact,
    CustomField,
    CustomFieldType,
    Opportunity,
    OpportunityHistory,
)
from tests import factories
from tests.test_api import Api, assert_error, token_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pipeline():
    return factories.pipeline_with_stages(("Lead", "Won"))


@pytest.fixture
def rep():
    return factories.rep(username="fields-rep")


@pytest.fixture
def as_rep(client, rep):
    return Api(client, token_for(rep))


@pytest.fixture
def as_manager(client):
    return Api(client, token_for(factories.manager(username="fields-manager")))


@pytest.fixture
def fields():
    budget = CustomField.objects.create(
        name="Budget", key="budget", field_type=CustomFieldType.MONEY, position=1
    )
    region = CustomField.objects.create(
        name="Region",
        key="region",
        field_type=CustomFieldType.SINGLE_CHOICE,
        choices=["North", "South"],
        position=2,
    )
    return budget, region


@pytest.fixture
def deal(pipeline, rep):
    return factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep, name="Deal")


def followers(count):
    return [factories.rep(username=f"follower{index}") for index in range(count)]


def snapshot(deal):
    deal.refresh_from_db()
    return (
        deal.version,
        deal.name,
        deal.expected_close_date,
        deal.probability,
        sorted(deal.tags.values_list("name", flat=True)),
        sorted(deal.followers.values_list("pk", flat=True)),
        sorted(deal.custom_values.values_list("field_id", "number", "text")),
        OpportunityHistory.objects.filter(opportunity=deal).count(),
    )


def test_put_sets_everything_in_one_request(as_rep, deal, fields):
    budget, region = fields
    people = followers(2)
    response = as_rep.send(
        "put",
        f"/opportunities/{deal.pk}",
        {
            "name": "Renamed",
            "version": deal.version,
            "tags": ["vip", "Q4"],
            "followers": [str(people[0].pk), people[1].pk],
            "customFields": [
                {"id": str(budget.pk), "field_value": "1,234.50"},
                {"key": "region", "fieldValue": "south"},
            ],
            "expectedCloseDate": "2026-12-31",
            "probability": 40,
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()["opportunity"]
    assert body["name"] == "Renamed"
    assert body["tags"] == ["Q4", "vip"]
    assert body["followers"] == sorted([str(people[0].pk), str(people[1].pk)])
    assert body["customFields"] == [
        {"id": str(budget.pk), "key": "budget", "fieldValue": 1234.5},
        {"id": str(region.pk), "key": "region", "fieldValue": "South"},
    ]
    assert body["expectedCloseDate"] == "2026-12-31"
    assert body["probability"] == 40
    deal.refresh_from_db()
    assert body["version"] == deal.version
    assert deal.custom_values.get(field=budget).number == Decimal("1234.50")
    fields_changed = set(
        OpportunityHistory.objects.filter(opportunity=deal).values_list("field", flat=True)
    )
    assert {"tags", "followers", "probability"} <= fields_changed

    read = as_rep.get(f"/opportunities/{deal.pk}").json()["opportunity"]
    assert read == body
    found = as_rep.get("/opportunities/search").json()["opportunities"]
    assert found == [body]


def test_create_and_upsert_take_the_fields(as_rep, rep, pipeline, fields):
    pipe, _ = pipeline
    created = as_rep.send(
        "post",
        "/opportunities/",
        {
            "pipelineId": str(pipe.pk),
            "name": "New",
            "contact": {"name": "Ada"},
            "assignedTo": str(rep.pk),
            "tags": ["web"],
            "customFields": [{"key": "budget", "field_value": 10}],
            "expectedCloseDate": "2027-01-15",
            "probability": 10,
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()["opportunity"]
    assert body["tags"] == ["web"]
    assert body["customFields"][0]["fieldValue"] == 10.0
    assert (body["expectedCloseDate"], body["probability"]) == ("2027-01-15", 10)

    upserted = as_rep.send(
        "post",
        "/opportunities/upsert",
        {
            "pipelineId": str(pipe.pk),
            "name": "New",
            "contactId": body["contactId"],
            "tags": ["web", "partner"],
            "customFields": [{"key": "budget", "field_value": None}],
            "probability": None,
        },
    )
    assert upserted.status_code == 200, upserted.content
    answer = upserted.json()
    assert answer["new"] is False
    assert answer["opportunity"]["id"] == body["id"]
    assert answer["opportunity"]["tags"] == ["partner", "web"]
    assert answer["opportunity"]["customFields"] == []
    assert answer["opportunity"]["probability"] is None


@pytest.mark.parametrize(
    "extra",
    [
        {"tags": ["<b>bold</b>"]},
        {"followers": ["999999"]},
        {"followers": ["abc"]},
        {"customFields": [{"key": "budget", "field_value": "lots"}]},
        {"customFields": [{"key": "region", "field_value": "West"}]},
        {"customFields": [{"key": "nope", "field_value": "1"}]},
        {"customFields": [{"field_value": "1"}]},
        {"expectedCloseDate": "10000-01-01"},
        {"expectedCloseDate": "31/12/2026"},
        {"probability": 101},
        {"probability": "high"},
    ],
)
def test_bad_input_is_422_and_changes_nothing(as_rep, deal, fields, extra):
    before = snapshot(deal)
    body = {"name": "Changed", "tags": ["fine"], **extra}
    assert_error(as_rep.send("put", f"/opportunities/{deal.pk}", body), 422)
    assert snapshot(deal) == before


def test_an_eleventh_follower_is_refused_everywhere(as_rep, deal):
    people = followers(11)
    before = snapshot(deal)
    body = {"name": "Changed", "followers": [str(user.pk) for user in people]}
    assert "10" in assert_error(as_rep.send("put", f"/opportunities/{deal.pk}", body), 422)
    assert snapshot(deal) == before

    ten = {"followers": [str(user.pk) for user in people[:10]]}
    added = as_rep.send("post", f"/opportunities/{deal.pk}/followers", ten)
    assert added.status_code == 200, added.content
    assert len(added.json()["followers"]) == 10
    before = snapshot(deal)
    eleventh = {"followers": [str(people[10].pk)]}
    assert_error(as_rep.send("post", f"/opportunities/{deal.pk}/followers", eleventh), 422)
    assert snapshot(deal) == before


def test_followers_add_and_remove(as_rep, deal):
    first, second, third = followers(3)
    added = as_rep.send(
        "post", f"/opportunities/{deal.pk}/followers", {"followers": [str(first.pk), second.pk]}
    )
    assert added.status_code == 200, added.content
    assert added.json()["followersAdded"] == sorted([str(first.pk), str(second.pk)])
    again = as_rep.send(
        "post", f"/opportunities/{deal.pk}/followers", {"followers": [str(second.pk), third.pk]}
    ).json()
    assert again["followersAdded"] == [str(third.pk)]
    assert len(again["followers"]) == 3

    removed = as_rep.send(
        "delete", f"/opportunities/{deal.pk}/followers", {"followers": [str(first.pk)]}
    )
    assert removed.status_code == 200, removed.content
    assert removed.json()["followersRemoved"] == [str(first.pk)]
    assert removed.json()["followers"] == sorted([str(second.pk), str(third.pk)])
    assert sorted(deal.followers.values_list("pk", flat=True)) == sorted([second.pk, third.pk])
    assert removed.json()["version"] == Opportunity.objects.get(pk=deal.pk).version


def test_followers_routes_refuse_unknown_users_and_stale_versions(as_rep, deal):
    (person,) = followers(1)
    stale = {"followers": [str(person.pk)], "version": deal.version + 5}
    assert_error(as_rep.send("post", f"/opportunities/{deal.pk}/followers", stale), 409)
    unknown = {"followers": ["987654"]}
    assert_error(as_rep.send("post", f"/opportunities/{deal.pk}/followers", unknown), 422)
    assert not deal.followers.exists()


def test_a_stale_version_with_only_tags_is_409(as_rep, deal):
    before = snapshot(deal)
    body = {"tags": ["x"], "version": deal.version + 3}
    assert_error(as_rep.send("put", f"/opportunities/{deal.pk}", body), 409)
    assert snapshot(deal) == before


def test_a_follower_sees_the_deal_through_the_api(client, deal):
    (person,) = followers(1)
    as_follower = Api(client, token_for(person))
    assert_error(as_follower.get(f"/opportunities/{deal.pk}"), 404)
    deal.followers.add(person)
    assert as_follower.get(f"/opportunities/{deal.pk}").status_code == 200


def test_search_with_related_rows_stays_bounded(
    as_manager, pipeline, fields, django_assert_max_num_queries
):
    budget, _ = fields
    tag = factories.OpportunityFactory(stage=pipeline[1][0])
    people = followers(3)
    for deal in factories.OpportunityFactory.create_batch(50, stage=pipeline[1][0]):
        deal.followers.set(people)
        deal.custom_values.create(field=budget, number=Decimal("5"))
    tag.tags.create(name="hot", color="#000000")
    as_manager.get("/opportunities/search")
    # token, permissions, count, page, tags with followers (a UNION), custom values.
    with django_assert_max_num_queries(7):
        response = as_manager.get("/opportunities/search", limit=100)
    rows = response.json()["opportunities"]
    assert len(rows) == 51
    assert sum(1 for row in rows if row["tags"] == ["hot"]) == 1
    assert all(len(row["followers"]) == 3 for row in rows if row["id"] != str(tag.pk))


def test_a_create_refused_for_a_custom_field_leaves_no_deal_and_no_contact(
    as_rep, rep, pipeline, fields
):
    deals, contacts = Opportunity.objects.count(), Contact.objects.count()
    body = {
        "pipelineId": str(pipeline[0].pk),
        "name": "Refused",
        "assignedTo": str(rep.pk),
        "contact": {"name": "Nobody"},
        "tags": ["fine"],
        "customFields": [{"key": "region", "field_value": "Atlantis"}],
    }
    assert "Region" in assert_error(as_rep.send("post", "/opportunities/", body), 422)
    assert (Opportunity.objects.count(), Contact.objects.count()) == (deals, contacts)
    assert not OpportunityHistory.objects.filter(opportunity__name="Refused").exists()


def test_a_deal_without_extras_answers_empty_lists(as_rep, deal):
    body = as_rep.get(f"/opportunities/{deal.pk}").json()["opportunity"]
    assert (body["tags"], body["followers"], body["customFields"]) == ([], [], [])
    assert as_rep.get("/opportunities/search").json()["opportunities"] == [body]
