"""Custom field values: parsing what people and files type into the typed columns.

One parser for the record form, the import and the API, so "1,234.50" or "12/31/2026"
means the same everywhere and a bad value gets the same message.
"""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from opportunities.models import CustomField, CustomFieldType, CustomFieldValue

DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%d.%m.%Y")
TRUE_WORDS = {"1", "true", "yes", "y", "on", "x", "checked"}
FALSE_WORDS = {"0", "false", "no", "n", "off", ""}
MAX_TEXT = {CustomFieldType.TEXT: 255, CustomFieldType.URL: 2000, CustomFieldType.LONG_TEXT: 10000}
NUMBER_LIMIT = Decimal("1e14")


def _number(raw, field: CustomField) -> Decimal:
    text = str(raw).strip().replace(",", "").replace("$", "").replace(" ", "")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValidationError(f"{field.name}: enter a number.") from None
    if not number.is_finite() or abs(number) >= NUMBER_LIMIT:
        raise ValidationError(f"{field.name}: that number is out of range.")
    return number.quantize(
        Decimal("0.01") if field.field_type == CustomFieldType.MONEY else Decimal("0.0001")
    )


def parse_date(raw) -> date | None:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    for pattern in DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def _choices(raw, field: CustomField) -> list[str]:
    if isinstance(raw, list | tuple):
        picked = [str(item).strip() for item in raw]
    else:
        separator = ";" if ";" in str(raw) else ","
        picked = [part.strip() for part in str(raw).split(separator)]
    picked = [item for item in picked if item]
    allowed = {option.lower(): option for option in field.choices}
    unknown = [item for item in picked if item.lower() not in allowed]
    if unknown:
        raise ValidationError(
            f"{field.name}: “{unknown[0][:50]}” is not one of {', '.join(field.choices)}."
        )
    return [allowed[item.lower()] for item in picked]


def parse_value(field: CustomField, raw):
    """The stored form of `raw` for `field` (None when empty); ValidationError if bad."""
    if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []:
        if field.required:
            raise ValidationError(f"{field.name} is required.")
        return None
    kind = field.field_type
    if kind in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
        return _number(raw, field)
    if kind == CustomFieldType.DATE:
        parsed = parse_date(raw)
        if parsed is None:
            raise ValidationError(f"{field.name}: enter a date like 2026-12-31 or 12/31/2026.")
        return parsed
    if kind == CustomFieldType.CHECKBOX:
        if isinstance(raw, bool):
            return raw
        word = str(raw).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValidationError(f"{field.name}: answer yes or no.")
    if kind == CustomFieldType.SINGLE_CHOICE:
        picked = _choices([raw] if not isinstance(raw, list | tuple) else raw, field)
        if len(picked) != 1:
            raise ValidationError(f"{field.name}: choose one option.")
        return picked[0]
    if kind == CustomFieldType.MULTIPLE_CHOICE:
        return _choices(raw, field) or None
    text = str(raw).strip()
    if len(text) > MAX_TEXT.get(kind, 255):
        raise ValidationError(f"{field.name}: at most {MAX_TEXT.get(kind, 255)} characters.")
    if kind == CustomFieldType.URL:
        try:
            URLValidator(schemes=["http", "https"])(text)
        except ValidationError:
            raise ValidationError(f"{field.name}: enter a full web address (https://…).") from None
    return text


def value_of(stored: CustomFieldValue):
    """The Python value a stored row holds, in the field's type."""
    return typed_value(
        stored.field.field_type, stored.text, stored.number, stored.date, stored.flag
    )


def typed_value(kind: str, text: str, number, day, flag):
    """`value_of` from the row's columns (for reads that skip building model objects)."""
    if kind in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
        return number
    if kind == CustomFieldType.DATE:
        return day
    if kind == CustomFieldType.CHECKBOX:
        return flag
    if kind == CustomFieldType.MULTIPLE_CHOICE:
        return [item for item in text.split("\n") if item]
    return text


def columns_for(field: CustomField, value) -> dict:
    """The typed columns of a CustomFieldValue row holding `value`."""
    columns = {"text": "", "number": None, "date": None, "flag": None}
    kind = field.field_type
    if kind in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
        columns["number"] = value
    elif kind == CustomFieldType.DATE:
        columns["date"] = value
    elif kind == CustomFieldType.CHECKBOX:
        columns["flag"] = value
    elif kind == CustomFieldType.MULTIPLE_CHOICE:
        columns["text"] = "\n".join(value)
    else:
        columns["text"] = value
    return columns


def fields_for_pipeline(pipeline_id: int) -> list[CustomField]:
    """Active fields that apply to the pipeline (no pipelines chosen = all), in order."""
    return [
        field
        for field in CustomField.objects.filter(is_active=True).prefetch_related("pipelines")
        if not field.pipelines.all() or any(p.pk == pipeline_id for p in field.pipelines.all())
    ]
