"""Automation throughput and the stale check's cost, on a throwaway SQLite database.

    .venv/bin/python scripts/bench_automation.py [--events 10000] [--deals 100000]

1. 20 enabled rules (5 of each: enters a stage, status becomes, value changed, owner
   changed; 4 of the "enters a stage" ones create a task). `--events` stage, status,
   value and owner events over 1,000 deals go through `consume` (the pump's part: queue
   runs) and `run_pending` (the worker's part: run the actions through the services).
   Prints events/s for each part and for both.
2. `--deals` open deals; the stale check with two stale rules: queries and time when
   nothing is new (the steady state every 15 minutes), the SQL plan of its candidate
   query, then the time when 1% of the deals went stale at once.
3. With `manage.py pump_events` and `manage.py db_worker --interval 0.5` running (as in
   `make run`): from a move into a stage with a "create a task" rule to the task in the
   database, median of 10 moves.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=100_000)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="bench-automation-")
    os.environ["SQLITE_PATH"] = str(Path(folder) / "db.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    os.environ["AXES_ENABLED"] = "0"
    # Production-like: no per-query logging (DEBUG keeps every SQL string in memory).
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        throughput(args.events)
        stale(args.deals)
        latency()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def setup_world():
    from django.contrib.auth.models import Group, Permission

    from automation.models import Action, Rule, Trigger
    from opportunities.models import Contact, LostReason
    from pipelines.models import Pipeline, Stage

    User = django_user()
    manager = User.objects.create(username="bench-manager", is_active=True)
    manager.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="opportunities")
    )
    reps = [User.objects.create(username=f"bench-rep{n}") for n in range(3)]
    group = Group.objects.create(name="bench-team")
    group.user_set.add(*reps)
    pipeline = Pipeline.objects.create(name="Bench")
    stages = [Stage.objects.create(pipeline=pipeline, name=f"S{n}", position=n) for n in range(6)]
    LostReason.objects.get_or_create(name="Price")
    contact = Contact.objects.create(name="Ada Lovelace", email="ada@example.com")
    rules = []
    for n in range(5):
        rules.append(
            Rule(
                name=f"enter {n}",
                pipeline=pipeline,
                trigger=Trigger.STAGE_ENTERED,
                stage=stages[n + 1],
                acting_user=manager,
            )
        )
        rules.append(
            Rule(
                name=f"status {n}",
                trigger=Trigger.STATUS_BECAME,
                status=["won", "lost", "abandoned", "open", "won"][n],
                acting_user=manager,
            )
        )
        rules.append(Rule(name=f"value {n}", trigger=Trigger.VALUE_CHANGED, acting_user=manager))
        rules.append(Rule(name=f"owner {n}", trigger=Trigger.OWNER_CHANGED, acting_user=manager))
    Rule.objects.bulk_create(rules)
    actions = []
    for rule in Rule.objects.all():
        if rule.trigger == Trigger.STAGE_ENTERED and not rule.name.endswith("4"):
            actions.append(
                Action(rule=rule, kind="create_task", title="Follow up {deal}", due_in_days=2)
            )
        else:
            # A condition that fails: the run is queued, checked and skipped.
            rule.conditions.create(kind="value_gte", value="1000000")
            actions.append(Action(rule=rule, kind="add_note", body="never"))
    Action.objects.bulk_create(actions)
    return manager, reps, pipeline, stages, contact


def django_user():
    from django.contrib.auth import get_user_model

    return get_user_model()


def throughput(count: int) -> None:
    from django.db import connection, transaction
    from django.db.models import Count

    from automation import engine
    from automation.models import RuleRun
    from opportunities.models import Opportunity, OpportunityEvent

    _, reps, pipeline, stages, contact = setup_world()
    rng = random.Random(7)
    deals = Opportunity.objects.bulk_create(
        [
            Opportunity(
                name=f"D{n}",
                pipeline=pipeline,
                stage=stages[0],
                contact=contact,
                assigned_to=reps[n % 3],
                value=100,
                rank=f"a{n:06d}",
            )
            for n in range(1000)
        ]
    )
    events = []
    for n in range(count):
        deal = deals[rng.randrange(len(deals))]
        kind = n % 4
        if kind == 0:
            stage = rng.choice(stages)
            event = (
                "OpportunityStageUpdate",
                {"pipelineStageId": {"old": stages[0].pk, "new": stage.pk}},
            )
        elif kind == 1:
            event = ("OpportunityStatusUpdate", {"status": {"old": "open", "new": "won"}})
        elif kind == 2:
            event = ("OpportunityMonetaryValueUpdate", {"monetaryValue": {"old": 1, "new": 2}})
        else:
            event = ("OpportunityAssignedToUpdate", {"assignedTo": {"old": None, "new": 1}})
        events.append(
            OpportunityEvent(
                type=event[0],
                opportunity_id=deal.pk,
                pipeline_id=pipeline.pk,
                payload={"opportunity": {}, "changes": event[1]},
            )
        )
    OpportunityEvent.objects.bulk_create(events, batch_size=1000)
    events = list(OpportunityEvent.objects.order_by("id"))

    started = time.perf_counter()
    for index in range(0, len(events), 100):  # the pump's batches
        with transaction.atomic():
            engine.consume(events[index : index + 100])
    queued_at = time.perf_counter()
    ran = 0
    while batch := engine.run_pending(limit=500):
        ran += batch
    finished = time.perf_counter()
    queue_s, run_s = queued_at - started, finished - queued_at
    outcomes = dict(RuleRun.objects.values_list("outcome").annotate(n=Count("id")))
    print(f"{count} events, 20 enabled rules ({connection.vendor})")
    print(f"  consume (pump):     {queue_s:6.2f} s  {count / queue_s:8.0f} events/s")
    print(
        f"  run_pending (worker): {run_s:6.2f} s  {ran} runs, {ran / run_s:6.0f} runs/s  {outcomes}"
    )
    print(f"  end to end:         {count / (queue_s + run_s):8.0f} events/s")


def stale(count: int) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from automation import engine
    from automation.models import Action, Rule, Trigger
    from opportunities.models import Opportunity

    manager = django_user().objects.get(username="bench-manager")
    pipeline_stages = list(Opportunity.objects.values_list("stage", flat=True)[:1])
    stage_id = pipeline_stages[0]
    from pipelines.models import Stage

    stage = Stage.objects.get(pk=stage_id)
    now = timezone.now()
    Opportunity.objects.bulk_create(
        [
            Opportunity(
                name=f"S{n}",
                pipeline=stage.pipeline,
                stage=stage,
                value=10,
                rank=f"b{n:07d}",
                stage_entered_at=now - timedelta(days=n % 20),
            )
            for n in range(count)
        ],
        batch_size=5000,
    )
    for days in (30, 60):
        rule = Rule.objects.create(
            name=f"stale {days}", trigger=Trigger.STALE, stale_days=days, acting_user=manager
        )
        Action.objects.create(
            rule=rule, kind="notify", title="{deal} is stale", recipient="user", user=manager
        )

    def quiet_check(label):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            engine.stale_check()
            elapsed = time.perf_counter() - started
        queries = len(captured.captured_queries)
        print(f"  nothing new, {label}: {queries} queries, {elapsed * 1000:.0f} ms")
        rule = Rule.objects.get(name="stale 30")
        print("    plan:", " | ".join(engine.stale_candidates(rule).explain().splitlines()))

    open_deals = Opportunity.objects.filter(status="open").count()
    print(f"stale check over {open_deals} open deals, 2 stale rules")
    quiet_check("as migrated")
    with connection.cursor() as cursor:  # the index proposed to opportunities/models.py
        cursor.execute(
            "CREATE INDEX bench_open_since ON opportunities_opportunity (status, stage_entered_at)"
        )
        cursor.execute("ANALYZE")
    quiet_check("with an index on (status, stage_entered_at)")
    stale_ids = list(
        Opportunity.objects.filter(name__startswith="S").values_list("pk", flat=True)[
            : count // 100
        ]
    )
    Opportunity.objects.filter(pk__in=stale_ids).update(stage_entered_at=now - timedelta(days=45))
    started = time.perf_counter()
    handled = engine.stale_check()
    print(
        f"  1% stale at once: {handled} runs in {time.perf_counter() - started:.1f} s"
        " (500 per rule per run; the rest on the next run)"
    )


def latency(trials: int = 10) -> None:
    import statistics
    import subprocess

    from django.db import close_old_connections

    from automation.models import Rule
    from opportunities.models import Opportunity, Task
    from opportunities.services.moves import opportunity_move

    manager = django_user().objects.get(username="bench-manager")
    rule = Rule.objects.get(name="enter 0")
    python = sys.executable
    workers = [
        subprocess.Popen(
            [
                python,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--interval",
                "0.5",
                "--no-startup-delay",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [python, "manage.py", "pump_events"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        # Let the pump catch up with the events of the parts above (a backlog, not latency).
        from integrations.models import EventCursor
        from opportunities.events import last_event_id

        target, waited = last_event_id(), time.perf_counter()
        while time.perf_counter() - waited < 300:
            close_old_connections()
            cursor = EventCursor.objects.filter(name="automation.engine.consume").first()
            if cursor is not None and cursor.last_id >= target:
                break
            time.sleep(0.5)
        time.sleep(2)
        deals = list(
            Opportunity.objects.filter(stage=rule.stage.pipeline.stages.get(name="S0")).exclude(
                tasks__isnull=False
            )[:trials]
        )
        times = []
        for deal in deals:
            started = time.perf_counter()
            opportunity_move(
                opportunity=deal, to_stage=rule.stage, version=deal.version, user=manager
            )
            while not Task.objects.filter(opportunity=deal).exists():
                if time.perf_counter() - started > 30:
                    break
                time.sleep(0.02)
                close_old_connections()
            times.append(time.perf_counter() - started)
        print(
            f"move -> task with the pump and worker running: median "
            f"{statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} moves"
        )
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(10)


if __name__ == "__main__":
    main()
