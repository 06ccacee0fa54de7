"""The event pump: feeds the event log to its consumers and starts periodic jobs.

Each consumer in settings.EVENT_CONSUMERS (a dotted path to `consume(events) -> None`)
has its own cursor (EventCursor, by that path). One round reads the events after the
cursor, calls the consumer and moves the cursor, all in one transaction: what the
consumer enqueues (tasks are rows of the same database) commits with the cursor or not
at all, so a pump that dies loses nothing and repeats nothing. The cursor row is locked
for the round, so several pumps (on PostgreSQL) never hand the same events out twice.

Run it with `manage.py pump_events` (started by `make run`); tests call `pump_once()`.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from integrations.models import EventCursor, PeriodicJobRun

logger = logging.getLogger(__name__)
BATCH = 100


def _pump_consumer(path: str, limit: int) -> int:
    from opportunities.events import events_after

    consume = import_string(path)
    with transaction.atomic():
        cursor, _ = EventCursor.objects.get_or_create(name=path)
        cursor = EventCursor.objects.select_for_update().get(pk=cursor.pk)
        events = events_after(cursor.last_id, limit)
        if not events:
            return 0
        consume(events)
        cursor.last_id = events[-1].pk
        cursor.updated_at = timezone.now()
        cursor.save(update_fields=["last_id", "updated_at"])
        return len(events)


def pump_once(*, limit: int = BATCH) -> int:
    """One round for every consumer; returns how many events were handed out."""
    handled = 0
    for path in settings.EVENT_CONSUMERS:
        try:
            handled += _pump_consumer(path, limit)
        except Exception:
            # One broken consumer must not stop the others; it retries next round.
            logger.exception("Event consumer %s failed; its cursor did not move", path)
    return handled


def start_due_jobs(now=None) -> list[str]:
    """Enqueue each periodic job whose interval has passed (claimed once across pumps)."""
    from integrations.tasks import run_periodic_job

    now = now or timezone.now()
    started = []
    for path, interval in settings.PERIODIC_JOBS:
        with transaction.atomic():
            run, created = PeriodicJobRun.objects.get_or_create(
                name=path, defaults={"last_run_at": now}
            )
            due = created or PeriodicJobRun.objects.filter(
                pk=run.pk, last_run_at__lte=now - timedelta(seconds=interval)
            ).update(last_run_at=now)
            if due:
                run_periodic_job.enqueue(path)
                started.append(path)
    return started


def pump_forever(*, interval: float = 0.5, stop=lambda: False) -> None:
    import time

    last_jobs = 0.0
    while not stop():
        handled = pump_once()
        if time.monotonic() - last_jobs > 5:
            start_due_jobs()
            last_jobs = time.monotonic()
        if handled < BATCH:
            time.sleep(interval)
