"""The manager's list filters: the board's FilterSet plus ranges, several statuses and quick views.

Every filter is a URL parameter, so a filtered list is a link a manager can share or bookmark.
"""

from datetime import datetime

import django_filters
from django import forms
from django.db.models import F, Q
from django.utils import timezone

from opportunities.filters import ALL_STATUSES, STATUS_FILTER_CHOICES, OpportunityFilter
from opportunities.filters_fields import CustomFieldTagFilters
from opportunities.models import LostReason, Status
from opportunities.reports import with_days_open
from opportunities.selectors import rotting_condition
from pipelines.models import Pipeline, Stage


class QuickView:
    WON_THIS_MONTH = "won_this_month"
    LOST_THIS_MONTH = "lost_this_month"
    ABANDONED = "abandoned"
    STALE = "stale"

    choices = [
        (WON_THIS_MONTH, "Won this month"),
        (LOST_THIS_MONTH, "Lost this month"),
        (ABANDONED, "Abandoned"),
        (STALE, "Open and stale"),
    ]


# Column key (as used in ?sort=) -> model fields, whitelisted: nothing else reaches order_by().
SORT_FIELDS = {
    "name": ("name",),
    "contact": ("contact__name",),
    "pipeline": ("pipeline__position", "pipeline__name"),
    "stage": ("pipeline__position", "stage__position"),
    "status": ("status",),
    "value": ("value",),
    "owner": ("assigned_to__first_name", "assigned_to__username"),
    "source": ("source",),
    "created": ("created_at",),
    "closed": ("closed_at",),
    "days_open": ("days_open",),
}
# Columns that can be empty; only these need an explicit NULLS LAST.
NULLABLE_SORTS = {"contact", "owner", "closed"}
DEFAULT_SORT = "-created"
SORT_CHOICES = [(key, key) for key in SORT_FIELDS] + [(f"-{key}", f"-{key}") for key in SORT_FIELDS]


def month_start(now: datetime | None = None) -> datetime:
    """Midnight on the first day of the current month, in the site's time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def stale_condition(now: datetime | None = None) -> Q:
    """The manager's "Open and stale" view: the one rotting rule of the selectors."""
    return rotting_condition(now=now)


def quick_view_conditions() -> dict[str, Q]:
    """The condition behind each quick view, by its ?view= key."""
    this_month = month_start()
    return {
        QuickView.WON_THIS_MONTH: Q(status=Status.WON, closed_at__gte=this_month),
        QuickView.LOST_THIS_MONTH: Q(status=Status.LOST, closed_at__gte=this_month),
        QuickView.ABANDONED: Q(status=Status.ABANDONED),
        QuickView.STALE: stale_condition(),
    }


class ManagerOpportunityFilter(CustomFieldTagFilters, OpportunityFilter):
    status = django_filters.MultipleChoiceFilter(
        choices=STATUS_FILTER_CHOICES,
        method="filter_statuses",
        widget=forms.CheckboxSelectMultiple,
        label="Status",
    )
    pipeline = django_filters.ModelChoiceFilter(
        queryset=Pipeline.objects.all(), empty_label="Any pipeline"
    )
    stage = django_filters.ModelChoiceFilter(queryset=Stage.objects.all(), empty_label="Any stage")
    value = django_filters.RangeFilter(field_name="value", label="Value")
    created = django_filters.DateFromToRangeFilter(field_name="created_at", label="Created")
    closed = django_filters.DateFromToRangeFilter(field_name="closed_at", label="Closed")
    expected_close = django_filters.DateFromToRangeFilter(
        field_name="expected_close_date", label="Expected close"
    )
    lost_reason = django_filters.ModelChoiceFilter(
        queryset=LostReason.objects.all(), empty_label="Any lost reason"
    )
    view = django_filters.ChoiceFilter(
        choices=QuickView.choices, method="filter_quick_view", label="Quick view"
    )
    sort = django_filters.ChoiceFilter(choices=SORT_CHOICES, method="filter_sort", label="Sort")

    class Meta(OpportunityFilter.Meta):
        fields = [
            *OpportunityFilter.Meta.fields,
            "pipeline",
            "stage",
            "value",
            "created",
            "closed",
            "expected_close",
            "lost_reason",
            "view",
            "sort",
        ]

    def __init__(self, data=None, *args, **kwargs):
        # The board defaults to Open; the manager list defaults to every status. Saying
        # "all" explicitly keeps the parent's default from applying.
        if data is not None and not _values(data, "status"):
            data = data.copy()
            data["status"] = ALL_STATUSES
        super().__init__(data, *args, **kwargs)
        self.filters["pipeline"].queryset = Pipeline.objects.order_by("position", "id")
        self.filters["stage"].queryset = Stage.objects.select_related("pipeline").order_by(
            "pipeline__position", "pipeline_id", "position", "id"
        )
        self.filters["lost_reason"].queryset = LostReason.objects.order_by("position", "name")

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        # A list needs one stable order even when no valid ?sort= was given.
        if not self.form.cleaned_data.get("sort"):
            queryset = self.filter_sort(queryset, "sort", DEFAULT_SORT)
        return queryset

    def filter_statuses(self, queryset, name, values):
        chosen = set(values)
        if not chosen or ALL_STATUSES in chosen:
            return queryset
        return queryset.filter(status__in=chosen)

    def filter_quick_view(self, queryset, name, value):
        return queryset.filter(quick_view_conditions()[value])

    def filter_sort(self, queryset, name, value):
        descending, key = value.startswith("-"), value.lstrip("-")
        fields = SORT_FIELDS[key]
        if key == "days_open":
            queryset = with_days_open(queryset)
        if key in NULLABLE_SORTS:
            # Empty cells (no close date, no owner) sort last both ways, on every backend.
            order = [
                F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
                for field in fields
            ]
        else:
            # Plain ASC/DESC, so an index on the column (created_at) can serve the order.
            order = [f"-{field}" if descending else field for field in fields]
        # The id breaks ties, so pages never repeat or skip a row.
        return queryset.order_by(*order, "-id" if descending else "id")

    @property
    def sort_value(self) -> str:
        if self.form.is_valid() and self.form.cleaned_data.get("sort"):
            return self.form.cleaned_data["sort"]
        return DEFAULT_SORT

    @property
    def statuses(self) -> list[str]:
        if not self.form.is_valid():
            return []
        return [value for value in self.form.cleaned_data.get("status") or [] if value in Status]

    @property
    def quick_view(self) -> str:
        return self.form.cleaned_data.get("view", "") if self.form.is_valid() else ""


def _values(data, key: str) -> list:
    if hasattr(data, "getlist"):
        return [value for value in data.getlist(key) if value]
    value = data.get(key)
    if isinstance(value, list | tuple):
        return [item for item in value if item]
    return [value] if value else []
