"""The manager list's figures (summary, funnels, won/lost by month), kept per filter set.

The figures describe every deal of the filtered set, so they cost a read of the whole set
(several index scans at N = 100,000); the table beside them shows fifty rows. Paging,
re-sorting and reloading the same filters change nothing in the figures, so they are
computed once per (data state, user, filters without page and sort) and kept in the cache.

The data state is read in one query, as the board page cache reads it: the id of the
newest event (every write through the services appends one) and, per pipeline, the
fingerprint of its most recently written deals (writes that append no event), with the
pipelines' and stages' names, order and funnel flags (what the funnel shows); the lost
reasons' names in a second query. Any change to a deal therefore shows in the figures
at the next request. Only filters on the deal's own columns are cached: a search (contact
names), tags and custom fields depend on rows the state does not cover, and the quick
views on the time of day; those sets are computed on every request.
"""

import hashlib
from datetime import date

from django.core.cache import caches
from django.db.models import OuterRef

from opportunities.charts import funnel_chart, month_chart
from opportunities.filters import ALL_STATUSES
from opportunities.filters_manager import QuickView
from opportunities.models import LostReason, Status
from opportunities.reports import (
    deal_groups,
    opportunity_summary,
    stage_funnels,
    won_lost_by_month,
)
from opportunities.selectors_live import board_fingerprint, events_cursor_read
from pipelines.models import Stage

TTL = 300  # seconds; a bound on anything the state misses, as for the board page
# The parameters that do not change the set, and those whose sets are cached.
IGNORED = {"page", "sort"}
CACHED = {
    "status",
    "owner",
    "source",
    "pipeline",
    "stage",
    "value_min",
    "value_max",
    "created_after",
    "created_before",
    "closed_after",
    "closed_before",
    "expected_close_after",
    "expected_close_before",
    "lost_reason",
}
# The monthly chart keeps a readable time axis even when the selection spans one month.
MIN_MONTHS_SHOWN = 6


def compute(queryset) -> dict:
    """The figures of the set, computed now."""
    # One read of the set's deals per (status, stage) for both the summary and the funnel.
    groups = deal_groups(queryset)
    return {
        "summary": opportunity_summary(queryset, groups),
        "funnels": [funnel_chart(funnel) for funnel in stage_funnels(queryset, groups)],
        "months": month_chart(won_lost_by_month(queryset, at_least=MIN_MONTHS_SHOWN)),
    }


def cacheable(params) -> bool:
    return all(name in IGNORED or name in CACHED for name in params)


def unfiltered(params) -> bool:
    """Whether the filters leave every visible deal in the set (page and sort aside)."""
    for name, values in params.items():
        allowed = {"", ALL_STATUSES} if name == "status" else {""}
        if name not in IGNORED and not set(values) <= allowed:
            return False
    return True


def quick_view_counts_known(figures: dict, this_month: date) -> dict[str, int]:
    """The quick views' counts that the figures of the unfiltered set already hold.

    Abandoned is a status count of the summary; won and lost this month are the chart's
    months from this one on, when the chart reaches back to this month (its last month
    is the last closing month, so no decided deal closed after it). The figures depend
    on the data only, so these stay exact when the figures come from the cache.
    """
    counts = {QuickView.ABANDONED: figures["summary"].status_counts.get(Status.ABANDONED, 0)}
    months = figures["months"].months
    if not months or months[0].month <= this_month:
        later = [month for month in months if month.month >= this_month]
        counts[QuickView.WON_THIS_MONTH] = sum(month.won_count for month in later)
        counts[QuickView.LOST_THIS_MONTH] = sum(month.lost_count for month in later)
    return counts


def data_state() -> str:
    """A signature that changes with any deal write and with what the funnel names."""
    stages = (
        Stage.objects.annotate(
            cursor=events_cursor_read(),
            # Nested twice inside the fingerprint: the stage row's pipeline.
            recent=board_fingerprint(OuterRef(OuterRef("pipeline_id"))),
        )
        .order_by("pipeline_id", "position", "id")
        .values_list(
            "cursor",
            "recent",
            "pipeline_id",
            "pipeline__name",
            "pipeline__position",
            "pk",
            "name",
            "position",
            "show_in_funnel",
        )
    )
    reasons = LostReason.objects.order_by("pk").values_list("pk", "name")
    return repr((list(stages), list(reasons)))


def list_figures(request, queryset) -> dict:
    """The figures of the filtered set, from the cache when nothing changed since."""
    params = {name: request.GET.getlist(name) for name in request.GET}
    if not cacheable(params):
        return compute(queryset)
    key_params = sorted((name, values) for name, values in params.items() if name not in IGNORED)
    parts = [data_state(), str(request.user.pk), repr(key_params)]
    key = "list:figures:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    cache = caches["default"]
    figures = cache.get(key)
    if figures is None:
        figures = compute(queryset)
        cache.set(key, figures, TTL)
    return figures
