"""Bulk actions from the manager list: one change applied to many deals, in chunks.

The same rules as the one-deal services (permission, visibility, version, lost reason,
stage in the deal's pipeline, custom field types, tag names), written the bulk way:
`bulk_apply_chunk` handles up to CHUNK_SIZE deals in one transaction with a bounded
number of statements whatever the chunk holds. Lock order is the one of every writer:
the stages the chunk touches (by id, FOR NO KEY UPDATE), then the deals (by id, FOR NO
KEY UPDATE), then the event log's append lock (in `changes_record`).

A deal is skipped, and reported with its reason, when the user cannot see it (or it is
gone), when it changed since the preview (its version differs from the one the preview
saw, or it was updated after the preview), or when the change does not fit it (a stage
of another pipeline, a custom field of another pipeline, too many tags). Skipped deals
are never written. Deals the change would leave as they are count as unchanged.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from opportunities.custom_fields import columns_for, parse_value, value_of
from opportunities.filters_fields import tags_condition
from opportunities.models import (
    CustomField,
    CustomFieldType,
    CustomFieldValue,
    LostReason,
    Opportunity,
    Status,
    Tag,
)
from opportunities.selectors import opportunities_visible_to
from opportunities.services.access import ensure_permission
from opportunities.services.changes import CUSTOM_PREFIX, changes_record, snapshot
from opportunities.services.imports import keys_after
from opportunities.services.related import MAX_TAGS, clean_tag_names, tags_resolve
from opportunities.services.writing import check_status, follow_status, lock_stages
from pipelines.models import Stage

CHUNK_SIZE = 500

MOVE, STATUS, OWNER, ADD_TAGS, REMOVE_TAGS, CUSTOM_FIELD, DELETE = (
    "stage",
    "status",
    "owner",
    "add_tags",
    "remove_tags",
    "custom_field",
    "delete",
)
ACTION_CHOICES = [
    (MOVE, "Move to stage"),
    (STATUS, "Change status"),
    (OWNER, "Reassign owner"),
    (ADD_TAGS, "Add tags"),
    (REMOVE_TAGS, "Remove tags"),
    (CUSTOM_FIELD, "Set a custom field"),
    (DELETE, "Delete (to the trash)"),
]

NOT_VISIBLE = "not found, or you cannot see it"
STALE = "changed by someone else since the preview"
OTHER_PIPELINE = "that stage belongs to another pipeline"
FIELD_OTHER_PIPELINE = "that custom field does not apply to its pipeline"


@dataclass
class BulkAction:
    """A checked action: what to change, with the objects it names."""

    kind: str
    stage: Stage | None = None
    status: str = ""
    lost_reason: LostReason | None = None
    owner: object = None
    tag_names: list[str] = field(default_factory=list)
    custom_field: CustomField | None = None
    value: object = None
    # Pipelines the custom field applies to (empty: all).
    field_pipelines: frozenset = frozenset()

    @property
    def permission(self) -> str:
        return "delete_opportunity" if self.kind == DELETE else "change_opportunity"

    def describe(self) -> str:
        if self.kind == MOVE:
            return f"move to “{self.stage.name}”"
        if self.kind == STATUS:
            label = Status(self.status).label
            return f"mark {label}" + (f" ({self.lost_reason.name})" if self.lost_reason else "")
        if self.kind == OWNER:
            return f"assign to {self.owner.get_username()}" if self.owner else "unassign"
        if self.kind == ADD_TAGS:
            return "add tags " + ", ".join(self.tag_names)
        if self.kind == REMOVE_TAGS:
            return "remove tags " + ", ".join(self.tag_names)
        if self.kind == CUSTOM_FIELD:
            shown = "(empty)" if self.value in (None, []) else self.value
            return f"set {self.custom_field.name} to {shown}"
        return "move to the trash"


@dataclass
class BulkResult:
    changed: int = 0
    unchanged: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def add(self, other: "BulkResult") -> "BulkResult":
        self.changed += other.changed
        self.unchanged += other.unchanged
        self.skipped.extend(other.skipped)
        return self


def bulk_action_check(
    *,
    user,
    kind: str,
    stage_id=None,
    status: str = "",
    lost_reason_id=None,
    owner_id=None,
    tags: str | list = "",
    field_key: str = "",
    value="",
) -> BulkAction:
    """The action, checked before any deal is looked at; ValidationError says what is wrong.

    Invariants: the user holds the permission (delete for the trash, change otherwise);
    Lost needs an active lost reason (asked once for all deals); a stage, owner, lost
    reason or custom field that exists (and is active); a value of the field's type.
    """
    if kind not in dict(ACTION_CHOICES):
        raise ValidationError({"action": "Choose an action."})
    action = BulkAction(kind=kind)
    ensure_permission(user, action.permission)
    if kind == MOVE:
        action.stage = Stage.objects.filter(pk=_int(stage_id)).select_related("pipeline").first()
        if action.stage is None:
            raise ValidationError({"stage": "Choose a stage."})
    elif kind == STATUS:
        reason = LostReason.objects.filter(pk=_int(lost_reason_id)).first()
        action.status = status
        action.lost_reason = check_status(status, reason)
    elif kind == OWNER:
        if owner_id not in (None, ""):
            action.owner = (
                get_user_model().objects.filter(pk=_int(owner_id), is_active=True).first()
            )
            if action.owner is None:
                raise ValidationError({"owner": "Choose an active user."})
    elif kind in (ADD_TAGS, REMOVE_TAGS):
        names = tags.split(",") if isinstance(tags, str) else tags
        action.tag_names = clean_tag_names(names)
        if not action.tag_names:
            raise ValidationError({"tags": "Type at least one tag."})
    elif kind == CUSTOM_FIELD:
        custom = CustomField.objects.filter(key=field_key, is_active=True).first()
        if custom is None:
            raise ValidationError({"field": "Choose a custom field."})
        action.custom_field = custom
        action.field_pipelines = frozenset(custom.pipelines.values_list("pk", flat=True))
        try:
            # Empty clears the value, even for a required field's deals: bulk clearing is
            # refused for required fields instead.
            action.value = parse_value(custom, value)
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from None
    return action


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def bulk_would_change(*, action: BulkAction, queryset: QuerySet[Opportunity]) -> int:
    """How many deals of the (visible) selection the action would change: the preview."""
    kind = action.kind
    if kind == MOVE:
        queryset = queryset.filter(pipeline_id=action.stage.pipeline_id).exclude(
            stage_id=action.stage.pk
        )
    elif kind == STATUS:
        if action.status == Status.LOST:
            queryset = queryset.exclude(status=Status.LOST, lost_reason=action.lost_reason)
        else:
            queryset = queryset.exclude(status=action.status)
    elif kind == OWNER:
        queryset = queryset.exclude(assigned_to=action.owner) if action.owner else queryset
        queryset = queryset if action.owner else queryset.filter(assigned_to__isnull=False)
    elif kind in (ADD_TAGS, REMOVE_TAGS):
        lowered = [name.lower() for name in action.tag_names]
        existing = [tag.pk for tag in Tag.objects.all() if tag.name.lower() in lowered]
        if kind == REMOVE_TAGS:
            queryset = queryset.filter(tags_condition(existing)) if existing else queryset.none()
        elif len(existing) == len(lowered):
            queryset = queryset.exclude(tags_condition(existing, "all"))
    elif kind == CUSTOM_FIELD:
        if action.field_pipelines:
            queryset = queryset.filter(pipeline_id__in=action.field_pipelines)
        values = CustomFieldValue.objects.filter(field=action.custom_field)
        if action.value is None:
            queryset = queryset.filter(pk__in=values.values("opportunity_id"))
        else:
            same = values.filter(**_same_value(action.custom_field, action.value))
            queryset = queryset.exclude(pk__in=same.values("opportunity_id"))
    return queryset.count()


def _same_value(custom: CustomField, value) -> dict:
    columns = columns_for(custom, value)
    kind = custom.field_type
    if kind in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
        return {"number": columns["number"]}
    if kind == CustomFieldType.DATE:
        return {"date": columns["date"]}
    if kind == CustomFieldType.CHECKBOX:
        return {"flag": columns["flag"]}
    return {"text": columns["text"]}


def _lock_chunk(user, action: BulkAction, ids: list[int]) -> list[Opportunity]:
    stage_ids = set(Opportunity.objects.filter(pk__in=ids).values_list("stage_id", flat=True))
    if action.stage is not None:
        stage_ids.add(action.stage.pk)
    lock_stages(*stage_ids)
    visible = opportunities_visible_to(user).filter(pk__in=ids)
    # The contact goes into the events' payload: read with the deal, not per deal.
    return list(
        visible.select_related("contact")
        .select_for_update(no_key=True, of=("self",))
        .order_by("pk")
    )


def bulk_apply_chunk(
    *,
    user,
    action: BulkAction,
    ids: list[int],
    versions: dict[int, int] | None = None,
    seen_at: datetime | None = None,
) -> BulkResult:
    """Apply the action to the deals `ids` (at most CHUNK_SIZE) in one transaction.

    `versions` ({id: version} the preview showed) or `seen_at` (the preview's time: a
    deal updated after it is stale) guard against overwriting others' changes.
    """
    ensure_permission(user, action.permission)
    result = BulkResult()
    with transaction.atomic():
        deals = _lock_chunk(user, action, ids)
        found = {deal.pk for deal in deals}
        result.skipped.extend((pk, NOT_VISIBLE) for pk in ids if pk not in found)
        fresh = []
        for deal in deals:
            stale = (versions is not None and versions.get(deal.pk) != deal.version) or (
                seen_at is not None and deal.updated_at > seen_at
            )
            if stale:
                result.skipped.append((deal.pk, STALE))
            else:
                fresh.append(deal)
        now = timezone.now()
        planned = _plan(action, fresh, now, result)
        if planned:
            _write(user, action, planned, now)
        result.changed = len(planned)
    return result


@dataclass
class _Planned:
    deal: Opportunity
    before: dict
    changes: dict
    extra: dict | None = None


def _plan(action: BulkAction, deals: list[Opportunity], now, result: BulkResult) -> list[_Planned]:
    """What each deal gets; records the unchanged and refused ones in `result`."""
    planned = []
    tags_now = _current_tags(deals) if action.kind in (ADD_TAGS, REMOVE_TAGS) else {}
    values_now = _current_values(action, deals) if action.kind == CUSTOM_FIELD else {}
    for deal in deals:
        changes, extra = {}, None
        kind = action.kind
        if kind == MOVE:
            if action.stage.pipeline_id != deal.pipeline_id:
                result.skipped.append((deal.pk, OTHER_PIPELINE))
                continue
            if action.stage.pk != deal.stage_id:
                changes = {"stage": action.stage, "stage_entered_at": now}
        elif kind == STATUS:
            if deal.status != action.status or (
                action.status == Status.LOST and deal.lost_reason_id != action.lost_reason.pk
            ):
                changes = follow_status(deal, action.status, now) | {
                    "status": action.status,
                    "lost_reason": action.lost_reason,
                }
        elif kind == OWNER:
            owner_id = action.owner.pk if action.owner else None
            if deal.assigned_to_id != owner_id:
                changes = {"assigned_to": action.owner}
        elif kind in (ADD_TAGS, REMOVE_TAGS):
            old = tags_now.get(deal.pk, [])
            lowered = {name.lower() for name in old}
            if kind == ADD_TAGS:
                new = old + [name for name in action.tag_names if name.lower() not in lowered]
                if len(new) > MAX_TAGS:
                    result.skipped.append((deal.pk, f"it would have more than {MAX_TAGS} tags"))
                    continue
            else:
                dropped = {name.lower() for name in action.tag_names}
                new = [name for name in old if name.lower() not in dropped]
            if sorted(new) != sorted(old):
                extra = {"tags": (sorted(old), sorted(new))}
        elif kind == CUSTOM_FIELD:
            if action.field_pipelines and deal.pipeline_id not in action.field_pipelines:
                result.skipped.append((deal.pk, FIELD_OTHER_PIPELINE))
                continue
            old = values_now.get(deal.pk)
            if old != action.value:
                extra = {CUSTOM_PREFIX + action.custom_field.key: (old, action.value)}
        elif kind == DELETE:
            changes = {"deleted_at": now, "deleted_by": None}
        if not changes and not extra:
            result.unchanged += 1
            continue
        planned.append(_Planned(deal=deal, before=snapshot(deal), changes=changes, extra=extra))
    return planned


def _current_tags(deals: list[Opportunity]) -> dict[int, list[str]]:
    names = defaultdict(list)
    rows = Opportunity.tags.through.objects.filter(opportunity_id__in=[d.pk for d in deals])
    for opportunity_id, name in rows.values_list("opportunity_id", "tag__name"):
        names[opportunity_id].append(name)
    return names


def _current_values(action: BulkAction, deals: list[Opportunity]) -> dict:
    rows = CustomFieldValue.objects.filter(
        field=action.custom_field, opportunity_id__in=[deal.pk for deal in deals]
    ).select_related("field")
    return {row.opportunity_id: value_of(row) for row in rows}


def _write(user, action: BulkAction, planned: list[_Planned], now) -> None:
    """The chunk's writes: a few bulk statements, then history and events."""
    if action.kind == MOVE:
        last = Opportunity.objects.filter(stage=action.stage).aggregate(last=Max("rank"))["last"]
        # At the bottom of the column, in id order: keys that stay short (see keys_after).
        for item, key in zip(planned, keys_after(last, len(planned)), strict=True):
            item.changes["rank"] = key
    elif action.kind == DELETE:
        actor = user if user.is_authenticated else None
        for item in planned:
            item.changes["deleted_by"] = actor
    elif action.kind in (ADD_TAGS, REMOVE_TAGS):
        _write_tags(action, planned)
    elif action.kind == CUSTOM_FIELD:
        _write_custom_values(action, planned)

    _update_rows(planned, now)
    for item in planned:
        for attr, value in item.changes.items():
            setattr(item.deal, attr, value)
        item.deal.updated_at = now
        item.deal.version += 1
    changes_record(
        user=user, items=[(item.before, item.deal, item.extra) for item in planned], at=now
    )


