"""The REST API at /api/v1/: each endpoint, its refusals, and the token's visibility."""

import json

import pytest
from django.core.cache import cache

from integrations.tokens import api_token_create, api_token_revoke
from opportunities.models import Opportunity, OpportunityEvent, Status
from tests import factories

pytestmark = pytest.mark.django_db
API = "/api/v1"


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def pipeline():
    return factories.pipeline_with_stages(("Lead", "Qualified", "Won"))


@pytest.fixture
def rep():
    return factories.rep(username="api-rep")


@pytest.fixture
def manager():
    return factories.manager(username="api-manager")


def token_for(user) -> str:
    return api_token_create(user=user, name="tests")[1]


class Api:
    def __init__(self, client, token):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path, **params):
        return self.client.get(API + path, params, headers=self.headers)

    def send(self, method, path, body=None, *, raw=None, headers=None):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return getattr(self.client, method)(
            API + path,
            data=data,
            content_type="application/json",
            headers={**self.headers, **(headers or {})},
        )


@pytest.fixture
def as_rep(client, rep):
    return Api(client, token_for(rep))


@pytest.fixture
def as_manager(client, manager):
    return Api(client, token_for(manager))


def assert_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["statusCode"] == status
    assert isinstance(body["message"], str) and body["message"]
    return body["message"]


# --- tokens ------------------------------------------------------------------------------


def test_request_without_token_is_401_json(client):
    assert_error(client.get(f"{API}/opportunities/pipelines"), 401)


def test_unknown_token_is_401(client):
    response = client.get(
        f"{API}/opportunities/pipelines", headers={"Authorization": "Bearer crm_nope"}
    )
    assert_error(response, 401)


def test_revoked_token_is_401(client, rep):
    row, token = api_token_create(user=rep, name="old")
    api_token_revoke(token=row, user=rep)
    response = client.get(
        f"{API}/opportunities/pipelines", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401)


def test_token_of_inactive_user_is_401(client, rep):
    token = token_for(rep)
    rep.is_active = False
    rep.save()
    response = client.get(
        f"{API}/opportunities/pipelines", headers={"Authorization": f"Bearer {token}"}
    )
    assert_error(response, 401)


def test_token_is_stored_hashed_and_records_last_use(as_rep, rep):
    row = rep.api_tokens.get()
    assert row.last_used_at is None
    assert as_rep.headers["Authorization"].split()[1] not in row.token_hash
    as_rep.get("/opportunities/pipelines")
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_rate_limit_answers_429_with_retry_after(as_rep, settings):
    # A long window, so the four requests never straddle two windows.
    settings.API_RATE_LIMIT = (3, 3600)
    for _ in range(3):
        assert as_rep.get("/opportunities/lost-reason").status_code == 200
    response = as_rep.get("/opportunities/lost-reason")
    assert_error(response, 429)
    assert 1 <= int(response["Retry-After"]) <= 3600


def test_rate_limit_is_per_token(client, rep, settings):
    settings.API_RATE_LIMIT = (1, 3600)
    first, second = Api(client, token_for(rep)), Api(client, token_for(rep))
    assert first.get("/opportunities/lost-reason").status_code == 200
    assert first.get("/opportunities/lost-reason").status_code == 429
    assert second.get("/opportunities/lost-reason").status_code == 200


def test_api_does_not_redirect_to_login(client):
    response = client.get(f"{API}/opportunities/search")
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")


# --- pipelines and lost reasons ----------------------------------------------------------


def test_pipelines_list_stages_in_order(as_rep, pipeline):
    pipe, _ = pipeline
    factories.PipelineFactory(name="Old", is_archived=True)
    body = as_rep.get("/opportunities/pipelines").json()
    assert [p["name"] for p in body["pipelines"]] == [pipe.name]
    assert [s["name"] for s in body["pipelines"][0]["stages"]] == ["Lead", "Qualified", "Won"]
    assert body["pipelines"][0]["id"] == str(pipe.pk)


def test_lost_reasons_lists_active_ones(as_rep):
    factories.LostReasonFactory(name="Price")
    factories.LostReasonFactory(name="Gone", is_active=False)
    body = as_rep.get("/opportunities/lost-reason").json()
    assert [reason["name"] for reason in body["lostReasons"]] == ["Price"]


