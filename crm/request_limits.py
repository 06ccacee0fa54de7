"""Refuse an oversized request body before anything reads it.

Django reads a POST body the first time something touches `request.POST` (the CSRF check
does, before the login redirect), and writes large file parts to temporary files. Only the
declared Content-Length is looked at here, so a 200 MB upload is answered 413 at once,
for signed-in and anonymous users alike, and never reaches memory or the disk. A body
without a Content-Length (chunked) is not read by Django at all.

Limits: `REQUEST_BODY_LIMITS` (URL name -> bytes) for the few pages that take files, the
framework's DATA_UPLOAD_MAX_MEMORY_SIZE everywhere else, and ANONYMOUS_BODY_LIMIT for
anyone not signed in (the login form is tiny).
"""

from django.conf import settings
from django.http import HttpResponse
from django.urls import Resolver404, resolve


def _declared_length(request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _limit_for(request) -> int:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return settings.REQUEST_BODY_LIMITS.get(match.view_name, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def _too_large(limit: int) -> HttpResponse:
    megabytes = limit / (1024 * 1024)
    return HttpResponse(
        f"The request is too large (at most {megabytes:.1f} MB here). "
        "Split the file and upload the parts.",
        status=413,
        content_type="text/plain; charset=utf-8",
    )


class RequestBodyLimitMiddleware:
    """Answers 413 when the declared body is over the limit; must run before any reader."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        length = _declared_length(request)
        if length > settings.ANONYMOUS_BODY_LIMIT:
            # The session is looked up only for the rare large body.
            if not request.user.is_authenticated:
                return _too_large(settings.ANONYMOUS_BODY_LIMIT)
            limit = _limit_for(request)
            if length > limit:
                return _too_large(limit)
        return self.get_response(request)
