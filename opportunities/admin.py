"""Admin for opportunities, contacts, lost reasons and the records around them.

Admin writes of an opportunity keep the board's invariants (see
OpportunityAdmin.save_model): the stage belongs to the pipeline (form), a new or
moved card gets a rank at the top of its column, status changes stamp
status_changed_at/closed_at the way the status service does, every write bumps
`version` (so a board holding the old version gets a conflict, not a silent
overwrite) and each stage or status change leaves a history row.
"""

from django import forms
from django.contrib import admin
from django.db.models import F
from django.utils import timezone

from opportunities.models import (
    CLOSED_STATUSES,
    Communication,
    Contact,
    LostReason,
    Note,
    Opportunity,
    OpportunityHistory,
    Status,
    Task,
)
from opportunities.selectors import opportunities_visible_to
from opportunities.services.history import history_record
from opportunities.services.moves import rank_for_drop
from pipelines.models import Stage


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
    class Meta:
        model = Opportunity
        fields = [
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
class OpportunityAdmin(admin.ModelAdmin):
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
        (None, {"fields": ["name", "pipeline", "stage", "status", "lost_reason", "value"]}),
        ("People", {"fields": ["contact", "assigned_to", "source"]}),
        ("Bookkeeping", {"classes": ["collapse"], "fields": readonly_fields}),
    ]

    def get_queryset(self, request):
        # The one visibility rule applies in the admin too.
        return opportunities_visible_to(request.user)

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

    def save_model(self, request, obj, form, change):
        """Save with the invariants the services keep (the admin view is atomic).

        - New: rank at the top of its stage's column, timestamps now, one history row
          recording where it started.
        - Stage changed: rank at the top of the new column, stage_entered_at now.
        - Status changed: status_changed_at now; closed_at now when it becomes closed
          (or moves between closed statuses), cleared when reopened.
        - Every save bumps `version`, so a board holding the old one gets a conflict.
        """
        now = timezone.now()
        if not change:
            obj.rank = rank_for_drop(obj.stage)
            obj.created_at = obj.updated_at = obj.stage_entered_at = now
            if obj.status != Status.OPEN:
                obj.status_changed_at = now
            obj.closed_at = now if obj.status in CLOSED_STATUSES else None
            super().save_model(request, obj, form, change)
            history_record(
                opportunity=obj,
                user=request.user,
                from_stage_id=None,
                to_stage_id=obj.stage_id,
                from_status="",
                to_status=obj.status,
                at=now,
            )
            return

        before = Opportunity.objects.values("stage_id", "status").get(pk=obj.pk)
        stage_changed = before["stage_id"] != obj.stage_id
        status_changed = before["status"] != obj.status
        if stage_changed:
            obj.rank = rank_for_drop(obj.stage, moving_id=obj.pk)
            obj.stage_entered_at = now
        if status_changed:
            obj.status_changed_at = now
            obj.closed_at = now if obj.status in CLOSED_STATUSES else None
        obj.updated_at = now
        obj.version = F("version") + 1
        super().save_model(request, obj, form, change)
        obj.refresh_from_db(fields=["version"])
        if stage_changed or status_changed:
            history_record(
                opportunity=obj,
                user=request.user,
                from_stage_id=before["stage_id"],
                to_stage_id=obj.stage_id,
                from_status=before["status"],
                to_status=obj.status,
                at=now,
            )


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "email", "phone", "created_at"]
    search_fields = ["name", "email", "phone", "company"]


@admin.register(LostReason)
class LostReasonAdmin(admin.ModelAdmin):
    list_display = ["name", "is_active", "position"]
    list_editable = ["is_active", "position"]
    list_filter = ["is_active"]
    search_fields = ["name"]


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["excerpt", "opportunity", "author", "created_at"]
    list_select_related = ["opportunity", "author"]
    search_fields = ["body", "opportunity__name"]
    autocomplete_fields = ["opportunity"]

    @admin.display(description="Note")
    def excerpt(self, note):
        return note.body[:80]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["title", "opportunity", "due_on", "assigned_to", "done_at"]
    list_filter = [("done_at", admin.EmptyFieldListFilter), "assigned_to"]
    list_select_related = ["opportunity", "assigned_to"]
    search_fields = ["title", "opportunity__name"]
    autocomplete_fields = ["opportunity"]
    date_hierarchy = "due_on"


@admin.register(Communication)
class CommunicationAdmin(admin.ModelAdmin):
    list_display = ["kind", "excerpt", "contact", "opportunity", "occurred_at", "author"]
    list_filter = ["kind"]
    list_select_related = ["contact", "opportunity", "author"]
    search_fields = ["summary", "contact__name", "opportunity__name"]
    autocomplete_fields = ["contact", "opportunity"]

    @admin.display(description="Summary")
    def excerpt(self, communication):
        return communication.summary[:80]


@admin.register(OpportunityHistory)
class OpportunityHistoryAdmin(admin.ModelAdmin):
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