# --- reading -----------------------------------------------------------------------------


def test_get_opportunity_in_highlevel_shape(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep, value=1200)
    body = as_rep.get(f"/opportunities/{deal.pk}").json()["opportunity"]
    assert body["id"] == str(deal.pk)
    assert body["monetaryValue"] == 1200
    assert body["pipelineStageId"] == str(deal.stage_id)
    assert body["assignedTo"] == str(rep.pk)
    assert body["contact"]["id"] == str(deal.contact_id)
    assert body["version"] == deal.version


def test_get_opportunity_carries_notes_tasks_and_history(as_rep, rep, pipeline):
    from opportunities.services.moves import opportunity_move

    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    factories.NoteFactory(opportunity=deal, author=rep, body="Call back Tuesday")
    factories.TaskFactory(opportunity=deal, title="Send the quote")
    opportunity_move(opportunity=deal, to_stage=pipeline[1][1], version=deal.version, user=rep)
    body = as_rep.get(f"/opportunities/{deal.pk}").json()
    assert [note["body"] for note in body["notes"]] == ["Call back Tuesday"]
    assert [task["title"] for task in body["tasks"]] == ["Send the quote"]
    assert body["history"][0]["field"] == "stage"
    assert body["history"][0]["toStageId"] == str(pipeline[1][1].pk)


def test_rep_token_cannot_read_another_reps_deal(as_rep, pipeline):
    other = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=factories.rep())
    assert_error(as_rep.get(f"/opportunities/{other.pk}"), 404)


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", "99999999999999999999999", "1e3"])
def test_malformed_or_unknown_ids_are_4xx(as_rep, bad_id):
    response = as_rep.get(f"/opportunities/{bad_id}")
    assert response.status_code in (404, 422)
    assert response.json()["message"]


def test_search_sees_only_own_deals_for_a_rep(as_rep, rep, pipeline):
    mine = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=factories.rep())
    body = as_rep.get("/opportunities/search").json()
    assert [row["id"] for row in body["opportunities"]] == [str(mine.pk)]
    assert body["meta"]["total"] == 1


def test_search_filters(as_manager, pipeline):
    _, stages = pipeline
    won = factories.OpportunityFactory(stage=stages[2], status=Status.WON, name="Big win")
    factories.OpportunityFactory(stage=stages[0], name="Other")
    assert [
        row["id"]
        for row in as_manager.get("/opportunities/search", status="won").json()["opportunities"]
    ] == [str(won.pk)]
    assert [
        row["id"]
        for row in as_manager.get("/opportunities/search", pipeline_stage_id=stages[2].pk).json()[
            "opportunities"
        ]
    ] == [str(won.pk)]
    assert as_manager.get("/opportunities/search", q="big").json()["meta"]["total"] == 1


def test_search_pages_with_start_after_id(as_manager, pipeline):
    deals = [factories.OpportunityFactory(stage=pipeline[1][0]) for _ in range(5)]
    seen = []
    params = {"limit": 2}
    for _ in range(4):
        body = as_manager.get("/opportunities/search", **params).json()
        seen += [row["id"] for row in body["opportunities"]]
        if not body["meta"]["nextPageUrl"]:
            break
        params = {
            "limit": 2,
            "startAfterId": body["meta"]["startAfterId"],
            "startAfter": body["meta"]["startAfter"],
        }
    assert sorted(seen) == sorted(str(deal.pk) for deal in deals)
    assert len(seen) == len(set(seen)) == 5


def test_search_of_100_runs_a_bounded_number_of_queries(
    as_manager, pipeline, django_assert_max_num_queries
):
    factories.OpportunityFactory.create_batch(100, stage=pipeline[1][0])
    as_manager.get("/opportunities/search")  # the token's last-used time is written once
    # The token (1), the user's permissions (2), then the search itself: count, page, the
    # page's tags and followers (one UNION) and its custom values.
    with django_assert_max_num_queries(7):
        response = as_manager.get("/opportunities/search", limit=100)
    assert len(response.json()["opportunities"]) == 100


@pytest.mark.parametrize(
    "params",
    [{"limit": 101}, {"limit": "x"}, {"status": "sold"}, {"date": "yesterday"}, {"order": "?"}],
)
def test_search_refuses_bad_parameters(as_manager, params):
    assert_error(as_manager.get("/opportunities/search", **params), 422)


