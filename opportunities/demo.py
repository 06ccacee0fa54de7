"""Demo data for `manage.py seed_demo`: users, lost reasons, two pipelines, and
about 200 opportunities with contacts, notes, tasks, communications and history.

Everything comes from one seeded random.Random, so a fresh database always gets the
same data (dates are relative to the day of seeding). Rows are written with
bulk_create inside one transaction: the demo is a fixture, not user input, and it
keeps the invariants itself (stage in pipeline, lost reason iff lost, closed_at iff
closed, ranks increasing per column). Its history comes from the services' own diff
(`history_rows`, replaying each deal's past) and its events from `changes_record`.
"""

import copy
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from opportunities import ranking
from opportunities.models import (
    CLOSED_STATUSES,
    Communication,
    CommunicationKind,
    Contact,
    LostReason,
    Note,
    Opportunity,
    OpportunityHistory,
    Status,
    Task,
)
from opportunities.services.changes import changes_record, history_rows, snapshot
from pipelines.models import Pipeline, Stage

DEFAULT_PASSWORD = "pipeline-demo"
SEED = 20261123
DEMO_OPPORTUNITIES = 200
BATCH_SIZE = 2000
RANK_WIDTH = 6

LOST_REASONS = ["Price", "Chose competitor", "No budget", "No decision", "Timing"]
SOURCES = ["Website", "Referral", "Cold call", "LinkedIn", "Event", "Partner"]
# name, probability (%), rotting days
PIPELINES = {
    "Sales": [
        ("Prospecting", 10, 14),
        ("Qualification", 25, 14),
        ("Proposal", 50, 10),
        ("Negotiation", 75, 7),
    ],
    "Partnerships": [
        ("Intro", 20, 21),
        ("Evaluation", 50, 30),
        ("Contract", 80, 30),
    ],
}
# username, first name, last name, group (None: superuser)
USERS = [
    ("admin", "Morgan", "Blake", None),
    ("manager", "Dana", "Whitfield", "Sales manager"),
    ("rep", "Riley", "Chen", "Sales rep"),
    ("rep2", "Sam", "Okafor", "Sales rep"),
]

FIRST_NAMES = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Sofia", "Mateo",
    "Chloe", "Arjun", "Hannah", "Yuki", "Fatima", "Diego", "Grace", "Kwame", "Ingrid", "Omar",
    "Priya", "Jonas", "Elena", "Tomás", "Aisha", "Felix", "Nora", "Hugo", "Leila", "Marcus",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "García", "Müller", "Rossi", "Nguyen", "Kowalski", "Johansson", "Patel", "Silva",
    "Dubois", "Tanaka", "O'Brien", "Novak", "Haddad", "Jensen", "Moreau", "Costa", "Fischer",
    "Ibrahim", "Walsh", "Bauer", "Lindqvist", "Mensah", "Ortiz", "Kaur",
]  # fmt: skip
COMPANIES = [
    "Acme Logistics", "Brightline Dental", "Cobalt Robotics", "Dunmore Estates", "Evergreen Foods",
    "Fjord Analytics", "Granite Insurance", "Harbor & Vine", "Ironbark Construction",
    "Juniper Health", "Keystone Legal", "Lumen Solar", "Meridian Hotels", "Northwind Traders",
    "Orchard Schools", "Pinnacle Fitness", "Quarry Lane Media", "Redwood Clinics",
    "Silverline Freight", "Tidewater Marine", "Umber Architects", "Vantage Retail",
    "Willow Creek Farms", "Xylo Software", "Yellowfin Travel", "Zenith Manufacturing",
    "Atlas Pharmacies", "Beacon Credit Union", "Cedar & Stone", "Driftwood Studios",
]  # fmt: skip
PRODUCTS = [
    "CRM rollout", "Annual licence", "Support renewal", "Onboarding package", "Data migration",
    "Team expansion", "Pilot project", "Enterprise upgrade", "Integration work",
    "Training days", "Multi-site licence", "Analytics add-on",
]  # fmt: skip
PARTNER_DEALS = ["Reseller agreement", "Referral partnership", "Co-marketing", "Integration"]
NOTES = [
    "Spoke with {contact}; they want a proposal by the end of the month.",
    "Budget confirmed by their finance team.",
    "{contact} asked for two customer references in their industry.",
    "Legal is reviewing our standard terms.",
    "Demo went well; the operations lead was the most engaged.",
    "They are also talking to a competitor; price will matter.",
    "Decision expected after their board meeting.",
    "Sent the pricing sheet and a short case study.",
]
TASKS = [
    "Send proposal",
    "Follow-up call",
    "Schedule demo",
    "Prepare contract draft",
    "Check in after trial",
    "Send case study",
    "Book meeting with decision maker",
]
COMMUNICATIONS = {
    CommunicationKind.CALL: ["Intro call", "Discovery call", "Pricing questions", "Check-in"],
    CommunicationKind.EMAIL: ["Sent proposal", "Follow-up email", "Shared case study"],
    CommunicationKind.MEETING: ["On-site demo", "Contract review meeting", "Kick-off meeting"],
    CommunicationKind.MESSAGE: ["Quick question about onboarding", "Confirmed next steps"],
}
# Share of the demo opportunities in each status.
STATUS_WEIGHTS = {Status.OPEN: 60, Status.WON: 20, Status.LOST: 13, Status.ABANDONED: 7}


@dataclass
class SeedReport:
    created_users: list[str] = field(default_factory=list)
    demo_created: bool = False
    bulk_created: int = 0


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD") or DEFAULT_PASSWORD


def column_keys(count: int, *, after: str | None = None) -> list[str]:
    """`count` increasing rank keys, evenly spread; all after `after` when given.

    Keys come from ranking.key_for_index (fixed width, so short); appending to a
    column that already has cards prefixes its largest key, which keeps every new
    key greater than the existing ones.
    """
    step = max(1, ranking.BASE**RANK_WIDTH // (count + 1))
    keys = [ranking.key_for_index(index * step, RANK_WIDTH) for index in range(1, count + 1)]
    return [after + key for key in keys] if after else keys


def ensure_users(password: str) -> list[str]:
    """Create the demo users that do not exist yet; existing ones are left alone."""
    User = get_user_model()
    created = []
    # One hash for all (same known password): PBKDF2 takes about a second per call.
    password_hash = None
    for username, first_name, last_name, group_name in USERS:
        user, was_created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first_name,
                "last_name": last_name,
                "email": f"{username}@example.com",
                "is_staff": group_name is None,
                "is_superuser": group_name is None,
            },
        )
        if was_created:
            password_hash = password_hash or make_password(password)
            user.password = password_hash
            user.save(update_fields=["password"])
            if group_name:
                user.groups.add(Group.objects.get(name=group_name))
            created.append(username)
    return created


def ensure_lost_reasons() -> list[LostReason]:
    for position, name in enumerate(LOST_REASONS):
        LostReason.objects.get_or_create(name=name, defaults={"position": position})
    return list(LostReason.objects.filter(name__in=LOST_REASONS, is_active=True))


def ensure_pipelines() -> dict[str, list[Stage]]:
    stages = {}
    for position, (pipeline_name, stage_specs) in enumerate(PIPELINES.items()):
        pipeline, _ = Pipeline.objects.get_or_create(
            name=pipeline_name, defaults={"position": position}
        )
        for index, (name, probability, rotting_days) in enumerate(stage_specs):
            Stage.objects.get_or_create(
                pipeline=pipeline,
                name=name,
                defaults={
                    "position": index + 1,
                    "probability": probability,
                    "rotting_days": rotting_days,
                },
            )
        stages[pipeline_name] = list(pipeline.stages.order_by("position", "id"))
    return stages


def _contacts(rng: random.Random, count: int) -> list[Contact]:
    contacts, seen = [], set()
    now = timezone.now()
    while len(contacts) < count:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(COMPANIES)
        if (first, last, company) in seen:
            continue
        seen.add((first, last, company))
        domain = company.lower().replace(" & ", "-").replace(" ", "") + ".example"
        local = f"{first}.{last}".lower().replace("'", "")
        contacts.append(
            Contact(
                name=f"{first} {last}",
                email=f"{local}@{domain}".encode("ascii", "ignore").decode(),
                phone=f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                company=company,
                created_at=now - timedelta(days=rng.randint(30, 200)),
            )
        )
    return Contact.objects.bulk_create(contacts)


def _between(rng: random.Random, start, end):
    """A random moment in [start, end]."""
    return start + (end - start) * rng.random()


def _past_history(opportunity, path, moments, owner) -> list[OpportunityHistory]:
    """Replay the deal's past through the services' diff: created in the first stage,
    moved stage by stage, then closed (if it is)."""
    state = copy.copy(opportunity)
    state.stage, state.status, state.lost_reason = path[0], Status.OPEN, None
    rows = history_rows(before=None, after=state, user=owner, at=moments[0])
    for stage, at in zip(path[1:], moments[1:], strict=True):
        before = snapshot(state)
        state.stage = stage
        rows += history_rows(before=before, after=state, user=owner, at=at)
    if opportunity.closed_at:
        rows += history_rows(
            before=snapshot(state), after=opportunity, user=owner, at=opportunity.closed_at
        )
    return rows


@transaction.atomic
def seed_demo_data(*, rng: random.Random | None = None) -> bool:
    """The ~200 demo opportunities and everything around them, once.

    Returns False (and writes nothing) when the demo pipelines already hold data, so
    running seed_demo again never duplicates anything.
    """
    if Opportunity.objects.filter(pipeline__name__in=PIPELINES).exists():
        return False
    rng = rng or random.Random(SEED)
    User = get_user_model()
    users = {
        user.username: user for user in User.objects.filter(username__in=[u[0] for u in USERS])
    }
    owners = [users["rep"]] * 5 + [users["rep2"]] * 4 + [users["manager"], None]
    reasons = ensure_lost_reasons()
    stages_by_pipeline = ensure_pipelines()
    contacts = _contacts(rng, 120)
    now = timezone.now()
    today = timezone.localdate()

    opportunities, paths = [], []
    for index in range(DEMO_OPPORTUNITIES):
        pipeline_name = "Sales" if index % 4 else "Partnerships"
        stages = stages_by_pipeline[pipeline_name]
        status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        # Won deals reached a late stage; others stop anywhere.
        stage_index = (
            rng.randint(len(stages) - 2, len(stages) - 1)
            if status == Status.WON
            else rng.randrange(len(stages))
        )
        contact = rng.choice(contacts)
        created_at = now - timedelta(days=rng.randint(3, 150), minutes=rng.randint(0, 1439))
        # One moment per stage reached, then the close if any, all in order.
        moments = sorted(_between(rng, created_at, now) for _ in range(stage_index + 1))
        moments[0] = created_at
        closed_at = _between(rng, moments[-1], now) if status in CLOSED_STATUSES else None
        if pipeline_name == "Sales":
            name = f"{contact.company} – {rng.choice(PRODUCTS)}"
            value = Decimal(rng.randint(10, 800) * 50)
        else:
            name = f"{contact.company} – {rng.choice(PARTNER_DEALS)}"
            value = Decimal(rng.randint(0, 60) * 250)
        opportunities.append(
            Opportunity(
                name=name,
                pipeline=stages[0].pipeline,
                stage=stages[stage_index],
                status=status,
                value=value,
                source=rng.choice(SOURCES),
                contact=contact,
                assigned_to=rng.choice(owners),
                lost_reason=rng.choice(reasons) if status == Status.LOST else None,
                stage_entered_at=moments[-1],
                status_changed_at=closed_at,
                closed_at=closed_at,
                days_to_close=(closed_at - created_at).days if closed_at else None,
                expected_close_date=(
                    timezone.localdate(closed_at)
                    if closed_at
                    else today + timedelta(days=rng.randint(-20, 200))  # a few overdue
                ),
                created_at=created_at,
                updated_at=closed_at or moments[-1],
            )
        )
        paths.append((stages[: stage_index + 1], moments))

    # Newest activity on top of each column, as a rep would have arranged it.
    columns: dict[int, list[Opportunity]] = {}
    for opportunity in sorted(opportunities, key=lambda o: o.updated_at, reverse=True):
        columns.setdefault(opportunity.stage.pk, []).append(opportunity)
    for column in columns.values():
        for opportunity, key in zip(column, column_keys(len(column)), strict=True):
            opportunity.rank = key
    Opportunity.objects.bulk_create(opportunities)

    history, notes, tasks, communications = [], [], [], []
    for opportunity, (path, moments) in zip(opportunities, paths, strict=True):
        owner = opportunity.assigned_to
        history += _past_history(opportunity, path, moments, owner)
        end = opportunity.closed_at or now
        for _ in range(rng.randint(0, 3)):
            at = _between(rng, opportunity.created_at, end)
            body = rng.choice(NOTES).format(contact=opportunity.contact.name.split()[0])
            notes.append(
                Note(opportunity=opportunity, author=owner, body=body, created_at=at, updated_at=at)
            )
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(list(COMMUNICATIONS))
            occurred_at = _between(rng, opportunity.created_at, end)
            communications.append(
                Communication(
                    contact=opportunity.contact,
                    opportunity=opportunity,
                    kind=kind,
                    summary=f"{rng.choice(COMMUNICATIONS[kind])} with {opportunity.contact.name}",
                    occurred_at=occurred_at,
                    author=owner,
                    created_at=occurred_at,
                )
            )
        for _ in range(rng.randint(0, 2) if opportunity.status == Status.OPEN else 0):
            due_on = today + timedelta(days=rng.randint(-10, 21))  # some overdue
            done = due_on < today and rng.random() < 0.5
            created_at = _between(rng, opportunity.created_at, now)
            tasks.append(
                Task(
                    opportunity=opportunity,
                    title=rng.choice(TASKS),
                    due_on=due_on,
                    assigned_to=owner,
                    created_by=owner,
                    done_at=_between(rng, created_at, now) if done else None,
                    created_at=created_at,
                )
            )
    OpportunityHistory.objects.bulk_create(history, batch_size=BATCH_SIZE)
    # The deals appear in the event log as created now, as imported deals would.
    changes_record(
        user=None, items=[(None, opportunity) for opportunity in opportunities], history=False
    )
    Note.objects.bulk_create(notes, batch_size=BATCH_SIZE)
    Task.objects.bulk_create(tasks, batch_size=BATCH_SIZE)
    Communication.objects.bulk_create(communications, batch_size=BATCH_SIZE)
    return True


