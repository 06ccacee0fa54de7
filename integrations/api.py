"""/api/v1/webhooks: subscriptions through the API (managers and admins)."""

from ninja import Path, Router, Schema
from ninja import Status as Answer
from pydantic import ConfigDict, Field

from integrations import webhooks
from integrations.models import WebhookSubscription
from opportunities.api import parsing
from opportunities.api.schemas import ERRORS, ID_PATTERN, Out

router = Router(tags=["Webhooks"])


class WebhookIn(Schema):
    model_config = ConfigDict(extra="ignore")
    url: str = Field(max_length=2000)
    eventTypes: list[str] = Field(max_length=20)
    description: str = Field("", max_length=200)


class WebhookOut(Out):
    id: str
    url: str
    eventTypes: list[str]
    description: str
    active: bool
    createdAt: str
    failingSince: str | None
    disabledReason: str


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="whsec_…: shown once, verify signatures with it")


class WebhookEnvelope(Out):
    webhook: WebhookOut


class WebhookCreatedEnvelope(Out):
    webhook: WebhookCreatedOut


class WebhooksOut(Out):
    webhooks: list[WebhookOut]


class DeletedOut(Out):
    succeded: bool


def _as_api(subscription: WebhookSubscription) -> dict:
    return {
        "id": str(subscription.pk),
        "url": subscription.url,
        "eventTypes": subscription.event_types,
        "description": subscription.description,
        "active": subscription.is_active,
        "createdAt": subscription.created_at.isoformat(),
        "failingSince": (
            subscription.failing_since.isoformat() if subscription.failing_since else None
        ),
        "disabledReason": subscription.disabled_reason,
    }


def _get(user, webhook_id: str) -> WebhookSubscription:
    return webhooks.subscriptions_for(user).get(pk=parsing.as_pk(webhook_id, "id"))


@router.get("", response={200: WebhooksOut, **ERRORS}, summary="List webhooks")
def list_webhooks(request):
    return {"webhooks": [_as_api(row) for row in webhooks.subscriptions_for(request.user)]}


@router.post("", response={201: WebhookCreatedEnvelope, **ERRORS}, summary="Create a webhook")
def create_webhook(request, payload: WebhookIn):
    """Event types: OpportunityCreate, OpportunityUpdate, OpportunityDelete,
    OpportunityStageUpdate, OpportunityStatusUpdate, OpportunityMonetaryValueUpdate,
    OpportunityAssignedToUpdate. The answer carries the signing secret, once."""
    subscription = webhooks.subscription_create(
        user=request.user,
        url=payload.url,
        event_types=payload.eventTypes,
        description=payload.description,
    )
    return Answer(201, {"webhook": {**_as_api(subscription), "secret": subscription.secret}})


@router.get("/{id}", response={200: WebhookEnvelope, **ERRORS}, summary="Get a webhook")
def get_webhook(request, id: str = Path(..., pattern=ID_PATTERN)):
    return {"webhook": _as_api(_get(request.user, id))}


@router.delete("/{id}", response={200: DeletedOut, **ERRORS}, summary="Delete a webhook")
def delete_webhook(request, id: str = Path(..., pattern=ID_PATTERN)):
    webhooks.subscription_delete(subscription=_get(request.user, id), user=request.user)
    return {"succeded": True}
