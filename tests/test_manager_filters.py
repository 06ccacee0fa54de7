"""Each filter of the manager's list: which opportunities a URL parameter keeps."""

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone

from opportunities.filters_manager import ManagerOpportunityFilter, month_start
from opportunities.models import Opportunity, Status
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def deals():
    """A small, varied set; each filter below should keep exactly the named deals."""
    now = timezone.now()
    sales, sales_stages = factories.pipeline_with_stages(name="Sales")
    partners, partner_stages = factories.pipeline_with_stages(("Intro", "Signed"), name="Partners")
    sales_stages[1].rotting_days = 10
    sales_stages[1].save()
    alice = factories.rep(username="alice")
    price = factories.LostReasonFactory(name="Price")
    timing = factories.LostReasonFactory(name="Timing")
    last_month = month_start() - timedelta(days=3)
    made = {
        "open_small": dict(stage=sales_stages[0], value=100, created_at=now - timedelta(days=40)),
        "open_stale": dict(
            stage=sales_stages[1], value=900, stage_entered_at=now - timedelta(days=11)
        ),
        "open_fresh": dict(
            stage=sales_stages[1], value=950, stage_entered_at=now - timedelta(days=2)
        ),
        "won_now": dict(
            stage=sales_stages[2], status=Status.WON, value=5000, closed_at=now, assigned_to=alice
        ),
        "won_before": dict(
            stage=partner_stages[1], status=Status.WON, value=7000, closed_at=last_month
        ),
        "lost_now": dict(
            stage=sales_stages[2],
            status=Status.LOST,
            lost_reason=price,
            value=3000,
            closed_at=now,
            source="Referral",
        ),
        "lost_before": dict(
            stage=partner_stages[0],
            status=Status.LOST,
            lost_reason=timing,
            value=2000,
            closed_at=last_month,
        ),
        "abandoned": dict(
            stage=sales_stages[0], status=Status.ABANDONED, value=400, closed_at=last_month
        ),
    }
    objects = {
        name: factories.OpportunityFactory(name=name, **fields) for name, fields in made.items()
    }
    return {
        "objects": objects,
        "stages": sales_stages,
        "pipelines": (sales, partners),
        "alice": alice,
        "price": price,
    }


def names_for(query: str, deals) -> set[str]:
    data = QueryDict(
        query.format(
            sales=deals["pipelines"][0].pk,
            stage1=deals["stages"][1].pk,
            alice=deals["alice"].pk,
            price=deals["price"].pk,
            last_month=(month_start() - timedelta(days=3)).date().isoformat(),
            today=timezone.localdate().isoformat(),
            forty_days_ago=(timezone.localdate() - timedelta(days=40)).isoformat(),
        )
    )
    filterset = ManagerOpportunityFilter(data, queryset=Opportunity.objects.all())
    assert filterset.is_valid(), filterset.errors
    return set(filterset.qs.values_list("name", flat=True))


ALL = {
    "open_small", "open_stale", "open_fresh", "won_now", "won_before",
    "lost_now", "lost_before", "abandoned",
}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ALL),
        ("status=won", {"won_now", "won_before"}),
        ("status=won&status=lost", {"won_now", "won_before", "lost_now", "lost_before"}),
        ("status=all", ALL),
        ("pipeline={sales}", ALL - {"won_before", "lost_before"}),
        ("stage={stage1}", {"open_stale", "open_fresh"}),
        ("value_min=2000", {"won_now", "won_before", "lost_now", "lost_before"}),
        ("value_max=900", {"open_small", "open_stale", "abandoned"}),
        ("value_min=900&value_max=3000", {"open_stale", "open_fresh", "lost_now", "lost_before"}),
        ("created_before={forty_days_ago}", {"open_small"}),
        ("created_after={today}", ALL - {"open_small"}),
        ("closed_after={today}", {"won_now", "lost_now"}),
        ("closed_before={last_month}", {"won_before", "lost_before", "abandoned"}),
        ("lost_reason={price}", {"lost_now"}),
        ("owner={alice}", {"won_now"}),
        ("source=referral", {"lost_now"}),
        ("q=stale", {"open_stale"}),
        ("view=won_this_month", {"won_now"}),
        ("view=lost_this_month", {"lost_now"}),
        ("view=abandoned", {"abandoned"}),
        ("view=stale", {"open_stale"}),
        ("view=won_this_month&status=lost", set()),
        ("status=open&pipeline={sales}&value_min=500", {"open_stale", "open_fresh"}),
    ],
)
def test_filter_keeps_matching_opportunities(deals, query, expected):
    assert names_for(query, deals) == expected


def test_unknown_sort_falls_back_to_newest_first(deals):
    data = QueryDict("sort=password")
    filterset = ManagerOpportunityFilter(data, queryset=Opportunity.objects.all())
    names = list(filterset.qs.values_list("name", flat=True))
    assert "sort" in filterset.errors
    assert names[0] == "abandoned"  # created last


@pytest.mark.parametrize(
    ("sort", "first"),
    [("value", "open_small"), ("-value", "won_before"), ("name", "abandoned"),
     ("-days_open", "open_small"), ("closed", "won_before")],
)  # fmt: skip
def test_sort_orders_by_the_chosen_column(deals, sort, first):
    data = QueryDict(f"sort={sort}")
    filterset = ManagerOpportunityFilter(data, queryset=Opportunity.objects.all())
    assert filterset.qs.values_list("name", flat=True)[0] == first
