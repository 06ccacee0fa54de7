"""The kanban board: the page, its fragments, and the move / status endpoints."""

import functools
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.views.decorators.http import require_GET, require_POST

from opportunities.errors import StaleVersion
from opportunities.filters import OpportunityFilter
from opportunities.forms import StatusForm, first_error
from opportunities.forms_fields import PipelineMoveForm
from opportunities.models import LostReason, Opportunity, Status
from opportunities.selectors import (
    BOARD_SORTS,
    Column,
    board_columns,
    board_sort,
    column_page,
    header_columns,
    opportunities_visible_to,
    pipelines_for_board,
    source_choices,
    stages_of,
    with_card_fields,
)
from opportunities.selectors_live import (
    column_totals,
    events_cursor,
    stages_key,
)
from opportunities.services.moves import opportunity_drop, opportunity_set_status
from opportunities.services.opportunities import opportunity_update
from opportunities.views.board_cache import cached_board_page, with_cached_permissions
from opportunities.views.board_drop import drop_cleaned
from opportunities.views.htmx import (
    NOT_VISIBLE,
    error_response,
    json_attr,
    safe_next,
    visible_opportunity_or_404,
    with_toast,
)
from pipelines.models import Pipeline

BOARD = "opportunities/board.html"
CHANGE_PERMISSION = "opportunities.change_opportunity"
STALE_MENU = "This card was changed by someone else. Close and reopen its menu to try again."


# "after_rank" is the manual order's key in "Load more" links written before `after_key`.
PAGING_KEYS = ("after_key", "after_rank", "after_id")
# Also in a poll's query string, beside the filters: the board's stages key.
NOT_FILTERS = (*PAGING_KEYS, "stages")


def opportunity_prefix() -> str:
    """ "/opportunities/": what precedes an opportunity's id in its URLs."""
    return _opportunity_prefix(get_script_prefix())


@functools.lru_cache(maxsize=8)
def _opportunity_prefix(script_prefix: str) -> str:
    # Reversed once per process (and script prefix): every board page and poll asks.
    return reverse("opportunities:detail", args=[0]).removesuffix("0/")


def _filter_data(request) -> QueryDict:
    """Board filters: from the query string on GET, from the `filters` field on POST.

    A "Load more" URL also carries where the column ended; that is not a filter, and
    keeping it would make every further page's URL longer.
    """
    if request.method == "POST":
        return QueryDict(request.POST.get("filters", ""))
    if not any(key in request.GET for key in NOT_FILTERS):
        return request.GET
    data = request.GET.copy()
    for key in NOT_FILTERS:
        data.pop(key, None)
    return data


def _filtered(request, pipeline: Pipeline) -> OpportunityFilter:
    visible = opportunities_visible_to(request.user).filter(pipeline=pipeline)
    return OpportunityFilter(_filter_data(request), queryset=visible)


def _board_context(request, pipeline: Pipeline, filterset: OpportunityFilter, stages) -> dict:
    query = filterset.data.urlencode()
    board_url = reverse("opportunities:board", args=[pipeline.pk])
    return {
        "pipeline": pipeline,
        # The cards' order travels with the filters (in `filter_query`), not as one.
        "sort": board_sort(filterset.data.get("sort")),
        "sorts": BOARD_SORTS.values(),
        "stages": stages,
        "filter": filterset,
        "filter_query": query,
        "filters_vals": json_attr({"filters": query}),
        # Where the no-JavaScript forms of a card return to, also when the card was
        # rendered by an htmx answer (whose own URL is an endpoint, not the board).
        "board_next": f"{board_url}?{query}" if query else board_url,
        "can_change": request.user.has_perm(CHANGE_PERMISSION),
        "statuses": Status,
        # Cards build their links from this prefix: a reverse() per link was the costliest
        # part of a card.
        "opportunity_prefix": opportunity_prefix(),
    }


