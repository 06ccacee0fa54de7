"""Editing an opportunity from its record, and creating one with its contact.

The record form changes several things at once (the deal's fields, its stage, its
status, its contact). Each function here does all of it in one transaction, so a
refusal at any step (a stale version, a bad value, a missing lost reason) leaves
nothing saved half-way.
"""

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from opportunities.models import Contact, ContactHistory, LostReason, Opportunity, Status
from opportunities.selectors import contacts_visible_to
from opportunities.services.access import ensure_may_change
from opportunities.services.opportunities import (
    UNCHANGED,
    opportunity_create,
    opportunity_update,
)
from pipelines.models import Pipeline, Stage

__all__ = ["UNCHANGED", "contact_resolve", "opportunity_update"]


def contact_resolve(
    *,
    user,
    contact: Contact | None,
    name: str,
    email: str = "",
    phone: str = "",
    company: str = "",
    do_not_email: bool | None = None,
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
    if do_not_email is not None:  # only the admin's form shows the flag
        details["do_not_email"] = do_not_email
    if contact is not None:
        if not contacts_visible_to(user).filter(pk=contact.pk).exists():
            raise ValidationError({"contact": "Choose a contact from your own opportunities."})
        if all(getattr(contact, key) == value for key, value in details.items()):
            return contact
        if not user.has_perm("opportunities.change_contact"):
            raise PermissionDenied("You are not allowed to change contacts.")
        changes = {
            key: {"old": getattr(contact, key), "new": value}
            for key, value in details.items()
            if getattr(contact, key) != value
        }
        for key, value in details.items():
            setattr(contact, key, value)
        _clean_contact(contact)
        contact.save(update_fields=list(details))
        # A contact is shared by deals (maybe other reps'): every edit keeps its trace.
        ContactHistory.objects.create(
            contact=contact, user=user if user.is_authenticated else None, changes=changes
        )
        return contact
    if not details["name"]:
        if any(value for key, value in details.items() if key != "do_not_email"):
            raise ValidationError({"contact_name": "Give the contact a name."})
        return None
    if not user.has_perm("opportunities.add_contact"):
        raise PermissionDenied("You are not allowed to add contacts.")
    new = Contact(**details)
    _clean_contact(new)
    new.save()
    return new


@transaction.atomic
def contact_delete(*, contact: Contact, user) -> None:
    """Invariant: a contact still on a deal is kept (deals keep their contact); its
    communication log goes with it."""
    if not user.has_perm("opportunities.delete_contact"):
        raise PermissionDenied("You are not allowed to delete contacts.")
    if not contacts_visible_to(user).filter(pk=contact.pk).exists():
        raise Contact.DoesNotExist("No such contact.")
    if contact.opportunities.exists():
        raise ValidationError(f"“{contact}” is still the contact of an opportunity.")
    contact.delete()


def _clean_contact(contact: Contact) -> None:
    """full_clean, with errors keyed `contact_<field>` so they never pass for the deal's."""
    try:
        contact.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {f"contact_{key}": errors for key, errors in exc.message_dict.items()}
        ) from exc


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
    ensure_may_change(user, opportunity)
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
    expected_close_date=None,
    probability=None,
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
        expected_close_date=expected_close_date,
        probability=probability,
    )
