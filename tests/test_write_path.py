"""Every door to an opportunity writes through the same services: the history rows and
events each one leaves behind, and the rules no door can skip."""

import io
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.demo import seed
from opportunities.errors import StaleVersion
from opportunities.events import events_after, events_append, events_prune, last_event_id
from opportunities.models import (
    EventType,
    LostReason,
    Opportunity,
    OpportunityEvent,
    OpportunityHistory,
    Status,
)
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import opportunity_delete, opportunity_update
from tests import factories

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def stages(db):
    _, stages = factories.pipeline_with_stages()
    return stages


@pytest.fixture
def rep(client):
    user = factories.rep()
    client.force_login(user)
    return user


def _fields(rows):
    return sorted(row.field for row in rows)


def _types(events):
    return sorted(event.type for event in events)


def door_board_move(client, user, stages):
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=user)
    client.post(
        reverse("opportunities:move", args=[deal.pk]),
        {"stage": stages[2].pk, "version": deal.version, "from_stage": stages[0].pk},
        **HX,
    )
    return deal, ["stage"], [EventType.STAGE_UPDATE]


def door_board_status(client, user, stages):
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=user)
    reason = factories.LostReasonFactory()
    client.post(
        reverse("opportunities:status", args=[deal.pk]),
        {"status": "lost", "lost_reason": reason.pk, "version": deal.version},
        **HX,
    )
    return deal, ["lost_reason", "status"], [EventType.STATUS_UPDATE, EventType.UPDATE]


def door_record_edit(client, user, stages):
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=user, value=100)
    contact = deal.contact
    client.post(
        reverse("opportunities:edit", args=[deal.pk]),
        {
            "name": deal.name,
            "value": "250",
            "source": deal.source,
            "assigned_to": str(user.pk),
            "stage": str(stages[1].pk),
            "status": "open",
            "lost_reason": "",
            "version": str(deal.version),
            "contact-id": str(contact.pk) if contact else "",
            "contact-name": contact.name if contact else "",
            "contact-email": contact.email if contact else "",
            "contact-phone": contact.phone if contact else "",
            "contact-company": contact.company if contact else "",
        },
    )
    return deal, ["stage", "value"], [EventType.VALUE_UPDATE, EventType.STAGE_UPDATE]


def door_quick_add(client, user, stages):
    client.post(
        reverse("opportunities:quick_add", args=[stages[0].pipeline_id, stages[1].pk]),
        {"name": "Quick one", "value": "10"},
        **HX,
    )
    return Opportunity.objects.get(name="Quick one"), ["created"], [EventType.CREATE]


def door_full_create(client, user, stages):
    client.post(
        reverse("opportunities:create"),
        {
            "name": "From the form",
            "pipeline": stages[0].pipeline_id,
            "stage": stages[0].pk,
            "status": "open",
            "value": "1500",
            "assigned_to": user.pk,
            "contact-name": "Lee",
        },
    )
    return Opportunity.objects.get(name="From the form"), ["created"], [EventType.CREATE]


def door_admin_change(client, user, stages):
    client.force_login(factories.admin(username="root"))
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=user, value=100)
    client.post(
        reverse("admin:opportunities_opportunity_change", args=[deal.pk]),
        {
            "name": deal.name,
            "pipeline": deal.pipeline_id,
            "stage": stages[0].pk,
            "status": "won",
            "value": "100",
            "source": deal.source,
            "contact": deal.contact_id or "",
            "assigned_to": user.pk,
            "seen_version": deal.version,
        },
    )
    return deal, ["status"], [EventType.STATUS_UPDATE]


def door_seed(client, user, stages):
    seed(password="not-the-default")
    deal = Opportunity.objects.filter(pipeline__name="Sales").order_by("pk").first()
    return deal, None, [EventType.CREATE]


DOORS = [
    door_board_move,
    door_board_status,
    door_record_edit,
    door_quick_add,
    door_full_create,
    door_admin_change,
    door_seed,
]


