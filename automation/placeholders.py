"""Placeholders in e-mail and notification texts: `{first_name}`, `{deal}`, `{owner}`…

Deliberately not the Django template language: managers write these texts, and a plain
lookup of a few known names cannot reach anything else.
"""

import re

from django.core.exceptions import ValidationError

PLACEHOLDER = re.compile(r"\{(\w+)\}")
NAMES = {
    "first_name": "the contact's first name",
    "contact_name": "the contact's full name",
    "deal": "the deal's name",
    "value": "the deal's value",
    "stage": "the deal's stage",
    "owner": "the owner's name",
    "owner_email": "the owner's e-mail address",
}

SAMPLE = {
    "first_name": "Ada",
    "contact_name": "Ada Lovelace",
    "deal": "Analytical Engine licence",
    "value": "12,000.00",
    "stage": "Proposal",
    "owner": "Grace Hopper",
    "owner_email": "grace@example.com",
}


def check(text: str) -> None:
    unknown = sorted({name for name in PLACEHOLDER.findall(text) if name not in NAMES})
    if unknown:

        def braced(names):
            return ", ".join("{" + name + "}" for name in names)

        raise ValidationError(f"Unknown placeholder {braced(unknown)}. Use {braced(NAMES)}.")


def values_for(opportunity) -> dict[str, str]:
    contact, owner = opportunity.contact, opportunity.assigned_to
    contact_name = contact.name if contact else ""
    return {
        "first_name": contact_name.split(" ")[0] if contact_name else "",
        "contact_name": contact_name,
        "deal": opportunity.name,
        "value": f"{opportunity.value:,.2f}",
        "stage": opportunity.stage.name,
        "owner": (owner.get_full_name() or owner.get_username()) if owner else "",
        "owner_email": owner.email if owner else "",
    }


def fill(text: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def email_previews(rule) -> list[str]:
    """How the rule's e-mails and notifications read, filled with sample values."""
    previews = []
    for action in rule.actions.filter(kind__in=["email_contact", "notify"]):
        subject = fill(action.title, SAMPLE)
        body = fill(action.body, SAMPLE)
        previews.append(f"Preview of “{action}”: {subject} — {body}".strip(" —"))
    return previews
