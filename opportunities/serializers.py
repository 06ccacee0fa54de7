"""The opportunity as other software sees it, in HighLevel's field names.

One shape for the REST API's answers, the event log's payloads and webhook bodies, so an
integration written against HighLevel's opportunities API reads ours unchanged. Ids are
strings, as HighLevel sends them; our extras carry names HighLevel does not use.
"""

from datetime import date
from decimal import Decimal

from opportunities.custom_fields import value_of
from opportunities.models import Contact, Opportunity


def _id(value) -> str | None:
    return None if value is None else str(value)


def _when(value) -> str | None:
    return value.isoformat() if value is not None else None


def contact_as_api(contact: Contact | None) -> dict | None:
    if contact is None:
        return None
    return {
        "id": str(contact.pk),
        "name": contact.name,
        "companyName": contact.company,
        "email": contact.email,
        "phone": contact.phone,
    }


def _prefetched(opportunity: Opportunity, name: str):
    cache = getattr(opportunity, "_prefetched_objects_cache", {})
    return cache.get(name)


def opportunity_as_api(opportunity: Opportunity) -> dict:
    """The deal as the API shows it (load `contact` with it to avoid a query).

    Tags, followers and custom fields are included when prefetched (`tags`,
    `followers`, `custom_values__field`): the API's reads prefetch them; event payloads,
    written on every drag, carry the row's own fields only.
    """
    data = {
        "id": str(opportunity.pk),
        "name": opportunity.name,
        "monetaryValue": float(opportunity.value),
        "pipelineId": str(opportunity.pipeline_id),
        "pipelineStageId": str(opportunity.stage_id),
        "assignedTo": _id(opportunity.assigned_to_id),
        "status": str(opportunity.status),
        "source": opportunity.source,
        "lostReasonId": _id(opportunity.lost_reason_id),
        "contactId": _id(opportunity.contact_id),
        "contact": contact_as_api(opportunity.contact) if opportunity.contact_id else None,
        "lastStatusChangeAt": _when(opportunity.status_changed_at),
        "lastStageChangeAt": _when(opportunity.stage_entered_at),
        "createdAt": _when(opportunity.created_at),
        "updatedAt": _when(opportunity.updated_at),
        "expectedCloseDate": _when(opportunity.expected_close_date),
        "probability": opportunity.probability,
        "version": opportunity.version,
    }
    tags = _prefetched(opportunity, "tags")
    if tags is not None:
        data["tags"] = sorted(tag.name for tag in tags)
    followers = _prefetched(opportunity, "followers")
    if followers is not None:
        data["followers"] = sorted(str(user.pk) for user in followers)
    values = _prefetched(opportunity, "custom_values")
    if values is not None:
        data["customFields"] = [
            {"id": str(row.field_id), "key": row.field.key, "fieldValue": json_value(value_of(row))}
            for row in sorted(values, key=lambda row: (row.field.position, row.field_id))
        ]
    return data


def json_value(value):
    """A value as JSON carries it: amounts as numbers, dates as ISO text (lists too)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):  # datetimes included
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value