def _summary(columns: list[Column]) -> dict:
    """The whole board's count and value, for the toolbar (no extra query)."""
    weighted = [column.weighted_total for column in columns if column.weighted_total is not None]
    return {
        "count": sum(column.count for column in columns),
        "total": sum((column.total for column in columns), Decimal(0)),
        "weighted": sum(weighted, Decimal(0)) if weighted else None,
    }


# For the live poll (views/live.py), which answers with the same fragments.
def filtered(request, pipeline: Pipeline) -> OpportunityFilter:
    return _filtered(request, pipeline)


def filter_data(request) -> QueryDict:
    return _filter_data(request)


def board_context(request, pipeline, filterset, stages) -> dict:
    return _board_context(request, pipeline, filterset, stages)


def board_headers(request, pipeline, stages, filterset=None) -> list[Column]:
    """The header figures of `stages` on the request's board, from the totals statement
    the page, the drag and the live poll share (compiled once per user and filters; for
    a rep their own and their followed deals are read apart, where "owns or follows"
    reads every deal of the columns), or through the filterset for filters it does not
    serve (an owner)."""
    columns = column_totals(request.user, pipeline.pk, _filter_data(request), stages)
    if columns is None:
        filterset = filterset or _filtered(request, pipeline)
        columns = header_columns(filterset.qs, stages)
    return columns


@require_GET
def board(request, pipeline_id: int):
    if request.htmx and request.htmx.target == "board":
        # Filter changes swap only the columns; the toolbar keeps focus and typed text.
        return _render_board(request, pipeline_id, {}, fragment=True)
    return cached_board_page(
        request, pipeline_id, lambda extra: _render_board(request, pipeline_id, extra)
    )


def _render_board(request, pipeline_id: int, extra: dict, *, fragment: bool = False):
    pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
    return _board_response(request, pipeline, extra, fragment=fragment)


def board_fragment(request, pipeline: Pipeline) -> HttpResponse:
    """The columns and toolbar totals (#board), with the request's filters."""
    return _board_response(request, pipeline, {}, fragment=True)


def _board_response(request, pipeline: Pipeline, extra: dict, *, fragment: bool):
    # The live poll's cursor is read before the cards: a change made while they are read
    # comes again with the next poll (applying it twice changes nothing).
    cursor = extra["event_cursor"] if "event_cursor" in extra else events_cursor()
    stages = stages_of(pipeline)
    filterset = _filtered(request, pipeline)
    context = _board_context(request, pipeline, filterset, stages)
    headers = board_headers(request, pipeline, stages, filterset)
    context["columns"] = board_columns(filterset.qs, stages, sort=context["sort"], headers=headers)
    context["summary"] = _summary(context["columns"])
    context["event_cursor"] = cursor
    context["stages_key"] = stages_key(stages)
    if fragment:
        context["summary_oob"] = True
        return render(request, BOARD + "#board", context)
    context["pipelines"] = pipelines_for_board()
    context["sources"] = source_choices(request.user)
    return render(request, BOARD, {**context, **extra})


@require_GET
def column_more(request, pipeline_id: int, stage_id: int):
    """The next page of one column, keyset-paged after (sort key, id) of its last card."""
    pipeline = get_object_or_404(Pipeline, pk=pipeline_id)
    stage = get_object_or_404(pipeline.stages, pk=stage_id)
    filterset = _filtered(request, pipeline)
    context = _board_context(request, pipeline, filterset, stages_of(pipeline))
    sort = context["sort"]
    key = request.GET.get("after_key", request.GET.get("after_rank"))
    try:
        after = (key, int(request.GET["after_id"]))
        if key is None or not 0 < after[1] < 2**63:
            raise ValueError
        cards, has_more = column_page(filterset.qs, stage, after=after, sort=sort)
    except (KeyError, ValueError, ValidationError):
        return error_response("Cannot tell where the column ended; reload the board.")
    context["column"] = Column(stage=stage, cards=cards, has_more=has_more, sort=sort)
    return render(request, BOARD + "#cards_page", context)


