"""Shared answers for htmx endpoints: readable 4xx messages, toasts, redirects."""

import json

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import trigger_client_event

from opportunities.selectors import opportunities_visible_to

NOT_VISIBLE = "That opportunity does not exist or is not assigned to you."


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