@pytest.mark.parametrize("door", DOORS, ids=lambda door: door.__name__.removeprefix("door_"))
def test_each_door_writes_its_history_rows_and_events(client, rep, stages, door):
    start = last_event_id()
    history_before = set(OpportunityHistory.objects.values_list("pk", flat=True))
    deal, fields, types = door(client, rep, stages)
    new_history = OpportunityHistory.objects.filter(opportunity=deal).exclude(pk__in=history_before)
    if fields is not None:  # the demo replays a past with its own dates
        assert _fields(new_history) == sorted(fields)
    events = [event for event in events_after(start, 1000) if event.opportunity_id == deal.pk]
    assert _types(events) == sorted(types)
    deal.refresh_from_db()
    payload = events[0].payload["opportunity"]
    assert payload["id"] == str(deal.pk)
    assert payload["pipelineStageId"] == str(deal.stage_id)
    assert payload["status"] == deal.status


def test_admin_delete_moves_to_the_trash_and_announces_it(client, stages):
    client.force_login(factories.admin(username="root"))
    deal = factories.OpportunityFactory(stage=stages[0])
    start = last_event_id()
    client.post(reverse("admin:opportunities_opportunity_delete", args=[deal.pk]), {"post": "yes"})
    deal.refresh_from_db()
    assert deal.deleted_at is not None  # in the trash, restorable by a manager
    (event,) = events_after(start)
    assert (event.type, event.opportunity_id) == (EventType.DELETE, deal.pk)


def test_admin_refuses_a_stale_form_and_keeps_the_newer_change(client, stages):
    client.force_login(factories.admin(username="root"))
    deal = factories.OpportunityFactory(stage=stages[0], value=100)
    opened_with = deal.version
    opportunity_update(opportunity=deal, user=factories.manager(), value=300)
    response = client.post(
        reverse("admin:opportunities_opportunity_change", args=[deal.pk]),
        {
            "name": deal.name,
            "pipeline": deal.pipeline_id,
            "stage": stages[0].pk,
            "status": "open",
            "value": "100",
            "contact": deal.contact_id or "",
            "seen_version": opened_with,
        },
    )
    assert response.status_code == 200
    assert "Someone changed this opportunity" in response.content.decode()
    deal.refresh_from_db()
    assert deal.value == Decimal("300.00")


def test_admin_refuses_a_retired_lost_reason(client, stages):
    client.force_login(factories.admin(username="root"))
    deal = factories.OpportunityFactory(stage=stages[0])
    retired = LostReason.objects.create(name="Old reason", is_active=False)
    response = client.post(
        reverse("admin:opportunities_opportunity_change", args=[deal.pk]),
        {
            "name": deal.name,
            "pipeline": deal.pipeline_id,
            "stage": stages[0].pk,
            "status": "lost",
            "lost_reason": retired.pk,
            "value": "10",
            "seen_version": deal.version,
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["lost_reason"]
    deal.refresh_from_db()
    assert deal.status == Status.OPEN


def test_a_move_between_stages_writes_exactly_three_rows(stages):
    user = factories.manager()
    deal = factories.OpportunityFactory(stage=stages[0])
    with CaptureQueriesContext(connection) as queries:
        opportunity_move(opportunity=deal, to_stage=stages[1], version=deal.version, user=user)
    writes = [
        q["sql"].split()[0].upper()
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}
    ]
    assert writes == ["UPDATE", "INSERT", "INSERT"]  # the deal, its history row, its event


def test_a_reorder_writes_no_history_but_announces_an_update(stages):
    user = factories.manager()
    top, deal = (factories.OpportunityFactory(stage=stages[0]) for _ in range(2))
    start = last_event_id()
    opportunity_move(
        opportunity=deal, to_stage=stages[0], version=deal.version, user=user, after_id=top.pk
    )
    assert not OpportunityHistory.objects.filter(opportunity=deal).exists()
    assert [event.type for event in events_after(start)] == [EventType.UPDATE]


def test_update_writes_one_history_row_per_tracked_field(stages):
    manager = factories.manager()
    other_owner = factories.rep()
    _, other_stages = factories.pipeline_with_stages(names=("Intro", "Deal"))
    deal = factories.OpportunityFactory(stage=stages[0], value=10)
    opportunity_update(
        opportunity=deal,
        user=manager,
        value=20,
        assigned_to=other_owner,
        pipeline=other_stages[0].pipeline,
        name="Renamed",
    )
    rows = {row.field: row for row in OpportunityHistory.objects.filter(opportunity=deal)}
    assert set(rows) == {"value", "owner", "pipeline", "stage"}
    assert (rows["value"].old_value, rows["value"].new_value) == ("10.00", "20.00")
    assert rows["stage"].to_stage == other_stages[0]
    deal.refresh_from_db()
    assert (deal.pipeline, deal.stage) == (other_stages[0].pipeline, other_stages[0])


def test_an_unchanged_update_writes_nothing(stages):
    deal = factories.OpportunityFactory(stage=stages[0], value=10)
    start = last_event_id()
    opportunity_update(opportunity=deal, user=factories.manager(), value="10.00")
    deal.refresh_from_db()
    assert deal.version == 1
    assert events_after(start) == []


def test_services_check_visibility_themselves(stages):
    rep, other = factories.rep(), factories.rep()
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=other)
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_move(opportunity=deal, to_stage=stages[1], version=deal.version, user=rep)
    with pytest.raises(Opportunity.DoesNotExist):
        opportunity_update(opportunity=deal, user=rep, value=5)
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages[0], 1)


