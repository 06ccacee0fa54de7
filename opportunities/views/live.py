"""The board's live-update poll: the changes since the board's last event, as deltas.

The board carries the id of the last event it reflects (`data-event-cursor`) and asks
every few seconds with `If-None-Match: "e<id>"` and its filters in the query string:
- nothing happened anywhere since: 304, two queries (user, newest event id);
- only other pipelines changed, or only cards this user neither sees nor saw (another
  rep's): 204 with the new cursor;
- a few cards of this pipeline changed: 200 with just those cards (each in a <template>
  saying which card it now follows; an empty one with data-remove for a card that left
  this rep's board) and the headers of the columns they left or entered; board_live.js
  puts them in place and adds the toolbar totals up again from every column's header
  (so only the affected columns' totals are read);
- more than DELTA_LIMIT events, the stages changed, or an unknown cursor: the whole board
  fragment, marked `X-Board-Full`.
The answer always carries the new cursor in `X-Event-Cursor` and as the ETag. Everything
comes from the database, so it works the same on any number of gunicorn workers. The
changed cards and the totals are read by statements compiled once per process
(selectors_live.changed_cards, column_totals): through the ORM, building them cost
several times running them.
"""

from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.http import require_GET

from opportunities.models import MAX_ID
from opportunities.selectors_live import (
    changed_cards,
    changes_concern,
    changes_since,
    events_cursor,
    pipeline_stages,
    placed_cards,
    stages_key,
)
from opportunities.views import board as board_views
from opportunities.views.board_cache import with_cached_permissions
from pipelines.models import Pipeline, Stage


def _cursor_from(request) -> int | None:
    for etag in parse_etags(request.headers.get("If-None-Match", "")):
        value = etag.removeprefix("W/").strip('"')
        if value.startswith("e") and value[1:].isdigit():
            return int(value[1:])
    return None


@with_cached_permissions
@require_GET
def board_version(request, pipeline_id: int):
    cursor = _cursor_from(request)
    newest = events_cursor()
    if cursor == newest:
        response = HttpResponseNotModified()
    elif cursor is None:
        # Where to start from (the board page carries it too).
        response = HttpResponse(str(newest), content_type="text/plain; charset=utf-8")
    else:
        response = _changes(request, pipeline_id, cursor, newest)
    response["ETag"] = quote_etag(f"e{newest}")
    response["X-Event-Cursor"] = str(newest)
    # Always revalidate; never let a shared cache answer for another user.
    patch_cache_control(response, private=True, no_cache=True)
    return response


def _pipeline_and_stages(pipeline_id: int) -> tuple[Pipeline, list[Stage]]:
    """The pipeline with its columns, in one query (two for a pipeline without stages)."""
    if pipeline_id > MAX_ID:
        raise Http404("No such pipeline.")
    stages = pipeline_stages(pipeline_id)
    if stages:
        return stages[0].pipeline, stages
    return get_object_or_404(Pipeline, pk=pipeline_id), []


def _changes(request, pipeline_id: int, cursor: int, newest: int) -> HttpResponse:
    pipeline, stages = _pipeline_and_stages(pipeline_id)
    changes = None if cursor > newest else changes_since(pipeline_id, cursor, newest)
    if changes is None or request.GET.get("stages") != stages_key(stages):
        response = board_views.board_fragment(request, pipeline)
        response["X-Board-Full"] = "1"
        return response
    if not changes.ids or not changes_concern(request.user, changes):
        # Nothing on this board moved (another rep's cards): just the new cursor.
        return HttpResponse(status=204)
    affected = [stage for stage in stages if stage.pk in changes.stage_ids]
    placed, columns = _changed_cards_and_columns(request, pipeline, stages, changes.ids, affected)
    shown = {item.card.pk for item in placed}
    context = {
        "oob": True,
        "placed": placed,
        "removed": [pk for pk in changes.ids if pk not in shown],
        "columns": columns,
        # What a card needs from views.board's context (the filters are not shown here).
        "can_change": request.user.has_perm(board_views.CHANGE_PERMISSION),
        "opportunity_prefix": board_views.opportunity_prefix(),
    }
    return board_views.render(request, board_views.BOARD + "#live_changes", context)


def _changed_cards_and_columns(request, pipeline, stages, ids, affected):
    """The changed cards as the rep's board shows them, and the affected columns' totals:
    from the compiled statements when they serve these filters, else through the
    filterset (the same reads, built for this request)."""
    filters = board_views.filter_data(request)
    placed = changed_cards(request.user, pipeline.pk, filters, ids, stages)
    filterset = None
    if placed is None:
        filterset = board_views.filtered(request, pipeline)
        placed = placed_cards(filterset.qs, ids)
    return placed, board_views.board_headers(request, pipeline, affected, filterset)
