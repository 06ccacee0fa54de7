"""CSV export of a filtered, visible set of opportunities, streamed row by row.

Rows come from the database in chunks (`iterator(chunk_size=...)`, a server-side cursor on
PostgreSQL) as plain tuples, and each is written out as soon as it is read, so memory
stays flat whatever the number of rows.
"""

import csv
from collections.abc import Iterator
from datetime import datetime

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


class _Echo:
    """A file-like object whose write() hands the line back, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat(timespec="seconds")
    text = str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_lines(queryset: QuerySet[Opportunity]) -> Iterator[str]:
    """The header, then one CSV line per opportunity, in the queryset's order."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    now = timezone.now()
    rows = queryset.values_list(*(field for _, field in COLUMNS)).iterator(chunk_size=CHUNK_SIZE)
    for row in rows:
        created, closed = row[_CREATED], row[_CLOSED]
        days_open = ((closed or now) - created).days if created else ""
        yield writer.writerow([*map(_cell, row), days_open])


def export_response(queryset: QuerySet[Opportunity], *, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(queryset), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Reverse proxies must not buffer a large download before sending it on.
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


def export_filename() -> str:
    return f"opportunities-{timezone.localdate().isoformat()}.csv"
