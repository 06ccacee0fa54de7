"""The drag's one read is compiled once per user and shape (compiled_reads) and run with
each drag's ids: it must load the whole card (its event carries it), keep each user's
visibility, and refuse ids no database integer holds without a 500."""

import pytest
from django.urls import reverse

from opportunities.models import EventType, OpportunityEvent
from opportunities.serializers import opportunity_as_api
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TOO_BIG = 2**63


def drag(client, deal, stage, **extra):
    data = {"stage": stage.pk, "version": deal.version, **extra}
    return client.post(reverse("opportunities:move", args=[deal.pk]), data, **HTMX)


def test_the_stage_event_carries_the_card_as_the_api_reads_it(client):
    _, stages = factories.pipeline_with_stages()
    rep = factories.rep(username="rita")
    contact = factories.ContactFactory(name="Ada Lovelace", company="Engines")
    deal = factories.OpportunityFactory(
        stage=stages[0], assigned_to=rep, contact=contact, value=1234, source="Referral"
    )
    client.force_login(rep)
    assert drag(client, deal, stages[1]).status_code == 200
    event = OpportunityEvent.objects.get(opportunity_id=deal.pk, type=EventType.STAGE_UPDATE)
    deal.refresh_from_db()
    assert event.payload["opportunity"] == opportunity_as_api(deal)
    assert event.payload["opportunity"]["contact"]["name"] == "Ada Lovelace"
    assert event.payload["changes"]["pipelineStageId"] == {
        "old": str(stages[0].pk),
        "new": str(stages[1].pk),
    }


def test_one_reps_compiled_read_never_answers_for_another(client):
    _, stages = factories.pipeline_with_stages()
    rita, otto = factories.rep(username="rita"), factories.rep(username="otto")
    ritas = factories.OpportunityFactory(stage=stages[0], assigned_to=rita)
    ottos = factories.OpportunityFactory(stage=stages[0], assigned_to=otto)
    client.force_login(rita)
    assert drag(client, ritas, stages[1]).status_code == 200  # rita's statement compiled
    assert drag(client, ottos, stages[1]).status_code == 404
    client.force_login(otto)
    assert drag(client, ottos, stages[1]).status_code == 200
    ritas.refresh_from_db()
    assert drag(client, ritas, stages[2]).status_code == 404
    ritas.refresh_from_db()
    assert ritas.stage == stages[1]


@pytest.fixture
def ritas_deal(client):
    """A deal of the signed-in rep in the first of four stages."""
    _, stages = factories.pipeline_with_stages()
    rep = factories.rep(username="rita")
    client.force_login(rep)
    return factories.OpportunityFactory(stage=stages[0], assigned_to=rep), stages


def test_a_neighbour_that_is_not_in_the_column_is_ignored(client, ritas_deal):
    deal, stages = ritas_deal
    response = drag(client, deal, stages[1], before=999_999, after=999_998)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.stage == stages[1]


def test_a_neighbour_id_no_database_holds_is_refused_and_nothing_moves(client, ritas_deal):
    deal, stages = ritas_deal
    assert drag(client, deal, stages[1], before=TOO_BIG).status_code == 400
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages[0], 1)


def test_a_card_id_no_database_holds_is_not_found(client):
    _, stages = factories.pipeline_with_stages()
    client.force_login(factories.manager(username="mia"))
    url = reverse("opportunities:move", args=[TOO_BIG])
    response = client.post(url, {"stage": stages[0].pk, "version": 1}, **HTMX)
    assert response.status_code == 404


def test_a_stage_of_another_pipeline_is_refused_and_nothing_moves(client, ritas_deal):
    deal, stages = ritas_deal
    _, elsewhere = factories.pipeline_with_stages(name="Renewals")
    response = drag(client, deal, elsewhere[0])
    assert response.status_code == 400
    assert "not part of this opportunity's pipeline" in response.content.decode()
    deal.refresh_from_db()
    assert (deal.stage, deal.version) == (stages[0], 1)
