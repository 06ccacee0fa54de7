import signal

from django.core.management.base import BaseCommand

from integrations.pump import pump_forever


class Command(BaseCommand):
    help = (
        "Feed new events of the event log to settings.EVENT_CONSUMERS (webhooks, automation) "
        "and start settings.PERIODIC_JOBS when due. Runs until stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")

    def handle(self, *args, interval, **options):
        stopping = []

        def stop(*_):
            stopping.append(True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Pumping events every {interval} s; Ctrl-C stops.")
        pump_forever(interval=min(max(interval, 0.05), 5.0), stop=lambda: bool(stopping))