def _columns_html(
    request, pipeline, filterset, stage_ids, *, whole: bool, with_summary: bool = False
) -> str:
    """Out-of-band fragments for the given columns: whole columns, or just their headers.

    `with_summary` also refreshes the toolbar's board totals (a status change moves them;
    a move never does), from the same one aggregate query over all stages.
    """
    all_stages = stages_of(pipeline)
    stages = [stage for stage in all_stages if stage.pk in stage_ids]
    context = _board_context(request, pipeline, filterset, all_stages)
    context["oob"] = True
    html = []
    if whole:
        columns = board_columns(filterset.qs, stages, sort=context["sort"])
        partial = "#column"
    else:
        every = header_columns(filterset.qs, all_stages if with_summary else stages)
        columns = [column for column in every if column.stage.pk in stage_ids]
        partial = "#column_head"
        if with_summary:
            summary_context = {**context, "summary": _summary(every)}
            html.append(render_to_string(BOARD + "#board_summary", summary_context, request))
    html += [
        render_to_string(BOARD + partial, {**context, "column": column}, request)
        for column in columns
    ]
    return "".join(html)


def _card_html(request, pipeline, filterset, opportunity_id) -> str:
    """The card as the current filters show it, or nothing if it no longer matches."""
    card = with_card_fields(filterset.qs.filter(pk=opportunity_id)).first()
    if card is None:
        return ""
    context = _board_context(request, pipeline, filterset, stages_of(pipeline))
    return render_to_string(BOARD + "#card", {**context, "card": card}, request)


def _conflict(request, pipeline, filterset, stage_ids, message) -> HttpResponse:
    """409 with the true state of the affected columns, swapped out-of-band."""
    response = HttpResponse(
        _columns_html(request, pipeline, filterset, stage_ids, whole=True), status=409
    )
    response["HX-Reswap"] = "none"
    return with_toast(response, message, "error")


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@with_cached_permissions
@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def move(request, pk: int):
    # The card, its pipeline and both stages are read by the service, with the ranks
    # around the drop, in one query before the write's transaction (opportunity_drop).
    try:
        data = drop_cleaned(request.POST)
    except ValidationError as exc:
        return _move_refused(request, pk, exc.messages[0])
    client_stage_id = _int_or_none(request.POST.get("from_stage"))
    # In a sorted view the drop's neighbours are not rank neighbours: place the card by
    # rank (top of the column) and redraw both columns in their order, as from the menu.
    sorted_view = not board_sort(_filter_data(request).get("sort")).is_manual
    via_menu = request.POST.get("via") == "menu" or not request.htmx or sorted_view
    try:
        drop = opportunity_drop(
            pk=pk,
            stage_id=data["stage"],
            version=data["version"],
            user=request.user,
            before_id=None if via_menu else data["before"],
            after_id=None if via_menu else data["after"],
        )
    except Opportunity.DoesNotExist as exc:
        raise Http404(NOT_VISIBLE) from exc
    except StaleVersion as exc:
        # Rolled back: the card as it is now tells which columns to show again.
        opportunity = visible_opportunity_or_404(request, pk)
        pipeline = opportunity.pipeline
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect(safe_next(request, _board_url(pipeline)))
        affected = {opportunity.stage_id, data["stage"]} | {client_stage_id} - {None}
        filterset = _filtered(request, pipeline)
        return _conflict(request, pipeline, filterset, affected, exc.message)
    except ValidationError as exc:
        return _move_refused(request, pk, " ".join(exc.messages))

    opportunity, from_stage, to_stage = drop.opportunity, drop.from_stage, drop.to_stage
    pipeline = opportunity.pipeline
    if not request.htmx:
        messages.success(request, f"Moved “{opportunity.name}” to {to_stage.name}.")
        return redirect(safe_next(request, _board_url(pipeline)))
    if via_menu:
        # The card jumps to the top of another column: redraw both columns.
        affected = {from_stage.pk, to_stage.pk} | {client_stage_id} - {None}
        filterset = _filtered(request, pipeline)
        response = HttpResponse(_columns_html(request, pipeline, filterset, affected, whole=True))
        response["HX-Reswap"] = "none"
        return with_toast(response, f"Moved “{opportunity.name}” to {to_stage.name}.")
    return _drag_answer(opportunity)


