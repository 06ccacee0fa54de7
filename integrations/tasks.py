"""Jobs run by the worker (`manage.py db_worker`)."""

from django.tasks import task
from django.utils.module_loading import import_string


@task()
def deliver_webhooks(subscription_id: int, opportunity_id: int) -> int:
    from integrations.webhooks import deliver_pending

    return deliver_pending(subscription_id, opportunity_id)


@task()
def run_periodic_job(path: str):
    """One of settings.PERIODIC_JOBS, started by the pump when it is due."""
    return import_string(path)()
