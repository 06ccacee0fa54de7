"""Settings → API tokens: created (shown once), listed, revoked by their owner only."""

import pytest

from integrations.models import ApiToken
from integrations.tokens import api_token_create
from tests import factories

pytestmark = pytest.mark.django_db
URL = "/settings/api-tokens/"


def test_token_is_shown_once_and_stored_hashed(client):
    user = factories.rep(username="page-rep")
    client.force_login(user)
    response = client.post(URL, {"name": "Invoicing"})
    assert response.status_code == 200
    token = response.context["new_token"]
    assert token.startswith("crm_") and token in response.content.decode()
    row = ApiToken.objects.get(user=user)
    assert row.name == "Invoicing" and token not in row.token_hash
    again = client.get(URL).content.decode()
    assert token not in again and row.prefix in again


def test_token_needs_a_name(client):
    client.force_login(factories.rep(username="page-rep2"))
    response = client.post(URL, {"name": ""})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_owner_revokes_a_token(client):
    user = factories.rep(username="page-rep3")
    row, token = api_token_create(user=user, name="Old")
    client.force_login(user)
    assert client.post(f"{URL}{row.pk}/revoke/").status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None
    answer = client.get(
        "/api/v1/opportunities/pipelines", headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 401


def test_nobody_else_revokes_a_token(client):
    row, _ = api_token_create(user=factories.rep(username="owner"), name="Mine")
    client.force_login(factories.manager(username="someone"))
    assert client.post(f"{URL}{row.pk}/revoke/").status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None


def test_page_needs_sign_in(client):
    assert client.get(URL).status_code == 302
