"""The board sorted by value / close date / created / activity vs the manual order.

    .venv/bin/python scripts/bench_board_sort.py [N]      # N deals, default 100,000

Seeds a throwaway SQLite database (`seed_demo --opportunities N`, or BENCH_SORT_DB names
one to keep), then for each order prints the query plan of one column's first page (the
largest stage, Open deals) and the median time and query count of the board's columns
(`board_columns`, the manager's view) against the manual order's. Then it adds, in the
throwaway database only, the indexes proposed for the sorted orders and measures again:
the ratios say whether the migration is worth it.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if {"-h", "--help"} & set(sys.argv[1:]):
    sys.exit(__doc__)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
REPEAT = 7
KEEP = os.environ.get("BENCH_SORT_DB")
DB = KEEP or str(Path(tempfile.mkdtemp()) / "sort.sqlite3")
os.environ["SQLITE_PATH"] = DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
os.environ.setdefault("AXES_ENABLED", "0")
sys.path.insert(0, str(ROOT))

if not Path(DB).exists():
    python = sys.executable
    for args in (["migrate", "-v0"], ["seed_demo", "--opportunities", str(N)]):
        subprocess.run([python, "manage.py", *args], cwd=ROOT, check=True, env=os.environ)

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from opportunities.models import Opportunity, Status  # noqa: E402
from opportunities.selectors import (  # noqa: E402
    BOARD_PAGE_SIZE,
    BOARD_SORTS,
    _page_ids,
    board_columns,
    stages_of,
)

# Proposed, not in the migrations: one per remaining sorted order, like opp_board_column
# (stage, status, rank, id). The close-date order has its index (opp_board_close, 0014).
PROPOSED = {
    "created": "CREATE INDEX bench_stage_created ON opportunities_opportunity "
    "(stage_id, status, created_at, id) WHERE deleted_at IS NULL",
    "activity": "CREATE INDEX bench_stage_activity ON opportunities_opportunity "
    "(stage_id, status, stage_entered_at, id) WHERE deleted_at IS NULL",
}


def plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "; ".join(row[-1] for row in cursor.fetchall())


def measure(queryset, stages, sort):
    times = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            board_columns(queryset, stages, sort=sort)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(queries)


def run(title: str):
    busiest = (
        Opportunity.objects.filter(status=Status.OPEN, deleted_at__isnull=True)
        .values("pipeline", "stage")
        .annotate(n=Count("id"))
        .order_by("-n")
        .first()
    )
    pipeline_id, stage_id = busiest["pipeline"], busiest["stage"]
    stage = next(s for s in stages_of_pipeline(pipeline_id) if s.pk == stage_id)
    stages = stages_of_pipeline(pipeline_id)
    queryset = Opportunity.objects.filter(
        deleted_at__isnull=True, pipeline_id=pipeline_id, status=Status.OPEN
    )
    print(f"\n== {title} (largest column: {busiest['n']} open deals, page {BOARD_PAGE_SIZE})")
    base, base_queries = measure(queryset, stages, BOARD_SORTS["manual"])
    for name, sort in BOARD_SORTS.items():
        for part in _page_ids(queryset, stage, sort):
            inner = part.query.where.children[0].rhs  # the limited "first page" subquery
            sql, params = inner.sql_with_params()
            print(f"  {name:9} plan: {plan(sql, params)}")
        median, count = measure(queryset, stages, sort)
        print(
            f"  {name:9} board columns {median * 1000:7.1f} ms, {count} queries, "
            f"{median / base:5.2f}x manual ({base * 1000:.1f} ms, {base_queries} queries)"
        )


def stages_of_pipeline(pipeline_id):
    from pipelines.models import Pipeline

    return stages_of(Pipeline.objects.get(pk=pipeline_id))


def main():
    print(f"{Opportunity.objects.count()} deals in {DB}")
    run("with the migrations' indexes")
    with connection.cursor() as cursor:
        for sql in PROPOSED.values():
            cursor.execute(sql)
    run("with the proposed indexes added")
    if not KEEP:
        connection.close()
        shutil.rmtree(Path(DB).parent, ignore_errors=True)


if __name__ == "__main__":
    main()
