"""The forecast: open deals by expected close month, weighted and not, with won deals
by the month they actually closed, per pipeline and per owner.

A fixed number of aggregate queries whatever the number of deals (open by month, open
overdue, won by month, then the names of the pipelines and owners that appear): the
rows are bounded by 12 months x pipelines x owners. Reads go through the visibility
selector, so a rep's forecast holds the deals they own or follow.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum, Value
from django.db.models.functions import Coalesce, TruncMonth
from django.urls import reverse
from django.utils import timezone

from opportunities.models import Status
from opportunities.selectors import opportunities_visible_to
from pipelines.models import Pipeline

MONTHS = 12
OVERDUE = "overdue"
CENTS = Decimal("0.01")


@dataclass
class Cell:
    """Open deals closing in one month (or overdue) and the deals won in it."""

    count: int = 0
    value: Decimal = Decimal(0)
    weighted: Decimal = Decimal(0)
    won_count: int = 0
    won_value: Decimal = Decimal(0)
    url: str = ""
    won_url: str = ""

    def add(self, other: "Cell") -> None:
        self.count += other.count
        self.value += other.value
        self.weighted += other.weighted
        self.won_count += other.won_count
        self.won_value += other.won_value


@dataclass
class Row:
    label: str
    filters: dict
    cells: dict = field(default_factory=lambda: defaultdict(Cell))
    # The cells in column order (overdue, then the months), once linked.
    line: list[Cell] = field(default_factory=list)

    def cell(self, key) -> Cell:
        return self.cells[key]


@dataclass
class Forecast:
    months: list[date]
    total: Row
    by_pipeline: list[Row]
    by_owner: list[Row]
    has_close_dates: bool

    @property
    def columns(self) -> list:
        """Overdue first, then the twelve months."""
        return [OVERDUE, *self.months]

    @property
    def summary(self) -> list[tuple[object, Cell]]:
        return [(key, self.total.cell(key)) for key in self.columns]

    @property
    def grand(self) -> Cell:
        total = Cell()
        for key in self.columns:
            total.add(self.total.cell(key))
        return total


def month_starts(today: date, count: int = MONTHS) -> list[date]:
    first, months = today.replace(day=1), []
    for _ in range(count):
        months.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return months


def month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def _weighted_sum():
    """Sum of value x (the deal's probability, else its stage's, else 0), in percent."""
    percent = Coalesce("probability", "stage__probability", Value(0))
    product = ExpressionWrapper(
        F("value") * percent, output_field=DecimalField(max_digits=20, decimal_places=2)
    )
    return Coalesce(Sum(product), Value(Decimal(0)), output_field=DecimalField())


def sales_forecast(user, *, today: date | None = None) -> Forecast:
    today = today or timezone.localdate()
    months = month_starts(today)
    first, end = months[0], month_end(months[-1])
    visible = opportunities_visible_to(user).order_by()
    open_deals = visible.filter(status=Status.OPEN)
    money = Coalesce(Sum("value"), Value(Decimal(0)), output_field=DecimalField())

    keys = ("pipeline_id", "assigned_to_id")
    cells: list[tuple[object, int, int | None, Cell]] = []
    for row in (
        open_deals.filter(expected_close_date__gte=first, expected_close_date__lte=end)
        .annotate(month=TruncMonth("expected_close_date"))
        .values("month", *keys)
        .annotate(count=Count("id"), total=money, weighted=_weighted_sum())
    ):
        cell = Cell(row["count"], row["total"], row["weighted"] / 100)
        cells.append((_as_date(row["month"]), row["pipeline_id"], row["assigned_to_id"], cell))
    for row in (
        open_deals.filter(expected_close_date__lt=first)
        .values(*keys)
        .annotate(count=Count("id"), total=money, weighted=_weighted_sum())
    ):
        cell = Cell(row["count"], row["total"], row["weighted"] / 100)
        cells.append((OVERDUE, row["pipeline_id"], row["assigned_to_id"], cell))
    start_at = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    end_at = timezone.make_aware(datetime.combine(end + timedelta(days=1), datetime.min.time()))
    for row in (
        visible.filter(status=Status.WON, closed_at__gte=start_at, closed_at__lt=end_at)
        .annotate(month=TruncMonth("closed_at"))
        .values("month", *keys)
        .annotate(count=Count("id"), total=money)
    ):
        cell = Cell(won_count=row["count"], won_value=row["total"])
        cells.append((_as_date(row["month"]), row["pipeline_id"], row["assigned_to_id"], cell))

    has_dates = bool(cells) or visible.filter(expected_close_date__isnull=False).exists()
    pipeline_ids = {pipeline_id for _, pipeline_id, _, _ in cells}
    owner_ids = {owner_id for _, _, owner_id, _ in cells if owner_id is not None}
    pipelines = {
        p.pk: p for p in Pipeline.objects.filter(pk__in=pipeline_ids).order_by("position", "id")
    }
    owners = {
        u.pk: u
        for u in get_user_model()
        .objects.filter(pk__in=owner_ids)
        .order_by("first_name", "last_name", "username")
    }

    total = Row("All", {})
    by_pipeline = {pk: Row(p.name, {"pipeline": pk}) for pk, p in pipelines.items()}
    by_owner = {
        pk: Row(u.get_full_name() or u.get_username(), {"owner": pk}) for pk, u in owners.items()
    }
    unassigned = Row("Unassigned", {"owner": None})
    for key, pipeline_id, owner_id, cell in cells:
        total.cell(key).add(cell)
        by_pipeline[pipeline_id].cell(key).add(cell)
        (by_owner[owner_id] if owner_id is not None else unassigned).cell(key).add(cell)
    owner_rows = list(by_owner.values()) + ([unassigned] if unassigned.cells else [])
    forecast = Forecast(
        months=months,
        total=total,
        by_pipeline=list(by_pipeline.values()),
        by_owner=owner_rows,
        has_close_dates=has_dates,
    )
    for row in [total, *forecast.by_pipeline, *owner_rows]:
        _link_cells(row, forecast.columns, first)
    return forecast


def _link_cells(row: Row, columns: list, first: date) -> None:
    """Each cell links to the manager list filtered to exactly its deals.

    The list cannot filter "no owner", so the Unassigned row's cells are not links.
    """
    for key in columns:
        cell = row.cell(key)
        cell.weighted = cell.weighted.quantize(CENTS)
        if row.filters.get("owner", 0) is None:
            continue
        base = {k: v for k, v in row.filters.items() if v is not None}
        if key == OVERDUE:
            span = {"expected_close_before": (first - timedelta(days=1)).isoformat()}
        else:
            span = {
                "expected_close_after": key.isoformat(),
                "expected_close_before": month_end(key).isoformat(),
            }
        if cell.count:
            cell.url = _list_url({"status": Status.OPEN, **base, **span})
        if cell.won_count and key != OVERDUE:
            closed = {"closed_after": key.isoformat(), "closed_before": month_end(key).isoformat()}
            cell.won_url = _list_url({"status": Status.WON, **base, **closed})
    row.line = [row.cell(key) for key in columns]


def _list_url(params: dict) -> str:
    return reverse("opportunities:list") + "?" + urlencode(params)
