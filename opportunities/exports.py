"""CSV export of a filtered, visible set of opportunities, streamed row by row.

Rows come from the database in chunks (`iterator(chunk_size=...)`, a server-side cursor on
PostgreSQL) as plain tuples, and each is written out as soon as it is read, so memory
stays flat whatever the number of rows.

Tags and custom field values come in the same query (a correlated subquery per custom
field on its unique (opportunity, field) index, the tag names aggregated per deal), so an
export is one query whatever its size: one column per active custom field (headed by its
key, as the importer and the API name it) and a `tags` column ("a; b").
"""

import csv
import io
from collections.abc import Iterator
from decimal import Decimal

from django.db.models import OuterRef, QuerySet, StringAgg, Subquery, Value
from django.http import StreamingHttpResponse
from django.utils import timezone

from opportunities.models import CustomField, CustomFieldType, CustomFieldValue, Opportunity

CHUNK_SIZE = 2000

# (header, field read from the database). The headers are what the importer understands,
# so an exported file can be edited in a spreadsheet and imported back.
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("contact", "contact__name"),
    ("contact_email", "contact__email"),
    ("contact_phone", "contact__phone"),
    ("company", "contact__company"),
    ("pipeline", "pipeline__name"),
    ("stage", "stage__name"),
    ("status", "status"),
    ("value", "value"),
    ("owner", "assigned_to__username"),
    ("source", "source"),
    ("lost_reason", "lost_reason__name"),
    ("created", "created_at"),
    ("closed", "closed_at"),
]
TAGS_HEADER = "tags"
HEADER = [*(header for header, _ in COLUMNS), "days_open", TAGS_HEADER]
_CREATED = [field for _, field in COLUMNS].index("created_at")
_CLOSED = [field for _, field in COLUMNS].index("closed_at")
# A spreadsheet runs a cell starting with one of these as a formula ("CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Lines are sent in pieces of about this size: one write per line would mean 100,000
# tiny socket writes for a large export.
PIECE_SIZE = 64 * 1024


def _text(value) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _number(value) -> str:
    return "" if value is None else str(value)


def _converters(tz) -> list:
    def moment(value) -> str:
        return "" if value is None else value.astimezone(tz).isoformat(timespec="seconds")

    by_field = {"id": _number, "value": _number, "created_at": moment, "closed_at": moment}
    return [by_field.get(field, _text) for _, field in COLUMNS]


TAG_SEPARATOR = "; "
_COLUMN_OF = {
    CustomFieldType.NUMBER: "number",
    CustomFieldType.MONEY: "number",
    CustomFieldType.DATE: "date",
    CustomFieldType.CHECKBOX: "flag",
}


def export_custom_fields() -> list[CustomField]:
    return list(CustomField.objects.filter(is_active=True).order_by("position", "id"))


def _custom_cell(field: CustomField):
    kind = field.field_type

    def cell(value) -> str:
        if value is None or value == "":
            return ""
        if kind == CustomFieldType.MONEY:
            return str(value.quantize(Decimal("0.01")))
        if kind == CustomFieldType.NUMBER:
            return format(value.normalize(), "f")
        if kind == CustomFieldType.DATE:
            return value.isoformat()
        if kind == CustomFieldType.CHECKBOX:
            return "yes" if value else "no"
        if kind == CustomFieldType.MULTIPLE_CHOICE:
            return _text(TAG_SEPARATOR.join(item for item in value.split("\n") if item))
        return _text(value)

    return cell


def _tag_cell(names) -> str:
    if not names:
        return ""
    return _text(TAG_SEPARATOR.join(sorted(names.split("\n"), key=str.lower)))


def _with_tags_and_custom_values(queryset, fields: list[CustomField]):
    tag_names = (
        Opportunity.tags.through.objects.filter(opportunity_id=OuterRef("pk"))
        .order_by()
        .values("opportunity_id")
        # Newline-separated (a tag name never holds one), sorted here: SQLite before
        # 3.44 cannot order inside an aggregate.
        .annotate(names=StringAgg("tag__name", Value("\n")))
        .values("names")
    )
    annotations = {"export_tags": Subquery(tag_names)}
    for field in fields:
        value = CustomFieldValue.objects.filter(opportunity_id=OuterRef("pk"), field_id=field.pk)
        column = _COLUMN_OF.get(field.field_type, "text")
        annotations[f"export_cf_{field.pk}"] = Subquery(value.values(column)[:1])
    return queryset.annotate(**annotations), list(annotations)


def csv_lines(
    queryset: QuerySet[Opportunity], custom_fields: list[CustomField] = ()
) -> Iterator[str]:
    """The header, then the rows in the queryset's order, as CSV text in pieces.

    `custom_fields`: the fields to write a column for (the caller reads them, so the
    header still goes out before any query).
    """
    custom_fields = list(custom_fields)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*HEADER, *(field.key for field in custom_fields)])
    # The header goes out before any query, so the download starts at once.
    yield buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()

    converters = _converters(timezone.get_current_timezone())
    now = timezone.now()
    queryset, extra = _with_tags_and_custom_values(queryset, custom_fields)
    converters += [_tag_cell] + [_custom_cell(field) for field in custom_fields]
    fields = [*(field for _, field in COLUMNS), *extra]
    rows = queryset.values_list(*fields).iterator(chunk_size=CHUNK_SIZE)
    base = len(COLUMNS)
    for row in rows:
        created, closed = row[_CREATED], row[_CLOSED]
        days_open = ((closed or now) - created).days if created else ""
        cells = [convert(value) for convert, value in zip(converters, row, strict=True)]
        writer.writerow([*cells[:base], days_open, *cells[base:]])
        if buffer.tell() >= PIECE_SIZE:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def export_response(
    queryset: QuerySet[Opportunity], *, filename: str, custom_fields=None
) -> StreamingHttpResponse:
    if custom_fields is None:
        custom_fields = export_custom_fields()
    response = StreamingHttpResponse(
        csv_lines(queryset, custom_fields), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Reverse proxies must not buffer a large download before sending it on.
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


def export_filename() -> str:
    return f"opportunities-{timezone.localdate().isoformat()}.csv"
