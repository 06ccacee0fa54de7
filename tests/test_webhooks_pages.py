"""Settings → Webhooks: managers and admins only; the secret is shown once."""

import pytest

from integrations.models import WebhookSubscription
from tests import factories
from tests.webhook_receiver import webhook_manager

pytestmark = pytest.mark.django_db
URL = "/settings/webhooks/"


@pytest.fixture
def manager_client(client):
    client.force_login(webhook_manager(username="page-manager"))
    return client


def test_rep_may_not_open_webhooks(client):
    client.force_login(factories.rep(username="page-rep"))
    assert client.get(URL).status_code == 403
    assert client.post(URL, {"url": "https://example.com/x"}).status_code == 403


def test_manager_adds_a_webhook_and_sees_the_secret_once(manager_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    response = manager_client.post(
        URL,
        {"url": "http://127.0.0.1:9/hook", "event_types": ["OpportunityStageUpdate"]},
    )
    assert response.status_code == 200
    subscription = WebhookSubscription.objects.get()
    assert subscription.event_types == ["OpportunityStageUpdate"]
    assert subscription.secret in response.content.decode()
    assert subscription.secret not in manager_client.get(URL).content.decode()


def test_private_address_is_refused_with_a_message(manager_client, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    response = manager_client.post(
        URL, {"url": "http://127.0.0.1:9/hook", "event_types": ["OpportunityCreate"]}
    )
    assert response.status_code == 400
    assert "private" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_disabled_webhook_is_announced(manager_client):
    WebhookSubscription.objects.create(
        url="https://example.com/x",
        event_types=["OpportunityCreate"],
        secret="whsec_x",
        is_active=False,
        disabled_reason="Disabled automatically: every delivery failed for a day.",
    )
    page = manager_client.get(URL).content.decode()
    assert "failed for a day" in page


def test_switch_off_and_delete(manager_client):
    subscription = WebhookSubscription.objects.create(
        url="https://example.com/x", event_types=["OpportunityCreate"], secret="whsec_x"
    )
    manager_client.post(f"{URL}{subscription.pk}/active/", {"active": "0"})
    subscription.refresh_from_db()
    assert not subscription.is_active
    assert manager_client.get(f"{URL}{subscription.pk}/").status_code == 200
    manager_client.post(f"{URL}{subscription.pk}/delete/")
    assert not WebhookSubscription.objects.exists()


def test_webhooks_api_for_managers(client, settings):
    from integrations.tokens import api_token_create

    settings.WEBHOOKS_ALLOW_PRIVATE = True
    _, token = api_token_create(user=webhook_manager(username="api-hooks"), name="t")
    headers = {"Authorization": f"Bearer {token}"}
    created = client.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/x", "eventTypes": ["OpportunityCreate"]},
        content_type="application/json",
        headers=headers,
    )
    assert created.status_code == 201, created.content
    webhook = created.json()["webhook"]
    assert webhook["secret"].startswith("whsec_")
    listed = client.get("/api/v1/webhooks", headers=headers).json()["webhooks"]
    assert [row["id"] for row in listed] == [webhook["id"]]
    assert "secret" not in listed[0]
    assert client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=headers).status_code == 200
    assert not WebhookSubscription.objects.exists()


def test_webhooks_api_refuses_reps(client):
    from integrations.tokens import api_token_create

    _, token = api_token_create(user=factories.rep(username="api-rep-hooks"), name="t")
    response = client.get("/api/v1/webhooks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["statusCode"] == 403
