"""`seed_demo --opportunities N --board-full`: the bench's small board, every column full
for the manager and the rep alike."""

import io
import re
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import (
    EventType,
    Opportunity,
    OpportunityEvent,
    OpportunityHistory,
    Status,
    TrackedField,
)
from opportunities.selectors import BOARD_PAGE_SIZE
from pipelines.models import Pipeline

pytestmark = pytest.mark.django_db

CARD = re.compile(r'<li class="card [^"]*" id="opportunity-(\d+)"[^>]* data-stage-id="(\d+)"')


@pytest.fixture(autouse=True)
def _no_demo_password_from_the_shell(monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


def seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def board_cards(username: str) -> dict[int, list[int]]:
    """The cards the user's Sales board shows, by column: {stage id: [deal ids]}."""
    browser = Client()
    browser.force_login(get_user_model().objects.get(username=username))
    sales = Pipeline.objects.get(name="Sales")
    response = browser.get(reverse("opportunities:board", args=[sales.pk]))
    assert response.status_code == 200
    columns: dict[int, list[int]] = {}
    for pk, stage in CARD.findall(response.content.decode()):
        columns.setdefault(int(stage), []).append(int(pk))
    return columns


def test_board_full_fills_every_column_for_the_manager_and_the_rep():
    output = seed("--opportunities", str(4 * BOARD_PAGE_SIZE), "--board-full")
    assert "Added 100 open opportunities of the rep to the Sales pipeline" in output
    stages = list(Pipeline.objects.get(name="Sales").stages.values_list("pk", flat=True))

    manager, rep = board_cards("manager"), board_cards("rep")
    assert sorted(manager) == sorted(stages)
    assert all(len(cards) == BOARD_PAGE_SIZE for cards in manager.values())
    assert rep == manager  # the same cards, in the same order
    assert board_cards("rep2") == {}

    deals = Opportunity.objects.all()
    assert deals.count() == 100
    assert set(deals.values_list("status", "assigned_to__username")) == {(Status.OPEN, "rep")}
    assert not deals.filter(closed_at__isnull=False).exists()


def test_board_full_records_each_deal_as_created_like_the_demo_set():
    seed("--opportunities", "100", "--board-full")
    deals = set(Opportunity.objects.values_list("pk", flat=True))
    history = OpportunityHistory.objects.values_list("opportunity_id", "field", "to_status")
    assert Counter(history) == Counter((pk, TrackedField.CREATED, Status.OPEN) for pk in deals)
    events = list(OpportunityEvent.objects.values_list("opportunity_id", "type", "payload"))
    assert Counter((pk, kind) for pk, kind, _ in events) == Counter(
        (pk, EventType.CREATE) for pk in deals
    )
    contacts = dict(Opportunity.objects.values_list("pk", "contact__name"))
    for pk, _, payload in events:
        assert payload["opportunity"]["status"] == "open"
        assert payload["opportunity"]["contact"]["name"] == contacts[pk]


def test_board_full_writes_in_bulk_not_deal_by_deal():
    seed("--opportunities", "4", "--board-full")  # users, pipelines and reasons exist now
    first = set(Opportunity.objects.values_list("pk", flat=True))
    with CaptureQueriesContext(connection) as captured:
        seed("--opportunities", "200", "--board-full")
    with CaptureQueriesContext(connection) as twice_as_many:
        seed("--opportunities", "400", "--board-full")
    assert len(twice_as_many) == len(captured)  # no query per deal
    sqls = [query["sql"].lstrip().upper() for query in captured.captured_queries]
    table = Opportunity._meta.db_table.upper()
    deal_inserts = [sql for sql in sqls if sql.startswith(f'INSERT INTO "{table}"')]
    assert len(deal_inserts) == 4  # one per column
    assert not [sql for sql in sqls if sql.startswith(f'UPDATE "{table}"')]
    assert Opportunity.objects.count() == 604
    # Appended below the cards already there: the first four stay on top of their columns.
    columns = board_cards("rep")
    assert {cards[0] for cards in columns.values()} == first
    assert all(len(cards) == BOARD_PAGE_SIZE for cards in columns.values())


def test_board_full_needs_a_count():
    with pytest.raises(CommandError, match="--board-full needs --opportunities"):
        seed("--board-full")
