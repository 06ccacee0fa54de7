"""Reads for the manager's list: table rows, summary figures, funnel and monthly totals.

Every function takes the filtered, visible queryset (never the model's manager), so the
numbers always describe exactly the rows the table shows. Each runs a fixed number of
queries, however many opportunities there are.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import (
    CharField,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Substr, TruncMonth
from django.utils import timezone

from opportunities.filters import active_users
from opportunities.models import (
    CLOSED_STATUSES,
    LostReason,
    Opportunity,
    OpportunityHistory,
    Status,
)
from opportunities.selectors import source_choices
from pipelines.models import Pipeline, Stage

ZERO = Decimal("0.00")
# The monthly chart shows at most this many months, ending with the latest one in the set.
MONTHS_SHOWN = 12


def with_days_open(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    """Annotate `days_open`: from creation until closing, or until now while open."""
    if "days_open" in queryset.query.annotations:
        return queryset
    end = Coalesce(F("closed_at"), Value(timezone.now()), output_field=DateTimeField())
    return queryset.annotate(
        days_open=ExpressionWrapper(end - F("created_at"), output_field=DurationField())
    )


def list_rows(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    """What the table shows, fetched with the rows so the template runs no queries."""
    return queryset.select_related("contact", "pipeline", "stage", "assigned_to", "lost_reason")


def with_days_open_count(rows: list[Opportunity]) -> list[Opportunity]:
    """Set `days_open_count` on one page of rows, in Python: the database need not compute
    it for every row of the set just to show fifty."""
    now = timezone.now()
    for row in rows:
        row.days_open_count = ((row.closed_at or now) - row.created_at).days
    return rows


@dataclass(frozen=True)
class LostReasonCount:
    name: str
    count: int
    value: Decimal
    # Share of the lost opportunities, in percent.
    share: int


@dataclass(frozen=True)
class Summary:
    count: int
    total_value: Decimal
    won_count: int
    won_value: Decimal
    lost_count: int
    lost_value: Decimal
    closed_count: int
    average_days_to_close: Decimal | None
    lost_reasons: list[LostReasonCount]

    @property
    def win_rate(self) -> Decimal | None:
        """won / (won + lost), as a percentage; None while nothing was won or lost."""
        decided = self.won_count + self.lost_count
        if not decided:
            return None
        return (Decimal(100) * self.won_count / decided).quantize(Decimal("0.1"))


def opportunity_summary(queryset: QuerySet[Opportunity]) -> Summary:
    """Count, value, won value, win rate, days to close and lost reasons, in two queries.

    Days to close average over every closed opportunity (won, lost or abandoned) that
    has a close date, measured from its creation.
    """
    base = queryset.order_by()
    closed = Q(closed_at__isnull=False)
    # Per status, in the order of the (deleted_at, status, ...) index: no sort, and one
    # sum per row instead of a FILTER per figure (a third less at N = 100,000). The
    # whole days written when each deal closed are summed as integers, so the average is
    # exact (a date difference per row was a Python call per row on SQLite).
    per_status = {
        row.pop("status"): row
        for row in base.values("status").annotate(
            count=Count("id"),
            value=Coalesce(Sum("value"), ZERO),
            closed=Count("id", filter=closed),
            days=Sum("days_to_close", filter=closed),
            days_known=Count("days_to_close", filter=closed),
        )
    }
    empty = {"count": 0, "value": ZERO, "closed": 0, "days": None, "days_known": 0}
    won, lost = (per_status.get(status, empty) for status in (Status.WON, Status.LOST))
    finished = [per_status[status] for status in CLOSED_STATUSES if status in per_status]
    days_known = sum(row["days_known"] for row in finished)
    figures = {
        "count": sum(row["count"] for row in per_status.values()),
        "total_value": sum((row["value"] for row in per_status.values()), ZERO),
        "won_count": won["count"],
        "won_value": won["value"],
        "lost_count": lost["count"],
        "lost_value": lost["value"],
        "closed_count": sum(row["closed"] for row in finished),
    }
    average = (
        Decimal(sum(row["days"] or 0 for row in finished)) / days_known if days_known else None
    )
    # Grouped by `lost_reason_id + 0`, the name read once per reason: grouped by the
    # column itself, SQLite walked the lost-reason index and fetched every lost deal's
    # row, instead of the lost deals' entries of the (status, ...) index.
    reason = ExpressionWrapper(F("lost_reason_id") + 0, output_field=IntegerField())
    reasons = (
        base.filter(status=Status.LOST, lost_reason__isnull=False)
        .values(reason=reason)
        .annotate(
            count=Count("id"),
            value=Coalesce(Sum("value"), ZERO),
            name=Subquery(LostReason.objects.filter(pk=OuterRef("reason")).values("name")[:1]),
        )
        .order_by("-count", "-value", "name")
    )
    lost_total = figures["lost_count"] or 1
    return Summary(
        **figures,
        average_days_to_close=_average_days(average),
        lost_reasons=[
            LostReasonCount(
                name=row["name"],
                count=row["count"],
                value=row["value"],
                share=round(100 * row["count"] / lost_total),
            )
            for row in reasons
        ],
    )


def _average_days(average: Decimal | None) -> Decimal | None:
    if average is None:
        return None
    return average.quantize(Decimal("0.1"))


@dataclass(frozen=True)
class FunnelStep:
    stage: Stage
    count: int
    # Share of the pipeline's first funnel stage, in percent (None when that stage is empty).
    share: Decimal | None


@dataclass(frozen=True)
class Funnel:
    pipeline: Pipeline
    steps: list[FunnelStep]

    @property
    def top(self) -> int:
        return max((step.count for step in self.steps), default=0)


def stage_funnels(queryset: QuerySet[Opportunity]) -> list[Funnel]:
    """How many opportunities of the set reached each funnel stage, per pipeline; 3 queries.

    An opportunity reached a stage if a history row moved it there or it is there now.
    Only stages marked "show in funnel" count, as HighLevel's funnel does.
    """
    # The set's deals per (stage, pipeline) first: the pipelines present come from the
    # same index read (a `pipeline IN (subquery)` listed every deal's pipeline).
    there_now = list(
        queryset.order_by().values("stage_id", "pipeline_id").annotate(count=Count("id"))
    )
    if not there_now:
        return []
    stages = list(
        Stage.objects.filter(
            show_in_funnel=True, pipeline__in={row["pipeline_id"] for row in there_now}
        )
        .select_related("pipeline")
        .order_by("pipeline__position", "pipeline_id", "position", "id")
    )
    if not stages:
        return []
    stage_ids = [stage.pk for stage in stages]
    # reached = (moved there, per history) + (there now) - (both), each counted once per
    # opportunity: plain grouped counts, no correlated subquery per row.
    reached = dict.fromkeys(stage_ids, 0)
    for row in (
        # EXISTS per history row: `IN (the set's ids)` listed every deal of the set first.
        OpportunityHistory.objects.filter(
            Exists(queryset.order_by().filter(pk=OuterRef("opportunity_id"))),
            to_stage__in=stage_ids,
        )
        .values("to_stage")
        .annotate(
            moved=Count("opportunity", distinct=True),
            moved_and_there=Count(
                "opportunity", distinct=True, filter=Q(opportunity__stage=F("to_stage"))
            ),
        )
        .order_by()
    ):
        reached[row["to_stage"]] += row["moved"] - row["moved_and_there"]
    for row in there_now:
        if row["stage_id"] in reached:
            reached[row["stage_id"]] += row["count"]

    funnels: dict[int, Funnel] = {}
    for stage in stages:
        funnel = funnels.setdefault(stage.pipeline_id, Funnel(pipeline=stage.pipeline, steps=[]))
        first = funnel.steps[0].count if funnel.steps else reached[stage.pk]
        share = (Decimal(100) * reached[stage.pk] / first).quantize(Decimal("1")) if first else None
        funnel.steps.append(FunnelStep(stage=stage, count=reached[stage.pk], share=share))
    return list(funnels.values())


@dataclass(frozen=True)
class MonthTotals:
    month: date
    won_value: Decimal
    won_count: int
    lost_value: Decimal
    lost_count: int


def won_lost_by_month(queryset: QuerySet[Opportunity], *, at_least: int = 1) -> list[MonthTotals]:
    """Won and lost value per month of closing, in two queries.

    Months without any are included as zeros, so the chart's time axis is even; at least
    `at_least` and at most MONTHS_SHOWN months, ending with the latest month that has a
    won or lost opportunity. Months are the site time zone's, as the table shows dates.
    """
    decided = queryset.order_by().filter(
        status__in=[Status.WON, Status.LOST], closed_at__isnull=False
    )
    bounds = _first_and_last(decided)
    if bounds["last"] is None:
        return []
    last = _as_date(bounds["last"])
    first = max(_as_date(bounds["first"]), _add_months(last, -(MONTHS_SHOWN - 1)))
    first = min(first, _add_months(last, -(min(at_least, MONTHS_SHOWN) - 1)))
    months = [first]
    while months[-1] < last:
        months.append(_add_months(months[-1], 1))
    decided = decided.filter(
        closed_at__gte=_month_start(first), closed_at__lt=_month_start(_add_months(last, 1))
    )
    month_key = _month_key()
    if month_key is not None:
        sums = _sums_grouped(decided, month_key)
    else:
        sums = _sums_per_month(decided, months)
    zero = (ZERO, 0)
    return [
        MonthTotals(
            month=month,
            won_value=sums.get((month, Status.WON), zero)[0],
            won_count=sums.get((month, Status.WON), zero)[1],
            lost_value=sums.get((month, Status.LOST), zero)[0],
            lost_count=sums.get((month, Status.LOST), zero)[1],
        )
        for month in months
    ]


def _first_and_last(decided: QuerySet[Opportunity]) -> dict:
    """The first and last closing date of the set, in one query.

    Each is the first entry of an ordered read that stops there: an index on the closing
    date serves it in a few steps, where MIN/MAX under `status IN (...)` read every
    decided deal (30% of the list's time at N = 100,000).
    """
    dates = decided.values("closed_at")
    row = (
        Opportunity.objects.annotate(
            first=Subquery(dates.order_by("closed_at")[:1]),
            last=Subquery(dates.order_by("-closed_at")[:1]),
        )
        .values("first", "last")
        .order_by()[:1]
    )
    # No deal at all: no row, and no bounds either.
    return next(iter(row), {"first": None, "last": None})


def _month_key():
    """An expression for the month of `closed_at` the database computes natively, or None.

    PostgreSQL truncates in the site's time zone itself. SQLite stores UTC text, so its
    first seven characters are the month when the site's time zone is UTC (Django's
    TruncMonth there is a Python call per row).
    """
    if connection.vendor == "postgresql":
        return TruncMonth("closed_at")
    if settings.TIME_ZONE == "UTC":
        return Substr(Cast("closed_at", CharField()), 1, 7)
    return None


def _sums_grouped(decided, month_key) -> dict[tuple[date, str], tuple[Decimal, int]]:
    """Value and count per (month, status) in one GROUP BY."""
    rows = (
        decided.annotate(month=month_key)
        .values("month", "status")
        .annotate(value=Coalesce(Sum("value"), ZERO), count=Count("id"))
        .order_by()
    )
    sums = {}
    for row in rows:
        month = row["month"]
        if isinstance(month, str):
            month = date(int(month[:4]), int(month[5:7]), 1)
        else:
            month = _as_date(month)
        sums[(month, row["status"])] = (row["value"], row["count"])
    return sums


def _sums_per_month(decided, months) -> dict[tuple[date, str], tuple[Decimal, int]]:
    """One conditional sum per month and status over plain date ranges (any time zone)."""
    starts = [_month_start(month) for month in [*months, _add_months(months[-1], 1)]]
    aggregates = {}
    for index in range(len(months)):
        window = Q(closed_at__gte=starts[index], closed_at__lt=starts[index + 1])
        for status in (Status.WON, Status.LOST):
            condition = window & Q(status=status)
            aggregates[f"value_{index}_{status}"] = Coalesce(Sum("value", filter=condition), ZERO)
            aggregates[f"count_{index}_{status}"] = Count("id", filter=condition)
    totals = decided.aggregate(**aggregates)
    return {
        (month, status): (totals[f"value_{index}_{status}"], totals[f"count_{index}_{status}"])
        for index, month in enumerate(months)
        for status in (Status.WON, Status.LOST)
    }


def _month_start(month: date) -> datetime:
    return timezone.make_aware(datetime(month.year, month.month, 1))


def _as_date(moment: datetime) -> date:
    """The first day of the moment's month, in the site time zone."""
    return timezone.localtime(moment).date().replace(day=1)


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def quick_view_counts(visible: QuerySet[Opportunity], conditions: dict[str, Q]) -> dict[str, int]:
    """How many visible opportunities each quick view holds, in one query."""
    if not conditions:
        return {}
    # A count per view, each over its own index range (closed this month, abandoned, the
    # rotting stages' open deals); one pass with a FILTER per view read every visible
    # deal. The deals table only carries the single row of answers.
    counts = {
        key: Subquery(
            visible.filter(condition)
            .order_by()
            .annotate(count=Func(F("id"), function="COUNT"))
            .values("count")[:1]
        )
        for key, condition in conditions.items()
    }
    row = next(iter(Opportunity.objects.annotate(**counts).values(*counts).order_by()[:1]), {})
    return {key: row.get(key) or 0 for key in conditions}


def filter_options(user) -> dict:
    """The choices the filter form offers: pipelines, their stages, owners, sources, reasons."""
    return {
        "pipelines": list(Pipeline.objects.order_by("position", "id")),
        "stages": list(
            Stage.objects.select_related("pipeline").order_by(
                "pipeline__position", "pipeline_id", "position", "id"
            )
        ),
        "owners": list(active_users()),
        "sources": source_choices(user),
        "lost_reasons": list(LostReason.objects.order_by("position", "name")),
    }
