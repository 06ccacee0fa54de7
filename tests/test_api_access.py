"""Access matrix of the API and the integration pages: every route x five roles.

A token acts as its user, so the API follows the same table as the pages: a rep reaches
only their own deals (another rep's answer 404, never 403, so existence does not leak),
"view all" reaches every deal, managers and admins delete (to the trash; reps lack the
permission), webhooks are for managers and admins.
"""

import json

import pytest
from django.core.cache import cache

from integrations.models import WebhookSubscription
from integrations.tokens import api_token_create
from tests import factories
from tests.webhook_receiver import webhook_manager

pytestmark = pytest.mark.django_db

ROLES = ("rep", "viewall", "manager", "admin")
SECRET = "Zanzibar-api-secret"  # in the other rep's deal: must never reach the rep


@pytest.fixture
def world():
    cache.clear()
    _, stages = factories.pipeline_with_stages(("Lead", "Proposal"), name="Sales")
    users = {
        "rep": factories.rep(username="m_rep"),
        "viewall": factories.rep_with_view_all(username="m_viewall"),
        "manager": webhook_manager(username="m_manager"),
        "admin": factories.admin(username="m_admin"),
    }
    other_rep = factories.rep(username="m_rep2")
    deals = {
        "own": factories.OpportunityFactory(stage=stages[0], assigned_to=users["rep"]),
        "other": factories.OpportunityFactory(
            stage=stages[0], assigned_to=other_rep, name=f"{SECRET} deal"
        ),
    }
    hook = WebhookSubscription.objects.create(
        url="https://example.com/hook", event_types=["OpportunityCreate"], secret="whsec_x"
    )
    tokens = {role: api_token_create(user=user, name="matrix")[1] for role, user in users.items()}
    follower = factories.rep(username="m_follower")
    yield {
        "stages": stages,
        "users": users,
        "deals": deals,
        "hook": hook,
        "tokens": tokens,
        "follower": follower,
    }
    cache.clear()


def call(client, world, role, method, path, body=None):
    path = path.format(
        own=world["deals"]["own"].pk, other=world["deals"]["other"].pk, hook=world["hook"].pk
    )
    headers = {"Authorization": f"Bearer {world['tokens'][role]}"}
    if body and body.get("followers") == ["{follower}"]:
        body = {**body, "followers": [str(world["follower"].pk)]}
    if method == "get":
        return client.get(f"/api/v1{path}", headers=headers)
    return getattr(client, method)(
        f"/api/v1{path}",
        data=json.dumps(body or {}),
        content_type="application/json",
        headers=headers,
    )


# (method, path, body): statuses for rep, viewall, manager, admin
# fmt: off
API_MATRIX = [
    ("get", "/opportunities/search", None,                       (200, 200, 200, 200)),
    ("get", "/opportunities/pipelines", None,                    (200, 200, 200, 200)),
    ("get", "/opportunities/lost-reason", None,                  (200, 200, 200, 200)),
    ("get", "/events", None,                                     (200, 200, 200, 200)),
    ("get", "/opportunities/{own}", None,                        (200, 200, 200, 200)),
    ("get", "/opportunities/{other}", None,                      (404, 200, 200, 200)),
    ("put", "/opportunities/{own}", {"name": "Renamed"},         (200, 200, 200, 200)),
    ("put", "/opportunities/{other}", {"name": "Renamed"},       (404, 200, 200, 200)),
    ("put", "/opportunities/{own}/status", {"status": "won"},    (200, 200, 200, 200)),
    ("put", "/opportunities/{other}/status", {"status": "won"},  (404, 200, 200, 200)),
    ("post", "/opportunities/{own}/followers", {"followers": ["{follower}"]},
                                                                 (200, 200, 200, 200)),
    ("post", "/opportunities/{other}/followers", {"followers": ["{follower}"]},
                                                                 (404, 200, 200, 200)),
    ("delete", "/opportunities/{own}/followers", {"followers": ["{follower}"]},
                                                                 (200, 200, 200, 200)),
    ("delete", "/opportunities/{other}/followers", {"followers": ["{follower}"]},
                                                                 (404, 200, 200, 200)),
    ("delete", "/opportunities/{own}", None,                     (403, 403, 200, 200)),
    ("delete", "/opportunities/{other}", None,                   (404, 403, 200, 200)),
    ("get", "/webhooks", None,                                   (403, 403, 200, 200)),
    ("get", "/webhooks/{hook}", None,                            (403, 403, 200, 200)),
    ("delete", "/webhooks/{hook}", None,                         (403, 403, 200, 200)),
    ("post", "/webhooks", {"url": "https://example.com/x", "eventTypes": ["Nope"]},
                                                                 (403, 403, 422, 422)),
]
# fmt: on


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "expected"), API_MATRIX)
def test_api_matrix(client, world, role, method, path, body, expected):
    response = call(client, world, role, method, path, body)
    assert response.status_code == expected[ROLES.index(role)], response.content
    if response.status_code >= 400:
        assert response.json()["statusCode"] == response.status_code
    if role == "rep":
        assert SECRET not in response.content.decode()


@pytest.mark.parametrize(("method", "path", "body", "expected"), API_MATRIX)
def test_api_without_a_token_is_401(client, world, method, path, body, expected):
    world["tokens"]["none"] = "crm_not-a-token"
    response = call(client, world, "none", method, path, body)
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401


def test_a_session_does_not_open_the_api(client, world):
    """The API takes tokens only: a signed-in browser is not a way around them (no CSRF)."""
    client.force_login(world["users"]["admin"])
    assert client.get("/api/v1/opportunities/search").status_code == 401


def test_search_and_events_of_a_rep_show_only_their_deals(client, world):
    search = call(client, world, "rep", "get", "/opportunities/search").json()
    assert [row["id"] for row in search["opportunities"]] == [str(world["deals"]["own"].pk)]


# Pages: status for anonymous, rep, viewall, manager, admin (GET).
PAGES = [
    ("/settings/api-tokens/", (302, 200, 200, 200, 200)),
    ("/settings/webhooks/", (302, 403, 403, 200, 200)),
    ("/settings/webhooks/{hook}/", (302, 403, 403, 200, 200)),
    ("/api/v1/docs", (200, 200, 200, 200, 200)),
    ("/api/v1/openapi.json", (200, 200, 200, 200, 200)),
]


@pytest.mark.parametrize(("path", "expected"), PAGES)
def test_integration_pages(client, world, path, expected):
    for index, role in enumerate(("anonymous", *ROLES)):
        client.logout()
        if role != "anonymous":
            client.force_login(world["users"][role])
        response = client.get(path.format(hook=world["hook"].pk))
        assert response.status_code == expected[index], (role, path)


def test_a_rep_following_another_reps_deal_reaches_it_through_the_api(client, world):
    """Followers see and edit the deal (the visibility selector includes followed deals)."""
    path = "/opportunities/{other}/followers"
    body = {"followers": [str(world["users"]["rep"].pk)]}
    assert call(client, world, "manager", "post", path, body).status_code == 200
    assert call(client, world, "rep", "get", "/opportunities/{other}").status_code == 200
    assert call(client, world, "rep", "delete", path, body).status_code == 200
    assert call(client, world, "rep", "get", "/opportunities/{other}").status_code == 404
