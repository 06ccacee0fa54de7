"""Filtering deals by custom field and by tags, for the manager list (and the board's tags).

Each condition is `pk IN (subquery)` on an indexed column of the value table or the tag
table, so the list's queries keep their shape and count: the deals table is filtered by
an index range of CustomFieldValue (field, number|date|flag, opportunity), never by a
join that multiplies rows or a per-row function. Text "contains" cannot be a range (the
pattern starts with %); it is served by the custom_value_text index of migration 0012
(covering on SQLite, trigram on PostgreSQL).
"""

from decimal import Decimal, InvalidOperation

import django_filters
from django.db.models import Q

from opportunities.custom_fields import parse_date
from opportunities.models import CustomField, CustomFieldType, CustomFieldValue, Opportunity, Tag

TAG_ANY, TAG_ALL = "any", "all"
TAG_MATCH_CHOICES = [(TAG_ANY, "Any of these tags"), (TAG_ALL, "All of these tags")]
RANGE_TYPES = {CustomFieldType.NUMBER, CustomFieldType.MONEY, CustomFieldType.DATE}
CONTAINS_TYPES = {
    CustomFieldType.TEXT,
    CustomFieldType.LONG_TEXT,
    CustomFieldType.URL,
    CustomFieldType.SINGLE_CHOICE,
    CustomFieldType.MULTIPLE_CHOICE,
}


class CustomFilterError(ValueError):
    """A custom field filter value that does not fit the field's type."""


def tags_condition(tag_ids: list[int], match: str = TAG_ANY) -> Q:
    """Deals carrying any (or all) of the tags: one `pk IN` per tag for "all"."""
    through = Opportunity.tags.through.objects
    if not tag_ids:
        return Q()
    if match == TAG_ALL:
        condition = Q()
        for tag_id in sorted(set(tag_ids)):
            condition &= Q(pk__in=through.filter(tag_id=tag_id).values("opportunity_id"))
        return condition
    return Q(pk__in=through.filter(tag_id__in=sorted(set(tag_ids))).values("opportunity_id"))


def _bound(field: CustomField, raw: str):
    if field.field_type == CustomFieldType.DATE:
        parsed = parse_date(raw)
        if parsed is None:
            raise CustomFilterError(f"{field.name}: enter a date like 2026-12-31.")
        return parsed
    try:
        number = Decimal(raw.replace(",", "").replace("$", "").strip())
    except InvalidOperation:
        raise CustomFilterError(f"{field.name}: enter a number.") from None
    if not number.is_finite() or abs(number) >= Decimal("1e14"):
        raise CustomFilterError(f"{field.name}: that number is out of range.")
    return number


def custom_field_condition(field: CustomField, value: str = "", low: str = "", high: str = "") -> Q:
    """Deals whose value of `field` equals / lies in [low, high] / contains the text.

    Numbers, money and dates: `value` is equality, `low`/`high` a range (either end
    open). Text, URL and choices: `value` is a case-insensitive "contains" (a multiple
    choice holds its options one per line, so "contains" finds one option). Checkbox:
    yes / no ("no" includes deals without a value). Raises CustomFilterError on a value
    that does not fit the type; an empty filter is no condition.
    """
    value, low, high = value.strip(), low.strip(), high.strip()
    values = CustomFieldValue.objects.filter(field=field)
    kind = field.field_type
    if kind in RANGE_TYPES:
        column = "date" if kind == CustomFieldType.DATE else "number"
        if value:
            values = values.filter(**{column: _bound(field, value)})
        else:
            if not low and not high:
                return Q()
            if low:
                values = values.filter(**{f"{column}__gte": _bound(field, low)})
            if high:
                values = values.filter(**{f"{column}__lte": _bound(field, high)})
    elif kind == CustomFieldType.CHECKBOX:
        if not value:
            return Q()
        word = value.lower()
        if word in {"yes", "true", "1", "on"}:
            values = values.filter(flag=True)
        elif word in {"no", "false", "0", "off"}:
            return ~Q(pk__in=values.filter(flag=True).values("opportunity_id"))
        else:
            raise CustomFilterError(f"{field.name}: choose yes or no.")
    else:
        if not value:
            return Q()
        # icontains escapes % and _ (they match themselves). `text <> ''` changes no
        # match (a non-empty pattern needs text) and lets PostgreSQL without pg_trgm
        # read the field's text rows only (migration 0012, which explains the indexes).
        values = values.filter(text__icontains=value).exclude(text="")
    return Q(pk__in=values.values("opportunity_id"))


