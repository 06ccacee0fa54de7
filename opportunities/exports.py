"""CSV export of a filtered, visible set of opportunities, streamed row by row.

Rows come from the database in chunks (`iterator(chunk_size=...)`, a server-side cursor on
PostgreSQL) as plain tuples, and each is written out as soon as it is read, so memory
stays flat whatever the number of rows.
"""

import csv
import io
from collections.abc import Iterator

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from opportunities.models import Opportunity

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
HEADER = [*(header for header, _ in COLUMNS), "days_open"]
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


def csv_lines(queryset: QuerySet[Opportunity]) -> Iterator[str]:
    """The header, then the rows in the queryset's order, as CSV text in pieces."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    # The header goes out before any query, so the download starts at once.
    yield buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()

    converters = _converters(timezone.get_current_timezone())
    now = timezone.now()
    rows = queryset.values_list(*(field for _, field in COLUMNS)).iterator(chunk_size=CHUNK_SIZE)
    for row in rows:
        created, closed = row[_CREATED], row[_CLOSED]
        days_open = ((closed or now) - created).days if created else ""
        writer.writerow(
            [*(convert(value) for convert, value in zip(converters, row, strict=True)), days_open]
        )
        if buffer.tell() >= PIECE_SIZE:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def export_response(queryset: QuerySet[Opportunity], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Reverse proxies must not buffer a large download before sending it on.
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


def export_filename() -> str:
    return f"opportunities-{timezone.localdate().isoformat()}.csv"
