"""Reads. Every view reads opportunities through `opportunities_visible_to`."""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import Count, F, OuterRef, Q, QuerySet, StringAgg, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Concat
from django.utils import timezone

from opportunities.models import Contact, Opportunity, Status, Task
from pipelines.models import Pipeline, Stage

BOARD_PAGE_SIZE = 25
VIEW_ALL_PERMISSION = "opportunities.view_all_opportunities"


def can_view_all(user) -> bool:
    return user.is_authenticated and user.has_perm(VIEW_ALL_PERMISSION)


def opportunities_visible_to(user) -> QuerySet[Opportunity]:
    """The one visibility rule ("only assigned data", as in HighLevel).

    Users with "view all opportunities" see everything; everyone else sees the
    opportunities assigned to them or that they follow. Deals in the trash are seen by
    nobody here (see `trashed_opportunities`). Anonymous users see nothing.
    """
    if not user.is_authenticated:
        return Opportunity.objects.none()
    alive = Opportunity.objects.filter(deleted_at__isnull=True)
    if can_view_all(user):
        return alive
    followed = Opportunity.followers.through.objects.filter(user_id=user.pk).values(
        "opportunity_id"
    )
    return alive.filter(Q(assigned_to=user) | Q(pk__in=followed))


def opportunity_is_visible_to(user, opportunity: Opportunity) -> bool:
    """The same rule as `opportunities_visible_to`, for one deal already in hand."""
    if not user.is_authenticated or opportunity.deleted_at is not None:
        return False
    if can_view_all(user) or opportunity.assigned_to_id == user.pk:
        return True
    return opportunity.followers.filter(pk=user.pk).exists()


def contacts_visible_to(user) -> QuerySet[Contact]:
    """Contacts follow the opportunities ("only assigned data" covers contacts too).

    A user sees a contact if it is on an opportunity they can see; users with "view all
    opportunities" see every contact, including those on no opportunity.
    """
    if not user.is_authenticated:
        return Contact.objects.none()
    if can_view_all(user):
        return Contact.objects.all()
    visible = opportunities_visible_to(user).filter(contact__isnull=False)
    return Contact.objects.filter(pk__in=visible.values("contact_id"))


def users_who_can_see(opportunity: Opportunity) -> QuerySet:
    """Active users for whom `opportunities_visible_to` includes this opportunity.

    Its owner, its followers, and whoever holds "view all opportunities" (directly,
    through a group, or as a superuser); e.g. the people a task on it may be assigned to.
    """
    app_label, codename = VIEW_ALL_PERMISSION.split(".")
    grants = {"content_type__app_label": app_label, "codename": codename}
    can_see = (
        Q(is_superuser=True)
        | Q(**{f"user_permissions__{key}": value for key, value in grants.items()})
        | Q(**{f"groups__permissions__{key}": value for key, value in grants.items()})
    )
    if opportunity.assigned_to_id is not None:
        can_see |= Q(pk=opportunity.assigned_to_id)
    if opportunity.pk is not None:
        can_see |= Q(followed_opportunities=opportunity.pk)
    users = get_user_model().objects
    return users.filter(is_active=True, pk__in=users.filter(can_see).values("pk")).order_by(
        "first_name", "username"
    )


