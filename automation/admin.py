"""Rules in Django admin: trigger on the rule, conditions and actions inline.

Each condition and action is validated when saved (model `clean`): a stage of another
pipeline, a deactivated user, a group without members or a task due in the past is
refused with a message, and so is a webhook action whose subscription is switched off
or deleted. E-mail actions are previewed with sample values after saving.
"""

from django.contrib import admin, messages

from automation.forms import webhook_label
from automation.models import (
    Action,
    Condition,
    EmailTemplate,
    Notification,
    NotificationSetting,
    Rule,
    RuleRun,
)
from automation.placeholders import email_previews


class ConditionInline(admin.TabularInline):
    model = Condition
    extra = 0
    fields = ["kind", "value", "custom_field", "user", "group"]


class ActionInline(admin.StackedInline):
    model = Action
    extra = 0
    fields = [
        "position",
        "kind",
        ("recipient", "user", "group"),
        "title",
        "body",
        "due_in_days",
        ("stage", "status", "lost_reason"),
        "webhook",
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "webhook":
            field.label_from_instance = webhook_label
        return field


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "pipeline", "trigger", "enabled", "position", "acting_user", "problem"]
    list_filter = ["enabled", "trigger", "pipeline"]
    list_editable = ["enabled", "position"]
    search_fields = ["name"]
    inlines = [ConditionInline, ActionInline]
    readonly_fields = ["problem"]
    fields = [
        "name",
        "pipeline",
        ("enabled", "position"),
        "trigger",
        ("stage", "status", "stale_days"),
        "acting_user",
        "problem",
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "acting_user":
            kwargs["queryset"] = db_field.related_model.objects.filter(is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        rule = form.instance
        if rule.problem:
            Rule.objects.filter(pk=rule.pk).update(problem="")
        for preview in email_previews(rule):
            self.message_user(request, preview, messages.INFO)


@admin.register(RuleRun)
class RuleRunAdmin(admin.ModelAdmin):
    list_display = ["created_at", "rule", "event_id", "opportunity", "outcome", "summary"]
    list_filter = ["outcome", "rule"]
    list_select_related = ["rule", "opportunity"]
    raw_id_fields = ["opportunity"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "text", "read_at"]
    list_select_related = ["user"]
    raw_id_fields = ["opportunity"]


admin.site.register(NotificationSetting)


@admin.register(EmailTemplate)
class EmailTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "subject"]
    search_fields = ["name", "subject"]