def _board_url(pipeline) -> str:
    return reverse("opportunities:board", args=[pipeline.pk])


def _move_refused(request, pk: int, message: str) -> HttpResponse:
    """A 400 with the message (404 for a card the user cannot see, which the refusal must
    not reveal); without JavaScript, back to the board with it."""
    opportunity = visible_opportunity_or_404(request, pk)
    if request.htmx:
        return error_response(message)
    messages.error(request, message)
    return redirect(safe_next(request, _board_url(opportunity.pipeline)))


def _drag_answer(moved) -> HttpResponse:
    """A drag: the browser already shows the card where it was dropped.

    The answer is the card's new version (`X-Card-Version`, kept on the card for the next
    drag) and its exact value (`X-Card-Value`: cards show it rounded), which the browser
    moves from one column header to the other (board_live.js). The live poll, which reads
    this drag's event like any other, brings the server's figures for both columns within
    seconds. Reading the two columns' totals and rendering their headers here was a third
    of a drag's work.
    """
    response = HttpResponse()
    response["HX-Reswap"] = "none"
    response["X-Card-Id"] = str(moved.pk)
    response["X-Card-Version"] = str(moved.version)
    response["X-Card-Value"] = str(moved.value)
    return response


@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def set_status(request, pk: int):
    opportunity = visible_opportunity_or_404(
        request, pk, related=("pipeline", "stage", "lost_reason")
    )
    pipeline = opportunity.pipeline
    fallback = reverse("opportunities:board", args=[pipeline.pk])
    form = StatusForm(request.POST)
    error = None if form.is_valid() else first_error(form)
    if error is None:
        try:
            opportunity_set_status(
                opportunity=opportunity,
                status=form.cleaned_data["status"],
                lost_reason=form.cleaned_data["lost_reason"],
                version=form.cleaned_data["version"],
                user=request.user,
            )
        except StaleVersion as exc:
            if request.htmx:
                filterset = _filtered(request, pipeline)
                return _conflict(request, pipeline, filterset, {opportunity.stage_id}, exc.message)
            error = exc.message
        except ValidationError as exc:
            error = " ".join(exc.messages)
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(
                request, f"“{opportunity.name}” is now {opportunity.get_status_display()}."
            )
        return redirect(safe_next(request, fallback))
    if error:
        return error_response(error)
    filterset = _filtered(request, pipeline)
    response = HttpResponse(
        _card_html(request, pipeline, filterset, opportunity.pk)
        + _columns_html(
            request, pipeline, filterset, {opportunity.stage_id}, whole=False, with_summary=True
        )
    )
    return with_toast(response, f"“{opportunity.name}” marked {opportunity.get_status_display()}.")


@require_GET
def lost_form(request, pk: int):
    """Asks for the lost reason inside the card; Cancel fetches the card back."""
    opportunity = visible_opportunity_or_404(request, pk)
    filterset = _filtered(request, opportunity.pipeline)
    context = _board_context(request, opportunity.pipeline, filterset, [])
    context |= {
        "card": opportunity,
        "lost_reasons": LostReason.objects.filter(is_active=True),
        "next": safe_next(request, reverse("opportunities:board", args=[opportunity.pipeline_id])),
    }
    template = BOARD + "#lost_form" if request.htmx else "opportunities/lost.html"
    return render(request, template, context)


