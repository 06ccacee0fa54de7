"""Admin for pipelines and their stages.

Stages are edited in an inline on the pipeline and reordered by drag
(django-admin-sortable2 writes the new `position` values). Nothing is ever deleted
in cascade: a stage or pipeline that still holds opportunities, or that other
records (e.g. the history of past moves) still point to, is refused with a message
that says why, on the delete page, in the bulk delete action and in the inline.
"""

import dataclasses
from collections import Counter
from collections.abc import Iterable

from adminsortable2.admin import CustomInlineFormSet, SortableAdminBase, SortableTabularInline
from django import VERSION as DJANGO_VERSION
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.options import ActionLocation
from django.contrib.admin.utils import get_deleted_objects, unquote
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import Count, IntegerField, OuterRef, ProtectedError, Subquery
from django.db.models.deletion import Collector
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.text import get_text_list

from pipelines.models import Pipeline, Stage

# adminsortable2 2.3.1 ships templates and a patched actions.js up to Django 6.0 and
# builds their names from the running version; 6.1's admin templates are unchanged,
# so point it at the newest copies it has instead of missing files.
_SORTABLE_DJANGO = "6.0" if DJANGO_VERSION[:2] >= (6, 1) else "{}.{}".format(*DJANGO_VERSION[:2])


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def stage_deletion_refusals(stages: Iterable[Stage]) -> list[str]:
    """Why these stages cannot be deleted; empty when all of them can.

    Opportunities are counted with one aggregate. Other protecting rows (history
    entries of opportunities that passed through, wherever they live) are found by
    Django's deletion collector, so this module needs no import from other apps.
    """
    ids = [stage.pk for stage in stages if stage.pk]
    if not ids:
        return []
    rows = list(
        Stage.objects.filter(pk__in=ids)
        .select_related("pipeline")
        .annotate(opportunity_count=Count("opportunities"))
    )
    refusals = [
        f"The stage “{stage.name}” of “{stage.pipeline.name}” still holds "
        f"{_plural(stage.opportunity_count, 'opportunity', 'opportunities')}; "
        "move them to another stage before deleting it."
        for stage in rows
        if stage.opportunity_count
    ]
    if refusals:
        return refusals
    collector = Collector(using=router.db_for_write(Stage))
    try:
        collector.collect(rows)
    except ProtectedError as error:
        kinds = Counter(obj._meta.verbose_name_plural for obj in error.protected_objects)
        what = get_text_list([f"{count} {name}" for name, count in kinds.items()], "and")
        names = get_text_list([f"“{stage.name}”" for stage in rows], "and")
        refusals.append(
            f"{names} cannot be deleted: {what} still refer to "
            f"{'it' if len(rows) == 1 else 'them'}, and deleting would lose that record. "
            "Rename the stage instead, or archive the pipeline."
        )
    return refusals


def pipeline_deletion_refusals(pipelines: Iterable[Pipeline]) -> list[str]:
    """Why these pipelines cannot be deleted; their (empty) stages go with them."""
    ids = [pipeline.pk for pipeline in pipelines]
    rows = Pipeline.objects.filter(pk__in=ids).annotate(opportunity_count=Count("opportunities"))
    refusals = [
        f"The pipeline “{pipeline.name}” still holds "
        f"{_plural(pipeline.opportunity_count, 'opportunity', 'opportunities')}; "
        "archive it instead, or move or delete its opportunities first."
        for pipeline in rows
        if pipeline.opportunity_count
    ]
    return refusals or stage_deletion_refusals(Stage.objects.filter(pipeline__in=ids))


