"""The opportunity as other software sees it, in HighLevel's field names.

One shape for the REST API's answers, the event log's payloads and webhook bodies, so an
integration written against HighLevel's opportunities API reads ours unchanged. Ids are
strings, as HighLevel sends them; our extras carry names HighLevel does not use.
"""

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


def opportunity_as_api(opportunity: Opportunity) -> dict:
    """The deal as the API shows it (load `contact` with it to avoid a query)."""
    return {
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
        "version": opportunity.version,
    }
