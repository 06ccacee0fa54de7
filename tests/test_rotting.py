"""One rotting rule: the board's cards, the manager's stale view and the selector agree."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Opportunity
from opportunities.selectors import is_rotting, rotting_condition
from tests import factories


@pytest.fixture
def deals(db):
    _, stages = factories.pipeline_with_stages()
    stages[0].rotting_days = 10
    stages[0].save(update_fields=["rotting_days"])
    now = timezone.now()
    old = factories.OpportunityFactory(stage=stages[0], stage_entered_at=now - timedelta(days=11))
    fresh = factories.OpportunityFactory(stage=stages[0], stage_entered_at=now - timedelta(days=9))
    closed = factories.OpportunityFactory(
        stage=stages[0], stage_entered_at=now - timedelta(days=30), status="won"
    )
    no_limit = factories.OpportunityFactory(
        stage=stages[1], stage_entered_at=now - timedelta(days=300)
    )
    return old, fresh, closed, no_limit


def test_the_condition_and_the_card_rule_agree(deals):
    old, *_ = deals
    matching = set(Opportunity.objects.filter(rotting_condition()).values_list("pk", flat=True))
    assert matching == {old.pk}
    for deal in Opportunity.objects.select_related("stage"):
        assert is_rotting(deal) == (deal.pk in matching)


def test_a_rule_may_name_its_own_limit(deals):
    old, fresh, _, no_limit = deals
    matching = set(
        Opportunity.objects.filter(rotting_condition(days=5)).values_list("pk", flat=True)
    )
    assert matching == {old.pk, fresh.pk, no_limit.pk}


def test_the_board_marks_only_the_rotting_card(client, deals):
    old, fresh, *_ = deals
    client.force_login(factories.manager())
    html = client.get(reverse("opportunities:board", args=[old.pipeline_id])).content.decode()

    def classes(deal):
        return re.search(rf'<li class="([^"]*)" id="opportunity-{deal.pk}"', html)[1].split()

    assert "is-rotting" in classes(old)
    assert "is-rotting" not in classes(fresh)
