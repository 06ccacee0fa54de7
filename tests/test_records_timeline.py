"""The record's history timeline and the other reads behind the record."""

from datetime import timedelta

import pytest
from django.utils import timezone

from opportunities.models import CommunicationKind, OpportunityHistory, Status
from opportunities.selectors_records import (
    CONTACT_SEARCH_LIMIT,
    contacts_matching,
    open_tasks_for,
    record_activity,
    time_in_stages,
    timeline,
)
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def story():
    """An opportunity created 10 days ago in stage 0, moved to 1 after 4 days, then to 2
    after 3 more days, lost a day ago; a note, a task (done) and a call in between."""
    _, stages = factories.pipeline_with_stages()
    user = factories.rep()
    now = timezone.now()
    reason = factories.LostReasonFactory(name="Budget")
    opportunity = factories.OpportunityFactory(
        stage=stages[2],
        assigned_to=user,
        status=Status.LOST,
        lost_reason=reason,
        stage_entered_at=now - timedelta(days=3),
        closed_at=now - timedelta(days=1),
    )

    def history(days_ago, from_stage, to_stage, from_status, to_status):
        OpportunityHistory.objects.create(
            opportunity=opportunity,
            from_stage=from_stage,
            to_stage=to_stage,
            from_status=from_status,
            to_status=to_status,
            user=user,
            at=now - timedelta(days=days_ago),
        )

    history(10, None, stages[0], "", Status.OPEN)
    history(6, stages[0], stages[1], Status.OPEN, Status.OPEN)
    history(3, stages[1], stages[2], Status.OPEN, Status.OPEN)
    history(1, stages[2], stages[2], Status.OPEN, Status.LOST)
    factories.NoteFactory(
        opportunity=opportunity, author=user, body="note", created_at=now - timedelta(days=5)
    )
    task = factories.TaskFactory(opportunity=opportunity, title="Send quote")
    type(task).objects.filter(pk=task.pk).update(
        created_at=now - timedelta(days=4), done_at=now - timedelta(days=2)
    )
    factories.CommunicationFactory(
        opportunity=opportunity,
        kind=CommunicationKind.CALL,
        summary="call",
        occurred_at=now - timedelta(days=8),
    )
    return opportunity, stages, user


def _kinds(opportunity):
    return [entry.kind for entry in timeline(opportunity, record_activity(opportunity))]


def test_timeline_lists_everything_newest_first(story):
    opportunity, _, _ = story
    assert _kinds(opportunity) == [
        "status",
        "task_done",
        "stage",
        "task",
        "note",
        "stage",
        "communication",
        "created",
    ]


def test_timeline_stage_change_says_from_to_who_and_time_in_previous_stage(story):
    opportunity, stages, user = story
    entries = timeline(opportunity, record_activity(opportunity))
    first_move = [entry for entry in entries if entry.kind == "stage"][-1]
    assert (first_move.from_stage, first_move.to_stage, first_move.user) == (
        stages[0],
        stages[1],
        user,
    )
    assert first_move.time_in_previous_stage == timedelta(days=4)


def test_timeline_loss_carries_the_current_lost_reason(story):
    opportunity, _, _ = story
    entries = timeline(opportunity, record_activity(opportunity))
    loss = entries[0]
    assert (loss.from_status_label, loss.to_status_label, loss.lost_reason.name) == (
        "Open",
        "Lost",
        "Budget",
    )


def test_time_in_stages_counts_each_stage_and_stops_the_clock_when_closed(story):
    opportunity, stages, _ = story
    activity = record_activity(opportunity)
    spent = {
        item.stage: item.duration for item in time_in_stages(opportunity, activity.history, stages)
    }
    assert spent == {
        stages[0]: timedelta(days=4),
        stages[1]: timedelta(days=3),
        stages[2]: timedelta(days=2),
    }


def test_time_in_stages_without_history_counts_the_current_stage():
    opportunity = factories.OpportunityFactory(stage_entered_at=timezone.now() - timedelta(hours=5))
    [item] = time_in_stages(opportunity, [], [opportunity.stage])
    assert item.is_current
    assert timedelta(hours=5) <= item.duration < timedelta(hours=5, minutes=1)


