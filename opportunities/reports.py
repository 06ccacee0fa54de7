"""Reads for the manager's list: table rows, summary figures, funnel and monthly totals.

Every function takes the filtered, visible queryset (never the model's manager), so the
numbers always describe exactly the rows the table shows. Each runs a fixed number of
queries, however many opportunities there are.
"""

import operator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import reduce

from django.db.models import (
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
from django.db.models.functions import Coalesce
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
    # Deals per status (the quick views' abandoned count when the set is unfiltered).
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def win_rate(self) -> Decimal | None:
        """won / (won + lost), as a percentage; None while nothing was won or lost."""
        decided = self.won_count + self.lost_count
        if not decided:
            return None
        return (Decimal(100) * self.won_count / decided).quantize(Decimal("0.1"))


def deal_groups(queryset: QuerySet[Opportunity]) -> list[dict]:
    """The set's deals per (status, stage): count, value, closed count and days to close.

    One read of every deal of the set serves the summary (per status), the funnel (per
    stage) and the abandoned count: grouped in the order of opp_list_figures (deleted_at,
    status, stage, ...), a few dozen groups, no sort, only index entries read. A stage
    names its pipeline (the database refuses a deal whose stage is another pipeline's),
    so the pipeline need not be a column of the group.
    """
    closed = Q(closed_at__isnull=False)
    return list(
        queryset.order_by()
        .values("status", "stage_id")
        .annotate(
            # COUNT(*): COUNT(id) names a column, which made SQLite weigh the table too.
            count=Count("*"),
            value=Coalesce(Sum("value"), ZERO),
            closed=Count("closed_at"),
            # The whole days written when each deal closed, summed as integers, so the
            # average is exact (a date difference per row was a Python call on SQLite).
            days=Sum("days_to_close", filter=closed),
            days_known=Count("days_to_close", filter=closed),
        )
    )


def opportunity_summary(
    queryset: QuerySet[Opportunity], groups: list[dict] | None = None
) -> Summary:
    """Count, value, won value, win rate, days to close and lost reasons, in two queries
    (one when `groups`, the set's deal_groups, are given).

    Days to close average over every closed opportunity (won, lost or abandoned) that
    has a close date, measured from its creation.
    """
    base = queryset.order_by()
    if groups is None:
        groups = deal_groups(queryset)
    per_status: dict[str, dict] = {}
    for group in groups:
        row = per_status.setdefault(
            group["status"], {"count": 0, "value": ZERO, "closed": 0, "days": 0, "days_known": 0}
        )
        for name in row:
            row[name] += group[name] or 0
    empty = {"count": 0, "value": ZERO, "closed": 0, "days": 0, "days_known": 0}
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
        "status_counts": {status: row["count"] for status, row in per_status.items()},
    }
    average = Decimal(sum(row["days"] for row in finished)) / days_known if days_known else None
    # Grouped by `lost_reason_id + 0`, the name read once per reason: grouped by the
    # column itself, SQLite walked the lost-reason index and fetched every lost deal's
    # row, instead of the lost deals' entries of the (status, ...) index.
    reason = ExpressionWrapper(F("lost_reason_id") + 0, output_field=IntegerField())
    reasons = (
        base.filter(status=Status.LOST, lost_reason__isnull=False)
        .values(reason=reason)
        .annotate(
            count=Count("*"),
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


def stage_funnels(
    queryset: QuerySet[Opportunity], groups: list[dict] | None = None
) -> list[Funnel]:
    """How many opportunities of the set reached each funnel stage, per pipeline; 3 queries
    (2 when `groups`, the set's deal_groups, are given).

    An opportunity reached a stage if a history row moved it there or it is there now.
    Only stages marked "show in funnel" count, as HighLevel's funnel does.
    """
    if groups is None:
        groups = deal_groups(queryset)
    there_now: dict[int, int] = {}
    for group in groups:
        there_now[group["stage_id"]] = there_now.get(group["stage_id"], 0) + group["count"]
    if not there_now:
        return []
    # The funnel stages of every pipeline the set's deals are in (a deal's pipeline is
    # its stage's).
    present = Stage.objects.filter(pk__in=list(there_now)).values("pipeline_id")
    stages = list(
        Stage.objects.filter(show_in_funnel=True, pipeline__in=present)
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
    for stage_id, count in there_now.items():
        if stage_id in reached:
            reached[stage_id] += count

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
    sums = _sums_per_month(queryset.order_by(), months)
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


def _sums_per_month(base, months) -> dict[tuple[date, str], tuple[Decimal, int]]:
    """Value and count per (month, status) of the shown months, in one query: the sums
    over each month's range of closing dates, per status, the parts joined by UNION ALL.

    Each part reads the range of the (status, closing date) index of each status.
    Grouped by the month of each row instead, SQLite computed the month per row and
    sorted every decided deal of the year (28 ms against 4 ms at N = 100,000); date
    ranges also hold in any time zone, where a month cut from the stored text holds only
    in UTC. The parts share one grouped queryset: built whole twelve times, the ORM's
    own work was three times the database's.
    """
    starts = [_month_start(month) for month in [*months, _add_months(months[-1], 1)]]
    sums = (
        base.filter(status__in=[Status.WON, Status.LOST])
        .values("status")
        .annotate(value=Coalesce(Sum("value"), ZERO), count=Count("*"))
    )
    parts = [
        sums.filter(closed_at__gte=starts[index], closed_at__lt=starts[index + 1]).annotate(
            month=Value(index, output_field=IntegerField())
        )
        for index in range(len(months))
    ]
    rows = parts[0].union(*parts[1:], all=True).order_by()
    return {(months[row["month"]], row["status"]): (row["value"], row["count"]) for row in rows}


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
        key: reduce(operator.add, (_count(visible, part) for part in _disjoint_parts(condition)))
        for key, condition in conditions.items()
    }
    row = next(iter(Opportunity.objects.annotate(**counts).values(*counts).order_by()[:1]), {})
    return {key: row.get(key) or 0 for key in conditions}


def _count(visible: QuerySet[Opportunity], condition: Q) -> Subquery:
    # COUNT(*) in a one-row subquery: an aggregate annotation would group by every column.
    count = Func(template="COUNT(*)", output_field=IntegerField())
    return Subquery(visible.filter(condition).order_by().annotate(count=count).values("count")[:1])


def _disjoint_parts(condition: Q) -> list[Q]:
    """`common AND (t1 OR t2 OR ...)` as [common AND t1, common AND t2, ...] when each term
    pins the deal's stage to another stage, so that no deal is in two parts and the
    parts' counts add up to the condition's; otherwise [condition].

    The "open and stale" view is such a condition (a rotting date per stage): SQLite
    answers its OR by collecting every matching deal's id before counting (20 ms at
    N = 100,000), and each part alone by counting one range of opp_list_figures (status,
    stage, stage entered before ...): 4 ms for all of them.
    """
    if condition.negated or condition.connector != Q.AND:
        return [condition]
    alternatives = [
        child
        for child in condition.children
        if isinstance(child, Q) and child.connector == Q.OR and not child.negated
    ]
    if len(alternatives) != 1:
        return [condition]
    (alternative,) = alternatives
    common = [child for child in condition.children if child is not alternative]
    parts, stages = [], set()
    for term in alternative.children:
        if isinstance(term, tuple) and term[0].endswith("__in") and not term[1]:
            continue  # `pk__in=[]`, where the rotting rule starts its OR: matches no deal
        if isinstance(term, Q):
            if term.negated or term.connector != Q.AND:
                return [condition]
            lookups = term.children
        else:
            lookups = [term]
        pinned = {
            getattr(lookup[1], "pk", lookup[1])
            for lookup in lookups
            if isinstance(lookup, tuple) and lookup[0] in ("stage", "stage_id")
        }
        if len(pinned) != 1 or pinned & stages:
            return [condition]
        stages |= pinned
        parts.append(Q(*common, *lookups))
    return parts or [condition]


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
