"""What a deal holds beside its row: tags, followers and custom field values.

Each change still writes the deal's row through `opportunity_write` (version guard,
updated_at, history, events), so a board or form holding the old version learns of it
and integrations hear of it like any other change.
"""

import re

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.functions import Lower

from opportunities.custom_fields import columns_for, fields_for_pipeline, parse_value, value_of
from opportunities.models import CustomFieldValue, Opportunity, Tag
from opportunities.services.access import ensure_may_change
from opportunities.services.changes import CUSTOM_PREFIX
from opportunities.services.writing import opportunity_write

MAX_FOLLOWERS = 10
MAX_TAGS = 20
TAG_NAME = re.compile(r"^[^<>&\"'`]{1,50}$")
# Colours given to new tags in turn (readable on white and on the dark theme).
TAG_COLOURS = ["#2563eb", "#16a34a", "#d97706", "#db2777", "#7c3aed", "#0891b2", "#dc2626"]


def clean_tag_names(names) -> list[str]:
    """Trimmed, de-duplicated (case-insensitively) tag names; refuses markup and length."""
    cleaned, seen = [], set()
    for raw in names:
        name = " ".join(str(raw).split())
        if not name:
            continue
        if not TAG_NAME.match(name):
            raise ValidationError(
                {"tags": f"“{name[:30]}”: a tag is 1–50 characters without < > & or quotes."}
            )
        if name.lower() not in seen:
            seen.add(name.lower())
            cleaned.append(name)
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({"tags": f"At most {MAX_TAGS} tags on one opportunity."})
    return cleaned


def tags_resolve(names: list[str]) -> list[Tag]:
    """Existing tags by name (any case), creating the missing ones with a colour."""
    wanted = {name.lower(): name for name in names}
    existing = {
        tag.name.lower(): tag
        for tag in Tag.objects.annotate(lower=Lower("name")).filter(lower__in=list(wanted))
    }
    count = Tag.objects.count()
    for index, (lower, name) in enumerate(wanted.items()):
        if lower not in existing:
            colour = TAG_COLOURS[(count + index) % len(TAG_COLOURS)]
            existing[lower] = Tag.objects.create(name=name, color=colour)
    return [existing[name.lower()] for name in names]


@transaction.atomic
def opportunity_set_tags(
    *, opportunity: Opportunity, user, names: list[str], version: int | None = None
) -> Opportunity:
    """Invariant: the deal's tags become exactly `names` (created when new)."""
    ensure_may_change(user, opportunity)
    tags = tags_resolve(clean_tag_names(names))
    old = sorted(opportunity.tags.values_list("name", flat=True))
    new = sorted(tag.name for tag in tags)
    if old == new:
        return opportunity
    opportunity.tags.set(tags)
    version = opportunity.version if version is None else version
    return opportunity_write(
        opportunity=opportunity, version=version, user=user, changes={}, extra={"tags": (old, new)}
    )


@transaction.atomic
def opportunity_set_followers(
    *, opportunity: Opportunity, user, followers: list, version: int | None = None
) -> Opportunity:
    """Invariants: at most 10 followers, all active users; they then see the deal."""
    ensure_may_change(user, opportunity)
    unique = list({follower.pk: follower for follower in followers}.values())
    if len(unique) > MAX_FOLLOWERS:
        raise ValidationError({"followers": f"At most {MAX_FOLLOWERS} followers per opportunity."})
    inactive = [f for f in unique if not f.is_active]
    if inactive:
        raise ValidationError({"followers": f"{inactive[0].get_username()} is deactivated."})
    old = sorted(opportunity.followers.values_list("pk", flat=True))
    new = sorted(follower.pk for follower in unique)
    if old == new:
        return opportunity
    opportunity.followers.set(unique)
    version = opportunity.version if version is None else version
    extra = {"followers": (old, new)}
    return opportunity_write(
        opportunity=opportunity, version=version, user=user, changes={}, extra=extra
    )


def follower_choices():
    return get_user_model().objects.filter(is_active=True).order_by("username")


def custom_values_of(opportunity: Opportunity) -> dict[str, object]:
    """{key: value} of the deal's custom fields that have a value."""
    rows = CustomFieldValue.objects.filter(opportunity=opportunity).select_related("field")
    return {row.field.key: value_of(row) for row in rows}


def parse_custom_values(pipeline_id: int, raw: dict, *, partial: bool) -> dict:
    """{CustomField: stored value} from {key or id: raw}; every error at once.

    Unknown keys are refused (a typo must not pass silently). With `partial`, fields
    not given are left alone; otherwise a missing required field is an error.
    """
    fields = fields_for_pipeline(pipeline_id)
    by_name = {field.key: field for field in fields} | {str(field.pk): field for field in fields}
    errors, parsed = [], {}
    for name, value in raw.items():
        field = by_name.get(str(name))
        if field is None:
            errors.append(f"“{str(name)[:40]}” is not a custom field of this pipeline.")
            continue
        try:
            parsed[field] = parse_value(field, value)
        except ValidationError as exc:
            errors.extend(exc.messages)
    if not partial:
        for field in fields:
            if field.required and field not in parsed:
                errors.append(f"{field.name} is required.")
    if errors:
        raise ValidationError({"custom_fields": errors})
    return parsed


@transaction.atomic
def opportunity_set_custom_values(
    *, opportunity: Opportunity, user, values: dict, version: int | None = None
) -> Opportunity:
    """Set custom field values ({key or id: raw value}); None/empty clears one.

    Invariants: each value is parsed by its field's type (typed columns); only fields of
    the deal's pipeline; one history row per field that changed.
    """
    ensure_may_change(user, opportunity)
    parsed = parse_custom_values(opportunity.pipeline_id, values, partial=True)
    current = {
        row.field_id: row
        for row in CustomFieldValue.objects.filter(opportunity=opportunity).select_related("field")
    }
    extra, writes, deletes = {}, [], []
    for field, value in parsed.items():
        row = current.get(field.pk)
        old = value_of(row) if row else None
        if old == value:
            continue
        extra[CUSTOM_PREFIX + field.key] = (old, value)
        if value is None:
            deletes.append(row.pk)
        else:
            writes.append(
                CustomFieldValue(opportunity=opportunity, field=field, **columns_for(field, value))
            )
    if not extra:
        return opportunity
    CustomFieldValue.objects.filter(pk__in=deletes).delete()
    CustomFieldValue.objects.bulk_create(
        writes,
        update_conflicts=True,
        unique_fields=["opportunity", "field"],
        update_fields=["text", "number", "date", "flag"],
    )
    version = opportunity.version if version is None else version
    return opportunity_write(
        opportunity=opportunity, version=version, user=user, changes={}, extra=extra
    )
