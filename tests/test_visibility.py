"""The one visibility rule ("only assigned data") every view reads through."""

import pytest
from django.contrib.auth.models import AnonymousUser

from opportunities.selectors import opportunities_visible_to
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def deals():
    """One opportunity for the rep, one for another rep, one for nobody."""
    stage = factories.StageFactory()
    owner, colleague = factories.rep(username="owner"), factories.rep(username="colleague")
    return {
        "owner": owner,
        "own": factories.OpportunityFactory(stage=stage, assigned_to=owner),
        "colleague": factories.OpportunityFactory(stage=stage, assigned_to=colleague),
        "unassigned": factories.OpportunityFactory(stage=stage, assigned_to=None),
    }


def visible_ids(user):
    return set(opportunities_visible_to(user).values_list("pk", flat=True))


def every_id(deals):
    return {deals[key].pk for key in ("own", "colleague", "unassigned")}


def test_rep_sees_only_own_opportunities(deals):
    assert visible_ids(deals["owner"]) == {deals["own"].pk}


def test_rep_with_view_all_permission_sees_all(deals):
    assert visible_ids(factories.rep_with_view_all()) == every_id(deals)


def test_manager_sees_all(deals):
    assert visible_ids(factories.manager()) == every_id(deals)


def test_superuser_sees_all(deals):
    assert visible_ids(factories.admin()) == every_id(deals)


def test_anonymous_sees_none(deals):
    assert visible_ids(AnonymousUser()) == set()


def test_rep_sees_own_opportunities_in_admin_list(client, deals):
    owner = deals["owner"]
    owner.is_staff = True
    owner.save()
    client.force_login(owner)
    response = client.get("/admin/opportunities/opportunity/")
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [deals["own"]]
