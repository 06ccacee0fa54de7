"""Writes of the automation app that people make too: e-mailing a deal's contact."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.db import transaction

from automation import placeholders
from opportunities.models import CommunicationKind, Opportunity
from opportunities.selectors import opportunities_visible_to
from opportunities.services.records import communication_log


def sender_address(opportunity: Opportunity, user) -> str:
    """From the owner's address (else the sender's), through the site's mail server."""
    owner = opportunity.assigned_to
    for person in (owner, user):
        if person is not None and getattr(person, "email", ""):
            name = person.get_full_name() or person.get_username()
            return f"{name} <{person.email}>"
    return settings.DEFAULT_FROM_EMAIL


@transaction.atomic
def contact_email_send(
    *, opportunity: Opportunity, user, subject: str, body: str, after_commit: bool = False
):
    """E-mail the deal's contact and log it in the contact's communication log.

    Invariants: only a user who sees the deal and may log communication sends; a contact
    without an address or marked "do not e-mail" is refused; placeholders are filled
    from the deal; the log entry and the e-mail go together (a failed send logs nothing).
    `after_commit` (automation) sends once the caller's transaction commits instead: a
    rule's run may hold the event log's append lock, which must not wait on a mail server.
    """
    if not opportunities_visible_to(user).filter(pk=opportunity.pk).exists():
        raise PermissionDenied("You cannot see this opportunity.")
    contact = opportunity.contact
    if contact is None:
        raise ValidationError("This opportunity has no contact to e-mail.")
    if not contact.email:
        raise ValidationError(f"{contact.name} has no e-mail address.")
    if getattr(contact, "do_not_email", False):
        raise ValidationError(f"{contact.name} asked not to be e-mailed.")
    subject, body = subject.strip(), body.strip()
    if not subject or not body:
        raise ValidationError("Give the e-mail a subject and a body.")
    for text in (subject, body):
        placeholders.check(text)
    values = placeholders.values_for(opportunity)
    subject = " ".join(placeholders.fill(subject, values).split())[:200]
    body = placeholders.fill(body, values)
    entry = communication_log(
        opportunity=opportunity,
        user=user,
        kind=CommunicationKind.EMAIL,
        summary=f"{subject}\n\n{body}",
    )
    message = EmailMessage(
        subject=subject,
        body=body,
        from_email=sender_address(opportunity, user),
        to=[contact.email],
    )
    if after_commit:
        transaction.on_commit(lambda: message.send(fail_silently=False))
    else:
        message.send(fail_silently=False)
    return entry
