"""The move and status services (opportunities/services/moves.py) on a real database."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities import ranking
from opportunities.errors import StaleVersion
from opportunities.models import Opportunity, OpportunityHistory, Status
from opportunities.services import moves
from opportunities.services.moves import opportunity_move, opportunity_set_status
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def stages():
    return factories.pipeline_with_stages()[1]


@pytest.fixture
def user():
    return factories.manager()


def column(stage) -> list[Opportunity]:
    return list(Opportunity.objects.filter(stage=stage).order_by("rank", "id"))


def cards_in(stage, count: int) -> list[Opportunity]:
    return [
        factories.OpportunityFactory(stage=stage, name=f"{stage.name} {i}") for i in range(count)
    ]


def fresh(opportunity) -> Opportunity:
    return Opportunity.objects.get(pk=opportunity.pk)


def drop(opportunity, stage, user, *, before=None, after=None) -> Opportunity:
    opportunity = fresh(opportunity)
    return opportunity_move(
        opportunity=opportunity,
        to_stage=stage,
        version=opportunity.version,
        user=user,
        before_id=before.pk if before else None,
        after_id=after.pk if after else None,
    )


# ----- Where the card lands ----------------------------------------------------------


def test_drop_between_neighbours_gets_a_rank_between_theirs(stages, user):
    first, second = cards_in(stages[1], 2)
    deal = factories.OpportunityFactory(stage=stages[0])
    moved = drop(deal, stages[1], user, before=first, after=second)
    assert first.rank < moved.rank < second.rank
    assert column(stages[1]) == [first, deal, second]


def test_drop_at_the_top_gets_a_rank_before_the_first_card(stages, user):
    first, second = cards_in(stages[1], 2)
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user, after=first)
    assert column(stages[1]) == [deal, first, second]


def test_drop_at_the_bottom_gets_a_rank_after_the_last_card(stages, user):
    first, second = cards_in(stages[1], 2)
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user, before=second)
    assert column(stages[1]) == [first, second, deal]


def test_drop_into_an_empty_column_gets_a_one_digit_rank(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    moved = drop(deal, stages[3], user)
    assert column(stages[3]) == [deal]
    assert len(moved.rank) == 1


def test_drop_without_neighbours_goes_to_the_top(stages, user):
    existing = cards_in(stages[1], 3)
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user)
    assert column(stages[1]) == [deal, *existing]


def test_neighbour_that_left_the_column_is_ignored(stages, user):
    first, gone, last = cards_in(stages[1], 3)
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(gone, stages[2], user)
    # The client still shows `gone` above the drop point; `last` below it is still true.
    drop(deal, stages[1], user, before=gone, after=last)
    assert column(stages[1]) == [first, deal, last]


def test_neighbour_that_is_not_directly_adjacent_uses_the_real_next_card(stages, user):
    """Cards the client did not load (or cannot see) keep their place below the drop."""
    first, hidden, last = cards_in(stages[1], 3)
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user, before=first, after=last)
    assert column(stages[1]) == [first, deal, hidden, last]


def test_reorder_within_a_column_keeps_the_other_cards_untouched(stages, user):
    cards = cards_in(stages[0], 4)
    before = {card.pk: (card.rank, card.version) for card in column(stages[0])}
    drop(cards[3], stages[0], user, before=cards[0], after=cards[1])
    assert column(stages[0]) == [cards[0], cards[3], cards[1], cards[2]]
    after = {card.pk: (card.rank, card.version) for card in column(stages[0])}
    assert {pk: after[pk] for pk in before if pk != cards[3].pk} == {
        pk: value for pk, value in before.items() if pk != cards[3].pk
    }


def test_move_bumps_the_version_and_resets_time_in_stage(stages, user):
    deal = factories.OpportunityFactory(
        stage=stages[0], stage_entered_at=timezone.now() - timezone.timedelta(days=9)
    )
    drop(deal, stages[1], user)
    deal = fresh(deal)
    assert deal.version == 2
    assert (timezone.now() - deal.stage_entered_at).total_seconds() < 60


def test_reorder_within_a_column_keeps_time_in_stage(stages, user):
    entered = timezone.now() - timezone.timedelta(days=9)
    top, deal = (
        factories.OpportunityFactory(stage=stages[0], stage_entered_at=entered) for _ in range(2)
    )
    drop(deal, stages[0], user, after=top)
    assert fresh(deal).stage_entered_at == entered


# ----- Many drops into one gap, through the database ---------------------------------


def test_three_hundred_drops_right_under_one_card_keep_order_and_short_keys(stages, user):
    anchor, bottom = cards_in(stages[1], 2)
    expected = [anchor, bottom]
    for index in range(300):
        deal = factories.OpportunityFactory(stage=stages[0], name=f"Drop {index}")
        drop(deal, stages[1], user, before=anchor, after=expected[1])
        expected.insert(1, deal)
    cards = column(stages[1])
    assert cards == expected
    # The anchors' keys (from the factory) have 5 digits; 300 drops add at most 5.
    assert max(len(card.rank) for card in cards) <= len(anchor.rank) + 5
    assert len({card.rank for card in cards}) == len(cards)


def test_three_hundred_drops_right_above_one_card_keep_order_and_short_keys(stages, user):
    top, anchor = cards_in(stages[1], 2)
    expected = [top, anchor]
    for index in range(300):
        deal = factories.OpportunityFactory(stage=stages[0], name=f"Drop {index}")
        drop(deal, stages[1], user, before=expected[-2], after=anchor)
        expected.insert(len(expected) - 1, deal)
    cards = column(stages[1])
    assert cards == expected
    assert max(len(card.rank) for card in cards) <= len(anchor.rank) + 5


# ----- Re-spacing ----------------------------------------------------------------------


def crowded_column(stage, count=6) -> list[Opportunity]:
    """Cards whose keys leave no room under MAX_KEY_LENGTH between the 3rd and the 4th."""
    stem = "V" * (ranking.MAX_KEY_LENGTH - 1)
    ranks = ["A", "B", stem + "1", stem + "2", "X", "Y"][:count]
    return [factories.OpportunityFactory(stage=stage, rank=rank) for rank in ranks]


def test_drop_into_a_gap_too_narrow_re_spaces_only_that_column(stages, user):
    cards = crowded_column(stages[1])
    bystanders = cards_in(stages[2], 3)
    bystander_ranks = [card.rank for card in bystanders]
    deal = factories.OpportunityFactory(stage=stages[0])
    with CaptureQueriesContext(connection) as queries:
        moved = drop(deal, stages[1], user, before=cards[2], after=cards[3])
    assert column(stages[1]) == [*cards[:3], deal, *cards[3:]]
    ranks = [card.rank for card in column(stages[1])]
    assert max(map(len, ranks)) <= 2
    assert len(moved.rank) <= 2
    # Other columns and the other cards' versions are untouched.
    assert [card.rank for card in column(stages[2])] == bystander_ranks
    assert all(card.version == 1 for card in column(stages[1]) if card != deal)
    updates = [q["sql"] for q in queries if q["sql"].lstrip().startswith("UPDATE")]
    assert len(updates) == 2  # one bulk re-spacing of the column, one for the moved card


def test_drop_into_a_normal_gap_does_not_re_space(stages, user):
    cards = crowded_column(stages[1])
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user, before=cards[0], after=cards[1])
    assert [card.rank for card in column(stages[1]) if card != deal] == [
        card.rank for card in cards
    ]


def test_re_space_column_keeps_the_order_and_puts_the_mover_in_place(stages):
    cards = crowded_column(stages[1])
    mover = factories.OpportunityFactory(stage=stages[0])
    key = moves._respace_column(stages[1], mover.pk, cards[1].pk, cards[2].pk)
    ranks = [card.rank for card in column(stages[1])]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert ranks[1] < key < ranks[2]
    assert [card.pk for card in column(stages[1])] == [card.pk for card in cards]


def test_equal_neighbour_ranks_are_repaired_by_re_spacing(stages, user):
    twins = [factories.OpportunityFactory(stage=stages[1], rank="M") for _ in range(2)]
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[1], user, before=twins[0], after=twins[1])
    cards = column(stages[1])
    assert cards == [twins[0], deal, twins[1]]
    assert len({card.rank for card in cards}) == 3


def test_zigzag_drops_re_space_rarely_and_keep_the_order(stages, user):
    """Every drop between the two newest cards: the pattern that needs re-spacing."""
    low, high = cards_in(stages[1], 2)
    deals = cards_in(stages[0], 300)
    expected, newest = [low, high], [low, high]
    low_ranks = {low.rank}  # the top card's key changes only when the column is re-spaced
    for deal in deals:
        lower, upper = sorted(newest[-2:], key=expected.index)
        drop(deal, stages[1], user, before=lower, after=upper)
        expected.insert(expected.index(upper), deal)
        newest.append(deal)
        low_ranks.add(fresh(low).rank)
    assert column(stages[1]) == expected
    assert max(len(card.rank) for card in column(stages[1])) <= ranking.MAX_KEY_LENGTH
    assert len(low_ranks) - 1 == 1  # one re-spacing in 300 drops


# ----- Refusals ----------------------------------------------------------------------


def test_stale_version_is_rejected_and_nothing_changes(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0], version=5)
    with pytest.raises(StaleVersion):
        opportunity_move(opportunity=fresh(deal), to_stage=stages[1], version=4, user=user)
    deal_now = fresh(deal)
    assert (deal_now.stage, deal_now.rank, deal_now.version) == (stages[0], deal.rank, 5)
    assert not OpportunityHistory.objects.exists()


def test_concurrent_change_after_reading_is_rejected_and_nothing_changes(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    loaded = fresh(deal)
    Opportunity.objects.filter(pk=deal.pk).update(version=2)  # someone else saved first
    with pytest.raises(StaleVersion):
        opportunity_move(opportunity=loaded, to_stage=stages[1], version=1, user=user)
    deal_now = fresh(deal)
    assert (deal_now.stage, deal_now.rank, deal_now.version) == (stages[0], deal.rank, 2)
    assert not OpportunityHistory.objects.exists()


def test_stale_move_into_a_crowded_gap_rolls_back_the_re_spacing(stages, user):
    cards = crowded_column(stages[1])
    deal = factories.OpportunityFactory(stage=stages[0])
    loaded = fresh(deal)
    Opportunity.objects.filter(pk=deal.pk).update(version=2)
    with pytest.raises(StaleVersion):
        opportunity_move(
            opportunity=loaded,
            to_stage=stages[1],
            version=1,
            user=user,
            before_id=cards[2].pk,
            after_id=cards[3].pk,
        )
    assert [card.rank for card in column(stages[1])] == [card.rank for card in cards]


def test_move_into_another_pipelines_stage_is_rejected(stages, user):
    _, foreign = factories.pipeline_with_stages(names=["Elsewhere"])
    deal = factories.OpportunityFactory(stage=stages[0])
    with pytest.raises(ValidationError) as error:
        opportunity_move(opportunity=fresh(deal), to_stage=foreign[0], version=1, user=user)
    assert "another pipeline" in str(error.value)
    assert (fresh(deal).stage, fresh(deal).version) == (stages[0], 1)


# ----- History -----------------------------------------------------------------------


def test_stage_change_writes_one_history_row(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    drop(deal, stages[2], user)
    row = OpportunityHistory.objects.get(field="stage")
    assert (row.opportunity, row.from_stage, row.to_stage, row.user) == (
        deal,
        stages[0],
        stages[2],
        user,
    )
    assert row.from_status == row.to_status == Status.OPEN


def test_reorder_within_a_stage_writes_no_history(stages, user):
    top, deal = cards_in(stages[0], 2)
    drop(deal, stages[0], user, after=top)
    assert not OpportunityHistory.objects.exists()


# ----- Status ------------------------------------------------------------------------


def mark(deal, status, user, **kwargs):
    deal = fresh(deal)
    return opportunity_set_status(
        opportunity=deal, status=status, version=deal.version, user=user, **kwargs
    )


def test_lost_needs_a_reason(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    with pytest.raises(ValidationError) as error:
        mark(deal, Status.LOST, user)
    assert "lost_reason" in error.value.message_dict
    assert fresh(deal).status == Status.OPEN


def test_lost_refuses_a_retired_reason(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    retired = factories.LostReasonFactory(name="Old reason", is_active=False)
    with pytest.raises(ValidationError):
        mark(deal, Status.LOST, user, lost_reason=retired)
    assert fresh(deal).status == Status.OPEN


def test_lost_with_a_reason_sets_closed_at_and_writes_history(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    reason = factories.LostReasonFactory(name="Budget")
    mark(deal, Status.LOST, user, lost_reason=reason)
    deal = fresh(deal)
    assert (deal.status, deal.lost_reason, deal.version) == (Status.LOST, reason, 2)
    assert deal.closed_at is not None
    row = OpportunityHistory.objects.get(field="status")
    assert (row.from_status, row.to_status, row.from_stage, row.to_stage) == (
        Status.OPEN,
        Status.LOST,
        stages[0],
        stages[0],
    )


@pytest.mark.parametrize("status", [Status.WON, Status.ABANDONED])
def test_closing_sets_closed_at_and_drops_any_reason(stages, user, status):
    deal = factories.OpportunityFactory(stage=stages[0])
    reason = factories.LostReasonFactory(name="Budget")
    mark(deal, status, user, lost_reason=reason)
    deal = fresh(deal)
    assert (deal.status, deal.lost_reason) == (status, None)
    assert deal.closed_at is not None


def test_reopen_clears_closed_at_and_the_reason(stages, user):
    deal = factories.OpportunityFactory(
        stage=stages[0], status=Status.LOST, closed_at=timezone.now()
    )
    mark(deal, Status.OPEN, user)
    deal = fresh(deal)
    assert (deal.status, deal.lost_reason, deal.closed_at) == (Status.OPEN, None, None)
    assert OpportunityHistory.objects.get(field="status").to_status == Status.OPEN


def test_changing_only_the_lost_reason_keeps_the_close_date(stages, user):
    first, second = (factories.LostReasonFactory(name=name) for name in ("Budget", "Timing"))
    deal = factories.OpportunityFactory(stage=stages[0])
    mark(deal, Status.LOST, user, lost_reason=first)
    closed_at = fresh(deal).closed_at
    mark(deal, Status.LOST, user, lost_reason=second)
    assert (fresh(deal).lost_reason, fresh(deal).closed_at) == (second, closed_at)


def test_setting_the_same_status_again_is_refused(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0])
    with pytest.raises(ValidationError):
        mark(deal, Status.OPEN, user)
    assert fresh(deal).version == 1


def test_status_with_stale_version_is_rejected(stages, user):
    deal = factories.OpportunityFactory(stage=stages[0], version=3)
    with pytest.raises(StaleVersion):
        opportunity_set_status(opportunity=fresh(deal), status=Status.WON, version=2, user=user)
    assert (fresh(deal).status, fresh(deal).version) == (Status.OPEN, 3)
    assert not OpportunityHistory.objects.exists()
