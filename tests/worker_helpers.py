"""Running the task worker inside a test (what `make run`'s db_worker does, then stop)."""

from unittest import mock

from django.core.management import call_command

from integrations.pump import pump_once


def run_worker() -> None:
    """`db_worker --batch`: run every queued job that is due, then return.

    The worker closes "old" connections between jobs; inside a test's transaction that
    would close the test's own connection (PostgreSQL), so that step is skipped here.
    """
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("db_worker", "--batch", "--no-startup-delay", "--interval", "0", verbosity=0)


def pump_and_work() -> None:
    pump_once()
    run_worker()