def test_services_check_the_permission_themselves(stages):
    rep = factories.rep()
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    with pytest.raises(PermissionDenied):
        opportunity_delete(opportunity=deal, user=rep)  # reps cannot delete
    assert Opportunity.objects.filter(pk=deal.pk).exists()


def test_a_stale_version_changes_nothing_and_announces_nothing(stages):
    deal = factories.OpportunityFactory(stage=stages[0])
    start = last_event_id()
    with pytest.raises(StaleVersion):
        opportunity_set_status(
            opportunity=deal, status="won", version=deal.version + 1, user=factories.manager()
        )
    assert events_after(start) == []
    assert not OpportunityHistory.objects.filter(opportunity=deal).exists()


def test_closing_stores_days_to_close(stages):
    deal = factories.OpportunityFactory(stage=stages[0])
    opportunity_set_status(opportunity=deal, status="won", version=1, user=factories.manager())
    deal.refresh_from_db()
    assert deal.days_to_close == 0
    opportunity_set_status(opportunity=deal, status="open", version=2, user=factories.manager())
    deal.refresh_from_db()
    assert (deal.days_to_close, deal.closed_at) == (None, None)


def test_lost_needs_a_reason_whatever_the_door(stages):
    deal = factories.OpportunityFactory(stage=stages[0])
    with pytest.raises(ValidationError):
        opportunity_update(opportunity=deal, user=factories.manager(), status="lost")


def test_events_command_prints_json_lines(stages):
    deal = factories.OpportunityFactory(stage=stages[0])
    opportunity_set_status(opportunity=deal, status="won", version=1, user=factories.manager())
    out = io.StringIO()
    call_command("events", "--after", "0", stdout=out)
    lines = out.getvalue().splitlines()
    assert any('"type": "OpportunityStatusUpdate"' in line for line in lines)


def test_pruning_removes_only_old_events(stages):
    deal = factories.OpportunityFactory(stage=stages[0])
    opportunity_set_status(opportunity=deal, status="won", version=1, user=factories.manager())
    assert events_prune(days=30) == 0
    OpportunityEvent.objects.update(created_at="2000-01-01T00:00:00Z")
    assert events_prune(days=30) == 1
    assert last_event_id() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer")
@pytest.mark.django_db(transaction=True)
def test_events_after_never_skips_an_event_that_commits_late():
    """Two overlapping transactions on PostgreSQL: the first to insert holds the append
    lock until it commits, so the second gets a higher id and a reader that has seen it
    has already seen (or can still see) everything below it."""
    first_inserted = threading.Event()
    release_first = threading.Event()
    second_done = threading.Event()

    def append(name, started=None, wait_for=None, done=None):
        try:
            with transaction.atomic():
                events_append(
                    [OpportunityEvent(type=EventType.UPDATE, opportunity_id=1, payload={"n": name})]
                )
                if started:
                    started.set()
                if wait_for:
                    assert wait_for.wait(10)
            if done:
                done.set()
        finally:
            connections.close_all()

    slow = threading.Thread(target=append, args=("slow", first_inserted, release_first))
    slow.start()
    assert first_inserted.wait(10)
    fast = threading.Thread(target=append, args=("fast", None, None, second_done))
    fast.start()
    # The second writer waits for the first: nothing is visible, nothing can be skipped.
    assert not second_done.wait(0.5)
    assert events_after(0) == []
    release_first.set()
    slow.join(10)
    fast.join(10)
    seen = [event.payload["n"] for event in events_after(0)]
    assert seen == ["slow", "fast"]


