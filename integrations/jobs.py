"""Periodic jobs (settings.PERIODIC_JOBS)."""

from django.conf import settings


def prune_events() -> int:
    from opportunities.events import events_prune

    return events_prune(days=getattr(settings, "EVENT_RETENTION_DAYS", 30))
