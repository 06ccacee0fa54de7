"""Small formatting helpers for cards and tables."""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.utils import timezone

from opportunities import selectors

register = template.Library()


@register.filter
def money(value) -> str:
    """12345.5 -> "$12,346"; cents are noise on a board."""
    try:
        amount = Decimal(value or 0)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    symbol = getattr(settings, "CRM_CURRENCY_SYMBOL", "$")
    return f"{symbol}{amount:,.0f}"


@register.filter
def initials(user) -> str:
    if user is None:
        return "?"
    full = (user.get_full_name() or user.get_username()).split()
    return "".join(part[0] for part in full[:2]).upper() or "?"


@register.filter
def display_name(user) -> str:
    if user is None:
        return "Unassigned"
    return user.get_full_name() or user.get_username()


@register.filter
def days_since(moment) -> int:
    if moment is None:
        return 0
    if isinstance(moment, datetime):
        moment = timezone.localtime(moment).date()
    return max((timezone.localdate() - moment).days, 0)


@register.filter
def is_past(day) -> bool:
    return isinstance(day, date) and day < timezone.localdate()


@register.filter
def tag_chips(lines) -> list[tuple[str, str]]:
    """(colour, name) pairs from a card's "#rrggbb name" lines (selectors.card_tags)."""
    if not lines:
        return []
    pairs = [tuple(line.split(" ", 1)) for line in lines.split("\n") if " " in line]
    return sorted(pairs, key=lambda pair: pair[1].lower())


@register.filter
def avatar_hue(user) -> int:
    """A stable hue class (0-7) per user, so owners are told apart at a glance."""
    return (user.pk % 8) if user is not None else 8


@register.filter
def is_rotting(card) -> bool:
    """The one rotting rule (selectors.is_rotting) for a card with its stage loaded."""
    return selectors.is_rotting(card)