def with_card_fields(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    """What a board card shows, fetched with the card so templates run no queries."""
    next_task_due = (
        Task.objects.filter(opportunity=OuterRef("pk"), done_at__isnull=True, due_on__isnull=False)
        .order_by("due_on")
        .values("due_on")[:1]
    )
    return queryset.select_related("stage", "contact", "assigned_to", "lost_reason").annotate(
        next_task_due=Subquery(next_task_due), card_tags=Subquery(card_tags())
    )


def card_tags():
    """The deal's tags as "#rrggbb name" lines, in the card's query (no query per card).

    Lines: a tag name never holds a newline. Sorted by the template filter `tag_chips`
    (SQLite before 3.44 cannot order inside an aggregate).
    """
    return (
        Opportunity.tags.through.objects.filter(opportunity_id=OuterRef("pk"))
        .order_by()
        .values("opportunity_id")
        .annotate(lines=StringAgg(Concat("tag__color", Value(" "), "tag__name"), Value("\n")))
        .values("lines")
    )


@dataclass(frozen=True)
class SortSegment:
    """Part of a column in one index order: `key` (then id), or id alone when None."""

    where: Q
    key: str | None
    descending: bool = False

    @property
    def ordering(self) -> list[str]:
        sign = "-" if self.descending else ""
        return [f"{sign}{self.key}", f"{sign}id"] if self.key else [f"{sign}id"]


@dataclass(frozen=True)
class BoardSort:
    """An order of the cards in every column (the board's `?sort=`).

    A column is read segment after segment, each a range scan of one index (the close
    date's dated cards, then the undated ones: an index cannot give NULLS LAST on SQLite).
    """

    name: str
    label: str
    segments: tuple[SortSegment, ...]
    # The order of the fetched cards of all segments together.
    order: tuple

    @property
    def is_manual(self) -> bool:
        return self.name == MANUAL_SORT

    def cursor_key(self, card: Opportunity) -> str:
        """The card's sort key as "Load more" carries it ("" for a missing close date)."""
        value = getattr(card, self.segments[0].key)
        return (
            ""
            if value is None
            else (value.isoformat() if hasattr(value, "isoformat") else str(value))
        )


MANUAL_SORT = "manual"
BOARD_SORTS = {
    sort.name: sort
    for sort in (
        BoardSort(MANUAL_SORT, "Manual order", (SortSegment(Q(), "rank"),), ("rank", "id")),
        BoardSort(
            "value",
            "Value (high to low)",
            (SortSegment(Q(), "value", descending=True),),
            ("-value", "-id"),
        ),
        BoardSort(
            "close",
            "Close date (soonest first)",
            (
                SortSegment(Q(expected_close_date__isnull=False), "expected_close_date"),
                SortSegment(Q(expected_close_date__isnull=True), None),
            ),
            (F("expected_close_date").asc(nulls_last=True), "id"),
        ),
        BoardSort(
            "created",
            "Created (newest first)",
            (SortSegment(Q(), "created_at", descending=True),),
            ("-created_at", "-id"),
        ),
        # "Activity" is what rotting measures: the last stage change (stage_entered_at).
        BoardSort(
            "activity",
            "Last activity (most recent first)",
            (SortSegment(Q(), "stage_entered_at", descending=True),),
            ("-stage_entered_at", "-id"),
        ),
    )
}


def board_sort(name: str | None) -> BoardSort:
    """The named order; an unknown or missing name is the manual order (no error)."""
    return BOARD_SORTS.get(name or "", BOARD_SORTS[MANUAL_SORT])


@dataclass
class Column:
    stage: Stage
    cards: list[Opportunity] = field(default_factory=list)
    has_more: bool = False
    count: int = 0
    total: Decimal = Decimal(0)
    # The open deals among those shown: only they have a chance still to weigh.
    open_count: int = 0
    open_total: Decimal = Decimal(0)
    sort: BoardSort = field(default_factory=lambda: BOARD_SORTS[MANUAL_SORT])

    @property
    def weighted_total(self) -> Decimal | None:
        """Open value times the stage's probability (won value is not a forecast)."""
        if self.stage.probability is None or not self.open_count:
            return None
        return (self.open_total * self.stage.probability / 100).quantize(Decimal("0.01"))

    @property
    def last_card(self) -> Opportunity | None:
        return self.cards[-1] if self.cards else None

    @property
    def next_page_query(self) -> str:
        """Where "Load more" starts: after the last card, in the column's order."""
        card = self.last_card
        return urlencode({"after_key": self.sort.cursor_key(card), "after_id": card.pk})


def stage_totals_rows(queryset: QuerySet[Opportunity]) -> QuerySet:
    """Count and value per stage and status as a values() query: the figures a column
    header shows, added up by `add_to_column` (also compiled once by the live poll).

    Grouped by status rather than summing the open deals with FILTER: the extra sums
    doubled the time of reading a large column's index entries (N = 100,000).
    """
    return (
        queryset.order_by()
        .values("stage", "status")
        .annotate(count=Count("*"), total=Coalesce(Sum("value"), Decimal(0)))
    )


def add_to_column(column: Column, row: dict) -> None:
    """Add one `stage_totals_rows` row to its column's header figures."""
    column.count += row["count"]
    column.total += row["total"]
    if row["status"] == Status.OPEN:
        column.open_count += row["count"]
        column.open_total += row["total"]


def header_columns(queryset: QuerySet[Opportunity], stages) -> list[Column]:
    """Columns with their totals and no cards: what the column headers show, in one
    query that reads only the totals index."""
    columns = {stage.pk: Column(stage=stage) for stage in stages}
    for row in stage_totals_rows(queryset.filter(stage__in=list(columns))):
        add_to_column(columns[row["stage"]], row)
    return list(columns.values())


def _after(segment: SortSegment, key: str, pk: int) -> Q:
    """The cards of `segment` that come after (key, pk); ValidationError for a bad key."""
    after = "lt" if segment.descending else "gt"
    if segment.key is None:
        return Q(**{f"id__{after}": pk})
    value = Opportunity._meta.get_field(segment.key).to_python(key)
    return Q(**{f"{segment.key}__{after}": value}) | Q(**{segment.key: value, f"id__{after}": pk})


def _page_ids(
    queryset: QuerySet[Opportunity],
    stage: Stage,
    sort: BoardSort,
    after: tuple[str, int] | None = None,
) -> list[QuerySet]:
    """Per segment, the ids of up to a page and one of the column after `after`.

    Each is an index range scan that stops after a page. SQLite refuses LIMIT directly
    inside a compound SELECT, so each selects the ids `IN` a limited subquery, which both
    backends accept and plan as the same scan.
    """
    parts = []
    started = after is None
    for segment in sort.segments:
        rows = queryset.filter(segment.where, stage=stage)
        if not started:
            key, pk = after
            # A missing key ("") is in the segment of missing values, the others before it.
            if (segment.key is None) != (key == ""):
                continue
            rows = rows.filter(_after(segment, key, pk))
            started = True
        limited = rows.order_by(*segment.ordering).values("id")[: BOARD_PAGE_SIZE + 1]
        parts.append(Opportunity.objects.filter(pk__in=limited).order_by().values("id"))
    return parts


def _union(parts: list[QuerySet]) -> QuerySet:
    return parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]


