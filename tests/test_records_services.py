"""Services behind the opportunity record: editing with the version lock, contacts,
notes, tasks and the communication log."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError

from opportunities.errors import StaleVersion
from opportunities.models import Contact, Opportunity, OpportunityHistory, Status
from opportunities.services import editing, records
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def board():
    pipeline, stages = factories.pipeline_with_stages()
    return pipeline, stages


@pytest.fixture
def owner():
    return factories.rep()


def _update(opportunity, user, **changes):
    fields = {
        "name": opportunity.name,
        "value": opportunity.value,
        "source": opportunity.source,
        "assigned_to": opportunity.assigned_to,
        "stage": opportunity.stage,
        "status": opportunity.status,
        "lost_reason": opportunity.lost_reason,
    }
    fields.update(changes)
    version = fields.pop("version", opportunity.version)
    return editing.opportunity_update(opportunity=opportunity, version=version, user=user, **fields)


def test_update_saves_fields_and_bumps_version(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=100)
    _update(opportunity, owner, name="Bigger deal", value=Decimal("2500.50"), source=" Event ")
    stored = Opportunity.objects.get(pk=opportunity.pk)
    assert (stored.name, stored.value, stored.source) == (
        "Bigger deal",
        Decimal("2500.50"),
        "Event",
    )
    assert stored.version == 2


def test_update_with_stale_version_is_refused_and_changes_nothing(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=100)
    with pytest.raises(StaleVersion):
        _update(opportunity, owner, value=900, version=opportunity.version + 1)
    assert Opportunity.objects.get(pk=opportunity.pk).value == 100


def test_update_loses_the_race_when_someone_saved_in_between(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=100)
    # Another request saved after this one read the row.
    Opportunity.objects.filter(pk=opportunity.pk).update(version=2, value=555)
    with pytest.raises(StaleVersion):
        _update(opportunity, owner, value=900)
    assert Opportunity.objects.get(pk=opportunity.pk).value == 555


def test_update_changing_stage_puts_card_on_top_and_records_history(board, owner):
    _, stages = board
    top = factories.OpportunityFactory(stage=stages[1])
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    _update(opportunity, owner, stage=stages[1])
    column = list(Opportunity.objects.filter(stage=stages[1]).order_by("rank", "id"))
    assert column == [opportunity, top]
    row = OpportunityHistory.objects.get(opportunity=opportunity, field="stage")
    assert (row.from_stage, row.to_stage, row.user) == (stages[0], stages[1], owner)


def test_update_refuses_a_stage_of_another_pipeline(board, owner):
    _, stages = board
    _, foreign = factories.pipeline_with_stages(names=("Elsewhere",))
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    with pytest.raises(ValidationError) as caught:
        _update(opportunity, owner, stage=foreign[0])
    assert "another pipeline" in str(caught.value)
    assert Opportunity.objects.get(pk=opportunity.pk).stage == stages[0]


def test_update_to_lost_without_reason_saves_nothing(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=100)
    with pytest.raises(ValidationError):
        _update(opportunity, owner, value=999, status=Status.LOST, lost_reason=None)
    stored = Opportunity.objects.get(pk=opportunity.pk)
    assert (stored.status, stored.value, stored.version) == (Status.OPEN, 100, 1)
    assert not OpportunityHistory.objects.exists()


def test_update_to_lost_goes_through_the_status_rules(board, owner):
    _, stages = board
    reason = factories.LostReasonFactory(name="Budget")
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    _update(opportunity, owner, status=Status.LOST, lost_reason=reason)
    stored = Opportunity.objects.get(pk=opportunity.pk)
    assert (stored.status, stored.lost_reason, stored.closed_at is not None) == (
        Status.LOST,
        reason,
        True,
    )
    row = OpportunityHistory.objects.get(opportunity=opportunity, field="status")
    assert (row.from_status, row.to_status) == (Status.OPEN, Status.LOST)


def test_update_with_stage_and_status_records_both_in_one_save(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    _update(opportunity, owner, stage=stages[2], status=Status.WON)
    kinds = [
        (row.from_stage_id != row.to_stage_id, row.from_status != row.to_status)
        for row in OpportunityHistory.objects.filter(opportunity=opportunity)
    ]
    assert sorted(kinds) == [(False, True), (True, False)]


def test_update_without_status_change_writes_no_history(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner)
    _update(opportunity, owner, name="Renamed")
    assert not OpportunityHistory.objects.exists()


def test_update_refuses_a_negative_value(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=10)
    with pytest.raises(ValidationError) as caught:
        _update(opportunity, owner, value=-1)
    assert caught.value.message_dict["value"] == ["The value cannot be negative."]


def test_update_with_new_contact_creates_it(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, contact=None)
    editing.opportunity_update_with_contact(
        opportunity=opportunity,
        version=opportunity.version,
        user=owner,
        contact=None,
        contact_details={"name": "Ada Byron", "email": "ada@example.com"},
        name=opportunity.name,
        value=opportunity.value,
        source="",
        assigned_to=owner,
        stage=stages[0],
        status=Status.OPEN,
    )
    stored = Opportunity.objects.select_related("contact").get(pk=opportunity.pk)
    assert (stored.contact.name, stored.contact.email) == ("Ada Byron", "ada@example.com")


def test_stale_update_leaves_no_new_contact_behind(board, owner):
    _, stages = board
    opportunity = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, contact=None)
    with pytest.raises(StaleVersion):
        editing.opportunity_update_with_contact(
            opportunity=opportunity,
            version=opportunity.version + 5,
            user=owner,
            contact=None,
            contact_details={"name": "Half Saved"},
            name="x",
            value=0,
            source="",
            assigned_to=owner,
            stage=stages[0],
            status=Status.OPEN,
        )
    assert not Contact.objects.filter(name="Half Saved").exists()


def test_contact_resolve_updates_changed_details_of_an_existing_contact(owner):
    contact = factories.ContactFactory(name="Old", phone="")
    factories.OpportunityFactory(assigned_to=owner, contact=contact)
    editing.contact_resolve(
        user=owner, contact=contact, name="New", email=contact.email, phone="+1 555 0100"
    )
    contact.refresh_from_db()
    assert (contact.name, contact.phone) == ("New", "+1 555 0100")


def test_contact_resolve_needs_change_permission_to_edit_a_contact():
    viewer = factories.UserFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_contact"))
    contact = factories.ContactFactory(name="Kept")
    factories.OpportunityFactory(assigned_to=viewer, contact=contact)
    with pytest.raises(PermissionDenied):
        editing.contact_resolve(user=viewer, contact=contact, name="Changed")
    contact.refresh_from_db()
    assert contact.name == "Kept"


def test_contact_resolve_without_any_details_means_no_contact(owner):
    assert editing.contact_resolve(user=owner, contact=None, name="  ") is None


def test_contact_resolve_refuses_details_without_a_name(owner):
    with pytest.raises(ValidationError) as caught:
        editing.contact_resolve(user=owner, contact=None, name="", email="a@example.com")
    assert "contact_name" in caught.value.message_dict


def test_create_with_contact_makes_both_and_lands_on_top(board, owner):
    pipeline, stages = board
    existing = factories.OpportunityFactory(stage=stages[1])
    opportunity = editing.opportunity_create_with_contact(
        user=owner,
        pipeline=pipeline,
        stage=stages[1],
        name="Fresh",
        value=10,
        assigned_to=owner,
        contact_details={"name": "Grace"},
    )
    assert opportunity.contact.name == "Grace"
    column = list(Opportunity.objects.filter(stage=stages[1]).order_by("rank", "id"))
    assert column == [opportunity, existing]


def test_create_with_contact_refused_leaves_no_contact(board, owner):
    pipeline, _ = board
    _, foreign = factories.pipeline_with_stages(names=("Elsewhere",))
    with pytest.raises(ValidationError):
        editing.opportunity_create_with_contact(
            user=owner,
            pipeline=pipeline,
            stage=foreign[0],
            name="Wrong place",
            contact_details={"name": "Orphan"},
        )
    assert not Contact.objects.filter(name="Orphan").exists()


def test_note_create_strips_and_keeps_author(owner):
    opportunity = factories.OpportunityFactory(assigned_to=owner)
    note = records.note_create(opportunity=opportunity, author=owner, body="  Called.\n ")
    assert (note.body, note.author) == ("Called.", owner)


def test_note_update_by_its_author(owner):
    note = factories.NoteFactory(author=owner, body="draft", opportunity__assigned_to=owner)
    records.note_update(note=note, user=owner, body="final")
    note.refresh_from_db()
    assert note.body == "final"
    assert note.updated_at >= note.created_at


def test_note_update_by_someone_else_is_refused(owner):
    note = factories.NoteFactory(
        author=factories.rep(), body="theirs", opportunity__assigned_to=owner
    )
    with pytest.raises(PermissionDenied):
        records.note_update(note=note, user=owner, body="mine now")
    note.refresh_from_db()
    assert note.body == "theirs"


def test_note_delete_by_someone_else_is_refused(owner):
    note = factories.NoteFactory(author=factories.rep(), opportunity__assigned_to=owner)
    with pytest.raises(PermissionDenied):
        records.note_delete(note=note, user=owner)
    assert type(note).objects.filter(pk=note.pk).exists()


def test_note_delete_by_its_author(owner):
    note = factories.NoteFactory(author=owner, opportunity__assigned_to=owner)
    records.note_delete(note=note, user=owner)
    assert not type(note).objects.filter(pk=note.pk).exists()


def test_task_assignee_defaults_to_the_opportunity_owner(owner):
    opportunity = factories.OpportunityFactory(assigned_to=owner)
    task = records.task_create(opportunity=opportunity, user=factories.manager(), title="Call")
    assert task.assigned_to == owner
    assert not task.is_done


def test_task_done_and_undone(owner):
    task = factories.TaskFactory(opportunity=factories.OpportunityFactory(assigned_to=owner))
    records.task_set_done(task=task, user=owner, done=True)
    task.refresh_from_db()
    assert task.done_at is not None
    records.task_set_done(task=task, user=owner, done=False)
    task.refresh_from_db()
    assert task.done_at is None


def test_communication_is_logged_on_the_contact(owner):
    opportunity = factories.OpportunityFactory(assigned_to=owner)
    entry = records.communication_log(
        opportunity=opportunity, user=owner, kind="meeting", summary=" Demo done "
    )
    assert (entry.contact, entry.opportunity, entry.summary) == (
        opportunity.contact,
        opportunity,
        "Demo done",
    )


def test_communication_needs_a_contact(owner):
    opportunity = factories.OpportunityFactory(assigned_to=owner, contact=None)
    with pytest.raises(ValidationError):
        records.communication_log(opportunity=opportunity, user=owner, kind="call", summary="x")


def test_communication_needs_the_add_permission():
    opportunity = factories.OpportunityFactory()
    with pytest.raises(PermissionDenied):
        records.communication_log(
            opportunity=opportunity, user=factories.UserFactory(), kind="call", summary="x"
        )
