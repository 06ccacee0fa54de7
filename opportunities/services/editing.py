"""Editing an opportunity from its record, and creating one with its contact.

The record form changes several things at once (the deal's fields, its stage, its
status, its contact). Each function here does all of it in one transaction, so a
refusal at any step (a stale version, a bad value, a missing lost reason) leaves
nothing saved half-way.
"""

import copy
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from opportunities.errors import StaleVersion
from opportunities.models import Contact, LostReason, Opportunity, Status
from opportunities.services.history import history_record
from opportunities.services.moves import opportunity_set_status, rank_for_drop
from opportunities.services.opportunities import opportunity_create
from pipelines.models import Pipeline, Stage

# Passed as `contact` when the caller does not touch the opportunity's contact.
UNCHANGED = object()


def contact_resolve(
    *,
    user,
    contact: Contact | None,
    name: str,
    email: str = "",
    phone: str = "",
    company: str = "",
) -> Contact | None:
    """The contact the record form asks for, written if it changed.

    Invariants: an existing contact is updated only when its details differ (and only
    by a user who may change contacts); a new one is created only when a name is given
    (by a user who may add contacts); no name and no contact means "no contact".
    """
    details = {
        "name": name.strip(),
        "email": email.strip(),
        "phone": phone.strip(),
        "company": company.strip(),
    }
    if contact is not None:
        if all(getattr(contact, key) == value for key, value in details.items()):
            return contact
        if not user.has_perm("opportunities.change_contact"):
            raise PermissionDenied("You are not allowed to change contacts.")
        for key, value in details.items():
            setattr(contact, key, value)
        _clean_contact(contact)
        contact.save(update_fields=list(details))
        return contact
    if not details["name"]:
        if any(details.values()):
            raise ValidationError({"contact_name": "Give the contact a name."})
        return None
    if not user.has_perm("opportunities.add_contact"):
        raise PermissionDenied("You are not allowed to add contacts.")
    new = Contact(**details)
    _clean_contact(new)
    new.save()
    return new


def _clean_contact(contact: Contact) -> None:
    """full_clean, with errors keyed `contact_<field>` so they never pass for the deal's."""
    try:
        contact.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {f"contact_{key}": errors for key, errors in exc.message_dict.items()}
        ) from exc


@transaction.atomic
def opportunity_update(
    *,
    opportunity: Opportunity,
    version: int,
    user,
    name: str,
    value: Decimal | int | str,
    source: str,
    assigned_to,
    stage: Stage,
    status: str,
    lost_reason: LostReason | None = None,
    contact=UNCHANGED,
) -> Opportunity:
    """Save the record form's fields.

    Invariants: written only if the stored `version` still equals `version` (else
    StaleVersion and nothing changes); the stage belongs to the opportunity's pipeline;
    a changed stage puts the card at the top of its new column and records a history
    row; a changed status goes through `opportunity_set_status` (lost reason iff Lost,
    one history row); value >= 0. Each accepted save bumps `version`.
    """
    if opportunity.version != version:
        raise StaleVersion(opportunity.pk)
    if stage.pipeline_id != opportunity.pipeline_id:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})

    if Decimal(value) < 0:
        raise ValidationError({"value": "The value cannot be negative."})

    candidate = copy.copy(opportunity)
    candidate.name, candidate.value, candidate.source = name, value, source.strip()
    candidate.assigned_to, candidate.stage = assigned_to, stage
    if contact is not UNCHANGED:
        candidate.contact = contact
    # Status and lost reason are checked by opportunity_set_status with its own messages.
    candidate.full_clean(exclude=["status", "lost_reason", "rank"])

    if status != opportunity.status or (
        status == Status.LOST and lost_reason != opportunity.lost_reason
    ):
        opportunity_set_status(
            opportunity=opportunity,
            status=status,
            lost_reason=lost_reason,
            version=version,
            user=user,
        )
        version = opportunity.version

    now = timezone.now()
    changes = {
        "name": candidate.name,
        "value": candidate.value,
        "source": candidate.source,
        "assigned_to": candidate.assigned_to,
        "contact": candidate.contact,
        "updated_at": now,
        "version": F("version") + 1,
    }
    stage_changed = stage.pk != opportunity.stage_id
    if stage_changed:
        # Same lock as a drop, so two cards landing on top of one column get distinct keys.
        Stage.objects.select_for_update().filter(pk=stage.pk).values_list("pk").first()
        changes |= {
            "stage": stage,
            "stage_entered_at": now,
            "rank": rank_for_drop(stage, moving_id=opportunity.pk),
        }
    updated = Opportunity.objects.filter(pk=opportunity.pk, version=version).update(**changes)
    if not updated:
        raise StaleVersion(opportunity.pk)
    if stage_changed:
        history_record(
            opportunity=opportunity,
            user=user,
            from_stage_id=opportunity.stage_id,
            to_stage_id=stage.pk,
            from_status=opportunity.status,
            to_status=opportunity.status,
            at=now,
        )
    opportunity.refresh_from_db()
    return opportunity


@transaction.atomic
def opportunity_update_with_contact(
    *,
    opportunity: Opportunity,
    version: int,
    user,
    contact: Contact | None,
    contact_details: dict,
    **fields,
) -> Opportunity:
    """The record form's save: contact (picked, edited or created) and deal together.

    Invariant: all or nothing; a refused deal update leaves no new or edited contact.
    """
    resolved = contact_resolve(user=user, contact=contact, **contact_details)
    return opportunity_update(
        opportunity=opportunity, version=version, user=user, contact=resolved, **fields
    )


@transaction.atomic
def opportunity_create_with_contact(
    *,
    user,
    pipeline: Pipeline,
    stage: Stage | None,
    name: str,
    value: Decimal | int | str = 0,
    source: str = "",
    assigned_to=None,
    status: str = Status.OPEN,
    lost_reason: LostReason | None = None,
    contact: Contact | None = None,
    contact_details: dict | None = None,
) -> Opportunity:
    """The full "new opportunity" form and the board's quick-add.

    Invariant: the contact and the opportunity are created together or not at all; the
    new card is at the top of its column (see opportunity_create).
    """
    if contact_details is not None:
        contact = contact_resolve(user=user, contact=contact, **contact_details)
    return opportunity_create(
        user=user,
        name=name,
        pipeline=pipeline,
        stage=stage,
        value=value,
        contact=contact,
        source=source,
        assigned_to=assigned_to,
        status=status,
        lost_reason=lost_reason,
    )
