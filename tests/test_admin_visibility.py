"""The admin honours "only assigned data" for staff who are not superusers.

A rep made staff, with admin permissions on notes, tasks, communications and contacts,
sees and opens only the rows of their own deals, and cannot attach a row to another
rep's deal or contact.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from opportunities.models import Communication, Contact, Note, Opportunity, Task
from tests import factories

pytestmark = pytest.mark.django_db

MODELS = {"note": Note, "task": Task, "communication": Communication, "contact": Contact}


@pytest.fixture
def staff_rep(client):
    user = factories.rep(is_staff=True)
    codenames = [f"{action}_{name}" for name in MODELS for action in ("view", "change", "add")]
    codenames += ["view_opportunityhistory"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


@pytest.fixture
def deals(staff_rep):
    stages = factories.pipeline_with_stages()[1]
    mine = factories.OpportunityFactory(stage=stages[0], assigned_to=staff_rep)
    theirs = factories.OpportunityFactory(stage=stages[0], assigned_to=factories.rep())
    rows = {}
    for owner, deal in (("mine", mine), ("theirs", theirs)):
        rows[owner] = {
            "opportunity": deal,
            "note": factories.NoteFactory(opportunity=deal, body=f"{owner} note"),
            "task": factories.TaskFactory(opportunity=deal, title=f"{owner} task"),
            "communication": factories.CommunicationFactory(opportunity=deal),
            "contact": deal.contact,
        }
    return rows


def _admin_url(name: str, action: str, *args) -> str:
    return reverse(f"admin:opportunities_{name}_{action}", args=args)


@pytest.mark.parametrize("name", MODELS)
def test_the_changelist_shows_only_rows_of_my_deals(client, deals, name):
    response = client.get(_admin_url(name, "changelist"))
    assert response.status_code == 200
    shown = {row.pk for row in response.context["cl"].result_list}
    assert shown == {deals["mine"][name].pk}


@pytest.mark.parametrize("name", MODELS)
def test_another_reps_row_cannot_be_opened(client, deals, name):
    response = client.get(_admin_url(name, "change", deals["theirs"][name].pk))
    # The admin's answer for a row it cannot find: back to the index with a message.
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


def test_another_reps_contact_cannot_be_changed_by_posting_to_it(client, deals):
    contact = deals["theirs"]["contact"]
    before = Contact.objects.values().get(pk=contact.pk)
    client.post(
        _admin_url("contact", "change", contact.pk),
        {"name": "Taken over", "email": "evil@example.com", "phone": "", "company": ""},
    )
    assert Contact.objects.values().get(pk=contact.pk) == before


def test_a_note_cannot_be_added_to_another_reps_deal(client, deals, staff_rep):
    theirs = deals["theirs"]["opportunity"]
    response = client.post(
        _admin_url("note", "add"),
        {"opportunity": theirs.pk, "author": staff_rep.pk, "body": "Sneaky"},
    )
    assert response.status_code == 200  # the form again, with an error
    assert not Note.objects.filter(body="Sneaky").exists()


def test_autocomplete_offers_only_visible_contacts(client, deals):
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "opportunities", "model_name": "communication", "field_name": "contact"},
    )
    assert response.status_code == 200
    ids = {int(result["id"]) for result in response.json()["results"]}
    assert ids == {deals["mine"]["contact"].pk}


def test_a_superuser_still_sees_everything(client, deals):
    client.force_login(factories.admin())
    response = client.get(_admin_url("note", "changelist"))
    assert len(response.context["cl"].result_list) == Note.objects.count()
    assert Opportunity.objects.count() == 2