@require_GET
def card_menu(request, pk: int):
    """A card's actions, fetched when its menu opens; without JavaScript, a page of them."""
    if not request.user.has_perm(CHANGE_PERMISSION):
        return error_response("You are not allowed to change opportunities.", status=403)
    opportunity = visible_opportunity_or_404(request, pk)
    pipeline = opportunity.pipeline
    filterset = OpportunityFilter(
        QueryDict(request.GET.get("filters", "")),
        queryset=opportunities_visible_to(request.user).filter(pipeline=pipeline),
    )
    return _card_menu_response(request, opportunity, filterset)


def _card_menu_response(request, opportunity, filterset, form=None, *, status=200):
    """The menu (htmx) or the actions page; `form` is a refused pipeline move to show."""
    pipeline = opportunity.pipeline
    context = _board_context(request, pipeline, filterset, stages_of(pipeline))
    context |= {
        "card": opportunity,
        "standalone": not request.htmx,
        "pipeline_move": form or PipelineMoveForm(opportunity=opportunity),
        "pipeline_error": first_error(form) if form is not None and form.errors else "",
    }
    template = BOARD + "#card_menu" if request.htmx else "opportunities/card_actions.html"
    return render(request, template, context, status=status)


def _menu_filters(request, pipeline: Pipeline) -> OpportunityFilter:
    """The board's filters, as the menu's forms carry them (htmx: `filters`; else `next`)."""
    if request.htmx:
        return _filtered(request, pipeline)
    query = safe_next(request, "").partition("?")[2]
    visible = opportunities_visible_to(request.user).filter(pipeline=pipeline)
    return OpportunityFilter(QueryDict(query), queryset=visible)


@require_POST
@permission_required(CHANGE_PERMISSION, raise_exception=True)
def card_pipeline_move(request, pk: int):
    """ "Move to another pipeline…" from the card menu: the card leaves this board.

    htmx: the answer replaces the card with nothing and refreshes its column's header and
    the board's totals; a refusal is a 4xx whose text the menu shows. Without JavaScript:
    back to the board, or the actions page again with the message and the choice kept.
    """
    opportunity = visible_opportunity_or_404(request, pk, related=("pipeline", "stage", "contact"))
    pipeline, from_stage = opportunity.pipeline, opportunity.stage
    filterset = _menu_filters(request, pipeline)
    form = PipelineMoveForm(request.POST, opportunity=opportunity)
    status = 400
    if form.is_valid():
        target = form.cleaned_data["stage"]
        try:
            opportunity_update(
                opportunity=opportunity,
                user=request.user,
                version=form.cleaned_data["version"],
                pipeline=target.pipeline,
                stage=target,
            )
        except StaleVersion:
            form.add_error(None, STALE_MENU)
            status = 409
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        except PermissionDenied as exc:
            form.add_error(None, str(exc) or "You are not allowed to change opportunities.")
            status = 403
    if form.errors:
        if not request.htmx:
            return _card_menu_response(request, opportunity, filterset, form, status=status)
        # No swap (a 409 would otherwise replace the card): board.js shows the text in the menu.
        response = error_response(first_error(form), status=status)
        response["HX-Reswap"] = "none"
        return response

    done = f"Moved “{opportunity.name}” to {target.pipeline.name} › {target.name}."
    if not request.htmx:
        messages.success(request, done)
        return redirect(safe_next(request, reverse("opportunities:board", args=[pipeline.pk])))
    # The card (the swap target) is replaced by nothing; its old column's header and the
    # board's totals come out-of-band.
    response = HttpResponse(
        _columns_html(request, pipeline, filterset, {from_stage.pk}, whole=False, with_summary=True)
    )
    return with_toast(response, done)


@require_GET
def card(request, pk: int):
    opportunity = visible_opportunity_or_404(request, pk)
    filterset = _filtered(request, opportunity.pipeline)
    card = with_card_fields(opportunities_visible_to(request.user).filter(pk=pk)).get()
    context = _board_context(
        request, opportunity.pipeline, filterset, stages_of(opportunity.pipeline)
    )
    return render(request, BOARD + "#card", {**context, "card": card})