def test_record_activity_and_timeline_read_in_five_queries(story, django_assert_num_queries):
    opportunity, _, _ = story
    # Four for the activity, one for the automation runs the timeline shows.
    with django_assert_num_queries(5):
        activity = record_activity(opportunity)
        entries = timeline(opportunity, activity)
        [(entry.user, entry.from_stage, entry.to_stage) for entry in entries]


def test_communication_of_the_contact_shows_under_its_other_opportunities():
    contact = factories.ContactFactory()
    first = factories.OpportunityFactory(contact=contact)
    second = factories.OpportunityFactory(contact=contact)
    factories.CommunicationFactory(opportunity=first, summary="from the first deal")
    [entry] = record_activity(second).communications
    assert entry.summary == "from the first deal"


def test_notes_are_newest_first():
    opportunity = factories.OpportunityFactory()
    now = timezone.now()
    old = factories.NoteFactory(opportunity=opportunity, created_at=now - timedelta(hours=2))
    new = factories.NoteFactory(opportunity=opportunity, created_at=now)
    assert record_activity(opportunity).notes == [new, old]


def test_contact_search_matches_any_detail_and_stops_at_ten():
    for index in range(CONTACT_SEARCH_LIMIT + 3):
        factories.ContactFactory(name=f"Person {index}", company="Initech")
    factories.ContactFactory(name="Someone", company="Globex")
    manager = factories.manager()
    assert len(contacts_matching(manager, "initech")) == CONTACT_SEARCH_LIMIT
    assert [contact.name for contact in contacts_matching(manager, "glob")] == ["Someone"]
    assert contacts_matching(manager, "   ") == []


def test_my_open_tasks_are_soonest_first_with_undated_last():
    user = factories.rep()
    opportunity = factories.OpportunityFactory(assigned_to=user)
    today = timezone.localdate()
    later = factories.TaskFactory(opportunity=opportunity, due_on=today + timedelta(days=3))
    undated = factories.TaskFactory(opportunity=opportunity, due_on=None)
    overdue = factories.TaskFactory(opportunity=opportunity, due_on=today - timedelta(days=1))
    factories.TaskFactory(opportunity=opportunity, due_on=today, done_at=timezone.now())
    assert open_tasks_for(user) == [overdue, later, undated]


def test_my_tasks_leave_out_opportunities_i_cannot_see():
    user = factories.rep()
    hidden = factories.OpportunityFactory(assigned_to=factories.rep())
    factories.TaskFactory(opportunity=hidden, assigned_to=user)
    assert open_tasks_for(user) == []


def test_timeline_reads_one_row_per_tracked_field():
    """A value, owner or lost-reason row is neither a creation nor a stage or status change."""
    _, stages = factories.pipeline_with_stages()
    reason = factories.LostReasonFactory(name="Chose a competitor")
    opportunity = factories.OpportunityFactory(
        stage=stages[0], status=Status.LOST, lost_reason=reason
    )
    now = timezone.now()
    rows = [
        ("created", None, "", Status.OPEN, {}),
        ("value", None, "", Status.OPEN, {"old_value": "0", "new_value": "1250"}),
        ("owner", None, "", Status.OPEN, {"old_value": "", "new_value": "7"}),
        ("status", None, Status.OPEN, Status.LOST, {}),
        ("lost_reason", None, "", Status.LOST, {"new_value": str(reason.pk)}),
    ]
    for minutes, (field, from_stage, from_status, to_status, values) in enumerate(rows):
        OpportunityHistory.objects.create(
            opportunity=opportunity,
            field=field,
            from_stage=from_stage,
            to_stage=stages[0],
            from_status=from_status,
            to_status=to_status,
            at=now - timedelta(minutes=10 - minutes),
            **values,
        )
    entries = timeline(opportunity, record_activity(opportunity))
    assert [entry.kind for entry in entries] == ["status", "created"]
    loss = entries[0]
    assert (loss.from_status, loss.to_status) == (Status.OPEN, Status.LOST)
    assert loss.lost_reason == reason
