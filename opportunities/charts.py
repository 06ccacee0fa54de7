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


FUNNEL_LABEL_WIDTH = 150
FUNNEL_BAR_AREA = 330
FUNNEL_ROW = 34
FUNNEL_BAR = 24


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
                text_x=FUNNEL_LABEL_WIDTH + width + 8,
            )
        )
    return FunnelChart(
        title=funnel.pipeline.name,
        bars=bars,
        width=FUNNEL_LABEL_WIDTH + FUNNEL_BAR_AREA + 90,
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
    label: str
    center: int


@dataclass(frozen=True)
class MonthGroup:
    label: str
    center: int
    bars: list[MonthBar]


@dataclass(frozen=True)
class MonthChart:
    groups: list[MonthGroup]
    width: int
    height: int
    baseline: int
    bar_width: int
    gridlines: list[tuple[int, str]]
    months: list[MonthTotals]


MONTH_GROUP = 80
MONTH_BAR = 26
MONTH_GAP = 6
MONTH_PLOT = 150  # height of the tallest bar
MONTH_TOP = 24  # room for the value above the tallest bar
MONTH_LEFT = 52  # room for the axis labels


def month_chart(months: list[MonthTotals]) -> MonthChart:
    peak = max((max(m.won_value, m.lost_value) for m in months), default=Decimal(0)) or Decimal(1)
    baseline = MONTH_TOP + MONTH_PLOT
    groups = []
    for index, month in enumerate(months):
        left = MONTH_LEFT + index * MONTH_GROUP + (MONTH_GROUP - 2 * MONTH_BAR - MONTH_GAP) // 2
        bars = []
        for offset, kind, value, count in (
            (0, "won", month.won_value, month.won_count),
            (MONTH_BAR + MONTH_GAP, "lost", month.lost_value, month.lost_count),
        ):
            height = round(MONTH_PLOT * value / peak)
            if value and height < 2:
                height = 2
            bars.append(
                MonthBar(
                    kind=kind,
                    x=left + offset,
                    y=baseline - height,
                    height=height,
                    value=value,
                    count=count,
                    label=compact_money(value) if value else "–",
                    center=left + offset + MONTH_BAR // 2,
                )
            )
        first_or_january = index == 0 or month.month.month == 1
        label = date_format(month.month, "M ’y" if first_or_january else "M")
        groups.append(
            MonthGroup(
                label=label, center=MONTH_LEFT + index * MONTH_GROUP + MONTH_GROUP // 2, bars=bars
            )
        )
    gridlines = [
        (baseline - round(MONTH_PLOT * share), compact_money(peak * Decimal(share)))
        for share in (0.5, 1)
    ]
    return MonthChart(
        groups=groups,
        width=MONTH_LEFT + max(len(months), 1) * MONTH_GROUP + 8,
        height=baseline + 26,
        baseline=baseline,
        bar_width=MONTH_BAR,
        gridlines=gridlines,
        months=months,
    )
