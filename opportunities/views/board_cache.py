"""The rendered board page, cached and revalidated (ETag / 304).

Rendering a board costs tens of milliseconds of templates; the same rep reloading the same
board with the same filters gets the same HTML until a card of the pipeline changes. So
the page is rendered once per (pipeline state, user, permissions, filters, day) and kept
in the cache with two placeholders where the per-request secrets go: the CSRF token and
the CSP nonce are filled in on every answer, never cached.

The key is read in one query: the id of the newest event (every change to a deal appends
one; the page carries it as the live poll's cursor), the fingerprint of the pipeline's
recently written cards (writes that append no event) and the pipelines with their stages
(names, order, probabilities: what the columns and tabs show). What neither covers
(a renamed contact or user, a new source in the filter list) shows up with the next
change, or after TTL at the latest.
"""

import functools
import hashlib

from django.conf import settings
from django.contrib.messages import get_messages
from django.core.cache import caches
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseNotModified
from django.middleware.csrf import get_token
from django.utils import timezone
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import parse_etags, quote_etag

from opportunities.compiled_reads import STAND_IN, Statement, fixed_statement
from opportunities.models import MAX_ID
from opportunities.selectors_live import board_fingerprint, events_cursor_read
from pipelines.models import Pipeline

TTL = 300  # seconds; see the module docstring for what only the TTL refreshes
PERMISSIONS_TTL = 60
CSRF_PLACEHOLDER = "csrf-7b1e0c9a-placeholder"
NONCE_PLACEHOLDER = "nonce-4f2d8e61-placeholder"
PLACEHOLDERS = {"csrf_token": CSRF_PLACEHOLDER, "csp_nonce": NONCE_PLACEHOLDER}


def _cache():
    return caches["default"]


def user_permissions(user) -> frozenset[str]:
    """The user's permissions, kept a minute per process (two queries saved per board).

    Only what the page shows depends on this; every write checks the permission itself.
    """
    if user.is_superuser:
        return frozenset({"*"})
    key = f"board:perms:{user.pk}:{user.password[-12:]}"
    permissions = _cache().get(key)
    if permissions is None:
        permissions = frozenset(user.get_all_permissions())
        _cache().set(key, permissions, PERMISSIONS_TTL)
    return permissions


def with_cached_permissions(view):
    """Primes the user's permission cache from `user_permissions` before the view runs.

    Django's ModelBackend reads `_perm_cache` when it is there; the board's move and
    status endpoints then check permissions without their two queries per request.
    """

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if user.is_authenticated and user.is_active and not user.is_superuser:
            user._perm_cache = set(user_permissions(user))
        return view(request, *args, **kwargs)

    return wrapper


# The board state's columns: a tab is (pk, name, position, is_archived); the shown
# pipeline's rows add its stages.
_TAB = ("pk", "name", "position", "is_archived")
_STAGE = (
    "stages__pk",
    "stages__name",
    "stages__position",
    "stages__probability",
    "stages__rotting_days",
)


def board_state(pipeline_id: int) -> tuple[int, str]:
    """The newest event id and a signature of everything else the key needs that lives
    in the database: the tabs, this pipeline's columns and its recently written cards.

    One query, compiled once per process (building it through the ORM cost about ten
    times running it): the pipelines with their stages, each row also carrying the two
    uncorrelated subqueries (computed once). 404 for an unknown pipeline.
    """
    if pipeline_id > MAX_ID:
        raise Http404("No such pipeline.")
    pipeline_in = STAND_IN

    def build():
        rows = (
            Pipeline.objects.filter(Q(is_archived=False) | Q(pk=pipeline_in))
            .annotate(cursor=events_cursor_read(), recent=board_fingerprint(pipeline_in))
            .order_by("position", "id", "stages__position", "stages__id")
            .values(*_TAB, *_STAGE, "cursor", "recent")
        )
        return Statement.compile(rows, [pipeline_in])

    rows = fixed_statement(("board_state",), build).rows({pipeline_in: pipeline_id})
    if not any(row["pk"] == pipeline_id for row in rows):
        raise Http404("No such pipeline.")
    # Other pipelines matter only by their tab (name, order); their stages do not.
    tabs = [
        tuple(row[name] for name in (_TAB + _STAGE if row["pk"] == pipeline_id else _TAB))
        for row in rows
    ]
    return rows[0]["cursor"] or 0, f"{rows[0]['recent']}:{tabs!r}"


def board_page_key(request, pipeline_id: int, cursor: int, signature: str) -> str:
    user = request.user
    parts = [
        str(pipeline_id),
        signature,
        str(cursor),
        str(user.pk),
        user.get_username(),
        user.get_full_name(),
        str(user.is_staff),
        ",".join(sorted(user_permissions(user))),
        request.get_full_path(),
        timezone.localdate().isoformat(),
    ]
    return "board:page:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _etag(key: str, request) -> str:
    # The cached body carries a CSRF token made from this cookie's secret: a new secret
    # (a new sign-in) must not revalidate an old page.
    secret = request.COOKIES.get(settings.CSRF_COOKIE_NAME, "")
    return quote_etag(hashlib.sha256(f"{key}:{secret}".encode()).hexdigest()[:32])


def _fill(html: str, request) -> str:
    nonce = getattr(request, "_csp_nonce", None)
    html = html.replace(CSRF_PLACEHOLDER, get_token(request))
    return html.replace(NONCE_PLACEHOLDER, str(nonce) if nonce is not None else "")


def _revalidate(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    # Private: never a shared cache; no-cache: the browser asks every time (→ 304).
    patch_cache_control(response, private=True, no_cache=True)
    patch_vary_headers(response, ["Cookie"])
    return response


def cached_board_page(request, pipeline_id: int, render_page) -> HttpResponse:
    """The board page from the cache, 304 when the browser has it, else `render_page`.

    `render_page(extra_context)` renders the page; the extra context puts placeholders
    where the CSRF token and the CSP nonce go, and the event cursor read for the key
    (before the cards are). A request carrying messages (a toast after
    a no-JavaScript form) is rendered and answered as usual, never cached.
    """
    if len(get_messages(request)):
        return render_page({})
    user = request.user
    if user.is_active and not user.is_superuser:
        user._perm_cache = set(user_permissions(user))  # the page asks for a few
    cursor, signature = board_state(pipeline_id)
    key = board_page_key(request, pipeline_id, cursor, signature)
    etag = _etag(key, request)
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        get_token(request)  # keep the CSRF cookie as fresh as a full answer would
        response = HttpResponseNotModified()
        # The browser keeps the page it has, with the nonce its CSP header named; a
        # new CSP header here would replace that one and block the page's scripts.
        response._csp_config = {}
        response._csp_ro_config = {}
        return _revalidate(response, etag)
    html = _cache().get(key)
    if html is None:
        response = render_page({**PLACEHOLDERS, "event_cursor": cursor})
        html = response.content.decode()
        _cache().set(key, html, TTL)
    return _revalidate(HttpResponse(_fill(html, request)), etag)
