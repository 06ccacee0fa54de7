"""A bulk status change (Lost, with a reason) of N deals, as the manager list runs it.

    .venv/bin/python scripts/bench_bulk.py [N]        # default 10,000; a throwaway SQLite file

Seeds `seed_demo --opportunities N` into a temporary database, then marks every deal
(any status) Lost, for a reason none has yet, through `bulk_apply` (chunks of 500, one
transaction each), and prints the total time, deals per second, the SQL queries of each
chunk (min / max: bounded, not growing with the chunk) and the history rows and events
written. Goal: 10,000 deals within 30 s on SQLite.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
DB = os.environ.get("BENCH_BULK_DB") or str(Path(tempfile.mkdtemp()) / "bulk.sqlite3")
os.environ["SQLITE_PATH"] = DB
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
sys.path.insert(0, str(ROOT))

if not Path(DB).exists():
    for args in (["migrate", "-v0"], ["seed_demo", "--opportunities", str(N)]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True, env=os.environ)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from opportunities.models import (  # noqa: E402
    LostReason,
    Opportunity,
    OpportunityEvent,
    OpportunityHistory,
    Status,
)
from opportunities.selectors import opportunities_visible_to  # noqa: E402
from opportunities.services import bulk  # noqa: E402


def main() -> None:
    manager = get_user_model().objects.get(username="manager")
    # A reason no deal has yet: every deal changes (open, won, and lost for another reason).
    reason = LostReason.objects.create(name=f"Bulk benchmark {LostReason.objects.count()}")
    selection = opportunities_visible_to(manager)
    total = selection.count()
    history_before = OpportunityHistory.objects.count()
    events_before = OpportunityEvent.objects.count()
    action = bulk.bulk_action_check(
        user=manager, kind=bulk.STATUS, status=Status.LOST, lost_reason_id=reason.pk
    )
    preview_started = time.perf_counter()
    would_change = bulk.bulk_would_change(action=action, queryset=selection)
    preview_ms = (time.perf_counter() - preview_started) * 1000
    seen_at = timezone.now()

    per_chunk, result, after = [], bulk.BulkResult(), 0
    started = time.perf_counter()
    while after is not None:
        with CaptureQueriesContext(connection) as queries:
            step, after = bulk.bulk_apply(
                user=manager,
                action=action,
                selection=selection,
                seen_at=seen_at,
                after_id=after,
                seconds=0,  # one chunk per call, to count its queries
            )
        if step.changed or step.skipped or step.unchanged:
            per_chunk.append(len(queries))
        result.add(step)
    elapsed = time.perf_counter() - started

    print(f"database: {DB} ({connection.vendor})")
    print(
        f"deals selected (every status): {total:,}; "
        f"the preview said {would_change:,} change ({preview_ms:.0f} ms)"
    )
    print(
        f"bulk Lost: {result.changed:,} changed, {len(result.skipped)} skipped, "
        f"{result.unchanged} unchanged in {elapsed:.1f} s ({result.changed / elapsed:,.0f} deals/s)"
    )
    print(
        f"chunks: {len(per_chunk)} of up to {bulk.CHUNK_SIZE}; queries per chunk "
        f"(including reading the chunk's ids): min {min(per_chunk)}, max {max(per_chunk)}"
    )
    print(
        f"history rows written: {OpportunityHistory.objects.count() - history_before:,}; "
        f"events: {OpportunityEvent.objects.count() - events_before:,}"
    )
    print("goal 10,000 within 30 s:", "met" if elapsed <= 30 * max(total, 1) / 10_000 else "MISSED")
    assert not Opportunity.objects.filter(status=Status.LOST, lost_reason__isnull=True).exists()


if __name__ == "__main__":
    try:
        main()
    finally:
        if not os.environ.get("BENCH_BULK_DB"):
            # A throwaway database (set BENCH_BULK_DB to keep and reuse one).
            connection.close()
            shutil.rmtree(Path(DB).parent, ignore_errors=True)
