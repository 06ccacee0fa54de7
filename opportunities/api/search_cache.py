"""The API search's answers, cached per (user, visibility, query, database state).

A script polling `GET /opportunities/search` with the same parameters gets the same JSON
until something the answer shows changes; the answer's bytes are kept in the cache under
a key that changes with it, as the board page cache does (opportunities/views/board_cache.py).

The key's database half is read in one query (`SEARCH_STATE_SQL`):
- the newest event id: every write through the services appends one (moves, status,
  value, tags, followers, custom values, trash and restore, imports);
- per pipeline, its most recently written deals, live and trashed (count, newest and
  oldest updated_at, sum of versions, read backwards on opp_pipeline_updated): writes
  that append no event but set updated_at or version (a raw bulk update, factories);
- the newest contact history id: contact edits (name, email, phone, company) go through
  `contact_resolve`, which keeps a history row per edit and does not touch the deals;
- tag names and custom field keys, positions and types (small tables edited in the
  admin without touching any deal);
- whether the user holds "view all opportunities" now (directly or through a group): the
  one permission the answer depends on, read fresh rather than from a per-process cache.

Nothing in the answer is relative to today. What none of this sees (a raw UPDATE that
leaves updated_at and version alone, a contact edited without history) shows after TTL.
"""

import hashlib
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.db import connection
from django.utils import timezone

from opportunities.models import (
    ContactHistory,
    CustomField,
    Opportunity,
    OpportunityEvent,
    Tag,
)
from opportunities.selectors import VIEW_ALL_PERMISSION
from opportunities.selectors_live import RECENT
from pipelines.models import Pipeline

TTL = 300  # seconds; only for what the module docstring says the key does not see
# Paging parameters: every page of one search shares its total.
PAGING = {"startAfter", "startAfterId", "limit"}


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _aggregated_text(expression: str, table: str, vendor: str) -> str:
    """All rows of a small table as one text, in id order, on either backend."""
    if vendor == "postgresql":
        return f"(SELECT string_agg({expression}, '|' ORDER BY id) FROM {table})"
    return f"(SELECT group_concat(x, '|') FROM (SELECT {expression} AS x FROM {table} ORDER BY id))"


def _state_sql(vendor: str) -> str:
    user = get_user_model()
    user_permissions = _table(user.user_permissions.through)
    user_groups = _table(user.groups.through)
    group_permissions = _table(Group.permissions.through)
    permission, content_type = _table(Permission), _table(ContentType)
    grant = (
        f"JOIN {permission} pe ON pe.id = g.permission_id "
        f"JOIN {content_type} ct ON ct.id = pe.content_type_id "
        "WHERE pe.codename = %(codename)s AND ct.app_label = %(app)s"
    )
    view_all = (
        f"CASE WHEN EXISTS (SELECT 1 FROM {user_permissions} g {grant} "
        "AND g.user_id = %(user)s) "
        f"OR EXISTS (SELECT 1 FROM {user_groups} ug JOIN {group_permissions} g "
        f"ON g.group_id = ug.group_id {grant} AND ug.user_id = %(user)s) THEN 1 ELSE 0 END"
    )
    # Text concatenation of numbers and dates works the same way on both backends.
    recent = (
        "(SELECT COUNT(*) || '-' || MAX(r.updated_at) || '-' || MIN(r.updated_at) || '-' "
        "|| SUM(r.version) FROM (SELECT o.updated_at, o.version "
        f"FROM {_table(Opportunity)} o WHERE o.pipeline_id = p.id "
        f"ORDER BY o.updated_at DESC LIMIT {RECENT}) r)"
    )
    tags = _aggregated_text("name", _table(Tag), vendor)
    fields = _aggregated_text(
        "key || ':' || position || ':' || field_type", _table(CustomField), vendor
    )
    return (
        f"SELECT (SELECT MAX(id) FROM {_table(OpportunityEvent)}), "
        f"(SELECT MAX(id) FROM {_table(ContactHistory)}), {view_all}, {tags}, {fields}, "
        f"p.id, {recent} FROM {_table(Pipeline)} p ORDER BY p.id"
    )


_SQL: dict[str, str] = {}


def search_state(user) -> tuple[bool, str] | None:
    """(user sees every deal, fingerprint of what any search answer shows), in one query.

    None when there is no pipeline (so no deal): nothing worth caching.
    """
    vendor = connection.vendor
    if vendor not in _SQL:
        _SQL[vendor] = _state_sql(vendor)
    app, codename = VIEW_ALL_PERMISSION.split(".")
    with connection.cursor() as cursor:
        cursor.execute(_SQL[vendor], {"user": user.pk, "app": app, "codename": codename})
        rows = cursor.fetchall()
    if not rows:
        return None
    view_all = user.is_superuser or bool(rows[0][2])
    return view_all, repr((rows[0][:2], rows[0][3:5], [row[5:] for row in rows]))


def _digest(*parts) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


class SearchCache:
    """The keys of one search request: its answer and its total (shared by its pages)."""

    def __init__(self, request):
        self.cache = caches["default"]
        self.answer_key = self.total_key = None
        user = request.user
        state = search_state(user)
        if state is None:
            return
        view_all, fingerprint = state
        # Who asks and what they may see; the host goes into nextPageUrl.
        base = _digest(
            user.pk,
            view_all,
            fingerprint,
            timezone.get_current_timezone_name(),
            request.build_absolute_uri(request.path),
        )
        query = sorted(request.GET.lists())
        self.answer_key = "api:search:" + _digest(base, urlencode(query, doseq=True))
        filters = [(key, values) for key, values in query if key not in PAGING]
        self.total_key = "api:search-total:" + _digest(base, urlencode(filters, doseq=True))

    def answer(self) -> bytes | None:
        return None if self.answer_key is None else self.cache.get(self.answer_key)

    def keep_answer(self, body: bytes) -> None:
        if self.answer_key is not None:
            self.cache.set(self.answer_key, body, TTL)

    def total(self) -> int | None:
        return None if self.total_key is None else self.cache.get(self.total_key)

    def keep_total(self, total: int) -> None:
        if self.total_key is not None:
            self.cache.set(self.total_key, total, TTL)
