"""Summary, funnel and monthly figures of the manager's list, against hand-computed values."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Q
from django.utils import timezone

from opportunities.models import Opportunity, OpportunityHistory, Status
from opportunities.reports import (
    opportunity_summary,
    quick_view_counts,
    stage_funnels,
    won_lost_by_month,
)
from tests import factories

pytestmark = pytest.mark.django_db


def at(year, month, day):
    return timezone.make_aware(datetime(year, month, day, 12))


@pytest.fixture
def closed_deals():
    """Two won (1000 in 10 days, 3000 in 20 days), three lost (500 in 4 days, 700 and 200
    in 6 days), one abandoned (100 in 30 days), two open (2000, 0)."""
    _, stages = factories.pipeline_with_stages()
    price = factories.LostReasonFactory(name="Price")
    timing = factories.LostReasonFactory(name="Timing")
    start = at(2026, 3, 1)

    def deal(status, value, days=None, reason=None):
        return factories.OpportunityFactory(
            stage=stages[0],
            status=status,
            value=value,
            lost_reason=reason,
            created_at=start,
            closed_at=start + timedelta(days=days) if days is not None else None,
            days_to_close=days,  # what the write path stores when a deal closes
        )

    deal(Status.WON, 1000, 10)
    deal(Status.WON, 3000, 20)
    deal(Status.LOST, 500, 4, price)
    deal(Status.LOST, 700, 6, timing)
    deal(Status.LOST, 200, 6, timing)
    deal(Status.ABANDONED, 100, 30)
    deal(Status.OPEN, 2000)
    deal(Status.OPEN, 0)


def test_summary_counts_and_values(closed_deals):
    summary = opportunity_summary(Opportunity.objects.all())
    assert summary.count == 8
    assert summary.total_value == Decimal("7500")
    assert summary.won_value == Decimal("4000")
    assert summary.won_count == 2
    assert summary.lost_count == 3
    assert summary.lost_value == Decimal("1400")


def test_win_rate_is_won_over_won_plus_lost(closed_deals):
    # 2 won / (2 won + 3 lost); abandoned and open do not count.
    assert opportunity_summary(Opportunity.objects.all()).win_rate == Decimal("40.0")


def test_win_rate_is_none_without_won_or_lost(closed_deals):
    summary = opportunity_summary(Opportunity.objects.filter(status=Status.OPEN))
    assert summary.win_rate is None


def test_average_days_to_close_covers_every_closed_opportunity(closed_deals):
    # (10 + 20 + 4 + 6 + 6 + 30) / 6 = 12.67
    assert opportunity_summary(Opportunity.objects.all()).average_days_to_close == Decimal("12.7")


def test_lost_reasons_are_ranked_by_count(closed_deals):
    reasons = opportunity_summary(Opportunity.objects.all()).lost_reasons
    assert [(r.name, r.count, r.value, r.share) for r in reasons] == [
        ("Timing", 2, Decimal("900"), 67),
        ("Price", 1, Decimal("500"), 33),
    ]


def test_summary_of_an_empty_set_is_zero():
    summary = opportunity_summary(Opportunity.objects.none())
    assert (summary.count, summary.total_value, summary.won_value) == (0, 0, 0)
    assert summary.average_days_to_close is None
    assert summary.lost_reasons == []


def test_summary_describes_only_the_given_set(closed_deals):
    summary = opportunity_summary(Opportunity.objects.filter(value__gte=1000))
    assert (summary.count, summary.won_count, summary.lost_count) == (3, 2, 0)
    assert summary.win_rate == Decimal("100.0")


def test_summary_takes_two_queries(closed_deals, django_assert_num_queries):
    with django_assert_num_queries(2):
        opportunity_summary(Opportunity.objects.all())


def test_funnel_counts_history_and_current_stage():
    pipeline, stages = factories.pipeline_with_stages(("Lead", "Demo", "Proposal", "Closing"))
    stages[2].show_in_funnel = False
    stages[2].save()
    # A went Lead -> Demo -> Closing; B sits in Lead with no history (older data);
    # C went Lead -> Demo and back to Lead: it counts once per stage it reached.
    a = factories.OpportunityFactory(stage=stages[3])
    factories.OpportunityFactory(stage=stages[0])
    c = factories.OpportunityFactory(stage=stages[0])
    for opportunity, path in ((a, [0, 1, 3]), (c, [0, 1, 0])):
        for step in path:
            OpportunityHistory.objects.create(opportunity=opportunity, to_stage=stages[step])

    (funnel,) = stage_funnels(Opportunity.objects.all())
    assert funnel.pipeline == pipeline
    assert [(step.stage.name, step.count, step.share) for step in funnel.steps] == [
        ("Lead", 3, 100),
        ("Demo", 2, 67),
        ("Closing", 1, 33),
    ]


def test_funnel_counts_only_the_given_set():
    _, stages = factories.pipeline_with_stages(("Lead", "Demo"))
    kept = factories.OpportunityFactory(stage=stages[1], value=10)
    factories.OpportunityFactory(stage=stages[1], value=99999)
    OpportunityHistory.objects.create(opportunity=kept, to_stage=stages[0])
    (funnel,) = stage_funnels(Opportunity.objects.filter(value__lt=100))
    assert [step.count for step in funnel.steps] == [1, 1]


def test_funnel_takes_three_queries_whatever_the_size(django_assert_num_queries):
    for _ in range(2):
        factories.pipeline_with_stages()
    for stage in factories.StageFactory._meta.model.objects.all():
        factories.OpportunityFactory.create_batch(3, stage=stage)
    with django_assert_num_queries(3):
        funnels = stage_funnels(Opportunity.objects.all())
    assert len(funnels) == 2


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_won_and_lost_value_per_month_fills_empty_months(zone, settings):
    settings.TIME_ZONE = zone  # months are the site's; SQLite stores UTC
    _, stages = factories.pipeline_with_stages()
    reason = factories.LostReasonFactory(name="Price")
    for status, value, closed in [
        (Status.WON, 100, at(2026, 1, 5)),
        (Status.WON, 250, at(2026, 1, 20)),
        (Status.LOST, 80, at(2026, 1, 21)),
        (Status.LOST, 40, at(2026, 3, 2)),
        (Status.ABANDONED, 999, at(2026, 2, 2)),
    ]:
        factories.OpportunityFactory(
            stage=stages[0],
            status=status,
            value=value,
            closed_at=closed,
            lost_reason=reason if status == Status.LOST else None,
        )
    months = won_lost_by_month(Opportunity.objects.all())
    assert [
        (m.month.isoformat(), m.won_value, m.won_count, m.lost_value, m.lost_count) for m in months
    ] == [
        ("2026-01-01", Decimal("350"), 2, Decimal("80"), 1),
        ("2026-02-01", Decimal("0"), 0, Decimal("0"), 0),
        ("2026-03-01", Decimal("0"), 0, Decimal("40"), 1),
    ]


def test_months_can_be_padded_to_a_minimum_span():
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0], status=Status.WON, closed_at=at(2026, 2, 10))
    months = won_lost_by_month(Opportunity.objects.all(), at_least=6)
    assert [m.month.isoformat() for m in months] == [
        "2025-09-01", "2025-10-01", "2025-11-01", "2025-12-01", "2026-01-01", "2026-02-01",
    ]  # fmt: skip


def test_months_are_limited_to_the_latest_twelve():
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0], status=Status.WON, closed_at=at(2024, 1, 10))
    factories.OpportunityFactory(stage=stages[0], status=Status.WON, closed_at=at(2026, 6, 10))
    months = won_lost_by_month(Opportunity.objects.all())
    assert len(months) == 12
    assert months[0].month.isoformat() == "2025-07-01"


def test_quick_view_counts_come_from_one_query(closed_deals, django_assert_num_queries):
    with django_assert_num_queries(1):
        counts = quick_view_counts(
            Opportunity.objects.all(),
            {"won": Q(status=Status.WON), "lost": Q(status=Status.LOST)},
        )
    assert counts == {"won": 2, "lost": 3}


def test_monthly_totals_take_two_queries(closed_deals, django_assert_num_queries):
    with django_assert_num_queries(2):
        months = won_lost_by_month(Opportunity.objects.all(), at_least=6)
    assert len(months) == 6
