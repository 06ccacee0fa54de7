"""/api/v1/opportunities: HighLevel's paths, parsed here, decided by the services."""

import json
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    CharField,
    DateField,
    DecimalField,
    F,
    IntegerField,
    Prefetch,
    Q,
    Value,
)
from django.db.models.functions import Cast
from django.http import HttpResponse
from django.utils import timezone
from ninja import Path, Query, Router
from ninja import Status as Answer

from opportunities.api import parsing
from opportunities.api.schemas import (
    ERRORS,
    ID_PATTERN,
    WRITE_ERRORS,
    DeletedOut,
    FollowersIn,
    FollowersOut,
    LostReasonsOut,
    OpportunityDetailOut,
    OpportunityEnvelope,
    OpportunityIn,
    OpportunityUpdateIn,
    PipelinesOut,
    SearchOut,
    StatusIn,
    UpsertOut,
)
from opportunities.api.search_cache import SearchCache
from opportunities.models import (
    Contact,
    CustomFieldValue,
    LostReason,
    Opportunity,
    Status,
)
from opportunities.selectors import (
    can_view_all,
    contacts_visible_to,
    opportunities_visible_to,
)
from opportunities.serializers import (
    API_COLUMNS,
    CUSTOM_VALUE_COLUMNS,
    opportunity_as_api,
    opportunity_values_as_api,
)
from opportunities.services.editing import opportunity_create_with_contact
from opportunities.services.moves import opportunity_set_status
from opportunities.services.opportunities import opportunity_delete, opportunity_update
from opportunities.services.related import (
    opportunity_set_custom_values,
    opportunity_set_followers,
    opportunity_set_tags,
)
from pipelines.models import Pipeline, Stage

router = Router(tags=["Opportunities"])
JSON = "application/json; charset=utf-8"

ORDERS = {"added_desc": ("-created_at", "-id"), "added_asc": ("created_at", "id")}


def _visible(user):
    return opportunities_visible_to(user).select_related("contact")


def _with_related(queryset):
    """Tags, followers and custom values for the answer: three queries for any page."""
    return queryset.prefetch_related(
        "tags",
        "followers",
        Prefetch("custom_values", queryset=CustomFieldValue.objects.select_related("field")),
    )


def _related_of(ids: list[int]) -> dict[int, tuple[list, list, list]]:
    """{deal id: (tag names, follower ids, custom value tuples)} for a page, in one query
    (the search's budget is 4 with the cache's state read): custom values with their
    field's key, position and type, then tags and followers as rows of the same shape.

    Custom values come first so their columns' types (and converters) name the union's.
    """
    related = {pk: ([], [], []) for pk in ids}
    if not ids:
        return related
    columns = ("opportunity_id", "kind", *CUSTOM_VALUE_COLUMNS)
    values = (
        CustomFieldValue.objects.filter(opportunity_id__in=ids)
        .annotate(kind=Value("value"))
        .values_list(*columns)
    )
    blanks = {
        "field_id": Value(None, output_field=IntegerField()),
        "field__key": Value(None, output_field=CharField()),
        "field__position": Value(None, output_field=IntegerField()),
        "field__field_type": Value(None, output_field=CharField()),
        "number": Value(None, output_field=DecimalField()),
        "date": Value(None, output_field=DateField()),
        "flag": Value(None, output_field=BooleanField()),
    }
    # Blank columns named like the custom value's (aliases must not clash with fields).
    named = {f"b_{key}": value for key, value in blanks.items()}
    shape = ("opportunity_id", "kind", "b_field_id", "b_field__key", "b_field__position")
    shape += ("b_field__field_type", "text", "b_number", "b_date", "b_flag")
    tags = (
        Opportunity.tags.through.objects.filter(opportunity_id__in=ids)
        .annotate(kind=Value("tag"), text=F("tag__name"), **named)
        .values_list(*shape)
    )
    followers = (
        Opportunity.followers.through.objects.filter(opportunity_id__in=ids)
        .annotate(kind=Value("follower"), text=Cast("user_id", CharField()), **named)
        .values_list(*shape)
    )
    for opportunity_id, kind, *value in values.union(tags, followers, all=True):
        if kind == "value":
            related[opportunity_id][2].append(value)
        else:
            related[opportunity_id][0 if kind == "tag" else 1].append(value[4])
    return related


def _get_visible(user, opportunity_id: str, *, related: bool = False) -> Opportunity:
    pk = parsing.as_pk(opportunity_id, "id")
    queryset = _with_related(_visible(user)) if related else _visible(user)
    return queryset.get(pk=pk)  # DoesNotExist -> 404


