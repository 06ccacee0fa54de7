import json

from django.core.management.base import BaseCommand

from opportunities.events import events_after


class Command(BaseCommand):
    help = "Print the event log after an id, one JSON object per line (for operators)."

    def add_arguments(self, parser):
        parser.add_argument("--after", type=int, default=0, help="Last event id already seen.")
        parser.add_argument("--limit", type=int, default=1000, help="At most this many.")

    def handle(self, *args, after, limit, **options):
        cursor, left = after, limit
        while left > 0:
            batch = events_after(cursor, min(left, 1000))
            if not batch:
                break
            for event in batch:
                line = {
                    "id": event.pk,
                    "type": event.type,
                    "opportunityId": str(event.opportunity_id),
                    "pipelineId": str(event.pipeline_id) if event.pipeline_id else None,
                    "actorId": str(event.actor_id) if event.actor_id else None,
                    "createdAt": event.created_at.isoformat(),
                    "payload": event.payload,
                }
                self.stdout.write(json.dumps(line, sort_keys=True))
            cursor, left = batch[-1].pk, left - len(batch)