# --- writing -----------------------------------------------------------------------------


def test_create_opportunity(as_rep, rep, pipeline):
    pipe, stages = pipeline
    response = as_rep.send(
        "post",
        "/opportunities/",
        {
            "pipelineId": str(pipe.pk),
            "pipelineStageId": str(stages[1].pk),
            "name": "From the web form",
            "monetaryValue": 250.5,
            "assignedTo": str(rep.pk),
            "contact": {"name": "Ada", "email": "ada@example.com"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()["opportunity"]
    deal = Opportunity.objects.get(pk=body["id"])
    assert (deal.name, deal.stage, float(deal.value)) == ("From the web form", stages[1], 250.5)
    assert deal.contact.email == "ada@example.com"
    assert OpportunityEvent.objects.filter(opportunity_id=deal.pk, type="OpportunityCreate")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "x"}, 422),
        ({"pipelineId": "999999", "name": "x"}, 422),
        ({"pipelineId": "{pipe}", "name": ""}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "monetaryValue": "lots"}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "monetaryValue": -5}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "status": "sold"}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "status": "lost"}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "pipelineStageId": "{foreign_stage}"}, 422),
        ({"pipelineId": "{pipe}", "name": "x", "contactId": "{foreign_contact}"}, 422),
        ({"pipelineId": "{pipe}", "name": ["x"]}, 422),
    ],
)
def test_create_refuses_bad_input_and_changes_nothing(as_rep, rep, pipeline, body, status):
    pipe, _ = pipeline
    foreign = factories.OpportunityFactory(assigned_to=factories.rep())
    values = {
        "pipe": pipe.pk,
        "foreign_stage": foreign.stage_id,
        "foreign_contact": foreign.contact_id,
    }
    body = {
        key: value.format(**values) if isinstance(value, str) else value
        for key, value in body.items()
    }
    before = Opportunity.objects.count()
    assert_error(as_rep.send("post", "/opportunities/", body), status)
    assert Opportunity.objects.count() == before


@pytest.mark.parametrize("raw", ["{", "not json", '{"name": }', "[]", "null", "\x00"])
def test_malformed_json_is_4xx(as_rep, raw):
    response = as_rep.send("post", "/opportunities/", raw=raw)
    assert response.status_code in (400, 422)
    assert response.json()["message"]


def test_huge_body_is_refused(as_rep, pipeline):
    body = json.dumps({"pipelineId": str(pipeline[0].pk), "name": "x" * 3_000_000})
    before = Opportunity.objects.count()
    response = as_rep.send("post", "/opportunities/", raw=body)
    assert 400 <= response.status_code < 500
    assert Opportunity.objects.count() == before


def test_update_fields(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    response = as_rep.send(
        "put",
        f"/opportunities/{deal.pk}",
        {"name": "Renamed", "monetaryValue": 99, "pipelineStageId": str(pipeline[1][2].pk)},
    )
    assert response.status_code == 200, response.content
    deal.refresh_from_db()
    assert (deal.name, deal.value, deal.stage) == ("Renamed", 99, pipeline[1][2])
    assert response.json()["opportunity"]["version"] == deal.version


def test_update_with_stale_version_is_409_and_changes_nothing(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep, version=3)
    response = as_rep.send("put", f"/opportunities/{deal.pk}", {"name": "New", "version": 2})
    assert_error(response, 409)
    deal.refresh_from_db()
    assert deal.name != "New"


def test_update_with_stale_if_match_is_409(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep, version=3)
    response = as_rep.send(
        "put", f"/opportunities/{deal.pk}", {"name": "New"}, headers={"If-Match": '"2"'}
    )
    assert_error(response, 409)
    response = as_rep.send(
        "put", f"/opportunities/{deal.pk}", {"name": "New"}, headers={"If-Match": '"3"'}
    )
    assert response.status_code == 200


def test_update_of_another_reps_deal_is_404(as_rep, pipeline):
    other = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=factories.rep())
    assert_error(as_rep.send("put", f"/opportunities/{other.pk}", {"name": "Mine"}), 404)
    other.refresh_from_db()
    assert other.name != "Mine"


