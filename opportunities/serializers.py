"""The opportunity as other software sees it, in HighLevel's field names.

One shape for the REST API's answers, the event log's payloads and webhook bodies, so an
integration written against HighLevel's opportunities API reads ours unchanged. Ids are
strings, as HighLevel sends them; our extras carry names HighLevel does not use.
"""

from datetime import date
from decimal import Decimal

from opportunities.custom_fields import typed_value, value_of
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


# The columns `opportunity_values_as_api` reads: a page of the search is one values()
# query (no model objects: building 100 of them cost more than the query).
API_COLUMNS = (
    "id",
    "name",
    "value",
    "pipeline_id",
    "stage_id",
    "assigned_to_id",
    "status",
    "source",
    "lost_reason_id",
    "contact_id",
    "contact__name",
    "contact__company",
    "contact__email",
    "contact__phone",
    "status_changed_at",
    "stage_entered_at",
    "created_at",
    "updated_at",
    "expected_close_date",
    "probability",
    "version",
)
# (field id, key, position, type, text, number, date, flag) of a custom value.
CUSTOM_VALUE_COLUMNS = (
    "field_id",
    "field__key",
    "field__position",
    "field__field_type",
    "text",
    "number",
    "date",
    "flag",
)


def opportunity_values_as_api(row: dict, tags, followers, custom_values) -> dict:
    """`opportunity_as_api` (with tags, followers and custom fields) from a values() row
    of API_COLUMNS, the tag names, the follower ids and CUSTOM_VALUE_COLUMNS tuples.

    The same answer, key for key (tests compare the two): the search builds its page
    with this one, every other read with `opportunity_as_api`.
    """
    contact_id = row["contact_id"]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "monetaryValue": float(row["value"]),
        "pipelineId": str(row["pipeline_id"]),
        "pipelineStageId": str(row["stage_id"]),
        "assignedTo": _id(row["assigned_to_id"]),
        "status": str(row["status"]),
        "source": row["source"],
        "lostReasonId": _id(row["lost_reason_id"]),
        "contactId": _id(contact_id),
        "contact": None
        if contact_id is None
        else {
            "id": str(contact_id),
            "name": row["contact__name"],
            "companyName": row["contact__company"],
            "email": row["contact__email"],
            "phone": row["contact__phone"],
        },
        "lastStatusChangeAt": _when(row["status_changed_at"]),
        "lastStageChangeAt": _when(row["stage_entered_at"]),
        "createdAt": _when(row["created_at"]),
        "updatedAt": _when(row["updated_at"]),
        "expectedCloseDate": _when(row["expected_close_date"]),
        "probability": row["probability"],
        "version": row["version"],
        "tags": sorted(tags),
        "followers": sorted(str(pk) for pk in followers),
        "customFields": [
            {
                "id": str(field_id),
                "key": key,
                "fieldValue": json_value(typed_value(kind, text, number, day, flag)),
            }
            for field_id, key, _, kind, text, number, day, flag in sorted(
                custom_values, key=lambda value: (value[2], value[0])
            )
        ],
    }


def json_value(value):
    """A value as JSON carries it: amounts as numbers, dates as ISO text (lists too)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):  # datetimes included
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value
