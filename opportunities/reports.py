"""Reads for the manager's list: table rows, summary figures, funnel and monthly totals.

Every function takes the filtered, visible queryset (never the model's manager), so the
numbers always describe exactly the rows the table shows. Each runs a fixed number of
queries, however many opportunities there are.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import (
    Avg,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncMonth
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
    return with_days_open(
        queryset.select_related("contact", "pipeline", "stage", "assigned_to", "lost_reason")
    )


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
    time_to_close = ExpressionWrapper(
        F("closed_at") - F("created_at"), output_field=DurationField()
    )
    figures = base.aggregate(
        count=Count("id"),
        total_value=Coalesce(Sum("value"), ZERO),
        won_count=Count("id", filter=Q(status=Status.WON)),
        won_value=Coalesce(Sum("value", filter=Q(status=Status.WON)), ZERO),
        lost_count=Count("id", filter=Q(status=Status.LOST)),
        lost_value=Coalesce(Sum("value", filter=Q(status=Status.LOST)), ZERO),
        closed_count=Count("id", filter=Q(status__in=CLOSED_STATUSES, closed_at__isnull=False)),
        average_close=Avg(
            time_to_close, filter=Q(status__in=CLOSED_STATUSES, closed_at__isnull=False)
        ),
    )
    average: timedelta | None = figures.pop("average_close")
    reasons = (
        base.filter(status=Status.LOST, lost_reason__isnull=False)
        .values("lost_reason__name")
        .annotate(count=Count("id"), value=Coalesce(Sum("value"), ZERO))
        .order_by("-count", "-value", "lost_reason__name")
    )
    lost_total = figures["lost_count"] or 1
    return Summary(
        **figures,
        average_days_to_close=_days(average),
        lost_reasons=[
            LostReasonCount(
                name=row["lost_reason__name"],
                count=row["count"],
                value=row["value"],
                share=round(100 * row["count"] / lost_total),
            )
            for row in reasons
        ],
    )


def _days(duration: timedelta | None) -> Decimal | None:
    if duration is None:
        return None
    return (Decimal(duration.total_seconds()) / 86400).quantize(Decimal("0.1"))


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
    ids = queryset.order_by().values("pk")
    stages = list(
        Stage.objects.filter(
            show_in_funnel=True, pipeline__in=queryset.order_by().values("pipeline_id")
        )
        .select_related("pipeline")
        .order_by("pipeline__position", "pipeline_id", "position", "id")
    )
    if not stages:
        return []
    stage_ids = [stage.pk for stage in stages]
    reached = dict.fromkeys(stage_ids, 0)
    # Opportunities with a history row into the stage (each counted once per stage)...
    for row in (
        OpportunityHistory.objects.filter(opportunity__in=ids, to_stage__in=stage_ids)
        .values("to_stage")
        .annotate(count=Count("opportunity", distinct=True))
        .order_by()
    ):
        reached[row["to_stage"]] += row["count"]
    # ...plus those sitting in it without such a row (created before history was kept).
    moved_in = OpportunityHistory.objects.filter(
        opportunity=OuterRef("pk"), to_stage=OuterRef("stage_id")
    )
    for row in (
        queryset.order_by()
        .filter(stage__in=stage_ids)
        .filter(~Exists(moved_in))
        .values("stage")
        .annotate(count=Count("id"))
    ):
        reached[row["stage"]] += row["count"]

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
    """Won and lost value per month of closing, in one query.

    Months without any are included as zeros, so the chart's time axis is even; at least
    `at_least` and at most MONTHS_SHOWN months, ending with the latest month that has a
    won or lost opportunity.
    """
    rows = (
        queryset.order_by()
        .filter(status__in=[Status.WON, Status.LOST], closed_at__isnull=False)
        .annotate(month=TruncMonth("closed_at"))
        .values("month", "status")
        .annotate(count=Count("id"), value=Coalesce(Sum("value"), ZERO))
    )
    totals: dict[date, dict] = {}
    for row in rows:
        month = _as_date(row["month"])
        entry = totals.setdefault(month, {})
        entry[row["status"]] = (row["value"], row["count"])
    if not totals:
        return []
    last = max(totals)
    first = max(min(totals), _add_months(last, -(MONTHS_SHOWN - 1)))
    first = min(first, _add_months(last, -(min(at_least, MONTHS_SHOWN) - 1)))
    result = []
    month = first
    while month <= last:
        entry = totals.get(month, {})
        won_value, won_count = entry.get(Status.WON, (ZERO, 0))
        lost_value, lost_count = entry.get(Status.LOST, (ZERO, 0))
        result.append(
            MonthTotals(
                month=month,
                won_value=won_value,
                won_count=won_count,
                lost_value=lost_value,
                lost_count=lost_count,
            )
        )
        month = _add_months(month, 1)
    return result


def _as_date(moment) -> date:
    if hasattr(moment, "date"):
        moment = timezone.localtime(moment) if timezone.is_aware(moment) else moment
        return moment.date().replace(day=1)
    return moment.replace(day=1)


def _add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def quick_view_counts(visible: QuerySet[Opportunity], conditions: dict[str, Q]) -> dict[str, int]:
    """How many visible opportunities each quick view holds, in one query."""
    if not conditions:
        return {}
    return visible.order_by().aggregate(
        **{key: Count("id", filter=condition) for key, condition in conditions.items()}
    )


def filter_options() -> dict:
    """The choices the filter form offers: pipelines, their stages, owners, sources, reasons."""
    return {
        "pipelines": list(Pipeline.objects.order_by("position", "id")),
        "stages": list(
            Stage.objects.select_related("pipeline").order_by(
                "pipeline__position", "pipeline_id", "position", "id"
            )
        ),
        "owners": list(active_users()),
        "sources": source_choices(),
        "lost_reasons": list(LostReason.objects.order_by("position", "name")),
    }
