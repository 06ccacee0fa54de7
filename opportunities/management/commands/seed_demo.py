"""`manage.py seed_demo`: demo users and data, safe to run again (see opportunities/demo.py)."""

import time

from django.core.management.base import BaseCommand, CommandError

from opportunities import demo


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, manager, rep, rep2; password from DEMO_PASSWORD, "
        f"default {demo.DEFAULT_PASSWORD!r}) and demo pipelines with about "
        f"{demo.DEMO_OPPORTUNITIES} opportunities. Running it again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--opportunities",
            type=int,
            metavar="N",
            help="Instead of the demo set, add N opportunities to the Sales pipeline "
            "(bulk, for benchmarks; each run adds N more).",
        )
        parser.add_argument(
            "--board-full",
            action="store_true",
            help="With --opportunities: every deal added is open and the rep's, spread "
            "evenly over the Sales stages (100 fill the board's four columns of 25 for "
            "the rep and the manager alike; the bench's small board).",
        )

    def handle(self, *args, opportunities=None, board_full=False, **options):
        if opportunities is not None and opportunities < 1:
            raise CommandError("--opportunities must be a positive number.")
        if board_full and opportunities is None:
            raise CommandError("--board-full needs --opportunities N.")
        started = time.perf_counter()
        report = demo.seed(opportunities=opportunities, board_full=board_full)
        elapsed = time.perf_counter() - started
        if report.created_users:
            self.stdout.write(f"Created users: {', '.join(report.created_users)}.")
        if opportunities is not None:
            kind = "open opportunities of the rep" if board_full else "opportunities"
            self.stdout.write(
                f"Added {report.bulk_created} {kind} to the Sales pipeline in {elapsed:.1f} s."
            )
        elif report.demo_created:
            self.stdout.write(f"Created the demo pipelines and opportunities in {elapsed:.1f} s.")
        else:
            self.stdout.write("Demo data already present; nothing to do.")