def test_tags_followers_and_custom_values_write_history_and_bump_the_version(stages):
    from opportunities.models import CustomField, CustomFieldType
    from opportunities.services.related import (
        opportunity_set_custom_values,
        opportunity_set_followers,
        opportunity_set_tags,
    )

    manager, follower = factories.manager(), factories.rep()
    deal = factories.OpportunityFactory(stage=stages[0])
    CustomField.objects.create(name="Seats", key="seats", field_type=CustomFieldType.NUMBER)
    start = last_event_id()
    opportunity_set_tags(opportunity=deal, user=manager, names=["VIP", " vip ", "Q4"])
    opportunity_set_followers(opportunity=deal, user=manager, followers=[follower])
    opportunity_set_custom_values(opportunity=deal, user=manager, values={"seats": "1,200"})
    deal.refresh_from_db()
    assert deal.version == 4
    assert sorted(deal.tags.values_list("name", flat=True)) == ["Q4", "VIP"]
    fields = _fields(OpportunityHistory.objects.filter(opportunity=deal))
    assert fields == ["custom_field", "followers", "tags"]
    assert [event.type for event in events_after(start)] == [EventType.UPDATE] * 3
    # A follower sees the deal under "only assigned data".
    from opportunities.selectors import opportunities_visible_to

    assert list(opportunities_visible_to(follower)) == [deal]


def test_bad_related_values_are_refused_and_change_nothing(stages):
    from opportunities.models import CustomField, CustomFieldType
    from opportunities.services.related import (
        opportunity_set_custom_values,
        opportunity_set_followers,
        opportunity_set_tags,
    )

    manager = factories.manager()
    deal = factories.OpportunityFactory(stage=stages[0])
    CustomField.objects.create(
        name="Region", key="region", field_type=CustomFieldType.SINGLE_CHOICE, choices=["North"]
    )
    with pytest.raises(ValidationError, match="not one of"):
        opportunity_set_custom_values(opportunity=deal, user=manager, values={"region": "South"})
    with pytest.raises(ValidationError, match="characters"):
        opportunity_set_tags(opportunity=deal, user=manager, names=["<b>bold</b>"])
    with pytest.raises(ValidationError, match="At most 10"):
        opportunity_set_followers(
            opportunity=deal, user=manager, followers=[factories.rep() for _ in range(11)]
        )
    with pytest.raises(ValidationError):
        from datetime import date

        opportunity_update(opportunity=deal, user=manager, expected_close_date=date(9999, 1, 1))
    deal.refresh_from_db()
    assert deal.version == 1


def test_trash_hides_a_deal_and_restore_brings_it_back(stages):
    from opportunities.selectors import opportunities_visible_to
    from opportunities.services.opportunities import opportunity_restore, trash_purge

    manager = factories.manager()
    deal = factories.OpportunityFactory(stage=stages[0])
    start = last_event_id()
    opportunity_delete(opportunity=deal, user=manager)
    assert not opportunities_visible_to(manager).filter(pk=deal.pk).exists()
    deal.refresh_from_db()
    opportunity_restore(opportunity=deal, user=manager)
    assert opportunities_visible_to(manager).filter(pk=deal.pk).exists()
    types = [event.type for event in events_after(start)]
    assert types == [EventType.DELETE, EventType.CREATE]
    assert _fields(OpportunityHistory.objects.filter(opportunity=deal)) == ["deleted", "restored"]
    opportunity_delete(opportunity=deal, user=manager)
    Opportunity.objects.filter(pk=deal.pk).update(deleted_at="2000-01-01T00:00:00Z")
    assert trash_purge(days=30) == 1
    assert not Opportunity.objects.filter(pk=deal.pk).exists()


