"""What changed in a write, computed once: history rows and events come from it.

Every service (and the bulk paths: import, demo seeding) takes a `snapshot` of a deal
before changing it and hands (snapshot, changed deal) to `changes_record`, which writes
one history row per tracked field that changed and the events that announce the change,
in a bounded number of statements however many deals are in the batch.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.utils import timezone

from opportunities.events import events_append_statements
from opportunities.models import (
    EventType,
    Opportunity,
    OpportunityEvent,
    OpportunityHistory,
    TrackedField,
)
from opportunities.serializers import json_value, opportunity_as_api
from opportunities.services.rows import execute_all, insert_statements

# Model attribute -> (name in events and the API, history field or None, specific event).
WATCHED = {
    "stage_id": ("pipelineStageId", TrackedField.STAGE, EventType.STAGE_UPDATE),
    "status": ("status", TrackedField.STATUS, EventType.STATUS_UPDATE),
    "value": ("monetaryValue", TrackedField.VALUE, EventType.VALUE_UPDATE),
    "assigned_to_id": ("assignedTo", TrackedField.OWNER, EventType.ASSIGNED_TO_UPDATE),
    "pipeline_id": ("pipelineId", TrackedField.PIPELINE, None),
    "lost_reason_id": ("lostReasonId", TrackedField.LOST_REASON, None),
    "name": ("name", None, None),
    "source": ("source", None, None),
    "contact_id": ("contactId", None, None),
    "rank": ("position", None, None),
    "expected_close_date": ("expectedCloseDate", TrackedField.CLOSE_DATE, None),
    "probability": ("probability", TrackedField.PROBABILITY, None),
    "deleted_at": ("deletedAt", TrackedField.DELETED, None),
}
# Not columns of the deal: the services that change them pass (old, new) as `extra`.
RELATED = {
    "tags": ("tags", TrackedField.TAGS, None),
    "followers": ("followers", TrackedField.FOLLOWERS, None),
}
CUSTOM_PREFIX = "custom:"


def _meta(attr: str) -> tuple:
    if attr.startswith(CUSTOM_PREFIX):
        return (f"customFields.{attr.removeprefix(CUSTOM_PREFIX)}", TrackedField.CUSTOM_FIELD, None)
    return WATCHED.get(attr) or RELATED[attr]


def snapshot(opportunity: Opportunity) -> dict:
    """The watched values of a deal, taken before it changes."""
    values = {attr: getattr(opportunity, attr) for attr in WATCHED}
    # An instance built in memory may hold 10 where the database holds 10.00.
    values["value"] = Decimal(values["value"]).quantize(Decimal("0.01"))
    return values


def _as_api(attr: str, value):
    """Ids as strings, as the API and HighLevel send them."""
    if value is not None and (attr.endswith("_id") or attr == "followers"):
        return [str(item) for item in value] if isinstance(value, list) else str(value)
    return json_value(value)


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)[:500]
    return str(value)[:500]


@dataclass
class Change:
    opportunity: Opportunity
    before: dict | None
    fields: dict = field(default_factory=dict)  # attr -> (old, new)

    @property
    def created(self) -> bool:
        return self.before is None

    def event_types(self) -> list[str]:
        if self.created:
            return [EventType.CREATE]
        if "deleted_at" in self.fields:
            # Into the trash: deleted for integrations; out of it: there again.
            restored = self.fields["deleted_at"][1] is None
            return [EventType.CREATE if restored else EventType.DELETE]
        types = [_meta(attr)[2] for attr in self.fields if _meta(attr)[2]]
        # Anything else (name, source, contact, pipeline, lost reason, tags, a reorder…)
        # is announced as a general update; the rank that comes with a stage change is not.
        others = {attr for attr in self.fields if not _meta(attr)[2]}
        if "stage_id" in self.fields:
            others.discard("rank")
        if others:
            types.append(EventType.UPDATE)
        return types

    def payload_changes(self) -> dict:
        return {
            _meta(attr)[0]: {"old": _as_api(attr, old), "new": _as_api(attr, new)}
            for attr, (old, new) in self.fields.items()
        }


def diff(before: dict | None, opportunity: Opportunity, extra: dict | None = None) -> Change:
    """What changed on the row (from `before`), plus `extra` {attr: (old, new)} for what
    lives beside it (tags, followers, custom fields)."""
    change = Change(opportunity=opportunity, before=before)
    if before is not None:
        for attr, old in before.items():
            new = getattr(opportunity, attr)
            if old != new:
                change.fields[attr] = (old, new)
        for attr, (old, new) in (extra or {}).items():
            if old != new:
                change.fields[attr] = (old, new)
    return change


def _history_rows(change: Change, user, at) -> list[dict]:
    """The history rows of `change` as column values (attname -> value): the write path
    turns them into INSERTs without building a model instance per row."""
    opportunity = change.opportunity
    common = {
        "opportunity_id": opportunity.pk,
        "user_id": user.pk if user is not None else None,
        "at": at,
        "from_stage_id": opportunity.stage_id,
        "to_stage_id": opportunity.stage_id,
        "from_status": opportunity.status,
        "to_status": opportunity.status,
        "old_value": "",
        "new_value": "",
    }
    if change.created:
        return [common | {"field": TrackedField.CREATED, "from_stage_id": None, "from_status": ""}]
    rows = []
    for attr, (old, new) in change.fields.items():
        tracked = _meta(attr)[1]
        if tracked is None:
            continue
        if tracked == TrackedField.DELETED and new is None:
            tracked = TrackedField.RESTORED
        row = common | {"field": tracked}
        if tracked == TrackedField.STAGE:
            row["from_stage_id"] = old
        elif tracked == TrackedField.STATUS:
            row["from_status"] = old
        elif tracked == TrackedField.CUSTOM_FIELD:
            key = attr.removeprefix(CUSTOM_PREFIX)
            row["old_value"] = f"{key}: {_as_text(old)}"[:500]
            row["new_value"] = f"{key}: {_as_text(new)}"[:500]
        else:
            row["old_value"], row["new_value"] = _as_text(old), _as_text(new)
        rows.append(row)
    return rows


def history_rows(*, before: dict | None, after: Opportunity, user, at) -> list[OpportunityHistory]:
    """The history rows of one change, unsaved (for replaying past changes in bulk)."""
    return [OpportunityHistory(**row) for row in _history_rows(diff(before, after), user, at)]


@dataclass
class Recorded:
    """A batch's history rows and events as statements ready to run (`changes_write`)."""

    changes: list[Change]
    history: list[tuple[str, list]]
    events: list[tuple[str, list]]