def input_type(field: CustomField | None) -> str:
    if field is None:
        return "text"
    if field.field_type == CustomFieldType.DATE:
        return "date"
    if field.field_type in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
        return "number"
    return "text"


class CustomFieldTagFilters(django_filters.FilterSet):
    """Filters added to the manager list: `tag` (ids, repeated) with `tag_match`, and one
    custom field `cf` (its key) with `cf_value`, or `cf_min` / `cf_max` for a range.

    The active custom fields and the tags are read once when the filterset is made,
    filtered or not, so a filter adds no query: it only adds `pk IN (…)` conditions.
    """

    tag = django_filters.MultipleChoiceFilter(method="filter_tags", label="Tags")
    tag_match = django_filters.ChoiceFilter(
        choices=TAG_MATCH_CHOICES, method="filter_nothing", label="Tags match"
    )
    cf = django_filters.ChoiceFilter(method="filter_custom_field", label="Custom field")
    # Bounded: SQLite refuses LIKE patterns past 50,000 bytes.
    cf_value = django_filters.CharFilter(method="filter_nothing", label="Value", max_length=200)
    cf_min = django_filters.CharFilter(method="filter_nothing", label="From", max_length=40)
    cf_max = django_filters.CharFilter(method="filter_nothing", label="To", max_length=40)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.custom_fields = list(
            CustomField.objects.filter(is_active=True).order_by("position", "id")
        )
        self.tag_options = list(Tag.objects.order_by("name", "id"))
        self.filters["tag"].extra["choices"] = [(str(tag.pk), tag.name) for tag in self.tag_options]
        self.filters["cf"].extra["choices"] = [(f.key, f.name) for f in self.custom_fields]

    def filter_nothing(self, queryset, name, value):
        return queryset  # read by the filter it belongs with

    def filter_tags(self, queryset, name, values):
        match = self.form.cleaned_data.get("tag_match") or TAG_ANY
        return queryset.filter(tags_condition([int(pk) for pk in values], match))

    def filter_queryset(self, queryset):
        # Checked before the filters run: a bad value becomes a form error (shown as
        # "Some filters were ignored") and no condition.
        self._custom_condition = Q()
        field = self.custom_field
        if field is not None:
            data = self.form.cleaned_data
            try:
                self._custom_condition = custom_field_condition(
                    field,
                    data.get("cf_value") or "",
                    data.get("cf_min") or "",
                    data.get("cf_max") or "",
                )
            except CustomFilterError as exc:
                self.form.add_error("cf_value", str(exc))
        return super().filter_queryset(queryset)

    def filter_custom_field(self, queryset, name, key):
        return queryset.filter(self._custom_condition)

    @property
    def custom_field(self) -> CustomField | None:
        key = self._cleaned().get("cf")
        return next((f for f in self.custom_fields if f.key == key), None) if key else None

    @property
    def custom_field_is_range(self) -> bool:
        field = self.custom_field
        return field is not None and field.field_type in RANGE_TYPES

    @property
    def custom_field_input(self) -> str:
        return input_type(self.custom_field)

    @property
    def selected_tags(self) -> list[str]:
        return [str(pk) for pk in self._cleaned().get("tag") or []]

    @property
    def tags_match(self) -> str:
        return self._cleaned().get("tag_match") or TAG_ANY

    def _cleaned(self) -> dict:
        # Valid or not, the fields that passed validation are in cleaned_data.
        self.form.is_valid()
        return getattr(self.form, "cleaned_data", {})
