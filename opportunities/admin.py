"""Admin for opportunities, contacts, lost reasons and the records around them.

The admin parses and renders; writes of an opportunity go through the same services as
the board and the API (opportunity_create / opportunity_update / opportunity_delete), so
the admin keeps every invariant, writes history and events, and refuses a form opened
before someone else's change (its version travels in a hidden field).
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import HttpResponseRedirect

from opportunities import admin_fields  # noqa: F401 (custom fields and tags)
from opportunities.errors import StaleVersion
from opportunities.models import (
    Communication,
    Contact,
    LostReason,
    Note,
    Opportunity,
    OpportunityHistory,
    Status,
    Task,
)
from opportunities.selectors import contacts_visible_to, opportunities_visible_to
from opportunities.services import records
from opportunities.services.editing import contact_delete, contact_resolve
from opportunities.services.opportunities import (
    opportunity_create,
    opportunity_delete,
    opportunity_update,
)
from pipelines.models import Stage

EDITABLE_FIELDS = [
    "name",
    "pipeline",
    "stage",
    "status",
    "lost_reason",
    "value",
    "contact",
    "assigned_to",
    "source",
]


REFUSALS = (ValidationError, PermissionDenied, StaleVersion, ObjectDoesNotExist)


def _refusal(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or "You are not allowed to do that."


class VisibleRowsAdmin(admin.ModelAdmin):
    """Only assigned data in the admin too, for staff who are not superusers.

    Lists, change pages, search and autocomplete show only rows the user could reach
    through the app (`visible_rows`); choices of an opportunity or a contact offer only
    visible ones, so a form cannot attach a row to someone else's deal.
    """

    def visible_rows(self, user, queryset):
        raise NotImplementedError

    def get_queryset(self, request):
        return self.visible_rows(request.user, super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Opportunity:
            kwargs["queryset"] = opportunities_visible_to(request.user)
        elif db_field.related_model is Contact:
            kwargs["queryset"] = contacts_visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ServiceWritesAdmin(VisibleRowsAdmin):
    """Saves and deletes go through the services, like every other writer.

    The form only parses; `write` and `erase` call the service. A refusal the form could
    not foresee (a permission, a rule only the service knows) is shown as a message and
    the page comes back unsaved, instead of a 500 or a false "saved".
    """

    def write(self, request, stored, data):
        raise NotImplementedError

    def erase(self, request, obj):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        stored = self.get_queryset(request).get(pk=obj.pk) if change else None
        try:
            saved = self.write(request, stored, form.cleaned_data)
        except REFUSALS as exc:
            request._write_refused = True
            messages.error(request, _refusal(exc))
            return
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        self.erase_each(request, [obj])

    def delete_queryset(self, request, queryset):
        self.erase_each(request, queryset)

    def erase_each(self, request, objects):
        for obj in objects:
            try:
                self.erase(request, obj)
            except REFUSALS as exc:
                messages.error(request, f"“{obj}” was kept: {_refusal(exc)}")

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_write_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "_write_refused", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


class StageFilter(admin.SimpleListFilter):
    """Stages labelled with their pipeline, narrowed to the pipeline filtered on.

    Django's related filter would call Stage.__str__ once per stage (a query each).
    """

    title = "stage"
    parameter_name = "stage"

    def lookups(self, request, model_admin):
        stages = Stage.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline_id", "position", "id"
        )
        pipeline_id = request.GET.get("pipeline__id__exact")
        if pipeline_id and pipeline_id.isdigit():
            stages = stages.filter(pipeline_id=pipeline_id)
        return [(str(stage.pk), f"{stage.pipeline.name} › {stage.name}") for stage in stages]

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(stage_id=value)
        return queryset


class OpportunityAdminForm(forms.ModelForm):
    # The version the page was opened with; a save carrying an older one is refused.
    seen_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Opportunity
        fields = EDITABLE_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["seen_version"].initial = self.instance.version
        # Retired reasons are not offered, except the one the deal already has.
        reasons = LostReason.objects.filter(is_active=True)
        if self.instance.lost_reason_id:
            reasons = reasons | LostReason.objects.filter(pk=self.instance.lost_reason_id)
        self.fields["lost_reason"].queryset = reasons.distinct()

    def clean_seen_version(self):
        seen = self.cleaned_data.get("seen_version")
        if self.instance.pk and seen is not None and seen != self.instance.version:
            raise forms.ValidationError(
                "Someone changed this opportunity after you opened this page. "
                "Reload it to see their change, then make yours again."
            )
        return seen

    def clean_value(self):
        value = self.cleaned_data.get("value")
        if value is not None and value < 0:
            raise forms.ValidationError("The value cannot be negative.")
        return value

    def clean(self):
        cleaned = super().clean()
        pipeline, stage = cleaned.get("pipeline"), cleaned.get("stage")
        if pipeline and stage and stage.pipeline_id != pipeline.pk:
            self.add_error(
                "stage",
                f"The stage “{stage.name}” belongs to the pipeline “{stage.pipeline.name}”, "
                f"not “{pipeline.name}”. Choose one of the stages of “{pipeline.name}”.",
            )
        status, lost_reason = cleaned.get("status"), cleaned.get("lost_reason")
        if status == Status.LOST and lost_reason is None:
            self.add_error("lost_reason", "Choose why this opportunity was lost.")
        if status and status != Status.LOST and lost_reason is not None:
            self.add_error(
                "lost_reason", "Only lost opportunities have a lost reason; clear this field."
            )
        return cleaned


@admin.register(Opportunity)
class OpportunityAdmin(ServiceWritesAdmin):
    form = OpportunityAdminForm
    list_display = ["name", "pipeline", "stage_name", "status", "value", "owner", "updated_at"]
    list_filter = ["status", "pipeline", StageFilter, "assigned_to"]
    list_select_related = ["pipeline", "stage", "assigned_to"]
    search_fields = ["name", "contact__name", "contact__email", "contact__phone"]
    autocomplete_fields = ["contact"]
    date_hierarchy = "created_at"
    ordering = ["-updated_at", "-id"]
    readonly_fields = [
        "rank",
        "version",
        "stage_entered_at",
        "status_changed_at",
        "closed_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "pipeline",
                    "stage",
                    "status",
                    "lost_reason",
                    "value",
                    "seen_version",
                ]
            },
        ),
        ("People", {"fields": ["contact", "assigned_to", "source"]}),
        ("Bookkeeping", {"classes": ["collapse"], "fields": readonly_fields}),
    ]

    def visible_rows(self, user, queryset):
        # The one visibility rule applies in the admin too.
        return opportunities_visible_to(user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "stage":
            # Stage labels name their pipeline: fetch it with the stage.
            kwargs["queryset"] = Stage.objects.select_related("pipeline").order_by(
                "pipeline__position", "pipeline_id", "position", "id"
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Stage", ordering="stage__position")
    def stage_name(self, opportunity):
        return opportunity.stage.name

    @admin.display(description="Owner", ordering="assigned_to__username")
    def owner(self, opportunity):
        user = opportunity.assigned_to
        return (user.get_full_name() or user.username) if user else "—"

    def write(self, request, stored, data):
        fields = {name: data[name] for name in EDITABLE_FIELDS}
        if stored is None:
            return opportunity_create(user=request.user, **fields)
        # The version the page was opened with: a form older than someone's change fails.
        return opportunity_update(
            opportunity=stored, user=request.user, version=data.get("seen_version"), **fields
        )

    def erase(self, request, obj):
        opportunity_delete(opportunity=obj, user=request.user)

    def delete_queryset(self, request, queryset):
        # The deletion event shows each deal's contact: fetch them with the deals.
        super().delete_queryset(request, queryset.select_related("contact"))


class OnVisibleOpportunityAdmin(ServiceWritesAdmin):
    """Rows that belong to an opportunity: visible with it; their deal is fixed once made."""

    def visible_rows(self, user, queryset):
        return queryset.filter(opportunity__in=opportunities_visible_to(user))

    def get_readonly_fields(self, request, obj=None):
        return ["opportunity"] if obj is not None else []


@admin.register(Contact)
class ContactAdmin(ServiceWritesAdmin):
    list_display = ["name", "company", "email", "phone", "do_not_email", "created_at"]
    search_fields = ["name", "email", "phone", "company"]
    fields = ["name", "company", "email", "phone", "do_not_email"]

    def visible_rows(self, user, queryset):
        return queryset.filter(pk__in=contacts_visible_to(user).values("pk"))

    def write(self, request, stored, data):
        contact = contact_resolve(user=request.user, contact=stored, **data)
        if contact is None:
            raise ValidationError("Give the contact a name.")
        return contact

    def erase(self, request, obj):
        contact_delete(contact=obj, user=request.user)


@admin.register(LostReason)
class LostReasonAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "position"]
    list_editable = ["is_active", "position"]
    list_filter = ["is_active"]
    search_fields = ["name"]


@admin.register(Note)
class NoteAdmin(OnVisibleOpportunityAdmin):
    list_display = ["excerpt", "opportunity", "author", "created_at"]
    list_select_related = ["opportunity", "author"]
    search_fields = ["body", "opportunity__name"]
    autocomplete_fields = ["opportunity"]
    fields = ["opportunity", "body"]

    @admin.display(description="Note")
    def excerpt(self, note):
        return note.body[:80]

    def write(self, request, stored, data):
        if stored is None:
            return records.note_create(
                opportunity=data["opportunity"], author=request.user, body=data["body"]
            )
        return records.note_update(note=stored, user=request.user, body=data["body"])

    def erase(self, request, obj):
        records.note_delete(note=obj, user=request.user)


@admin.register(Task)
class TaskAdmin(OnVisibleOpportunityAdmin):
    list_display = ["title", "opportunity", "due_on", "assigned_to", "done_at"]
    list_filter = [("done_at", admin.EmptyFieldListFilter), "assigned_to"]
    list_select_related = ["opportunity", "assigned_to"]
    search_fields = ["title", "opportunity__name"]
    autocomplete_fields = ["opportunity"]
    date_hierarchy = "due_on"
    fields = ["opportunity", "title", "due_on", "assigned_to"]

    def write(self, request, stored, data):
        if stored is None:
            return records.task_create(user=request.user, **data)
        data = {key: value for key, value in data.items() if key != "opportunity"}
        return records.task_update(task=stored, user=request.user, **data)

    def erase(self, request, obj):
        records.task_delete(task=obj, user=request.user)


@admin.register(Communication)
class CommunicationAdmin(ServiceWritesAdmin):
    list_display = ["kind", "excerpt", "contact", "opportunity", "occurred_at", "author"]
    list_filter = ["kind"]
    list_select_related = ["contact", "opportunity", "author"]
    search_fields = ["summary", "contact__name", "opportunity__name"]
    autocomplete_fields = ["opportunity"]
    # Logged from a deal, on its contact (as on the record page).
    fields = ["opportunity", "kind", "summary", "occurred_at"]

    def visible_rows(self, user, queryset):
        # The log belongs to the contact: whoever sees the contact sees its log.
        return queryset.filter(contact__in=contacts_visible_to(user))

    def get_readonly_fields(self, request, obj=None):
        return ["opportunity"] if obj is not None else []

    @admin.display(description="Summary")
    def excerpt(self, communication):
        return communication.summary[:80]

    def write(self, request, stored, data):
        if stored is None:
            if data.get("opportunity") is None:
                raise ValidationError("Choose the opportunity it was about.")
            return records.communication_log(user=request.user, **data)
        data = {key: value for key, value in data.items() if key != "opportunity"}
        return records.communication_update(entry=stored, user=request.user, **data)

    def erase(self, request, obj):
        records.communication_delete(entry=obj, user=request.user)


@admin.register(OpportunityHistory)
class OpportunityHistoryAdmin(OnVisibleOpportunityAdmin):
    """Read-only: history is written by the services, never edited by hand."""

    list_display = [
        "opportunity",
        "from_stage",
        "to_stage",
        "from_status",
        "to_status",
        "user",
        "at",
    ]
    list_filter = ["to_status"]
    list_select_related = [
        "opportunity",
        "from_stage__pipeline",
        "to_stage__pipeline",
        "user",
    ]
    search_fields = ["opportunity__name"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
