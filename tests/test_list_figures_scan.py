"""The manager list's figures from one read per (status, stage), the monthly sums from one
range per month, and the quick views' counts: the same numbers as a plain count of each
set, whatever the filters, with the figures taken from the cache or not."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.db import connection
from django.db.models import Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities.filters_manager import QuickView, month_start, quick_view_conditions
from opportunities.list_figures import compute, unfiltered
from opportunities.models import Opportunity, Status
from opportunities.reports import _disjoint_parts, deal_groups, quick_view_counts
from opportunities.selectors import opportunities_visible_to
from pipelines.models import Stage
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = "/opportunities/"


def quick_counts(html: str) -> dict[str, int]:
    found = re.findall(
        r'class="quick-view quick-view-(\w+)".*?<span class="quick-count">([\d,]+)</span>',
        html,
        re.S,
    )
    return {key: int(count.replace(",", "")) for key, count in found}


def expected_quick_counts(user) -> dict[str, int]:
    visible = opportunities_visible_to(user)
    return {key: visible.filter(q).count() for key, q in quick_view_conditions().items()}


@pytest.fixture
def deals():
    """Deals in two pipelines: stale and fresh open deals in stages with their own rotting
    days, won and lost this month and in earlier months, abandoned ones, a deal in the
    trash, and a rep's own deals."""
    now = timezone.now()
    this_month = month_start(now)
    _, sales_stages = factories.pipeline_with_stages()
    _, other_stages = factories.pipeline_with_stages(names=("Lead", "Demo"))
    Stage.objects.filter(pk=sales_stages[0].pk).update(rotting_days=7)
    Stage.objects.filter(pk=sales_stages[1].pk).update(rotting_days=30)
    Stage.objects.filter(pk=other_stages[0].pk).update(rotting_days=3)
    rep = factories.rep()
    reason = factories.LostReasonFactory(name="Price")

    def deal(stage, status=Status.OPEN, entered_days=0, closed=None, **extra):
        return factories.OpportunityFactory(
            stage=stage,
            status=status,
            stage_entered_at=now - timedelta(days=entered_days),
            closed_at=closed,
            lost_reason=reason if status == Status.LOST else None,
            days_to_close=5 if closed else None,
            **extra,
        )

    for days in (1, 8, 9, 40):
        deal(sales_stages[0], entered_days=days, value=100)
    for days in (10, 31, 60):
        deal(sales_stages[1], entered_days=days, value=200, assigned_to=rep)
    deal(sales_stages[2], entered_days=90, value=50)  # no rotting days: never stale
    for days in (2, 4):
        deal(other_stages[0], entered_days=days, value=70)
    deal(sales_stages[3], Status.WON, closed=this_month + timedelta(hours=1), value=1000)
    deal(other_stages[1], Status.WON, closed=this_month - timedelta(days=20), value=500)
    deal(sales_stages[3], Status.LOST, closed=this_month + timedelta(hours=2), value=300)
    deal(sales_stages[3], Status.LOST, closed=this_month - timedelta(days=70), value=30)
    deal(sales_stages[2], Status.ABANDONED, closed=now, value=10, assigned_to=rep)
    deal(other_stages[0], Status.ABANDONED, closed=now, value=20)
    deal(sales_stages[3], Status.WON, closed=now, value=9999, deleted_at=now)  # in the trash
    return {"rep": rep, "sales_stages": sales_stages, "other_stages": other_stages}


def test_the_unfiltered_list_shows_the_quick_view_counts_a_plain_count_gives(client, deals):
    manager = factories.manager()
    client.force_login(manager)
    expected = expected_quick_counts(manager)
    # The fixture's deals: stale 3 + 2 + 1 = 6, won 1 and lost 1 this month, 2 abandoned.
    assert expected == {
        QuickView.WON_THIS_MONTH: 1,
        QuickView.LOST_THIS_MONTH: 1,
        QuickView.ABANDONED: 2,
        QuickView.STALE: 6,
    }
    caches["default"].clear()
    assert quick_counts(client.get(LIST_URL).content.decode()) == expected
    # Again with the figures from the cache, and with only page and sort (and "all").
    for url in (LIST_URL, LIST_URL + "?page=1&sort=-value&status=all&owner=&q="):
        assert quick_counts(client.get(url).content.decode()) == expected


@pytest.mark.parametrize(
    "query", ["?status=won", "?value_min=150", "?view=stale", "?q=zzz", "?owner={rep}"]
)
def test_filtered_lists_still_count_the_quick_views_over_every_visible_deal(client, deals, query):
    manager = factories.manager()
    client.force_login(manager)
    html = client.get(LIST_URL + query.format(rep=deals["rep"].pk)).content.decode()
    assert quick_counts(html) == expected_quick_counts(manager)


