"""Geometry for the manager's server-rendered SVG charts.

The templates only place what is computed here: bars with their coordinates and the
numbers written beside them, so a chart reads without colour and without JavaScript.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.dateformat import format as date_format

from opportunities.reports import Funnel, MonthTotals


def compact_money(amount: Decimal | int) -> str:
    """$950, $12.5k, $1.2M: short enough to sit above a bar."""
    symbol = getattr(settings, "CRM_CURRENCY_SYMBOL", "$")
    amount = Decimal(amount or 0)
    for limit, suffix in ((Decimal(10**9), "B"), (Decimal(10**6), "M"), (Decimal(10**3), "k")):
        if amount >= limit:
            scaled = amount / limit
            text = f"{scaled:.1f}" if scaled < 100 else f"{scaled:.0f}"
            return f"{symbol}{text.removesuffix('.0')}{suffix}"
    return f"{symbol}{amount:,.0f}"


@dataclass(frozen=True)
class FunnelBar:
    label: str
    count: int
    share: Decimal | None
    y: int
    width: int
    text_x: int


@dataclass(frozen=True)
class FunnelChart:
    title: str
    bars: list[FunnelBar]
    width: int
    height: int
    label_width: int
    bar_height: int
    bar_area: int

    @property
    def description(self) -> str:
        return "; ".join(f"{bar.label}: {bar.count}" for bar in self.bars)


FUNNEL_LABEL_WIDTH = 112
FUNNEL_BAR_AREA = 220
FUNNEL_ROW = 30
FUNNEL_BAR = 22


def funnel_chart(funnel: Funnel) -> FunnelChart:
    top = funnel.top or 1
    bars = []
    for index, step in enumerate(funnel.steps):
        width = round(FUNNEL_BAR_AREA * step.count / top)
        if step.count and width < 2:
            width = 2  # a non-empty stage never disappears
        bars.append(
            FunnelBar(
                label=step.stage.name,
                count=step.count,
                share=step.share,
                y=index * FUNNEL_ROW,
                width=width,
                # One column of numbers right of the bars: easy to scan and compare.
                text_x=FUNNEL_LABEL_WIDTH + FUNNEL_BAR_AREA + 10,
            )
        )
    return FunnelChart(
        title=funnel.pipeline.name,
        bars=bars,
        width=FUNNEL_LABEL_WIDTH + FUNNEL_BAR_AREA + 84,
        height=max(len(bars), 1) * FUNNEL_ROW,
        label_width=FUNNEL_LABEL_WIDTH,
        bar_height=FUNNEL_BAR,
        bar_area=FUNNEL_BAR_AREA,
    )


@dataclass(frozen=True)
class MonthBar:
    kind: str  # "won" or "lost"
    x: int
    y: int
    height: int
    value: Decimal
    count: int


@dataclass(frozen=True)
class MonthGroup:
    label: str
    center: int
    bars: list[MonthBar]
    won_label: str
    lost_label: str


@dataclass(frozen=True)
class MonthChart:
    groups: list[MonthGroup]
    width: int
    height: int
    baseline: int
    bar_width: int
    gridlines: list[tuple[int, str]]
    months: list[MonthTotals]
    month_row: int
    won_row: int
    lost_row: int
    left: int


MONTH_TARGET_WIDTH = 560  # the groups share this width, within the limits below
MONTH_GROUP_MIN, MONTH_GROUP_MAX = 46, 72
MONTH_GAP = 4  # between the won and the lost bar of a month
MONTH_PLOT = 130  # height of the tallest bar
MONTH_TOP = 8
MONTH_LEFT = 48  # room for the axis and row labels


def month_chart(months: list[MonthTotals]) -> MonthChart:
    """Columns per month, won (solid) beside lost (striped), and the values in two rows of
    text under the months, aligned with their columns, so no label ever overlaps a bar."""
    count = max(len(months), 1)
    group = min(max(MONTH_TARGET_WIDTH // count, MONTH_GROUP_MIN), MONTH_GROUP_MAX)
    bar = (group - 12 - MONTH_GAP) // 2
    peak = max((max(m.won_value, m.lost_value) for m in months), default=Decimal(0)) or Decimal(1)
    baseline = MONTH_TOP + MONTH_PLOT
    groups = []
    for index, month in enumerate(months):
        left = MONTH_LEFT + index * group + (group - 2 * bar - MONTH_GAP) // 2
        bars = []
        for offset, kind, value, number in (
            (0, "won", month.won_value, month.won_count),
            (bar + MONTH_GAP, "lost", month.lost_value, month.lost_count),
        ):
            height = round(MONTH_PLOT * value / peak)
            if value and height < 2:
                height = 2  # a small month never disappears
            bars.append(
                MonthBar(
                    kind=kind,
                    x=left + offset,
                    y=baseline - height,
                    height=height,
                    value=value,
                    count=number,
                )
            )
        first_or_january = index == 0 or month.month.month == 1
        groups.append(
            MonthGroup(
                label=date_format(month.month, "M ’y" if first_or_january else "M"),
                center=MONTH_LEFT + index * group + group // 2,
                bars=bars,
                won_label=compact_money(month.won_value) if month.won_value else "–",
                lost_label=compact_money(month.lost_value) if month.lost_value else "–",
            )
        )
    gridlines = [
        (baseline - round(MONTH_PLOT * share), compact_money(peak * Decimal(share)))
        for share in (0.5, 1)
    ]
    return MonthChart(
        groups=groups,
        width=MONTH_LEFT + count * group + 4,
        height=baseline + 62,
        baseline=baseline,
        bar_width=bar,
        gridlines=gridlines,
        months=months,
        month_row=baseline + 16,
        won_row=baseline + 36,
        lost_row=baseline + 54,
        left=MONTH_LEFT,
    )