def test_moving_the_close_date_later_counts_a_slip(stages):
    from datetime import date

    manager = factories.manager()
    deal = factories.OpportunityFactory(stage=stages[0])
    opportunity_update(opportunity=deal, user=manager, expected_close_date=date(2027, 1, 31))
    opportunity_update(opportunity=deal, user=manager, expected_close_date=date(2027, 3, 31))
    opportunity_update(opportunity=deal, user=manager, expected_close_date=date(2027, 2, 28))
    deal.refresh_from_db()
    assert deal.close_date_slips == 1
    rows = OpportunityHistory.objects.filter(opportunity=deal, field="close_date")
    assert rows.count() == 3


def test_a_task_may_go_to_a_follower_but_not_to_a_stranger(stages):
    from opportunities.services.records import task_create
    from opportunities.services.related import opportunity_set_followers

    manager, follower, stranger = factories.manager(), factories.rep(), factories.rep()
    deal = factories.OpportunityFactory(stage=stages[0])
    opportunity_set_followers(opportunity=deal, user=manager, followers=[follower])
    task = task_create(opportunity=deal, user=manager, title="Call", assigned_to=follower)
    assert task.assigned_to == follower
    with pytest.raises(ValidationError, match="cannot see"):
        task_create(opportunity=deal, user=manager, title="Call", assigned_to=stranger)


def test_a_reps_board_suggests_only_sources_of_deals_they_see(client, stages):
    rep = factories.rep()
    factories.OpportunityFactory(stage=stages[0], assigned_to=rep, source="Webinar")
    factories.OpportunityFactory(stage=stages[0], source="Secret partner list")
    client.force_login(rep)
    html = client.get(reverse("opportunities:board", args=[stages[0].pipeline_id])).content
    assert b"Webinar" in html
    assert b"Secret partner list" not in html


def test_admin_edits_of_tasks_and_notes_go_through_the_services(client, stages):
    from opportunities.models import Note, Task

    client.force_login(factories.admin(username="root"))
    owner, stranger = factories.rep(), factories.rep()
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    add_task = reverse("admin:opportunities_task_add")
    # A task for someone who cannot see the deal is refused with the service's message.
    response = client.post(
        add_task, {"opportunity": deal.pk, "title": "Call", "assigned_to": stranger.pk}, follow=True
    )
    assert "cannot see this opportunity" in response.content.decode()
    assert not Task.objects.exists()
    client.post(add_task, {"opportunity": deal.pk, "title": " Call ", "assigned_to": owner.pk})
    task = Task.objects.get()
    assert (task.title, task.assigned_to) == ("Call", owner)
    # Someone else's note stays theirs, even for a superuser.
    note = factories.NoteFactory(opportunity=deal, author=owner, body="Mine")
    response = client.post(
        reverse("admin:opportunities_note_change", args=[note.pk]), {"body": "Edited"}, follow=True
    )
    assert "only change your own notes" in response.content.decode()
    assert Note.objects.get(pk=note.pk).body == "Mine"


def test_contact_edits_keep_history(stages):
    from opportunities.models import ContactHistory
    from opportunities.services.editing import contact_resolve

    rep = factories.rep()
    contact = factories.ContactFactory(name="Kim Lee", phone="", company="Lee & Co")
    factories.OpportunityFactory(stage=stages[0], assigned_to=rep, contact=contact)
    contact_resolve(
        user=rep,
        contact=contact,
        name="Kim Lee",
        email=contact.email,
        phone="+1 555 0100",
        company="Lee & Co",
    )
    (row,) = ContactHistory.objects.filter(contact=contact)
    assert row.user == rep
    assert row.changes == {"phone": {"old": "", "new": "+1 555 0100"}}
    # Saving the same details again writes nothing.
    contact_resolve(
        user=rep,
        contact=contact,
        name="Kim Lee",
        email=contact.email,
        phone="+1 555 0100",
        company="Lee & Co",
    )
    assert ContactHistory.objects.filter(contact=contact).count() == 1