def test_a_reps_counts_cover_only_their_deals(client, deals):
    client.force_login(deals["rep"])
    counts = quick_counts(client.get(LIST_URL).content.decode())
    assert counts == expected_quick_counts(deals["rep"])
    assert counts[QuickView.STALE] == 2 and counts[QuickView.ABANDONED] == 1


def test_this_months_counts_when_the_chart_does_not_reach_back_to_this_month(client, deals):
    # A deal closing more than a year ahead moves the chart's twelve months past this one:
    # the counts of this month come from their own query then.
    factories.OpportunityFactory(
        stage=deals["sales_stages"][3],
        status=Status.WON,
        closed_at=timezone.now() + timedelta(days=500),
        value=1,
    )
    manager = factories.manager()
    client.force_login(manager)
    counts = quick_counts(client.get(LIST_URL).content.decode())
    assert counts == expected_quick_counts(manager)
    assert counts[QuickView.WON_THIS_MONTH] == 2  # this month's and the one ahead


def test_the_stale_view_is_counted_per_stage_and_adds_up(deals):
    stale = quick_view_conditions()[QuickView.STALE]
    parts = _disjoint_parts(stale)
    # One part per stage with rotting days.
    assert len(parts) == 3
    live = Opportunity.objects.filter(deleted_at__isnull=True)
    assert sum(live.filter(part).count() for part in parts) == live.filter(stale).count() == 6
    assert quick_view_counts(live, {"stale": stale}) == {"stale": 6}


def test_conditions_that_are_not_one_stage_per_term_stay_whole():
    either = Q(status=Status.WON) | Q(status=Status.LOST)
    assert _disjoint_parts(either) == [either]
    # Two terms on the same stage may hold the same deal: not split.
    same_stage = Q(status=Status.OPEN) & (Q(stage_id=1, value__gt=5) | Q(stage_id=1, value__lt=9))
    assert _disjoint_parts(same_stage) == [same_stage]
    no_stage = Q(status=Status.OPEN) & (Q(stage_id=1) | Q(value=3))
    assert _disjoint_parts(no_stage) == [no_stage]


def test_a_stale_rule_without_any_rotting_stage_counts_nothing(deals):
    Stage.objects.update(rotting_days=None)
    counts = quick_view_counts(Opportunity.objects.all(), quick_view_conditions())
    assert counts[QuickView.STALE] == 0


def test_figures_of_a_set_take_six_queries_and_match_plain_counts(deals, django_assert_num_queries):
    live = Opportunity.objects.filter(deleted_at__isnull=True)
    with django_assert_num_queries(6):
        figures = compute(live)
    summary = figures["summary"]
    assert summary.count == live.count() == 16
    assert summary.status_counts == {
        status: live.filter(status=status).count()
        for status in (Status.OPEN, Status.WON, Status.LOST, Status.ABANDONED)
    }
    assert summary.total_value == Decimal(sum(d.value for d in live))
    # The funnel counts each pipeline's deals where they are now (no history here).
    by_stage = {stage.pk: live.filter(stage=stage).count() for stage in Stage.objects.all()}
    for chart in figures["funnels"]:
        for bar in chart.bars:
            stage = Stage.objects.get(name=bar.label, pipeline__name=chart.title)
            assert bar.count == by_stage[stage.pk]
    months = figures["months"].months
    won = live.filter(status=Status.WON)
    assert sum(m.won_count for m in months) == won.count()
    assert sum(m.won_value for m in months) == sum(d.value for d in won)


def test_groups_are_per_status_and_stage(deals):
    groups = deal_groups(Opportunity.objects.filter(deleted_at__isnull=True))
    keys = [(group["status"], group["stage_id"]) for group in groups]
    assert len(keys) == len(set(keys))
    assert sum(group["count"] for group in groups) == 16


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, True),
        ({"page": ["2"], "sort": ["-value"]}, True),
        ({"status": ["all"], "owner": [""], "q": [""]}, True),
        ({"status": ["won"]}, False),
        ({"view": ["stale"]}, False),
        ({"tag": ["vip"]}, False),
    ],
)
def test_unfiltered_means_every_visible_deal(params, expected):
    assert unfiltered(params) is expected


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan wording")
def test_stale_and_monthly_counts_read_one_index_range_each(deals):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    live = Opportunity.objects.filter(deleted_at__isnull=True)
    with CaptureQueriesContext(connection) as captured:
        quick_view_counts(live, {"stale": quick_view_conditions()[QuickView.STALE]})
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + captured.captured_queries[-1]["sql"])
        plan = [row[-1] for row in cursor.fetchall()]
    ranges = [step for step in plan if "opp_list_figures" in step]
    assert len(ranges) == 3
    assert all("stage_id=? AND stage_entered_at<?" in step for step in ranges)
    assert not any("MULTI-INDEX OR" in step for step in plan)