def _reload(user, opportunity: Opportunity) -> dict:
    return opportunity_as_api(_with_related(_visible(user)).get(pk=opportunity.pk))


def _close_date(value):
    if value in (None, ""):
        return None
    return parsing.parse_day(value, "expectedCloseDate")


def _set_related(user, opportunity: Opportunity, payload, version: int | None) -> Opportunity:
    """Tags, followers and custom fields of the body, each through its service, after the
    deal's own change and in its transaction; each write moves the version on."""
    given = payload.model_fields_set
    steps = []
    if "tags" in given and payload.tags is not None:
        steps.append((opportunity_set_tags, {"names": payload.tags}))
    if "followers" in given and payload.followers is not None:
        followers = parsing.users_by_ids(payload.followers, "followers")
        steps.append((opportunity_set_followers, {"followers": followers}))
    if "customFields" in given and payload.customFields is not None:
        values = parsing.custom_values(payload.customFields)
        steps.append((opportunity_set_custom_values, {"values": values}))
    for service, arguments in steps:
        before = opportunity.version
        opportunity = service(opportunity=opportunity, user=user, version=version, **arguments)
        if opportunity.version != before:  # written: the next step starts from there
            version = opportunity.version
    return opportunity


def _contact(user, contact_id) -> Contact | None:
    if contact_id in (None, ""):
        return None
    contact = parsing.get_referenced(Contact.objects.all(), contact_id, "contactId", "contact")
    if not contacts_visible_to(user).filter(pk=contact.pk).exists():
        raise parsing.ValidationError({"contactId": ["No such contact."]})
    return contact


def _lost_reason(value) -> LostReason | None:
    if value in (None, ""):
        return None
    return parsing.get_referenced(LostReason.objects.all(), value, "lostReasonId", "lost reason")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@router.get("/search", response={200: SearchOut, **ERRORS}, summary="Search opportunities")
