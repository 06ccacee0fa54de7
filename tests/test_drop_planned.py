"""A drop is read and planned before the write's transaction and only its statements run
under the write lock. Whatever happened in between (another drop into the same gap, an
edit of the card) is caught by the guarded UPDATE: the drop is then done again under the
lock, or refused as stale, and never leaves two cards on one rank or a half write."""

import pytest

from opportunities.errors import StaleVersion
from opportunities.models import EventType, Opportunity, OpportunityEvent, OpportunityHistory
from opportunities.services import moves
from opportunities.services.opportunities import opportunity_update
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def column():
    """A manager, four stages, and two cards at the top of the second stage."""
    _, stages = factories.pipeline_with_stages()
    manager = factories.manager()
    top = factories.OpportunityFactory(stage=stages[1], rank="V")
    below = factories.OpportunityFactory(stage=stages[1], rank="k")
    return manager, stages, top, below


def _between_plan_and_lock(monkeypatch, meanwhile):
    """Run `meanwhile()` once, after the next drop is planned and before its transaction:
    what another writer can do in that window."""
    planned = moves.opportunity_write_planned
    done = []

    def plan_then_interleave(**kwargs):
        plan = planned(**kwargs)
        if not done:
            done.append(True)
            meanwhile()
        return plan

    monkeypatch.setattr(moves, "opportunity_write_planned", plan_then_interleave)


def drop(deal, stage, user, **neighbours):
    return moves.opportunity_drop(
        pk=deal.pk, stage_id=stage.pk, version=deal.version, user=user, **neighbours
    )


def test_a_drop_into_a_gap_another_drop_took_meanwhile_gets_its_own_rank(monkeypatch, column):
    manager, stages, top, below = column
    first = factories.OpportunityFactory(stage=stages[0])
    second = factories.OpportunityFactory(stage=stages[0])
    # Both are dropped between the same two cards; the second lands while the first
    # is planned, so the first's planned key is taken when its UPDATE runs.
    _between_plan_and_lock(
        monkeypatch, lambda: drop(second, stages[1], manager, before_id=top.pk, after_id=below.pk)
    )
    drop(first, stages[1], manager, before_id=top.pk, after_id=below.pk)
    ranks = dict(Opportunity.objects.filter(stage=stages[1]).values_list("pk", "rank"))
    assert len(set(ranks.values())) == 4
    assert ranks[top.pk] < ranks[first.pk] < ranks[below.pk]
    assert ranks[top.pk] < ranks[second.pk] < ranks[below.pk]
    for deal in (first, second):
        # Written once: one version step, one history row, one stage event each.
        assert Opportunity.objects.get(pk=deal.pk).version == deal.version + 1
        assert OpportunityHistory.objects.filter(opportunity_id=deal.pk, field="stage").count() == 1
        events = OpportunityEvent.objects.filter(opportunity_id=deal.pk)
        assert list(events.values_list("type", flat=True)) == [EventType.STAGE_UPDATE]


def test_a_card_edited_between_the_plan_and_the_lock_is_refused_as_stale(monkeypatch, column):
    manager, stages, top, _ = column
    deal = factories.OpportunityFactory(stage=stages[0], name="Before")

    def rename():
        current = Opportunity.objects.get(pk=deal.pk)
        opportunity_update(
            opportunity=current, version=current.version, user=manager, name="Edited"
        )

    _between_plan_and_lock(monkeypatch, rename)
    with pytest.raises(StaleVersion):
        drop(deal, stages[1], manager, before_id=top.pk)
    deal.refresh_from_db()
    assert (deal.stage, deal.name, deal.version) == (stages[0], "Edited", 2)
    assert not OpportunityHistory.objects.filter(opportunity_id=deal.pk, field="stage").exists()
    assert not OpportunityEvent.objects.filter(
        opportunity_id=deal.pk, type=EventType.STAGE_UPDATE
    ).exists()


def test_a_drop_planned_undisturbed_writes_its_planned_rank(column):
    manager, stages, top, below = column
    deal = factories.OpportunityFactory(stage=stages[0])
    moved = drop(deal, stages[1], manager, before_id=top.pk, after_id=below.pk).opportunity
    stored = Opportunity.objects.get(pk=deal.pk)
    assert (stored.stage_id, stored.rank, stored.version) == (stages[1].pk, moved.rank, 2)
    assert top.rank < moved.rank < below.rank
