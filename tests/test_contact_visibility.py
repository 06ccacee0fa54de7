"""'Only assigned data' for contacts, sources and task assignees.

A rep sees a contact only if it is on an opportunity they can see; everything that
picks, searches, edits or suggests follows `contacts_visible_to`.
"""

import re

import pytest
from django.urls import reverse

from opportunities.models import Contact, Opportunity, Task
from opportunities.selectors import contacts_visible_to, users_who_can_see
from tests import factories

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def stages():
    return factories.pipeline_with_stages()[1]


@pytest.fixture
def rep(client):
    user = factories.rep()
    client.force_login(user)
    return user


@pytest.fixture
def mine(stages, rep):
    return factories.OpportunityFactory(stage=stages[0], assigned_to=rep)


@pytest.fixture
def theirs(stages):
    return factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())


def _url(name, *args):
    return reverse(f"opportunities:{name}", args=args)


def _edit_data(opportunity, contact, **contact_details):
    details = {
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "company": contact.company,
    } | contact_details
    return {
        "name": opportunity.name,
        "value": str(opportunity.value),
        "source": opportunity.source,
        "assigned_to": str(opportunity.assigned_to_id),
        "stage": str(opportunity.stage_id),
        "status": opportunity.status,
        "version": str(opportunity.version),
        "contact-id": str(contact.pk),
        **{f"contact-{key}": value for key, value in details.items()},
    }


def _contact_row(contact: Contact) -> tuple:
    return Contact.objects.filter(pk=contact.pk).values_list("name", "email", "phone").get()


def test_a_rep_sees_the_contacts_of_their_opportunities_only(mine, theirs, rep):
    assert list(contacts_visible_to(rep)) == [mine.contact]


def test_a_manager_sees_every_contact_even_one_on_no_opportunity(mine, theirs):
    orphan = factories.ContactFactory()
    visible = set(contacts_visible_to(factories.manager()))
    assert {mine.contact, theirs.contact, orphan} <= visible


def test_picking_another_reps_contact_is_a_404(client, rep, theirs):
    response = client.get(_url("contact_pick"), {"id": theirs.contact_id}, **HX)
    assert response.status_code == 404
    assert theirs.contact.email not in response.content.decode()


@pytest.mark.parametrize("bad_id", ["abc", "1.5", "-1", "0", "9" * 30, "١"])
def test_picking_a_malformed_contact_id_is_a_404_not_a_500(client, rep, bad_id):
    response = client.get(_url("contact_pick"), {"id": bad_id}, **HX)
    assert response.status_code == 404


def test_contact_search_finds_only_visible_contacts(client, rep, mine, theirs, stages):
    theirs.contact.name = mine.contact.name = "Zelda Common"
    Contact.objects.bulk_update([theirs.contact, mine.contact], ["name"])
    html = client.get(_url("contact_search"), {"contact-search": "zelda"}, **HX).content.decode()
    assert f'id={mine.contact_id}"' in html
    assert f'id={theirs.contact_id}"' not in html


def test_taking_over_another_reps_contact_through_the_edit_form_is_a_404(client, rep, mine, theirs):
    before = _contact_row(theirs.contact)
    data = _edit_data(mine, theirs.contact, email="attacker@example.com", phone="5550100")
    response = client.post(_url("edit", mine.pk), data, **HX)
    assert response.status_code == 404
    assert _contact_row(theirs.contact) == before
    assert Opportunity.objects.get(pk=mine.pk).contact_id == mine.contact_id


def test_creating_with_another_reps_contact_is_a_404_and_creates_nothing(
    client, rep, theirs, stages
):
    data = {
        "name": "Grab",
        "pipeline": str(stages[0].pipeline_id),
        "stage": str(stages[0].pk),
        "status": "open",
        "value": "1",
        "assigned_to": str(rep.pk),
        "contact-id": str(theirs.contact_id),
        "contact-name": "Renamed",
    }
    count = Opportunity.objects.count()
    response = client.post(_url("create"), data)
    assert response.status_code == 404
    assert Opportunity.objects.count() == count
    assert Contact.objects.get(pk=theirs.contact_id).name == theirs.contact.name


def test_a_shared_contact_can_be_picked_by_each_rep_who_sees_it(client, rep, mine, theirs):
    factories.OpportunityFactory(stage=theirs.stage, contact=theirs.contact, assigned_to=rep)
    response = client.get(_url("contact_pick"), {"id": theirs.contact_id}, **HX)
    assert response.status_code == 200


def test_source_suggestions_on_the_new_opportunity_form_are_my_sources(client, rep, stages):
    factories.OpportunityFactory(stage=stages[0], assigned_to=rep, source="Referral")
    factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep(), source="Hidden")
    html = client.get(_url("create")).content.decode()
    assert '<option value="Referral">' in html and "Hidden" not in html


def test_task_assignees_are_the_people_who_can_see_the_opportunity(client, rep, mine):
    other_rep, manager = factories.rep(), factories.manager()
    superuser, view_all = factories.admin(), factories.rep_with_view_all()
    inactive = factories.manager(is_active=False)
    people = set(users_who_can_see(mine))
    assert {rep, manager, superuser, view_all} <= people
    assert other_rep not in people and inactive not in people
    html = client.get(_url("detail", mine.pk)).content.decode()
    select = re.search(r'<select name="assigned_to" id="task_assigned_to".*?</select>', html, re.S)
    assert f'<option value="{manager.pk}"' in select[0]
    assert f'<option value="{other_rep.pk}"' not in select[0]


def test_a_task_for_someone_who_cannot_see_the_opportunity_is_refused(client, rep, mine):
    other_rep = factories.rep()
    data = {"title": "Call", "assigned_to": str(other_rep.pk)}
    response = client.post(_url("task_add", mine.pk), data, **HX)
    assert response.status_code == 422
    assert "Choose someone who can see this opportunity." in response.content.decode()
    assert not Task.objects.filter(opportunity=mine, title="Call").exists()


def test_quick_add_refuses_an_archived_pipeline(client, rep, stages):
    pipeline = stages[0].pipeline
    pipeline.is_archived = True
    pipeline.save(update_fields=["is_archived"])
    count = Opportunity.objects.count()
    url = _url("quick_add", pipeline.pk, stages[0].pk)
    response = client.post(url, {"name": "Ghost deal"}, **HX)
    assert response.status_code == 400
    assert "archived" in response.content.decode()
    assert Opportunity.objects.count() == count
