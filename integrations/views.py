"""Settings → API tokens and Settings → Webhooks, and the offline API docs page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from integrations import tokens, webhooks
from integrations.forms import TokenForm, WebhookForm
from integrations.models import ApiToken, WebhookDelivery, WebhookSubscription


def _add_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def api_tokens(request):
    form = TokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_token = tokens.api_token_create(
                user=request.user, name=form.cleaned_data["name"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            form = TokenForm()
    return render(
        request,
        "integrations/api_tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": tokens.api_tokens_of(request.user),
            "nav": "settings",
        },
        status=400 if form.errors else 200,
    )


@require_POST
def api_token_revoke(request, pk: int):
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    tokens.api_token_revoke(token=token, user=request.user)
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("integrations:api_tokens")


def _require_manager(request) -> None:
    if not webhooks.can_manage_webhooks(request.user):
        raise PermissionDenied("Only managers and admins manage webhooks.")


def webhook_list(request):
    _require_manager(request)
    form = WebhookForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = webhooks.subscription_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            form = WebhookForm()
    return render(
        request,
        "integrations/webhooks.html",
        {
            "form": form,
            "created": created,
            "subscriptions": webhooks.subscriptions_for(request.user),
            "nav": "settings",
        },
        status=400 if form.errors else 200,
    )


def webhook_detail(request, pk: int):
    _require_manager(request)
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    deliveries = WebhookDelivery.objects.filter(subscription=subscription).defer("body")[:100]
    return render(
        request,
        "integrations/webhook_detail.html",
        {"subscription": subscription, "deliveries": deliveries, "nav": "settings"},
    )


@require_POST
def webhook_set_active(request, pk: int):
    _require_manager(request)
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    active = request.POST.get("active") == "1"
    webhooks.subscription_set_active(subscription=subscription, user=request.user, active=active)
    messages.success(request, "Webhook switched on." if active else "Webhook switched off.")
    return redirect("integrations:webhook_detail", pk=pk)


@require_POST
def webhook_delete(request, pk: int):
    _require_manager(request)
    subscription = get_object_or_404(WebhookSubscription, pk=pk)
    webhooks.subscription_delete(subscription=subscription, user=request.user)
    messages.success(request, "Webhook deleted.")
    return redirect("integrations:webhooks")


@require_POST
def delivery_redeliver(request, pk: int, delivery_pk: int):
    _require_manager(request)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_pk, subscription_id=pk)
    webhooks.delivery_redeliver(delivery=delivery, user=request.user)
    messages.success(request, f"Event #{delivery.event_id} will be sent again.")
    return redirect("integrations:webhook_detail", pk=pk)


@login_not_required
@require_GET
def api_docs(request):
    """The API reference rendered from the OpenAPI schema on the server (no CDN)."""
    from crm.api import api

    schema = api.get_openapi_schema(path_prefix="/api/v1")
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "tag": (operation.get("tags") or [""])[0],
                    "parameters": operation.get("parameters", []),
                    "has_body": "requestBody" in operation,
                    "body_ref": _body_ref(operation),
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return render(
        request,
        "integrations/api_docs.html",
        {"schema": schema, "operations": operations, "info": schema.get("info", {})},
    )


def _body_ref(operation) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1]