def _db_key(value):
    return value.pk if isinstance(value, models.Model) else value


def _update_rows(planned: list[_Planned], now) -> None:
    """The deals' rows: one UPDATE per set of changed columns (one or two per chunk) for
    what all share, plus one `CASE id WHEN … END` per column whose value differs per deal
    (days to close, rank). The rows are locked and their versions checked already.

    Not bulk_update(): building its per-row CASE expressions cost ~8 s per 1,000 deals.
    """
    groups = defaultdict(list)
    for item in planned:
        groups[frozenset(item.changes)].append(item)
    for keys, items in groups.items():
        common, varying = {}, []
        for attr in sorted(keys):
            if len({_db_key(item.changes[attr]) for item in items}) == 1:
                common[attr] = items[0].changes[attr]
            else:
                varying.append(attr)
        ids = [item.deal.pk for item in items]
        Opportunity.objects.filter(pk__in=ids).update(
            **common, updated_at=now, version=F("version") + 1
        )
        for attr in varying:
            _update_per_row(attr, {item.deal.pk: item.changes[attr] for item in items})


def _update_per_row(attr: str, values: dict) -> None:
    model_field = Opportunity._meta.get_field(attr)
    quote = connection.ops.quote_name
    table, column = quote(Opportunity._meta.db_table), quote(model_field.column)
    params, whens = [], []
    for pk, value in values.items():
        whens.append("WHEN %s THEN %s")
        params += [pk, model_field.get_db_prep_save(_db_key(value), connection)]
    marks = ", ".join(["%s"] * len(values))
    sql = (
        f"UPDATE {table} SET {column} = CASE {quote('id')} {' '.join(whens)} "
        f"ELSE {column} END WHERE {quote('id')} IN ({marks})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *values])


def _write_tags(action: BulkAction, planned: list[_Planned]) -> None:
    through = Opportunity.tags.through
    if action.kind == ADD_TAGS:
        tags = tags_resolve(action.tag_names)
        through.objects.bulk_create(
            [
                through(opportunity_id=item.deal.pk, tag_id=tag.pk)
                for item in planned
                for tag in tags
            ],
            ignore_conflicts=True,
            batch_size=CHUNK_SIZE,
        )
    else:
        lowered = [name.lower() for name in action.tag_names]
        tag_ids = [tag.pk for tag in Tag.objects.all() if tag.name.lower() in lowered]
        through.objects.filter(
            opportunity_id__in=[item.deal.pk for item in planned], tag_id__in=tag_ids
        ).delete()


def _write_custom_values(action: BulkAction, planned: list[_Planned]) -> None:
    ids = [item.deal.pk for item in planned]
    custom = action.custom_field
    if action.value is None:
        CustomFieldValue.objects.filter(field=custom, opportunity_id__in=ids).delete()
        return
    CustomFieldValue.objects.bulk_create(
        [
            CustomFieldValue(opportunity_id=pk, field=custom, **columns_for(custom, action.value))
            for pk in ids
        ],
        update_conflicts=True,
        unique_fields=["opportunity", "field"],
        update_fields=["text", "number", "date", "flag"],
        batch_size=CHUNK_SIZE,
    )


def bulk_apply(
    *,
    user,
    action: BulkAction,
    ids: list[int] | None = None,
    selection: QuerySet[Opportunity] | None = None,
    versions: dict[int, int] | None = None,
    seen_at: datetime | None = None,
    after_id: int = 0,
    seconds: float | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[BulkResult, int | None]:
    """Apply the action chunk after chunk; returns (result, id to continue after or None).

    Either explicit `ids` (rows ticked in the list; ids the user cannot see are reported)
    or a `selection` (every visible deal matching the filters, created before `seen_at`),
    walked in id order from `after_id`. With `seconds`, stops after about that long so a
    web request can report progress; call again with the returned id to go on.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    result = BulkResult()
    cursor = after_id
    while True:
        if ids is not None:
            chunk = sorted(pk for pk in set(ids) if pk > cursor)[:chunk_size]
        else:
            chunk = list(
                selection.filter(Q(pk__gt=cursor), created_at__lte=seen_at)
                .order_by("pk")
                .values_list("pk", flat=True)[:chunk_size]
            )
        if not chunk:
            return result, None
        result.add(
            bulk_apply_chunk(
                user=user, action=action, ids=chunk, versions=versions, seen_at=seen_at
            )
        )
        cursor = chunk[-1]
        if len(chunk) < chunk_size:
            return result, None  # that was the last one
        if deadline is not None and time.monotonic() >= deadline:
            return result, cursor
