"""The event log: append in the writer's transaction, read "events after id N".

Readers keep a cursor (the last id they handled) and ask for what came after it. That is
only safe if ids become visible in increasing order. SQLite has one writer at a time, so
they do. On PostgreSQL a sequence hands out ids when rows are inserted, not when they
commit: a transaction holding id 10 could commit after one holding id 11, and a reader
that saw 11 would skip 10 for ever. So writers take one transaction-scoped advisory lock
just before inserting their events (the last statement of every service): ids are handed
out and committed one transaction at a time, and a reader never sees a gap that fills in
later. The lock is held only from the insert to the commit.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from opportunities.models import OpportunityEvent
from opportunities.services.rows import execute_all, insert_statements

# Any constant shared by all writers; "EVENTS" in ASCII.
_APPEND_LOCK = 0x4556454E5453
_MAX_READ = 1000


def events_append(events: list[OpportunityEvent]) -> None:
    """Insert events in the caller's transaction. Call it last, just before the commit."""
    events_append_statements(insert_statements(OpportunityEvent, events))


def events_append_statements(statements: list[tuple[str, list]]) -> None:
    """`events_append` for INSERTs built beforehand (`rows.insert_statements`)."""
    if not statements:
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])
    execute_all(statements)


def events_after(cursor: int, limit: int = 100) -> list[OpportunityEvent]:
    """Events with an id above `cursor`, oldest first, at most `limit` (≤ 1000)."""
    limit = max(1, min(int(limit), _MAX_READ))
    return list(OpportunityEvent.objects.filter(id__gt=cursor).order_by("id")[:limit])


def last_event_id() -> int:
    return OpportunityEvent.objects.aggregate(last=Max("id"))["last"] or 0


def events_prune(*, days: int | None = None) -> int:
    """Delete events older than the retention period; returns how many went."""
    days = settings.EVENT_RETENTION_DAYS if days is None else days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = OpportunityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted
