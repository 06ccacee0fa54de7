import io
from collections import defaultdict

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from opportunities.demo import DEFAULT_PASSWORD
from opportunities.models import (
    Communication,
    Contact,
    LostReason,
    Note,
    Opportunity,
    OpportunityHistory,
    Status,
    Task,
)
from pipelines.models import Pipeline, Stage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_demo_password_from_the_shell(monkeypatch):
    # The README suggests exporting DEMO_PASSWORD for `make run`; tests expect the default.
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


SEEDED_MODELS = [
    get_user_model(),
    LostReason,
    Pipeline,
    Stage,
    Contact,
    Opportunity,
    OpportunityHistory,
    Note,
    Task,
    Communication,
]


def counts():
    return {model.__name__: model.objects.count() for model in SEEDED_MODELS}


def seed(*args):
    call_command("seed_demo", *args, stdout=io.StringIO())


@pytest.fixture
def seeded():
    seed()


def ranks_by_column(queryset):
    columns = defaultdict(list)
    for stage_id, rank in queryset.order_by("id").values_list("stage_id", "rank"):
        columns[stage_id].append(rank)
    return columns


def test_seed_demo_twice_gives_the_same_data(seeded):
    first = counts()
    names = list(Opportunity.objects.order_by("id").values_list("name", "value", "status"))
    seed()
    assert counts() == first
    assert list(Opportunity.objects.order_by("id").values_list("name", "value", "status")) == names


def test_seed_demo_creates_about_200_opportunities_in_every_status(seeded):
    assert 180 <= Opportunity.objects.count() <= 220
    assert set(Opportunity.objects.values_list("status", flat=True)) == set(Status.values)


def test_seed_demo_creates_sales_and_partnerships_pipelines(seeded):
    sales = Pipeline.objects.get(name="Sales")
    assert list(sales.stages.values_list("name", "probability")) == [
        ("Prospecting", 10),
        ("Qualification", 25),
        ("Proposal", 50),
        ("Negotiation", 75),
    ]
    assert not sales.stages.filter(rotting_days__isnull=True).exists()
    assert Pipeline.objects.get(name="Partnerships").stages.count() >= 3


def test_seed_demo_creates_lost_reasons(seeded):
    assert set(LostReason.objects.values_list("name", flat=True)) == {
        "Price",
        "Chose competitor",
        "No budget",
        "No decision",
        "Timing",
    }


def test_seed_demo_users_and_roles(seeded):
    users = {user.username: user for user in get_user_model().objects.all()}
    assert users["admin"].is_superuser and users["admin"].is_staff
    assert list(users["manager"].groups.values_list("name", flat=True)) == ["Sales manager"]
    for name in ("rep", "rep2"):
        assert list(users[name].groups.values_list("name", flat=True)) == ["Sales rep"]
        assert not users[name].has_perm("opportunities.view_all_opportunities")
    assert users["manager"].has_perm("opportunities.view_all_opportunities")
    assert all(user.first_name and user.last_name for user in users.values())
    assert all(user.check_password(DEFAULT_PASSWORD) for user in users.values())


def test_seed_demo_password_comes_from_environment(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "another-secret-42")
    seed()
    assert get_user_model().objects.get(username="rep").check_password("another-secret-42")


def test_seed_demo_keeps_invariants(seeded):
    opportunities = Opportunity.objects.all()
    assert not opportunities.exclude(stage__pipeline=F("pipeline")).exists()
    assert not opportunities.filter(status=Status.LOST, lost_reason__isnull=True).exists()
    assert not opportunities.filter(status=Status.OPEN, closed_at__isnull=False).exists()
    assert not opportunities.exclude(status=Status.OPEN).filter(closed_at__isnull=True).exists()
    for column in ranks_by_column(opportunities).values():
        assert len(set(column)) == len(column)


def test_seed_demo_history_ends_at_current_stage_and_status(seeded):
    latest = {}
    for row in OpportunityHistory.objects.order_by("at", "id"):
        latest[row.opportunity_id] = (row.to_stage_id, row.to_status)
    current = {o.pk: (o.stage_id, o.status) for o in Opportunity.objects.all()}
    assert latest == current


def test_seed_demo_tasks_include_overdue_and_done(seeded):
    today = timezone.localdate()
    assert Task.objects.filter(done_at__isnull=True, due_on__lt=today).exists()
    assert Task.objects.filter(done_at__isnull=False).exists()
    assert Note.objects.exists()
    assert Communication.objects.exists()


def test_seed_demo_bulk_creates_n_opportunities_in_sales():
    seed("--opportunities", "500")
    sales = Pipeline.objects.get(name="Sales")
    opportunities = Opportunity.objects.all()
    assert opportunities.count() == 500
    assert opportunities.filter(pipeline=sales, stage__pipeline=sales).count() == 500
    assert opportunities.values("stage").distinct().count() == 4
    assert set(opportunities.values_list("status", flat=True)) == set(Status.values)


def test_seed_demo_bulk_ranks_are_strictly_increasing_per_column():
    seed()
    seed("--opportunities", "500")
    for column in ranks_by_column(Opportunity.objects.filter(pipeline__name="Sales")).values():
        bulk_part = column[-125:]
        assert bulk_part == sorted(bulk_part)
        assert len(set(bulk_part)) == len(bulk_part)
        # Appended after the demo cards already in the column.
        assert min(bulk_part) > max(column[:-125])


def test_seed_demo_rejects_non_positive_count():
    with pytest.raises(CommandError):
        seed("--opportunities", "0")