def column_page(
    queryset: QuerySet[Opportunity],
    stage: Stage,
    *,
    after: tuple[str, int] | None = None,
    sort: BoardSort | None = None,
):
    """One page of a column in `sort`'s order, keyset-paged after (key, id) of the last
    card shown: cheap at any depth. A key that does not parse raises ValidationError."""
    sort = sort or board_sort(None)
    parts = _page_ids(queryset, stage, sort, after)
    if not parts:
        return [], False
    ids = _union(parts)
    cards = list(
        with_card_fields(Opportunity.objects.filter(pk__in=ids)).order_by(*sort.order)[
            : BOARD_PAGE_SIZE + 1
        ]
    )
    return cards[:BOARD_PAGE_SIZE], len(cards) > BOARD_PAGE_SIZE


def board_columns(
    queryset: QuerySet[Opportunity],
    stages: list[Stage],
    *,
    sort: BoardSort | None = None,
    headers: list[Column] | None = None,
) -> list[Column]:
    """The first page of every column plus the totals, in two queries whatever the size
    and whatever the order. `headers`: the columns' totals when the caller has them
    (`selectors_live.column_totals`), read here otherwise.

    The cards are fetched by id from one UNION ALL of per-stage (per-segment) "first page"
    queries, each an index range scan (see `_page_ids`).
    """
    sort = sort or board_sort(None)
    if not stages:
        return []
    if headers is None:
        headers = header_columns(queryset, stages)
    columns = {column.stage.pk: column for column in headers}
    for column in headers:
        column.sort = sort

    parts = [
        part
        for stage in stages
        if columns[stage.pk].count
        for part in _page_ids(queryset, stage, sort)
    ]
    if parts:
        cards = with_card_fields(Opportunity.objects.filter(pk__in=_union(parts)))
        for card in cards.order_by(*sort.order):
            columns[card.stage_id].cards.append(card)
    for column in columns.values():
        column.has_more = len(column.cards) > BOARD_PAGE_SIZE
        column.cards = column.cards[:BOARD_PAGE_SIZE]
    return list(columns.values())


def pipelines_for_board() -> list[Pipeline]:
    return list(Pipeline.objects.filter(is_archived=False).order_by("position", "id"))


def stages_of(pipeline: Pipeline) -> list[Stage]:
    return list(pipeline.stages.order_by("position", "id"))


def source_choices(user=None) -> list[str]:
    """Sources in use, for suggestions: on the opportunities `user` can see.

    Without a user, every source (only for callers that show no user's data).
    """
    queryset = Opportunity.objects.all() if user is None else opportunities_visible_to(user)
    return list(
        queryset.exclude(source="").order_by("source").values_list("source", flat=True).distinct()
    )


def rotting_condition(*, now=None, days: int | None = None) -> Q:
    """The one definition of a rotting (stale) deal: open, and no stage change for longer
    than its stage's rotting days (or `days`, for a rule that names its own limit).

    Used by the board's cards (`is_rotting`), the manager's "Open and stale" view and
    automation's stale trigger. Stages are few, so one condition per stage keeps this
    plain SQL on every backend (no date arithmetic on columns).
    """
    now = now or timezone.now()
    if days is not None:
        return Q(status=Status.OPEN, stage_entered_at__lt=now - timedelta(days=days))
    per_stage = Q(pk__in=[])
    for stage_id, stage_days in Stage.objects.filter(rotting_days__isnull=False).values_list(
        "pk", "rotting_days"
    ):
        per_stage |= Q(stage_id=stage_id, stage_entered_at__lt=now - timedelta(days=stage_days))
    return Q(status=Status.OPEN) & per_stage


def is_rotting(opportunity: Opportunity, *, now=None) -> bool:
    """`rotting_condition` for one deal in hand (its stage loaded)."""
    days = opportunity.stage.rotting_days
    if opportunity.status != Status.OPEN or days is None:
        return False
    return opportunity.stage_entered_at < (now or timezone.now()) - timedelta(days=days)
