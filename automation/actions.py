"""What each kind of action does, through the same services as people use.

Each function takes the action, the deal and the acting user and returns a short
sentence for the run log ("created task ‘Send the proposal’"). A refusal raises the
services' own errors (PermissionDenied, ValidationError, StaleVersion…) and the engine
logs it with the message.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.utils import timezone

from automation import placeholders
from automation.models import Action, ActionKind, Recipient
from automation.notifications import notify
from automation.services import contact_email_send
from integrations.models import WebhookSubscription
from integrations.webhooks import delivery_enqueue
from opportunities.models import Opportunity, OpportunityEvent, Status
from opportunities.selectors import opportunities_visible_to
from opportunities.services import moves, records
from opportunities.services.opportunities import opportunity_update
from opportunities.services.related import opportunity_set_tags


def _text(action: Action, opportunity: Opportunity, field: str = "title") -> str:
    return placeholders.fill(getattr(action, field), placeholders.values_for(opportunity))


def _group_members(action: Action) -> list:
    return list(get_user_model().objects.filter(groups=action.group, is_active=True).order_by("id"))


def _person(action: Action, opportunity: Opportunity):
    """The one user an action is for: the owner or the named user."""
    if action.recipient == Recipient.USER:
        return action.user
    if opportunity.assigned_to is None:
        raise ValidationError("The deal has no owner.")
    return opportunity.assigned_to


def _people(action: Action, opportunity: Opportunity) -> list:
    """Everyone an action is for: the owner, the named user, the followers or a group."""
    if action.recipient == Recipient.GROUP:
        return _group_members(action)
    if action.recipient == Recipient.FOLLOWERS:
        followers = list(opportunity.followers.filter(is_active=True).order_by("id"))
        if not followers:
            raise ValidationError("The deal has no followers.")
        return followers
    return [_person(action, opportunity)]


def create_task(action, opportunity, user) -> str:
    title = _text(action, opportunity) or _text(action, opportunity, "body")
    due_on = None
    if action.due_in_days is not None:
        due_on = timezone.localdate() + timedelta(days=action.due_in_days)
    people = _people(action, opportunity)
    for person in people:
        task = records.task_create(
            opportunity=opportunity, user=user, title=title, due_on=due_on, assigned_to=person
        )
    names = ", ".join(p.get_full_name() or p.get_username() for p in people)
    return f"created task ‘{task.title}’ for {names}"


def assign_owner(action, opportunity, user) -> str:
    if action.recipient == Recipient.GROUP:
        members = _group_members(action)
        if not members:
            raise ValidationError(f"The group “{action.group}” has no active members.")
        # Round-robin: the counter lives on the action, bumped in the run's transaction.
        index = Action.objects.filter(pk=action.pk).values_list("next_index", flat=True)[0]
        owner = members[index % len(members)]
        Action.objects.filter(pk=action.pk).update(next_index=F("next_index") + 1)
    else:
        owner = action.user
    if opportunity.assigned_to_id == owner.pk:
        return f"owner already {owner}"
    opportunity_update(
        opportunity=opportunity, user=user, version=opportunity.version, assigned_to=owner
    )
    return f"assigned to {owner.get_full_name() or owner.get_username()}"


def move_stage(action, opportunity, user) -> str:
    if opportunity.stage_id == action.stage_id:
        return f"already in {action.stage.name}"
    moves.opportunity_move(
        opportunity=opportunity, to_stage=action.stage, version=opportunity.version, user=user
    )
    return f"moved to {action.stage.name}"


def set_status(action, opportunity, user) -> str:
    if opportunity.status == action.status:
        return f"already {Status(action.status).label}"
    moves.opportunity_set_status(
        opportunity=opportunity,
        status=action.status,
        lost_reason=action.lost_reason if action.status == Status.LOST else None,
        version=opportunity.version,
        user=user,
    )
    return f"set status to {Status(action.status).label}"


def add_note(action, opportunity, user) -> str:
    body = _text(action, opportunity, "body") or _text(action, opportunity)
    records.note_create(opportunity=opportunity, author=user, body=body)
    return "added a note"


def notify_people(action, opportunity, user) -> str:
    people = _people(action, opportunity)
    text = _text(action, opportunity) or _text(action, opportunity, "body")
    notes = notify(users=people, text=text, opportunity=opportunity)
    names = ", ".join(n.user.get_full_name() or n.user.get_username() for n in notes)
    return f"notified {names or 'nobody'}"


def email_contact(action, opportunity, user) -> str:
    contact_email_send(
        opportunity=opportunity,
        user=user,
        subject=action.title,
        body=action.body,
        after_commit=True,
    )
    return f"e-mailed {opportunity.contact.email}"


def _tags(opportunity) -> list[str]:
    return list(opportunity.tags.order_by("name").values_list("name", flat=True))


def add_tag(action, opportunity, user) -> str:
    tag = _text(action, opportunity).strip()
    names = _tags(opportunity)
    if tag.casefold() in {name.casefold() for name in names}:
        return f"tag ‘{tag}’ already there"
    opportunity_set_tags(opportunity=opportunity, user=user, names=[*names, tag])
    return f"added tag ‘{tag}’"


def remove_tag(action, opportunity, user) -> str:
    tag = _text(action, opportunity).strip()
    names = _tags(opportunity)
    kept = [name for name in names if name.casefold() != tag.casefold()]
    if kept == names:
        return f"no tag ‘{tag}’ to remove"
    opportunity_set_tags(opportunity=opportunity, user=user, names=kept)
    return f"removed tag ‘{tag}’"


def send_webhook(action, opportunity, user, *, event_id: int | None) -> str:
    """Queue the triggering event for the action's subscription (signed, retried, logged
    on Settings → Webhooks like every delivery)."""
    # The deal's data leaves the CRM: only for a rule whose user may see the deal.
    if not opportunities_visible_to(user).filter(pk=opportunity.pk).exists():
        raise PermissionDenied(f"{user} cannot see this deal.")
    event = OpportunityEvent.objects.filter(pk=event_id).first() if event_id else None
    if event is None:
        raise ValidationError("No event to send (a stale check, or pruned from the event log).")
    # Read again: the endpoint may have been switched off since the rule was loaded.
    subscription = WebhookSubscription.objects.filter(pk=action.webhook_id).first()
    if subscription is None:
        raise ValidationError("The webhook subscription was deleted.")
    _, created = delivery_enqueue(subscription=subscription, event=event)
    queued = "queued" if created else "already queued"
    return f"{queued} webhook {event.type} to {subscription.url}"


RUNNERS = {
    ActionKind.CREATE_TASK: create_task,
    ActionKind.ASSIGN_OWNER: assign_owner,
    ActionKind.MOVE_STAGE: move_stage,
    ActionKind.SET_STATUS: set_status,
    ActionKind.ADD_NOTE: add_note,
    ActionKind.NOTIFY: notify_people,
    ActionKind.EMAIL_CONTACT: email_contact,
    ActionKind.ADD_TAG: add_tag,
    ActionKind.REMOVE_TAG: remove_tag,
    ActionKind.SEND_WEBHOOK: send_webhook,
}
# Runners that also take the id of the event that started the rule (`event_id=`).
EVENT_RUNNERS = {ActionKind.SEND_WEBHOOK}