@transaction.atomic
def seed_bulk_opportunities(
    *, count: int, rng: random.Random | None = None, board_full: bool = False
) -> int:
    """Add `count` opportunities to the "Sales" pipeline, for benchmarks.

    Spread over its stages, the four statuses and the demo owners; ranks keep
    increasing in every column (after the cards already there). No notes, tasks,
    history or events: only what the board and the lists read (100,000 event payloads
    would cost minutes of seeding for nothing the board shows).

    `board_full`: every deal open and the rep's, so the manager and the rep see the
    same cards (with 100, 25 per column: every column of the board full, as at any
    large N), for the bench to compare a small board with the 100,000-deal one card
    for card. Being few, these are recorded as created (history row and event through
    changes_record), as the demo set is.
    """
    rng = rng or random.Random(SEED + count)
    stages = ensure_pipelines()["Sales"]
    pipeline = stages[0].pipeline
    reasons = ensure_lost_reasons()
    User = get_user_model()
    owners = [*User.objects.filter(username__in=["rep", "rep2", "manager"]).order_by("pk"), None]
    if board_full:
        owners = [User.objects.get(username="rep")]
    contacts = _contacts(rng, min(1000, max(1, count // 20)))
    now = timezone.now()
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())

    last_rank = dict(
        Opportunity.objects.filter(stage__in=stages)
        .order_by()
        .values("stage")
        .annotate(last=Max("rank"))
        .values_list("stage", "last")
    )
    per_stage = [
        count // len(stages) + (1 if i < count % len(stages) else 0) for i in range(len(stages))
    ]
    created, written = 0, []
    number = Opportunity.objects.filter(pipeline=pipeline).count()
    for stage, stage_count in zip(stages, per_stage, strict=True):
        keys = column_keys(stage_count, after=last_rank.get(stage.pk))
        for start in range(0, stage_count, BATCH_SIZE):
            batch = []
            for key in keys[start : start + BATCH_SIZE]:
                number += 1
                status = Status.OPEN if board_full else rng.choices(statuses, weights=weights)[0]
                created_at = now - timedelta(minutes=rng.randint(60, 60 * 24 * 365))
                closed_at = (
                    created_at + (now - created_at) * rng.random()
                    if status in CLOSED_STATUSES
                    else None
                )
                contact = rng.choice(contacts)
                owner = owners[0] if board_full else rng.choice(owners)
                # Ids rather than instances: model __init__ is the hot spot at 100,000 rows.
                batch.append(
                    Opportunity(
                        name=f"{contact.company} – deal {number}",
                        pipeline_id=pipeline.pk,
                        stage_id=stage.pk,
                        status=status,
                        value=Decimal(rng.randint(1, 1000) * 50),
                        source=rng.choice(SOURCES),
                        contact_id=contact.pk,
                        assigned_to_id=owner.pk if owner else None,
                        lost_reason_id=rng.choice(reasons).pk if status == Status.LOST else None,
                        rank=key,
                        stage_entered_at=created_at,
                        status_changed_at=closed_at,
                        closed_at=closed_at,
                        days_to_close=(closed_at - created_at).days if closed_at else None,
                        created_at=created_at,
                        updated_at=closed_at or created_at,
                    )
                )
            Opportunity.objects.bulk_create(batch, batch_size=BATCH_SIZE)
            created += len(batch)
            if board_full:
                written += batch
    if written:
        # The event payloads carry the contact: the instances in hand, not a query each.
        by_pk = {contact.pk: contact for contact in contacts}
        for opportunity in written:
            opportunity.contact = by_pk[opportunity.contact_id]
        changes_record(user=None, items=[(None, opportunity) for opportunity in written])
    return created


def seed(
    *, opportunities: int | None = None, password: str | None = None, board_full: bool = False
) -> SeedReport:
    """Users and lost reasons always (when missing); then the demo set, or the bulk set
    (`board_full`: all open and the rep's, see seed_bulk_opportunities)."""
    report = SeedReport()
    with transaction.atomic():
        report.created_users = ensure_users(password or demo_password())
        ensure_lost_reasons()
    if opportunities is None:
        report.demo_created = seed_demo_data()
    else:
        report.bulk_created = seed_bulk_opportunities(count=opportunities, board_full=board_full)
    return report
