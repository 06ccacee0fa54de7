"""Jobs for the worker (`manage.py db_worker`)."""

import time

from django.tasks import task

# A job drains the queue for at most this long, then hands over to a fresh job, so one
# burst of events never holds a worker for ever.
DRAIN_SECONDS = 60


@task()
def run_automation() -> int:
    """Execute the automation runs the event pump queued, until none is left."""
    from automation.engine import pending_exists, run_pending

    started, handled = time.monotonic(), 0
    while batch := run_pending():
        handled += batch
        if time.monotonic() - started > DRAIN_SECONDS:
            if pending_exists():
                run_automation.enqueue()
            break
    return handled