def search(
    request,
    q: str | None = Query(None, max_length=200),
    pipeline_id: str | None = Query(None, pattern=ID_PATTERN),
    pipeline_stage_id: str | None = Query(None, pattern=ID_PATTERN),
    contact_id: str | None = Query(None, pattern=ID_PATTERN),
    status: str = Query("all", pattern="^(open|won|lost|abandoned|all)$"),
    assigned_to: str | None = Query(None, pattern=ID_PATTERN),
    date: str | None = Query(None, max_length=20, description="created from (mm-dd-yyyy)"),
    endDate: str | None = Query(None, max_length=20, description="created until (mm-dd-yyyy)"),
    order: str = Query("added_desc", pattern="^(added_desc|added_asc)$"),
    limit: int = Query(20, ge=1, le=100),
    startAfter: int | None = Query(None, ge=0, le=10**14, description="ms of the last item"),
    startAfterId: str | None = Query(None, pattern=ID_PATTERN),
):
    """Opportunities visible to the token's user, newest first, keyset-paged.

    The same search with nothing changed is answered from the cache (search_cache).
    """
    cache = SearchCache(request)
    if (body := cache.answer()) is not None:
        return HttpResponse(body, content_type=JSON)
    queryset = _visible(request.user)
    if q:
        queryset = queryset.filter(
            Q(name__icontains=q)
            | Q(contact__name__icontains=q)
            | Q(contact__email__icontains=q)
            | Q(contact__company__icontains=q)
        )
    if pipeline_id:
        queryset = queryset.filter(pipeline_id=parsing.as_pk(pipeline_id, "pipeline_id"))
    if pipeline_stage_id:
        queryset = queryset.filter(stage_id=parsing.as_pk(pipeline_stage_id, "pipeline_stage_id"))
    if contact_id:
        queryset = queryset.filter(contact_id=parsing.as_pk(contact_id, "contact_id"))
    if status != "all":
        queryset = queryset.filter(status=status)
    if assigned_to:
        queryset = queryset.filter(assigned_to_id=parsing.as_pk(assigned_to, "assigned_to"))
    tz = timezone.get_current_timezone()
    if start := parsing.parse_day(date, "date"):
        queryset = queryset.filter(created_at__gte=datetime.combine(start, time.min, tz))
    if end := parsing.parse_day(endDate, "endDate"):
        until = datetime.combine(end, time.min, tz) + timedelta(days=1)
        queryset = queryset.filter(created_at__lt=until)
    matching = queryset  # what `total` counts: every page of this search

    newest_first = order == "added_desc"
    after_key = None
    if startAfterId:
        after_pk = parsing.as_pk(startAfterId, "startAfterId")
        # The row's own created_at, to the microsecond: startAfter is in milliseconds, and
        # deals created within one millisecond would be skipped or repeated with it.
        created = queryset.filter(pk=after_pk).values_list("created_at", flat=True).first()
        if created is None and startAfter is not None:
            created = parsing.ms_to_datetime(startAfter, "startAfter")
        after_key = (created, after_pk) if created else None
    elif startAfter is not None:
        moment = parsing.ms_to_datetime(startAfter, "startAfter")
        queryset = queryset.filter(
            created_at__lt=moment if newest_first else moment + timedelta(milliseconds=1)
        )
        if not newest_first:
            queryset = queryset.filter(created_at__gte=moment + timedelta(milliseconds=1))
    if after_key is not None:
        created, pk = after_key
        if newest_first:
            queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=pk))
        else:
            queryset = queryset.filter(Q(created_at__gt=created) | Q(created_at=created, pk__gt=pk))

    rows = list(queryset.order_by(*ORDERS[order]).values(*API_COLUMNS)[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    first_page = startAfterId is None and startAfter is None
    # Counting is most of the search's SQL at 100,000 deals; a first page that holds
    # every match already knows the total, later pages take it from the first's.
    if first_page and not has_more:
        total = len(rows)
    elif (total := cache.total()) is None:
        only_indexed = not (q or contact_id or assigned_to or date or endDate)
        total = _count(request.user, matching, pipeline_id, pipeline_stage_id, only_indexed)
    cache.keep_total(total)
    related = _related_of([row["id"] for row in rows])
    last = rows[-1] if rows else None
    next_url = None
    if has_more and last is not None:
        # In a fixed order: requests naming the same parameters share one cached answer.
        params = dict(sorted(request.GET.lists()))
        params["startAfterId"] = [str(last["id"])]
        params["startAfter"] = [str(_ms(last["created_at"]))]
        next_url = request.build_absolute_uri(f"{request.path}?{urlencode(params, doseq=True)}")
    answer = {
        "opportunities": [opportunity_values_as_api(row, *related[row["id"]]) for row in rows],
        "meta": {
            "total": total,
            "startAfterId": str(last["id"]) if last else None,
            "startAfter": _ms(last["created_at"]) if last else None,
            "nextPageUrl": next_url,
        },
    }
    # Built to SearchOut's shape (tests check it against the schema): answered as is,
    # without ninja validating 100 opportunities again.
    body = json.dumps(answer).encode()
    cache.keep_answer(body)
    return HttpResponse(body, content_type=JSON)


def _count(user, matching, pipeline_id, stage_id, only_indexed: bool) -> int:
    """The search's total.

    On SQLite (3.40 counts nothing from an index whose condition is deleted_at IS NULL)
    the count of live deals reads opp_list_stages (deleted_at, stage_id, pipeline_id,
    status, ...) alone; naming the pipeline's stages turns its scan of every live deal
    into one range per stage of the pipeline. Only when the index answers the whole
    filter: text, contact, owner, dates or a rep's visibility need the table anyway, and
    the planner is better left to its indexes for those.
    """
    if (
        connection.vendor == "sqlite"
        and pipeline_id
        and not stage_id
        and only_indexed
        and can_view_all(user)
    ):
        stages = Stage.objects.filter(pipeline_id=parsing.as_pk(pipeline_id, "pipeline_id"))
        matching = matching.filter(stage_id__in=stages.values("pk"))
    return matching.count()


@router.get("/pipelines", response={200: PipelinesOut, **ERRORS}, summary="Get pipelines")
def pipelines(request):
    """Pipelines that are not archived, each with its stages in board order."""
    stages_by_pipeline: dict[int, list] = {}
    for stage in Stage.objects.filter(pipeline__is_archived=False).order_by("position", "id"):
        stages_by_pipeline.setdefault(stage.pipeline_id, []).append(
            {"id": str(stage.pk), "name": stage.name, "position": stage.position}
        )
    return {
        "pipelines": [
            {
                "id": str(pipeline.pk),
                "name": pipeline.name,
                "stages": stages_by_pipeline.get(pipeline.pk, []),
            }
            for pipeline in Pipeline.objects.filter(is_archived=False)
        ]
    }


@router.get("/lost-reason", response={200: LostReasonsOut, **ERRORS}, summary="Lost reasons")
def lost_reasons(request):
    return {
        "lostReasons": [
            {"id": str(reason.pk), "name": reason.name}
            for reason in LostReason.objects.filter(is_active=True)
        ]
    }


def _create(user, payload: OpportunityIn) -> Opportunity:
    pipeline = parsing.get_referenced(
        Pipeline.objects.all(), payload.pipelineId, "pipelineId", "pipeline"
    )
    stage = None
    if payload.pipelineStageId:
        stage = parsing.get_referenced(
            Stage.objects.all(), payload.pipelineStageId, "pipelineStageId", "stage"
        )
    contact_details = None
    if payload.contact is not None and not payload.contactId:
        contact_details = {
            "name": payload.contact.name,
            "email": payload.contact.email,
            "phone": payload.contact.phone,
            "company": payload.contact.companyName,
        }
    return opportunity_create_with_contact(
        user=user,
        pipeline=pipeline,
        stage=stage,
        name=payload.name,
        value=str(payload.monetaryValue),
        source=payload.source,
        assigned_to=parsing.user_by_id(payload.assignedTo) if payload.assignedTo else None,
        status=payload.status,
        lost_reason=_lost_reason(payload.lostReasonId),
        contact=_contact(user, payload.contactId),
        contact_details=contact_details,
        expected_close_date=_close_date(payload.expectedCloseDate),
        probability=payload.probability,
    )


@transaction.atomic
def _create_with_related(user, payload: OpportunityIn) -> Opportunity:
    opportunity = _create(user, payload)
    return _set_related(user, opportunity, payload, None)


@router.post(
    "/", response={201: OpportunityEnvelope, **WRITE_ERRORS}, summary="Create an opportunity"
)
def create(request, payload: OpportunityIn):
    opportunity = _create_with_related(request.user, payload)
    return Answer(201, {"opportunity": _reload(request.user, opportunity)})


@router.post("/upsert", response={200: UpsertOut, **WRITE_ERRORS}, summary="Upsert")
def upsert(request, payload: OpportunityIn):
    """As HighLevel: the newest visible opportunity of this contact in this pipeline is
    updated; without one (or without a contact) a new opportunity is created."""
    existing = None
    if payload.contactId:
        existing = (
            _visible(request.user)
            .filter(
                contact_id=parsing.as_pk(payload.contactId, "contactId"),
                pipeline_id=parsing.as_pk(payload.pipelineId, "pipelineId"),
            )
            .order_by("-created_at", "-id")
            .first()
        )
    if existing is None:
        opportunity = _create_with_related(request.user, payload)
        return {"opportunity": _reload(request.user, opportunity), "new": True}
    changes = OpportunityUpdateIn(
        **{
            key: value
            for key, value in payload.model_dump(exclude_unset=True).items()
            if key in OpportunityUpdateIn.model_fields and key != "contactId"
        }
    )
    opportunity = _update_with_related(request.user, changes, existing, None)
    return {"opportunity": _reload(request.user, opportunity), "new": False}


@transaction.atomic
def _update_with_related(user, payload, opportunity: Opportunity, version) -> Opportunity:
    fields = _update_fields(user, payload, opportunity)
    before = opportunity.version
    opportunity = opportunity_update(opportunity=opportunity, user=user, version=version, **fields)
    if opportunity.version != before:
        version = opportunity.version
    return _set_related(user, opportunity, payload, version)


def _update_fields(user, payload, opportunity: Opportunity) -> dict:
    given = payload.model_dump(exclude_unset=True)
    fields: dict = {}
    if given.get("name") is not None:
        fields["name"] = payload.name
    if given.get("source") is not None:
        fields["source"] = payload.source
    if given.get("monetaryValue") is not None:
        fields["value"] = str(payload.monetaryValue)
    if given.get("pipelineId") is not None:
        fields["pipeline"] = parsing.get_referenced(
            Pipeline.objects.all(), payload.pipelineId, "pipelineId", "pipeline"
        )
    if given.get("pipelineStageId") is not None:
        fields["stage"] = parsing.get_referenced(
            Stage.objects.all(), payload.pipelineStageId, "pipelineStageId", "stage"
        )
    if "assignedTo" in given:
        fields["assigned_to"] = (
            parsing.user_by_id(payload.assignedTo) if payload.assignedTo else None
        )
    if "contactId" in given:
        fields["contact"] = _contact(user, payload.contactId)
    if given.get("status") is not None:
        fields["status"] = payload.status
        if payload.status != Status.LOST:
            fields["lost_reason"] = None
    if given.get("lostReasonId") is not None:
        fields["lost_reason"] = _lost_reason(payload.lostReasonId)
    if "expectedCloseDate" in given:
        fields["expected_close_date"] = _close_date(payload.expectedCloseDate)
    if "probability" in given:
        fields["probability"] = payload.probability
    return fields


@router.put(
    "/{id}", response={200: OpportunityEnvelope, **WRITE_ERRORS}, summary="Update an opportunity"
)
def update(request, payload: OpportunityUpdateIn, id: str = Path(..., pattern=ID_PATTERN)):
    """Change any subset of the fields. Send `version` (or If-Match) to get 409 when stale."""
    opportunity = _get_visible(request.user, id)
    version = parsing.version_from(request, payload.version)
    opportunity = _update_with_related(request.user, payload, opportunity, version)
    return {"opportunity": _reload(request.user, opportunity)}


def _id(value) -> str | None:
    return None if value is None else str(value)


def _when(value) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/{id}", response={200: OpportunityDetailOut, **ERRORS}, summary="Get an opportunity")
def detail(request, id: str = Path(..., pattern=ID_PATTERN)):
    """HighLevel's `{"opportunity": …}`, plus our `notes`, `tasks` and `history`."""
    opportunity = _get_visible(request.user, id, related=True)
    return {
        "opportunity": opportunity_as_api(opportunity),
        "notes": [
            {
                "id": str(note.pk),
                "body": note.body,
                "authorId": _id(note.author_id),
                "createdAt": note.created_at.isoformat(),
            }
            for note in opportunity.notes.all()[:100]
        ],
        "tasks": [
            {
                "id": str(task.pk),
                "title": task.title,
                "dueOn": _when(task.due_on),
                "assignedTo": _id(task.assigned_to_id),
                "doneAt": _when(task.done_at),
            }
            for task in opportunity.tasks.all()[:100]
        ],
        "history": [
            {
                "field": row.field,
                "fromStageId": _id(row.from_stage_id),
                "toStageId": _id(row.to_stage_id),
                "fromStatus": row.from_status,
                "toStatus": row.to_status,
                "oldValue": row.old_value,
                "newValue": row.new_value,
                "userId": _id(row.user_id),
                "at": row.at.isoformat(),
            }
            for row in opportunity.history.order_by("-at", "-id")[:100]
        ],
    }


@router.delete("/{id}", response={200: DeletedOut, **WRITE_ERRORS}, summary="Delete")
def delete(request, id: str = Path(..., pattern=ID_PATTERN)):
    opportunity = _get_visible(request.user, id)
    opportunity_delete(
        opportunity=opportunity, user=request.user, version=parsing.version_from(request, None)
    )
    return {"succeded": True}


@router.put(
    "/{id}/status", response={200: OpportunityEnvelope, **WRITE_ERRORS}, summary="Update status"
)
def set_status(request, payload: StatusIn, id: str = Path(..., pattern=ID_PATTERN)):
    opportunity = _get_visible(request.user, id)
    version = parsing.version_from(request, payload.version)
    opportunity = opportunity_set_status(
        opportunity=opportunity,
        status=payload.status,
        version=opportunity.version if version is None else version,
        user=request.user,
        lost_reason=_lost_reason(payload.lostReasonId),
    )
    return {"opportunity": _reload(request.user, opportunity)}


def _change_followers(request, id: str, payload: FollowersIn, *, add: bool) -> dict:
    opportunity = _get_visible(request.user, id)
    version = parsing.version_from(request, payload.version)
    given = parsing.users_by_ids(payload.followers, "followers")
    current = list(opportunity.followers.all())
    current_ids = {user.pk for user in current}
    if add:
        changed = [user for user in given if user.pk not in current_ids]
        followers = current + changed
    else:
        given_ids = {user.pk for user in given}
        changed = [user for user in current if user.pk in given_ids]
        followers = [user for user in current if user.pk not in given_ids]
    opportunity = opportunity_set_followers(
        opportunity=opportunity, user=request.user, followers=followers, version=version
    )
    answer = {
        "id": str(opportunity.pk),
        "followers": sorted(str(user.pk) for user in followers),
        "version": opportunity.version,
    }
    answer["followersAdded" if add else "followersRemoved"] = sorted(
        str(user.pk) for user in changed
    )
    return answer


@router.post(
    "/{id}/followers", response={200: FollowersOut, **WRITE_ERRORS}, summary="Add followers"
)
def add_followers(request, payload: FollowersIn, id: str = Path(..., pattern=ID_PATTERN)):
    """HighLevel's shape: `{"followers": [user ids]}` are added (at most 10 in all)."""
    return _change_followers(request, id, payload, add=True)


@router.delete(
    "/{id}/followers", response={200: FollowersOut, **WRITE_ERRORS}, summary="Remove followers"
)
def remove_followers(request, payload: FollowersIn, id: str = Path(..., pattern=ID_PATTERN)):
    """HighLevel's shape: `{"followers": [user ids]}` stop following the deal."""
    return _change_followers(request, id, payload, add=False)