def changes_record(*, user, items: list[tuple], at=None, history: bool = True) -> list[Change]:
    """Write the history rows and events for a batch of changed (or created) deals.

    `items` pairs the snapshot taken before the write (None for a new deal) with the
    deal as written, optionally with a third element: {attr: (old, new)} for tags,
    followers and custom fields ("custom:<key>"). Deals that did not change write
    nothing. Call it after the writes, as the last step of the transaction (events take
    the append lock). `history=False` only for callers that wrote the history
    themselves with `history_rows` (replays).
    """
    recorded = changes_prepare(user=user, items=items, at=at, history=history)
    changes_write(recorded)
    return recorded.changes


def changes_prepare(*, user, items: list[tuple], at=None, history: bool = True) -> Recorded:
    """`changes_record` up to its statements, which are built but not run: a drop builds
    them before it takes the write lock (services/moves.py)."""
    at = at or timezone.now()
    actor = user if getattr(user, "is_authenticated", False) else None
    changes = [diff(*item) for item in items]
    changes = [change for change in changes if change.created or change.fields]
    rows = []
    if history:
        rows = [row for change in changes for row in _history_rows(change, actor, at)]
    events = []
    for change in changes:
        payload = None
        for event_type in change.event_types():
            payload = payload or {
                "opportunity": opportunity_as_api(change.opportunity),
                "changes": change.payload_changes(),
            }
            events.append(
                {
                    "type": event_type,
                    "opportunity_id": change.opportunity.pk,
                    "pipeline_id": change.opportunity.pipeline_id,
                    "actor_id": actor.pk if actor is not None else None,
                    "created_at": at,
                    "payload": payload,
                }
            )
    return Recorded(
        changes=changes,
        history=insert_statements(OpportunityHistory, rows),
        events=insert_statements(OpportunityEvent, events),
    )


def changes_write(recorded: Recorded) -> None:
    """Run a `changes_prepare` batch's statements: the history, then the events (last,
    as `events_append` wants)."""
    execute_all(recorded.history)
    events_append_statements(recorded.events)