def test_update_refuses_stage_of_another_pipeline(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    other_stage = factories.StageFactory()
    response = as_rep.send(
        "put", f"/opportunities/{deal.pk}", {"pipelineStageId": str(other_stage.pk)}
    )
    assert_error(response, 422)


def test_status_lost_needs_a_reason(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    assert_error(as_rep.send("put", f"/opportunities/{deal.pk}/status", {"status": "lost"}), 422)
    reason = factories.LostReasonFactory(name="Price")
    response = as_rep.send(
        "put", f"/opportunities/{deal.pk}/status", {"status": "lost", "lostReasonId": reason.pk}
    )
    assert response.status_code == 200, response.content
    deal.refresh_from_db()
    assert (deal.status, deal.lost_reason) == (Status.LOST, reason)
    assert response.json()["opportunity"]["lostReasonId"] == str(reason.pk)


def test_status_with_stale_version_is_409(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep, version=5)
    response = as_rep.send(
        "put", f"/opportunities/{deal.pk}/status", {"status": "won", "version": 4}
    )
    assert_error(response, 409)
    deal.refresh_from_db()
    assert deal.status == Status.OPEN


def test_delete_needs_the_permission(as_rep, rep, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0], assigned_to=rep)
    assert_error(as_rep.send("delete", f"/opportunities/{deal.pk}"), 403)
    assert Opportunity.objects.filter(pk=deal.pk).exists()


def test_admin_deletes(client, pipeline):
    deal = factories.OpportunityFactory(stage=pipeline[1][0])
    api = Api(client, token_for(factories.admin(username="api-admin")))
    response = api.send("delete", f"/opportunities/{deal.pk}")
    assert response.status_code == 200, response.content
    assert response.json() == {"succeded": True}
    assert_error(api.get(f"/opportunities/{deal.pk}"), 404)  # in the trash: gone for the API
    assert OpportunityEvent.objects.filter(opportunity_id=deal.pk, type="OpportunityDelete")


def test_upsert_updates_the_contacts_deal_in_that_pipeline(as_rep, rep, pipeline):
    pipe, stages = pipeline
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    response = as_rep.send(
        "post",
        "/opportunities/upsert",
        {
            "pipelineId": str(pipe.pk),
            "contactId": str(deal.contact_id),
            "name": "Upserted",
            "monetaryValue": 10,
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["new"] is False
    deal.refresh_from_db()
    assert (deal.name, deal.value) == ("Upserted", 10)


def test_upsert_creates_when_nothing_matches(as_rep, rep, pipeline):
    response = as_rep.send(
        "post",
        "/opportunities/upsert",
        {"pipelineId": str(pipeline[0].pk), "name": "Fresh", "assignedTo": str(rep.pk)},
    )
    assert response.status_code == 200, response.content
    assert response.json()["new"] is True
    assert Opportunity.objects.filter(name="Fresh").exists()


# --- change feed ---------------------------------------------------------------------------


def test_events_feed_after_cursor(as_manager, manager, pipeline):
    pipe, _ = pipeline
    as_manager.send("post", "/opportunities/", {"pipelineId": str(pipe.pk), "name": "One"})
    first = as_manager.get("/events").json()
    assert [event["type"] for event in first["events"]] == ["OpportunityCreate"]
    cursor = first["meta"]["lastId"]
    assert as_manager.get("/events", after=cursor).json()["events"] == []


def test_events_feed_of_a_rep_shows_only_own_deals(as_rep, rep, manager, pipeline):
    from opportunities.services.opportunities import opportunity_create

    pipe, _ = pipeline
    opportunity_create(user=manager, name="Theirs", pipeline=pipe, assigned_to=manager)
    opportunity_create(user=manager, name="Mine", pipeline=pipe, assigned_to=rep)
    names = [event["opportunity"]["name"] for event in as_rep.get("/events").json()["events"]]
    assert names == ["Mine"]


# --- docs ------------------------------------------------------------------------------------


def test_openapi_schema_and_offline_docs(client):
    schema = client.get(f"{API}/openapi.json").json()
    assert "/api/v1/opportunities/search" in schema["paths"]
    page = client.get(f"{API}/docs")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/api/v1/opportunities/search" in html
    assert "cdn" not in html.lower()
