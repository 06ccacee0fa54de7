"""Turning the API's string ids and headers into rows; unknown ids answer 422 or 404."""

from datetime import UTC, date, datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from opportunities.models import MAX_ID


def as_pk(value, field: str) -> int:
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and 0 < int(text) <= MAX_ID):
        raise ValidationError({field: [f"{value!r:.40} is not an id."]})
    return int(text)


def get_referenced(queryset, value, field: str, label: str):
    """The row an id in the body points at, or 422 naming the field."""
    row = queryset.filter(pk=as_pk(value, field)).first()
    if row is None:
        raise ValidationError({field: [f"No such {label}."]})
    return row


def user_by_id(value, field: str = "assignedTo"):
    return get_referenced(get_user_model().objects.filter(is_active=True), value, field, "user")


def version_from(request, body_version: int | None) -> int | None:
    """`version` in the body, else an If-Match header (`"3"` or `W/"3"`)."""
    if body_version is not None:
        return body_version
    header = request.headers.get("If-Match")
    if not header or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise ValidationError({"If-Match": ["Send the opportunity's version, e.g. If-Match: 3."]})
    return int(text)


def parse_day(value: str | None, field: str) -> date | None:
    """HighLevel sends mm-dd-yyyy; ISO yyyy-mm-dd works too."""
    if not value:
        return None
    for pattern in ("%m-%d-%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), pattern).date()
        except ValueError:
            continue
    raise ValidationError({field: ["Use a date like 12-31-2026 (mm-dd-yyyy) or 2026-12-31."]})


def ms_to_datetime(value: int, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValidationError({field: ["Not a time in milliseconds since 1970."]}) from exc


def users_by_ids(values, field: str = "followers") -> list:
    """Active users by id, in one query; 422 naming the field for an unknown one."""
    pks = list(dict.fromkeys(as_pk(value, field) for value in values))
    users = {user.pk: user for user in get_user_model().objects.filter(is_active=True, pk__in=pks)}
    missing = [pk for pk in pks if pk not in users]
    if missing:
        raise ValidationError({field: [f"No such user: {missing[0]}."]})
    return [users[pk] for pk in pks]


def custom_values(items) -> dict:
    """HighLevel's [{"id" or "key", "field_value"}] as {key or id: raw value}."""
    values: dict = {}
    for index, item in enumerate(items):
        name = item.id if item.id not in (None, "") else item.key
        if name in (None, ""):
            raise ValidationError({f"customFields.{index}": ["Send the field's id or key."]})
        name = str(name).strip().removeprefix("opportunity.")
        given = item.model_fields_set
        value = item.field_value if "field_value" in given else item.fieldValue
        values[name] = value
    return values
