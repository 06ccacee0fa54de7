"""How the CSV import behaves on big files, in-process, on a throwaway SQLite database.

    .venv/bin/python scripts/bench_import.py              # 10,000 and 45,000 rows
    .venv/bin/python scripts/bench_import.py 20000        # other sizes

For each size: the time to read the file, to preview it (every row checked), and to
import it in 1,000-row chunks (total, and the longest chunk: the longest any other writer
waits for SQLite's one lock), with the SQL statements by kind. Also the time to refuse a
file one row over the 50,000-row cap. The concurrent case (notes posted through gunicorn
during a 45,000-row import) is tests/test_import_concurrency.py.
"""

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _csv(rows: int) -> str:
    """New deals only (names differ per size: no row matches an earlier run's deal)."""
    lines = ["name,contact_email,value,stage,status,lost_reason"]
    for index in range(rows):
        status = ("", "won", "", "lost")[index % 4]
        reason = "Price" if status == "lost" else ""
        name = f"Deal {rows}-{index}"
        lines.append(f"{name},c{index % 2500}@bulk.test,{index},Proposal,{status},{reason}")
    return "\n".join(lines) + "\n"


def main(sizes: list[int]) -> None:
    folder = tempfile.mkdtemp(prefix="bench-import-")
    os.environ["SQLITE_PATH"] = str(Path(folder) / "db.sqlite3")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from opportunities.services import imports
    from tests import factories

    call_command("migrate", "--no-input", verbosity=0)
    factories.pipeline_with_stages(name="Sales")
    factories.LostReasonFactory(name="Price")
    user = factories.manager(username="bench")

    chunk_times: list[float] = []
    apply_chunk = imports._apply_chunk

    def timed_chunk(*args, **kwargs):
        started = time.perf_counter()
        try:
            return apply_chunk(*args, **kwargs)
        finally:
            chunk_times.append(time.perf_counter() - started)

    imports._apply_chunk = timed_chunk

    for rows in sizes:
        text = _csv(rows)
        started = time.perf_counter()
        imports.read_rows(text)
        read = time.perf_counter() - started
        started = time.perf_counter()
        imports.import_plan(text=text, user=user)
        preview = time.perf_counter() - started
        chunk_times.clear()
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            result = imports.import_apply(text=text, user=user)
            total = time.perf_counter() - started
        kinds = Counter(q["sql"].lstrip().split(None, 1)[0].upper() for q in queries)
        print(
            f"{rows:>6,} rows ({len(text) / 1e6:.1f} MB): read {read:.2f} s, "
            f"preview {preview:.1f} s, import {total:.1f} s in {len(chunk_times)} chunks "
            f"(longest {max(chunk_times):.2f} s), created {result.created:,}; "
            f"SQL {dict(kinds)}"
        )

    over = _csv(imports.MAX_ROWS + 1)
    started = time.perf_counter()
    try:
        imports.read_rows(over)
    except imports.ImportFileError as exc:
        print(
            f"{imports.MAX_ROWS + 1:,} rows refused in {time.perf_counter() - started:.2f} s: {exc}"
        )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10_000, 45_000])
