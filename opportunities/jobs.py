"""Periodic jobs of the opportunities app (settings.PERIODIC_JOBS, started by the pump)."""

from opportunities.services.opportunities import trash_purge


def purge_trash() -> int:
    """Delete for good the deals in the trash for longer than TRASH_RETENTION_DAYS."""
    return trash_purge()
