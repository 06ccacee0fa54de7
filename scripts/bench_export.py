"""Measure the streamed CSV export: time, rows, and memory while streaming.

    SQLITE_PATH=/tmp/bench.sqlite3 .venv/bin/python manage.py seed_demo --opportunities 100000
    SQLITE_PATH=/tmp/bench.sqlite3 .venv/bin/python scripts/bench_export.py [--trace]

Prints the export's wall and CPU time, its size and the process's peak RSS; with --trace,
also the peak of Python allocations while streaming (tracemalloc, which slows the run), so
"flat memory" is a number, not a claim.
"""

import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
os.environ.setdefault("AXES_ENABLED", "0")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from opportunities.models import Opportunity  # noqa: E402


def main() -> None:
    trace = "--trace" in sys.argv
    names = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    username = names[0] if names else "manager"
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    total = Opportunity.objects.count()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.get("/opportunities/export.csv", HTTP_HOST="127.0.0.1")
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"opportunities in database: {total:,}")
    print(
        f"exported rows: {lines - 1:,} ({size / 1e6:.1f} MB) in {elapsed:.2f} s "
        f"({cpu:.2f} s CPU in this process)"
    )
    if trace:
        print(f"peak Python allocations while streaming: {peak / 1e6:.1f} MB")
    print(f"peak RSS: {rss_before / 1024:.0f} MB before, {rss_after / 1024:.0f} MB after")


if __name__ == "__main__":
    main()
