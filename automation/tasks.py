"""Jobs for the worker (`manage.py db_worker`)."""

from django.tasks import task


@task()
def run_automation() -> int:
    """Execute the automation runs the event pump queued."""
    from automation.engine import run_pending

    return run_pending()
