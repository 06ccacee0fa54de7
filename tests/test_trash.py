"""The trash: managers see deleted deals and restore them; a periodic job purges old ones."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from opportunities.jobs import purge_trash
from opportunities.models import Opportunity
from opportunities.services.opportunities import opportunity_delete
from tests import factories

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
TRASH = reverse("opportunities:trash")


@pytest.fixture
def manager(client):
    user = factories.manager(first_name="Morgan", last_name="Manager")
    client.force_login(user)
    return user


@pytest.fixture
def trashed(manager):
    deal = factories.OpportunityFactory(name="Old fleet deal", value=4200)
    opportunity_delete(opportunity=deal, user=manager)
    deal.refresh_from_db()
    return deal


def test_trash_lists_deleted_deals_with_who_and_when(client, trashed):
    html = client.get(TRASH).content.decode()
    assert "Old fleet deal" in html and "Morgan Manager" in html and "$4,200" in html
    assert f"kept for {settings.TRASH_RETENTION_DAYS} days" in html
    purge_on = trashed.deleted_at + timedelta(days=settings.TRASH_RETENTION_DAYS)
    assert timezone.localtime(purge_on).strftime("%b %-d, %Y") in html


def test_empty_trash_says_so(client, manager):
    assert "The trash is empty." in client.get(TRASH).content.decode()


def test_restore_puts_the_deal_back(client, trashed):
    url = reverse("opportunities:restore", args=[trashed.pk])
    response = client.post(url, **HX)
    assert response.status_code == 200 and "Restored" in response["HX-Trigger"]
    trashed.refresh_from_db()
    assert trashed.deleted_at is None
    assert client.get(reverse("opportunities:detail", args=[trashed.pk])).status_code == 200


def test_restore_without_javascript_opens_the_record(client, trashed):
    response = client.post(reverse("opportunities:restore", args=[trashed.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("opportunities:detail", args=[trashed.pk])


def test_restoring_a_deal_not_in_the_trash_is_404(client, manager):
    live = factories.OpportunityFactory()
    assert client.post(reverse("opportunities:restore", args=[live.pk])).status_code == 404


def test_reps_get_403_on_the_trash_and_restore(client, trashed):
    client.force_login(factories.rep())
    assert client.get(TRASH).status_code == 403
    assert client.post(reverse("opportunities:restore", args=[trashed.pk])).status_code == 403
    trashed.refresh_from_db()
    assert trashed.deleted_at is not None


def test_purge_job_deletes_only_deals_older_than_the_retention(trashed, manager):
    recent = factories.OpportunityFactory()
    opportunity_delete(opportunity=recent, user=manager)
    old = timezone.now() - timedelta(days=settings.TRASH_RETENTION_DAYS + 1)
    Opportunity.objects.filter(pk=trashed.pk).update(deleted_at=old)
    assert purge_trash() == 1
    assert not Opportunity.objects.filter(pk=trashed.pk).exists()
    assert Opportunity.objects.filter(pk=recent.pk).exists()


def test_purge_job_is_registered():
    assert ("opportunities.jobs.purge_trash", 3600) in settings.PERIODIC_JOBS


def test_the_manager_list_links_to_the_trash_for_managers_only(client, manager):
    assert TRASH in client.get(reverse("opportunities:list")).content.decode()
    client.force_login(factories.rep())
    assert TRASH not in client.get(reverse("opportunities:list")).content.decode()
