"""Record views: page and htmx partials, edits with the version lock, permissions."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Contact, Note, Opportunity, OpportunityHistory, Status, Task
from tests import factories

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def stages():
    return factories.pipeline_with_stages()[1]


@pytest.fixture
def owner(client):
    user = factories.rep()
    client.force_login(user)
    return user


@pytest.fixture
def mine(stages, owner):
    return factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=1000)


@pytest.fixture
def theirs(stages):
    return factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())


def _url(name, *args):
    return reverse(f"opportunities:{name}", args=args)


def _edit_data(opportunity, **overrides):
    contact = opportunity.contact
    data = {
        "name": opportunity.name,
        "value": str(opportunity.value),
        "source": opportunity.source,
        "assigned_to": str(opportunity.assigned_to_id or ""),
        "stage": str(opportunity.stage_id),
        "status": opportunity.status,
        "lost_reason": "",
        "version": str(opportunity.version),
        "contact-id": str(contact.pk) if contact else "",
        "contact-name": contact.name if contact else "",
        "contact-email": contact.email if contact else "",
        "contact-phone": contact.phone if contact else "",
        "contact-company": contact.company if contact else "",
    }
    data.update(overrides)
    return data


# --- Reading --------------------------------------------------------------------------------


def test_record_page_shows_the_opportunity(client, mine):
    response = client.get(_url("detail", mine.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and mine.name in html and "$1,000" in html


def test_record_in_the_board_panel_is_a_fragment(client, mine):
    response = client.get(_url("detail", mine.pk), HTTP_HX_TARGET="record-panel", **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "panel-shell" in html and f'id="record-{mine.pk}"' in html


def test_record_of_someone_else_is_not_found_for_a_rep(client, owner, theirs):
    assert client.get(_url("detail", theirs.pk)).status_code == 404


def test_record_of_someone_else_opens_with_view_all(client, owner, theirs):
    owner.user_permissions.add(Permission.objects.get(codename="view_all_opportunities"))
    assert client.get(_url("detail", theirs.pk)).status_code == 200


def test_record_page_reads_in_a_bounded_number_of_queries(
    client, mine, owner, django_assert_max_num_queries
):
    for index in range(5):
        factories.NoteFactory(opportunity=mine, author=owner)
        factories.TaskFactory(opportunity=mine, due_on=timezone.localdate() + timedelta(index))
        factories.CommunicationFactory(opportunity=mine)
    # 16 for the record and its activity; the deal fields add custom fields (2), their
    # values, tags, followers, the people who may follow and the other pipelines' stages.
    with django_assert_max_num_queries(23):
        assert client.get(_url("detail", mine.pk)).status_code == 200


def test_note_text_is_escaped_and_keeps_line_breaks(client, mine, owner):
    factories.NoteFactory(opportunity=mine, author=owner, body="<script>x</script>\nsecond line")
    html = client.get(_url("detail", mine.pk)).content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;<br>second line" in html


# --- Editing ----------------------------------------------------------------------------------


def test_edit_saves_and_redirects_to_the_record(client, mine):
    response = client.post(_url("edit", mine.pk), _edit_data(mine, value="4200"))
    assert response.status_code == 302
    assert Opportunity.objects.get(pk=mine.pk).value == 4200


def test_edit_with_htmx_answers_the_record_and_tells_the_board(client, mine):
    response = client.post(_url("edit", mine.pk), _edit_data(mine, value="4200"), **HX)
    assert response.status_code == 200
    assert f'id="record-{mine.pk}"' in response.content.decode()
    assert "crm:opportunity-changed" in response["HX-Trigger"]


def test_edit_with_bad_phone_keeps_the_input_and_says_why(client, mine):
    data = _edit_data(mine, value="777", **{"contact-phone": "call me maybe"})
    response = client.post(_url("edit", mine.pk), data)
    html = response.content.decode()
    assert response.status_code == 400
    assert "Use digits, spaces and + - ( ) . only" in html
    assert 'value="call me maybe"' in html and 'value="777"' in html
    assert Opportunity.objects.get(pk=mine.pk).value == 1000


def test_edit_with_bad_input_over_htmx_is_a_422_with_the_form(client, mine):
    response = client.post(_url("edit", mine.pk), _edit_data(mine, value="-3"), **HX)
    assert response.status_code == 422
    assert "The value cannot be negative." in response.content.decode()


def test_edit_over_a_newer_change_is_refused_showing_both_values(client, mine):
    stale = _edit_data(mine, value="2000", name="My name")
    Opportunity.objects.filter(pk=mine.pk).update(version=2, name="Their name")
    response = client.post(_url("edit", mine.pk), stale, **HX)
    html = response.content.decode()
    assert response.status_code == 409
    assert "your changes were not saved" in html
    assert 'value="Their name"' in html  # the form shows what is stored now
    assert "My name" in html  # and what this user typed, beside it
    stored = Opportunity.objects.get(pk=mine.pk)
    assert (stored.name, stored.value) == ("Their name", 1000)


def test_edit_conflict_offers_to_resubmit_with_the_new_version(client, mine):
    stale = _edit_data(mine, value="2000")
    Opportunity.objects.filter(pk=mine.pk).update(version=7)
    html = client.post(_url("edit", mine.pk), stale).content.decode()
    assert '<input type="hidden" name="version" value="7">' in html
    assert '<input type="hidden" name="value" value="2000">' in html


def test_edit_creates_a_new_contact_inline(client, mine):
    data = _edit_data(
        mine,
        **{
            "contact-id": "",
            "contact-name": "New Person",
            "contact-email": "new@example.com",
            "contact-phone": "+44 20 7946 0958",
            "contact-company": "Acme",
        },
    )
    client.post(_url("edit", mine.pk), data)
    contact = Opportunity.objects.get(pk=mine.pk).contact
    assert (contact.name, contact.company) == ("New Person", "Acme")


def test_edit_picks_an_existing_contact(client, mine, stages):
    other = factories.ContactFactory(name="Picked")
    factories.OpportunityFactory(stage=stages[1], contact=other, assigned_to=mine.assigned_to)
    data = _edit_data(
        mine,
        **{
            "contact-id": str(other.pk),
            "contact-name": other.name,
            "contact-email": other.email,
            "contact-phone": other.phone,
            "contact-company": other.company,
        },
    )
    client.post(_url("edit", mine.pk), data)
    assert Opportunity.objects.get(pk=mine.pk).contact == other


def test_edit_needs_the_change_permission(client, mine, owner):
    owner.groups.clear()
    owner.user_permissions.add(Permission.objects.get(codename="view_opportunity"))
    response = client.post(_url("edit", mine.pk), _edit_data(mine, value="1"))
    assert response.status_code == 403


def test_edit_of_someone_elses_opportunity_is_not_found(client, owner, theirs):
    response = client.post(_url("edit", theirs.pk), _edit_data(theirs, value="1"))
    assert response.status_code == 404


def test_edit_stage_records_history(client, mine, stages, owner):
    client.post(_url("edit", mine.pk), _edit_data(mine, stage=str(stages[2].pk)))
    row = OpportunityHistory.objects.get(opportunity=mine)
    assert (row.from_stage, row.to_stage, row.user) == (stages[0], stages[2], owner)


def test_reassigning_away_sends_the_rep_back_to_the_board(client, mine):
    other = factories.rep()
    response = client.post(_url("edit", mine.pk), _edit_data(mine, assigned_to=str(other.pk)))
    assert response.status_code == 302
    assert response["Location"] == _url("board", mine.pipeline_id)


# --- Status ------------------------------------------------------------------------------------


def test_mark_lost_with_reason_from_the_record(client, mine):
    reason = factories.LostReasonFactory(name="Timing")
    data = {"status": "lost", "lost_reason": reason.pk, "version": mine.version}
    response = client.post(_url("record_status", mine.pk), data, **HX)
    assert response.status_code == 200
    assert "Lost" in response.content.decode()
    stored = Opportunity.objects.get(pk=mine.pk)
    assert (stored.status, stored.lost_reason) == (Status.LOST, reason)
    assert OpportunityHistory.objects.filter(opportunity=mine, to_status="lost").exists()


def test_mark_lost_without_reason_is_a_400_with_the_message(client, mine):
    data = {"status": "lost", "version": mine.version}
    response = client.post(_url("record_status", mine.pk), data, **HX)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "Choose why this opportunity was lost." in response.content.decode()


def test_reopen_from_the_record_without_htmx_redirects(client, stages, owner):
    won = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, status=Status.WON)
    response = client.post(_url("record_status", won.pk), {"status": "open", "version": 1})
    assert response.status_code == 302
    assert Opportunity.objects.get(pk=won.pk).status == Status.OPEN


def test_status_with_stale_version_answers_409_with_the_record(client, mine):
    Opportunity.objects.filter(pk=mine.pk).update(version=3)
    response = client.post(_url("record_status", mine.pk), {"status": "won", "version": 1}, **HX)
    assert response.status_code == 409
    assert f'id="record-{mine.pk}"' in response.content.decode()


# --- Contacts --------------------------------------------------------------------------------


def test_contact_search_returns_at_most_ten_matches(client, owner, stages):
    for index in range(12):
        contact = factories.ContactFactory(name=f"Zed {index:02d}")
        factories.OpportunityFactory(stage=stages[0], contact=contact, assigned_to=owner)
    response = client.get(_url("contact_search"), {"contact-search": "zed"}, **HX)
    assert response.content.decode().count('class="contact-option"') == 10


def test_contact_search_says_when_nothing_matches(client, owner):
    response = client.get(_url("contact_search"), {"contact-search": "nobody"}, **HX)
    assert "No contact matches" in response.content.decode()


def test_contact_pick_fills_the_contact_fields(client, owner, mine):
    contact = factories.ContactFactory(name="Picked One", email="p1@example.com")
    factories.OpportunityFactory(stage=mine.stage, contact=contact, assigned_to=owner)
    response = client.get(_url("contact_pick"), {"id": contact.pk}, **HX)
    html = response.content.decode()
    assert f'name="contact-id" value="{contact.pk}"' in html
    assert 'value="p1@example.com"' in html


# --- Notes -------------------------------------------------------------------------------------


def test_add_note_with_htmx_answers_notes_and_timeline(client, mine, owner):
    response = client.post(_url("note_add", mine.pk), {"body": "First call"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'id="notes-{mine.pk}"' in html and 'hx-swap-oob="true"' in html
    assert Note.objects.get(opportunity=mine).author == owner


def test_add_empty_note_is_refused_with_a_message(client, mine):
    response = client.post(_url("note_add", mine.pk), {"body": "   "}, **HX)
    assert response.status_code == 422
    assert "Write something before saving the note." in response.content.decode()


def test_add_note_to_someone_elses_opportunity_is_not_found(client, owner, theirs):
    assert client.post(_url("note_add", theirs.pk), {"body": "x"}).status_code == 404
    assert not Note.objects.exists()


def test_edit_own_note(client, mine, owner):
    note = factories.NoteFactory(opportunity=mine, author=owner, body="old")
    response = client.post(_url("note_edit", note.pk), {"body": "new"})
    assert response.status_code == 302
    note.refresh_from_db()
    assert note.body == "new"


def test_edit_note_form_opens_in_place(client, mine, owner):
    note = factories.NoteFactory(opportunity=mine, author=owner, body="old text")
    response = client.get(_url("note_edit", note.pk), **HX)
    assert "Save note" in response.content.decode()


def test_edit_someone_elses_note_is_forbidden(client, mine):
    note = factories.NoteFactory(opportunity=mine, author=factories.rep(), body="theirs")
    response = client.post(_url("note_edit", note.pk), {"body": "mine"}, **HX)
    assert response.status_code == 403
    note.refresh_from_db()
    assert note.body == "theirs"


def test_delete_own_note(client, mine, owner):
    note = factories.NoteFactory(opportunity=mine, author=owner)
    response = client.post(_url("note_delete", note.pk), **HX)
    assert response.status_code == 200
    assert not Note.objects.filter(pk=note.pk).exists()


def test_delete_someone_elses_note_is_forbidden(client, mine):
    note = factories.NoteFactory(opportunity=mine, author=factories.rep())
    assert client.post(_url("note_delete", note.pk), **HX).status_code == 403
    assert Note.objects.filter(pk=note.pk).exists()


# --- Tasks and communication ---------------------------------------------------------------


def test_add_task_defaults_to_the_owner(client, mine, owner):
    data = {"title": "Send quote", "due_on": "2030-01-02", "assigned_to": ""}
    response = client.post(_url("task_add", mine.pk), data, **HX)
    assert response.status_code == 200
    task = Task.objects.get(opportunity=mine)
    assert (task.title, task.assigned_to, str(task.due_on)) == ("Send quote", owner, "2030-01-02")


def test_add_task_to_someone_elses_opportunity_is_not_found(client, owner, theirs):
    assert client.post(_url("task_add", theirs.pk), {"title": "x"}).status_code == 404


def test_overdue_task_stands_out_on_the_record(client, mine):
    factories.TaskFactory(
        opportunity=mine, title="Late", due_on=timezone.localdate() - timedelta(days=2)
    )
    html = client.get(_url("detail", mine.pk)).content.decode()
    assert "task is-overdue" in html and "Overdue · " in html


def test_toggle_task_done_and_back(client, mine):
    task = factories.TaskFactory(opportunity=mine)
    client.post(_url("task_done", task.pk), {"done": "1"}, **HX)
    task.refresh_from_db()
    assert task.is_done
    client.post(_url("task_done", task.pk), {"done": "0"}, **HX)
    task.refresh_from_db()
    assert not task.is_done


def test_my_tasks_lists_my_open_tasks_with_overdue_highlighted(client, mine, owner):
    today = timezone.localdate()
    factories.TaskFactory(opportunity=mine, title="Later one", due_on=today + timedelta(days=5))
    factories.TaskFactory(opportunity=mine, title="Late one", due_on=today - timedelta(days=1))
    factories.TaskFactory(opportunity=mine, title="Finished", done_at=timezone.now())
    response = client.get(_url("my_tasks"))
    html = response.content.decode()
    assert html.index("Late one") < html.index("Later one")
    assert "Finished" not in html
    assert "is-overdue" in html and "<strong>1</strong> overdue" in html


def test_done_from_my_tasks_removes_the_row(client, mine):
    task = factories.TaskFactory(opportunity=mine)
    response = client.post(_url("task_done", task.pk), {"done": "1", "from": "my_tasks"}, **HX)
    assert response.status_code == 200 and response.content == b""


def test_log_communication_shows_under_the_contacts_other_opportunity(client, stages, owner):
    contact = factories.ContactFactory()
    first = factories.OpportunityFactory(stage=stages[0], assigned_to=owner, contact=contact)
    second = factories.OpportunityFactory(stage=stages[1], assigned_to=owner, contact=contact)
    data = {"kind": "email", "summary": "Sent the contract", "occurred_at": ""}
    assert client.post(_url("communication_add", first.pk), data, **HX).status_code == 200
    assert "Sent the contract" in client.get(_url("detail", second.pk)).content.decode()


def test_log_communication_without_permission_is_forbidden(client, mine, owner):
    owner.groups.clear()
    data = {"kind": "call", "summary": "x"}
    assert client.post(_url("communication_add", mine.pk), data).status_code == 403


# --- Creating ---------------------------------------------------------------------------------


def test_quick_add_answers_the_card_and_the_column_header(client, stages, owner):
    pipeline = stages[0].pipeline
    factories.OpportunityFactory(stage=stages[1], assigned_to=owner, value=500)
    data = {"name": "Quick one", "contact_name": "Kim", "value": "250", "filters": "status=open"}
    response = client.post(_url("quick_add", pipeline.pk, stages[1].pk), data, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    created = Opportunity.objects.get(name="Quick one")
    assert (created.stage, created.status, created.assigned_to) == (stages[1], "open", owner)
    assert created.contact.name == "Kim"
    assert html.index(f'id="opportunity-{created.pk}"') < html.index("column-head-")
    assert f'id="column-head-{stages[1].pk}" hx-swap-oob="true"' in html
    assert "$750" in html
    top = Opportunity.objects.filter(stage=stages[1]).order_by("rank", "id").first()
    assert top == created


def test_quick_add_with_bad_value_is_a_400_with_the_message(client, stages, owner):
    pipeline = stages[0].pipeline
    data = {"name": "Bad", "value": "-10"}
    response = client.post(_url("quick_add", pipeline.pk, stages[0].pk), data, **HX)
    assert response.status_code == 400
    assert "The value cannot be negative." in response.content.decode()
    assert not Opportunity.objects.exists()


def test_quick_add_without_javascript_keeps_the_input_on_error(client, stages, owner):
    pipeline = stages[0].pipeline
    data = {"name": "Typed name", "value": "-10"}
    response = client.post(_url("quick_add", pipeline.pk, stages[0].pk), data)
    assert response.status_code == 400
    assert 'value="Typed name"' in response.content.decode()


def test_quick_add_needs_the_add_permission(client, stages, owner):
    owner.groups.clear()
    pipeline = stages[0].pipeline
    response = client.post(_url("quick_add", pipeline.pk, stages[0].pk), {"name": "x"}, **HX)
    assert response.status_code == 403


def test_full_form_creates_an_opportunity_with_a_new_contact(client, stages, owner):
    pipeline = stages[0].pipeline
    data = {
        "name": "From the form",
        "pipeline": pipeline.pk,
        "stage": stages[2].pk,
        "status": "open",
        "value": "1500",
        "source": "Trade show",
        "assigned_to": owner.pk,
        "contact-name": "Lee",
        "contact-email": "lee@example.com",
    }
    response = client.post(_url("create"), data)
    created = Opportunity.objects.get(name="From the form")
    assert response.status_code == 302 and response["Location"] == _url("detail", created.pk)
    assert (created.stage, created.source, created.contact.email) == (
        stages[2],
        "Trade show",
        "lee@example.com",
    )


def test_full_form_with_bad_email_creates_nothing(client, stages, owner):
    pipeline = stages[0].pipeline
    data = {
        "name": "Nope",
        "pipeline": pipeline.pk,
        "stage": stages[0].pk,
        "status": "open",
        "value": "1",
        "contact-name": "Lee",
        "contact-email": "not-an-email",
    }
    response = client.post(_url("create"), data)
    assert response.status_code == 400
    assert "Enter a valid email address" in response.content.decode()
    assert not Opportunity.objects.exists() and not Contact.objects.filter(name="Lee").exists()


def test_source_suggestions_list_sources_in_use_on_my_opportunities(client, mine, stages):
    factories.OpportunityFactory(stage=stages[1], source="Podcast", assigned_to=mine.assigned_to)
    factories.OpportunityFactory(stage=stages[1], source="Secret list", assigned_to=factories.rep())
    html = client.get(_url("detail", mine.pk)).content.decode()
    assert '<datalist id="source-options">' in html and '<option value="Podcast">' in html
    assert "Secret list" not in html


def test_full_form_preselects_the_pipeline_of_the_given_stage(client, stages, owner):
    response = client.get(_url("create"), {"stage": stages[2].pk})
    html = response.content.decode()
    assert f'<option value="{stages[0].pipeline_id}" selected>' in html
    assert f'<option value="{stages[2].pk}" selected>' in html


def test_edit_conflict_names_fields_and_formats_the_value(client, mine):
    stale = _edit_data(mine, value="2000")
    Opportunity.objects.filter(pk=mine.pk).update(version=2)
    html = client.post(_url("edit", mine.pk), stale).content.decode()
    assert '<th scope="row">Value</th><td class="mine">$2,000</td><td>$1,000</td>' in html
