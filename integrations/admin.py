from django.contrib import admin

from integrations.models import ApiToken, EventCursor, WebhookDelivery, WebhookSubscription


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    # The hash is useless to a person and the token itself is never stored.
    exclude = ["token_hash"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False  # Tokens are created on Settings → API tokens (shown once there).


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["url", "is_active", "created_by", "failing_since", "disabled_at"]
    list_filter = ["is_active"]
    exclude = ["secret"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "subscription",
        "event_type",
        "opportunity_id",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", "event_type"]
    list_select_related = ["subscription"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EventCursor)
class EventCursorAdmin(admin.ModelAdmin):
    list_display = ["name", "last_id", "updated_at"]
