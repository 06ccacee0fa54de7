"""The board's filters; the manager list extends the same FilterSet."""

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.db.models.functions import Lower

from opportunities.models import Opportunity, Status, Tag

ALL_STATUSES = "all"
STATUS_FILTER_CHOICES = [*Status.choices, (ALL_STATUSES, "All")]


def search_opportunities(queryset, value: str):
    """Name, contact name, email or phone contains the text."""
    value = value.strip()
    if not value:
        return queryset
    return queryset.filter(
        Q(name__icontains=value)
        | Q(contact__name__icontains=value)
        | Q(contact__email__icontains=value)
        | Q(contact__phone__icontains=value)
    )


def tag_names_condition(text: str) -> Q:
    """Deals carrying any of the comma-separated tag names (any case): one `pk IN`."""
    names = sorted({part.strip().lower() for part in text.split(",") if part.strip()})
    if not names:
        return Q()
    tags = Tag.objects.annotate(lower=Lower("name")).filter(lower__in=names[:20]).values("pk")
    # Through the tag index of the link table: no scan of every deal's tags.
    tagged = Opportunity.tags.through.objects.filter(tag_id__in=tags)
    return Q(pk__in=tagged.values("opportunity_id"))


def active_users():
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "username")


class OpportunityFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=STATUS_FILTER_CHOICES, method="filter_status", empty_label=None
    )
    owner = django_filters.ModelChoiceFilter(
        field_name="assigned_to", queryset=active_users(), empty_label="Any owner"
    )
    # Bounded like the model's field: SQLite refuses LIKE patterns over 50,000 bytes.
    source = django_filters.CharFilter(field_name="source", lookup_expr="iexact", max_length=100)
    # Deals with any of these tags (names, comma separated): the board's tag filter.
    tags = django_filters.CharFilter(method="filter_tag_names", label="Tags", max_length=500)
    q = django_filters.CharFilter(
        method="filter_search",
        label="Search",
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, contact, email, phone"}
        ),
    )

    class Meta:
        model = Opportunity
        fields = ["status", "owner", "source", "q"]

    def __init__(self, data=None, *args, **kwargs):
        # Open is the board's default view; a shared URL without ?status= shows open deals.
        if data is not None and not data.get("status"):
            data = data.copy()
            data["status"] = Status.OPEN
        super().__init__(data, *args, **kwargs)
        self.filters["owner"].queryset = active_users()

    def filter_status(self, queryset, name, value):
        if value == ALL_STATUSES:
            return queryset
        return queryset.filter(status=value)

    def filter_search(self, queryset, name, value):
        return search_opportunities(queryset, value)

    def filter_tag_names(self, queryset, name, value):
        return queryset.filter(tag_names_condition(value))

    @property
    def current_status(self) -> str:
        return self.form.cleaned_data.get("status") if self.form.is_valid() else Status.OPEN