class RefusingDeletionMixin:
    """Checks `deletion_refusals` before Django's delete page and bulk delete action.

    Without this, PROTECT foreign keys make Django show a list of protected rows
    (or, for stages in the pipeline inline, raise); here the admin gets one sentence
    saying what to do and nothing is deleted.
    """

    def deletion_refusals(self, objs) -> list[str]:
        raise NotImplementedError

    def _refuse(self, request, refusals) -> None:
        for refusal in refusals:
            self.message_user(request, refusal, level=messages.ERROR)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_delete_permission(request, obj):
            refusals = self.deletion_refusals([obj])
            if refusals:
                self._refuse(request, refusals)
                opts = self.model._meta
                return HttpResponseRedirect(
                    reverse(
                        f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
                        args=[obj.pk],
                    )
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_selected_unless_in_use(self, request, queryset):
        refusals = self.deletion_refusals(list(queryset))
        if refusals:
            self._refuse(request, refusals)
            return None  # back to the changelist, nothing deleted
        return delete_selected(self, request, queryset)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        if "delete_selected" in actions:
            # Same name and label (the confirmation page posts it back), checked first.
            actions["delete_selected"] = dataclasses.replace(
                actions["delete_selected"], func=type(self).delete_selected_unless_in_use
            )
        return actions


class StageInlineFormSet(CustomInlineFormSet):
    def clean(self):
        # Before super(): its unique check calls is_valid() on every form, and Django's
        # inline form then raises its own list of every protected row (thousands for a
        # busy stage); one sentence per stage says more.
        doomed = [
            form.instance
            for form in self.forms
            if self.can_delete and self._should_delete_form(form) and form.instance.pk
        ]
        refusals = stage_deletion_refusals(doomed)
        if refusals:
            raise ValidationError(refusals)
        super().clean()


class StageInline(SortableTabularInline):
    model = Stage
    formset = StageInlineFormSet
    template = f"adminsortable2/edit_inline/tabular-django-{_SORTABLE_DJANGO}.html"
    fields = ["name", "probability", "rotting_days", "show_in_funnel"]
    extra = 0
    min_num = 0


@admin.register(Pipeline)
class PipelineAdmin(RefusingDeletionMixin, SortableAdminBase, admin.ModelAdmin):
    inlines = [StageInline]
    list_display = ["name", "position", "stage_count", "opportunity_count", "is_archived"]
    list_filter = ["is_archived"]
    search_fields = ["name"]
    actions = ["archive", "unarchive"]
    fields = ["name", "position", "is_archived"]

    @property
    def media(self):
        media = super().media
        # SortableAdminBase swaps in actions-<django version>.js, which 2.3.1 lacks for
        # 6.1; under the manifest storage a missing file would turn this page into a 500.
        missing = "adminsortable2/js/actions-{}.{}.js".format(*DJANGO_VERSION[:2])
        shipped = f"adminsortable2/js/actions-{_SORTABLE_DJANGO}.js"
        # Assets compare equal to their path string (str or Script alike).
        js = [forms.Script(shipped) if asset == missing else asset for asset in media._js]
        return forms.Media(css=media._css, js=js)

    def get_queryset(self, request):
        # Counts come from one query: stages via a subquery (few rows), opportunities
        # via one grouped join, so the list has no N+1 and no stage × opportunity product.
        stage_count = (
            Stage.objects.filter(pipeline=OuterRef("pk"))
            .order_by()
            .values("pipeline")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                _stage_count=Coalesce(Subquery(stage_count, output_field=IntegerField()), 0),
                _opportunity_count=Count("opportunities"),
            )
        )

    @admin.display(description="Stages", ordering="_stage_count")
    def stage_count(self, pipeline):
        return pipeline._stage_count

    @admin.display(description="Opportunities", ordering="_opportunity_count")
    def opportunity_count(self, pipeline):
        return pipeline._opportunity_count

    @admin.action(permissions=["change"], description="Archive selected pipelines")
    def archive(self, request, queryset):
        count = queryset.filter(is_archived=False).update(is_archived=True)
        self.message_user(
            request, f"Archived {_plural(count, 'pipeline', 'pipelines')}.", messages.SUCCESS
        )

    @admin.action(permissions=["change"], description="Unarchive selected pipelines")
    def unarchive(self, request, queryset):
        count = queryset.filter(is_archived=True).update(is_archived=False)
        self.message_user(
            request, f"Unarchived {_plural(count, 'pipeline', 'pipelines')}.", messages.SUCCESS
        )

    def deletion_refusals(self, objs):
        return pipeline_deletion_refusals(objs)

    def get_deleted_objects(self, objs, request):
        # Stage.pipeline is PROTECT, so Django would list the stages as blockers; empty
        # stages (the only kind left once deletion_refusals passed) go with the pipeline,
        # shown nested under it.
        deleted, counts, perms_needed, protected = [], Counter(), set(), []
        for pipeline in objs:
            items, item_counts, item_perms, _ = super().get_deleted_objects([pipeline], request)
            deleted += items
            counts.update(item_counts)
            perms_needed |= item_perms
            stages = list(pipeline.stages.all())
            if stages:
                stage_items, stage_counts, stage_perms, stage_protected = get_deleted_objects(
                    stages, request, self.admin_site
                )
                deleted.append(stage_items)
                counts.update(stage_counts)
                perms_needed |= stage_perms
                protected += stage_protected
        return deleted, dict(counts), perms_needed, protected

    def delete_model(self, request, obj):
        with transaction.atomic(using=router.db_for_write(Pipeline)):
            obj.stages.all().delete()
            obj.delete()

    def delete_queryset(self, request, queryset):
        with transaction.atomic(using=router.db_for_write(Pipeline)):
            Stage.objects.filter(pipeline__in=queryset).delete()
            queryset.delete()


@admin.register(Stage)
class StageAdmin(RefusingDeletionMixin, admin.ModelAdmin):
    list_display = ["name", "pipeline", "position", "probability", "rotting_days", "opportunities"]
    list_filter = ["pipeline"]
    list_select_related = ["pipeline"]
    search_fields = ["name", "pipeline__name"]
    ordering = ["pipeline__position", "pipeline_id", "position", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_opportunity_count=Count("opportunities"))

    @admin.display(description="Opportunities", ordering="_opportunity_count")
    def opportunities(self, stage):
        return stage._opportunity_count

    def deletion_refusals(self, objs):
        return stage_deletion_refusals(objs)
