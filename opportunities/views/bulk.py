"""Bulk actions from the manager list: preview, then apply in steps with progress.

The list's bulk form posts the action, the ticked rows ("id:version" each) or "all
matching", and the list's filters. The preview counts what would change and signs what it
saw (the versions of ticked rows, or its time for "all matching") into the confirm form,
so the apply skips whatever changed in between. Applying runs ~2 s of chunks per request;
htmx posts the next step by itself, without JavaScript a "Continue" button does.
"""

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from opportunities.filters_manager import ManagerOpportunityFilter
from opportunities.selectors import opportunities_visible_to
from opportunities.services.bulk import BulkResult, bulk_action_check, bulk_apply, bulk_would_change

PAGE = "opportunities/bulk.html"
SALT = "opportunities.bulk"
TOKEN_MAX_AGE = 60 * 60
STEP_SECONDS = 2.0
MAX_REPORTED = 200


def _action_params(data) -> dict:
    return {
        "kind": data.get("action", ""),
        "stage_id": data.get("stage") or None,
        "status": data.get("status", ""),
        "lost_reason_id": data.get("lost_reason") or None,
        "owner_id": data.get("owner") or None,
        "tags": data.get("tags", ""),
        "field_key": data.get("field", ""),
        "value": data.get("value", ""),
    }


def _ticked(values) -> dict[int, int]:
    """{id: version} from the ticked rows' "id:version" values; junk is dropped."""
    versions = {}
    for value in values:
        pk, _, version = str(value).partition(":")
        if pk.isdigit() and version.isdigit():
            versions[int(pk)] = int(version)
    return versions


def _selection(user, filters: str):
    data = QueryDict(filters)
    return ManagerOpportunityFilter(data, queryset=opportunities_visible_to(user)).qs.order_by()


def _back_url(filters: str) -> str:
    return "/opportunities/" + (f"?{filters}" if filters else "")


@login_required
@require_POST
def bulk_preview(request):
    """How many deals the action would change; the confirm form carries what was seen."""
    filters = request.POST.get("filters", "").lstrip("?")
    params = _action_params(request.POST)
    scope = request.POST.get("scope", "selected")
    versions = _ticked(request.POST.getlist("ids"))
    context = {"nav": "list", "back": _back_url(filters)}
    try:
        action = bulk_action_check(user=request.user, **params)
    except ValidationError as exc:
        messages = [m for field_messages in exc.message_dict.values() for m in field_messages]
        return render(request, PAGE, context | {"errors": messages}, status=400)
    except PermissionDenied as exc:
        return render(request, PAGE, context | {"errors": [str(exc)]}, status=403)
    if scope == "all":
        queryset = _selection(request.user, filters)
        payload = {"scope": "all", "seen_at": timezone.now().isoformat()}
    else:
        if not versions:
            context["errors"] = ["Tick the opportunities to change, or choose “all matching”."]
            return render(request, PAGE, context, status=400)
        queryset = opportunities_visible_to(request.user).filter(pk__in=list(versions))
        payload = {"scope": "selected", "versions": {str(k): v for k, v in versions.items()}}
    selected = len(versions) if scope != "all" else queryset.count()
    payload |= {"action": params, "filters": filters, "total": selected}
    context |= {
        "action": action,
        "selected": selected,
        "would_change": bulk_would_change(action=action, queryset=queryset),
        "token": signing.dumps(payload, salt=SALT, compress=True),
    }
    return render(request, PAGE, context)


@login_required
@require_POST
def bulk_run(request):
    """Apply a previewed action for about STEP_SECONDS; answer the progress or the result."""
    try:
        payload = signing.loads(request.POST.get("token", ""), salt=SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        context = {"nav": "list", "back": "/opportunities/"}
        context["errors"] = ["The preview expired or could not be read; preview again."]
        return render(request, PAGE, context, status=400)
    progress = _progress(request.POST.get("progress", ""))
    context = {"nav": "list", "back": _back_url(payload["filters"]), "token": request.POST["token"]}
    try:
        action = bulk_action_check(user=request.user, **payload["action"])
    except (ValidationError, PermissionDenied) as exc:
        context["errors"] = getattr(exc, "messages", [str(exc)])
        return render(request, PAGE, context, status=400)
    if payload["scope"] == "all":
        step, after = bulk_apply(
            user=request.user,
            action=action,
            selection=_selection(request.user, payload["filters"]),
            seen_at=datetime.fromisoformat(payload["seen_at"]),
            after_id=progress["after"],
            seconds=STEP_SECONDS,
        )
    else:
        versions = {int(k): v for k, v in payload["versions"].items()}
        step, after = bulk_apply(
            user=request.user,
            action=action,
            ids=list(versions),
            versions=versions,
            after_id=progress["after"],
            seconds=STEP_SECONDS,
        )
    progress["changed"] += step.changed
    progress["unchanged"] += step.unchanged
    progress["skipped_count"] += len(step.skipped)
    room = MAX_REPORTED - len(progress["skipped"])
    progress["skipped"] += [[pk, reason] for pk, reason in step.skipped[: max(room, 0)]]
    progress["after"] = after or 0
    done = after is None
    handled = progress["changed"] + progress["unchanged"] + progress["skipped_count"]
    context |= {
        "action": action,
        "running": True,
        "done": done,
        "total": max(payload["total"], handled),
        "handled": handled,
        "result": BulkResult(changed=progress["changed"], unchanged=progress["unchanged"]),
        "progress": progress,
        "skipped": progress["skipped"],
        "progress_token": signing.dumps(progress, salt=SALT, compress=True),
    }
    if request.htmx:
        return render(request, PAGE + "#progress", context)
    return render(request, PAGE, context)


def _progress(token: str) -> dict:
    empty = {"after": 0, "changed": 0, "unchanged": 0, "skipped_count": 0, "skipped": []}
    if not token:
        return empty
    try:
        return signing.loads(token, salt=SALT, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:
        return empty
