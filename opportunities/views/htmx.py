"""Shared answers for htmx endpoints: readable 4xx messages, toasts, redirects."""

import json
from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import trigger_client_event

from opportunities.selectors import opportunities_visible_to

NOT_VISIBLE = "That opportunity does not exist or is not assigned to you."
INVALID = 422


def visible_opportunity_or_404(request, pk: int, *, related=("pipeline", "stage")):
    queryset = opportunities_visible_to(request.user).select_related(*related)
    try:
        return get_object_or_404(queryset, pk=pk)
    except Http404 as exc:
        raise Http404(NOT_VISIBLE) from exc


def error_response(message: str, status: int = 400) -> HttpResponse:
    """A 4xx whose plain-text body is the message the page shows in a toast."""
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def with_toast(response: HttpResponse, message: str, level: str = "success") -> HttpResponse:
    return trigger_client_event(response, "toast", {"message": message, "level": level})


def safe_next(request, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    # Only paths: redirect() would read a bare word like "0" as a URL name (NoReverseMatch).
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def json_attr(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"))


def answer(
    request,
    *,
    message: str = "",
    level: str = "success",
    status: int = 200,
    fragment: Callable[[], str] | None = None,
    page: Callable[[int], HttpResponse] | None = None,
    redirect_to: str | None = None,
    htmx_redirect: bool = False,
    events: dict[str, dict] | None = None,
) -> HttpResponse:
    """The one place that chooses between the htmx answer and the no-JavaScript one.

    htmx: the `fragment()` HTML with `status` (and `message` as a toast, `events` as
    HX-Trigger events); without a fragment, a 4xx is the message as plain text and a
    success an empty body, or an HX-Redirect to `redirect_to` when `htmx_redirect`.
    Without JavaScript: `page(status)` when given (422 becomes a plain 400), else a 403
    raises PermissionDenied, and anything else redirects to `redirect_to` with `message`
    as a flash message.
    """
    if request.htmx:
        if fragment is not None:
            response = HttpResponse(fragment(), status=status)
        elif status >= 400:
            return error_response(message or "The request was not valid.", status=status)
        elif htmx_redirect and redirect_to:
            if message:
                messages.add_message(request, _LEVELS[level], message)
            response = HttpResponse("")
            response["HX-Redirect"] = redirect_to
            return response
        else:
            response = HttpResponse("")
        for name, detail in (events or {}).items():
            response = trigger_client_event(response, name, detail)
        return with_toast(response, message, level) if message else response
    if page is not None:
        return page(400 if status == INVALID else status)
    if status == 403:
        raise PermissionDenied(message)
    if message:
        messages.add_message(request, _LEVELS[level], message)
    return redirect(redirect_to)


_LEVELS = {"success": messages.SUCCESS, "error": messages.ERROR, "info": messages.INFO}
