"""The board's live-update poll: a conditional GET that says whether the board changed.

The browser asks every few seconds with `If-None-Match`; nothing changed → 304 with no
body. It answers from the database alone (no per-process state), so it works the same
on any number of gunicorn workers. On a 200 the browser refetches the board fragment
with its filters (board_live.js), when the rep is not in the middle of something.
"""

from django.http import HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_cache_control
from django.utils.http import parse_etags, quote_etag
from django.views.decorators.http import require_GET

from opportunities.selectors_live import board_fingerprint


@require_GET
def board_version(request, pipeline_id: int):
    # No check that the pipeline exists (one more query on every poll): an unknown id
    # simply has the fingerprint of an empty board, and the board page itself 404s.
    fingerprint = board_fingerprint(pipeline_id)
    etag = quote_etag(fingerprint)
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(fingerprint, content_type="text/plain; charset=utf-8")
    response["ETag"] = etag
    # Always revalidate; never let a shared cache answer for another user.
    patch_cache_control(response, private=True, no_cache=True)
    return response
