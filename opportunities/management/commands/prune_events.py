from django.conf import settings
from django.core.management.base import BaseCommand

from opportunities.events import events_prune


class Command(BaseCommand):
    help = "Delete events older than EVENT_RETENTION_DAYS (or --days)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=settings.EVENT_RETENTION_DAYS)

    def handle(self, *args, days, **options):
        deleted = events_prune(days=days)
        self.stdout.write(f"Deleted {deleted} events older than {days} days.")
