"""The REST API's and webhooks' goals (issue 12), measured in one run.

    .venv/bin/python scripts/bench_api.py           # search at N = 100,000 (seeds once)
    .venv/bin/python scripts/bench_api.py --quick   # search at N = 10,000
    .venv/bin/python scripts/bench_api.py --search-only [--quick]   # part 1 only

1. In process (Django's test client, a manager's token): `GET /api/v1/opportunities/search`
   of 100 opportunities at N: SQL queries and median time, repeated (answered from the
   search cache, nothing changed) and first (cache emptied before each request), each
   against the board of the Sales pipeline at the same N (goal: ≤ 4 queries for the
   search, ≤ 2× the board's time) served both ways: rendered (page cache emptied first)
   and from its page cache (a reload with nothing changed).
2. The real thing on 127.0.0.1: gunicorn, `db_worker` and `pump_events` on a copy of the
   N = 100 database, and a webhook receiver in this process. Stage changes made through
   the API, one at a time: time until the receiver has the signed delivery (goal: median
   ≤ 2 s). Then 1,000 events (value changes of 50 deals) while the receiver fails the
   first attempt of every other message: all delivered, in order per deal, none lost.

Seeded databases come from scripts/bench.py (`bench/`), so both scripts share them.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench  # noqa: E402  (scripts/bench.py: seeding and environment)

PORT = int(os.environ.get("BENCH_API_PORT", "8106"))


# --- 1. search vs board, in process (`bench_api.py measure N`) ---------------------------


def measure(n: int, repeat: int = 15) -> dict:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import caches
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from integrations.tokens import api_token_create
    from pipelines.models import Pipeline

    manager = get_user_model().objects.get(username="manager")
    _, token = api_token_create(user=manager, name="bench")
    api = Client(headers={"Authorization": f"Bearer {token}"})
    browser = Client()
    browser.force_login(manager)
    sales = Pipeline.objects.get(name="Sales")
    board = f"/pipelines/{sales.pk}/board/"
    search = f"/api/v1/opportunities/search?limit=100&pipeline_id={sales.pk}"

    def timed(client, url, before=lambda: None):
        """Median wall and CPU (this process: SQLite runs in it) milliseconds."""
        times, cpu = [], []
        for _ in range(repeat):
            before()
            started, started_cpu = time.perf_counter(), time.process_time()
            answer = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert answer.status_code == 200, (url, answer.status_code)
        return statistics.median(times), statistics.median(cpu)

    def counted(before=lambda: None) -> tuple[int, int, int]:
        """(search queries, all queries, opportunities) of one search request."""
        before()
        with CaptureQueriesContext(connection) as queries:
            rows = api.get(search).json()["opportunities"]
        # The token lookup and the user's permissions are the same for every API call.
        own = sum(
            1
            for query in queries.captured_queries
            if "integrations_apitoken" not in query["sql"]
            and '"auth_permission"."codename"' not in query["sql"]
        )
        # Read now: a later request's query guard resets the connection's query log.
        return own, len(queries.captured_queries), len(rows)

    api.get(search)  # warm: last-used time, permissions
    first_queries, first_total, rows = counted(caches["default"].clear)
    cached_queries, cached_total, _ = counted()
    # The first search: the cache emptied before each request (answer and total computed).
    first_ms, first_cpu_ms = timed(api, search, before=caches["default"].clear)
    # The repeated search, nothing changed since: from the answer cache.
    api.get(search)
    search_ms, search_cpu_ms = timed(api, search)
    # The board as a browser usually gets it (from the page cache, unchanged since the
    # last visit), and rendered: the cache emptied before each request.
    browser.get(board)
    cached_ms, cached_cpu_ms = timed(browser, board)
    rendered_ms, rendered_cpu_ms = timed(browser, board, before=caches["default"].clear)
    return {
        "n": n,
        "rows": rows,
        "cached_queries": cached_queries,
        "cached_queries_total": cached_total,
        "cached_ms": search_ms,
        "cached_cpu_ms": search_cpu_ms,
        "first_queries": first_queries,
        "first_queries_total": first_total,
        "first_ms": first_ms,
        "first_cpu_ms": first_cpu_ms,
        "board_cached_ms": cached_ms,
        "board_cached_cpu_ms": cached_cpu_ms,
        "board_rendered_ms": rendered_ms,
        "board_rendered_cpu_ms": rendered_cpu_ms,
    }


# --- 2. webhooks through real processes ---------------------------------------------------


class Receiver:
    """Counts deliveries; with `flaky`, the first attempt of every other message is a 500."""

    def __init__(self):
        self.lock = threading.Lock()
        self.flaky = False
        self.seen_ids: set[str] = set()
        self.delivered: list[dict] = []  # successful deliveries, in arrival order
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                message_id = self.headers["webhook-id"]
                with receiver.lock:
                    receiver.attempts += 1
                    first = message_id not in receiver.seen_ids
                    receiver.seen_ids.add(message_id)
                    fail = receiver.flaky and first and int(body["eventId"]) % 2 == 0
                    if not fail:
                        receiver.delivered.append({**body, "received": time.monotonic()})
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def count(self, predicate=lambda message: True) -> int:
        with self.lock:
            return sum(1 for message in self.delivered if predicate(message))


SETUP = """
import json
from django.contrib.auth import get_user_model
from integrations.tokens import api_token_create
from integrations.webhooks import EVENT_TYPES, subscription_create
from opportunities.models import Opportunity
from pipelines.models import Pipeline
manager = get_user_model().objects.get(username="admin")
sales = Pipeline.objects.get(name="Sales")
stages = list(sales.stages.order_by("position", "id").values_list("pk", flat=True))
subscription_create(user=manager, url=URL, event_types=EVENT_TYPES)
open_deals = Opportunity.objects.filter(pipeline=sales, status="open")
deals = list(open_deals.values_list("pk", flat=True)[:50])
token = api_token_create(user=manager, name="bench")[1]
print(json.dumps({"token": token, "stages": stages, "deals": deals}))
"""

BURST = """
from django.contrib.auth import get_user_model
from opportunities.models import Opportunity
from opportunities.services.opportunities import opportunity_update
admin = get_user_model().objects.get(username="admin")
for round in range(20):
    for deal in Opportunity.objects.filter(pk__in=DEALS):
        opportunity_update(opportunity=deal, user=admin, value=deal.value + 1)
"""


def _api_put(token: str, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v1{path}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status


def _api_get(token: str, path: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def webhooks(folder: Path) -> dict:
    receiver = Receiver()
    db = bench.working_copy(100, folder)
    env = bench._env(
        db,
        WEBHOOKS_ALLOW_PRIVATE="1",
        WEBHOOKS_FIRST_RETRY="0.5",
        API_RATE_LIMIT="100000",
    )
    python = sys.executable
    bench._run([python, "manage.py", "migrate", "--no-input", "-v0"], env)
    shell = SETUP.replace("URL", repr(receiver.url))
    setup = json.loads(
        bench._run([python, "manage.py", "shell", "-c", shell], env).splitlines()[-1]
    )
    log = open(folder / "processes.log", "w")  # noqa: SIM115 - closed below
    processes = [
        subprocess.Popen(
            [python, "-m", "gunicorn", "crm.wsgi", "--bind", f"127.0.0.1:{PORT}", "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen(
            [python, "manage.py", "db_worker", "--no-reload", "--interval", "0.1"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen(
            [python, "manage.py", "pump_events", "--interval", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        ),
    ]
    try:
        bench._wait_for(PORT, processes[0], folder / "processes.log")
        token, stages, deals = setup["token"], setup["stages"], setup["deals"]
        for deal in deals[:4]:  # warm both gunicorn workers (imports, schema building)
            _api_put(token, f"/opportunities/{deal}", {"source": "Bench"})
        _wait(lambda: receiver.count() >= 4, 60)
        latencies = []
        for number in range(20):
            before = receiver.count(lambda m: m["type"] == "OpportunityStageUpdate")
            started = time.monotonic()
            current = _api_get(token, f"/opportunities/{deals[number]}")["opportunity"]
            stage = next(s for s in stages if str(s) != current["pipelineStageId"])
            _api_put(token, f"/opportunities/{deals[number]}", {"pipelineStageId": str(stage)})
            arrived = _wait(
                lambda before=before: (
                    receiver.count(lambda m: m["type"] == "OpportunityStageUpdate") > before
                ),
                30,
            )
            latencies.append(time.monotonic() - started if arrived else float("inf"))

        receiver.flaky = True
        already = receiver.count()
        burst_started = time.monotonic()
        bench._run([python, "manage.py", "shell", "-c", BURST.replace("DEALS", repr(deals))], env)
        _wait(lambda: receiver.count() - already >= 1000, 300)
        burst = receiver.delivered[already:]
        ids = [int(message["eventId"]) for message in burst]
        by_deal: dict[str, list[int]] = {}
        for message in burst:
            by_deal.setdefault(message["data"]["id"], []).append(int(message["eventId"]))
        in_order = all(events == sorted(events) for events in by_deal.values())
        return {
            "latency_median_s": statistics.median(latencies),
            "latency_max_s": max(latencies),
            "burst_delivered": len(set(ids)),
            "burst_duplicates": len(ids) - len(set(ids)),
            "burst_in_order": in_order,
            "burst_seconds": time.monotonic() - burst_started,
            "attempts": receiver.attempts,
        }
    except Exception:
        log.flush()
        print((folder / "processes.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        log.close()
        receiver.server.shutdown()


def search_lines(search: dict, n: int) -> str:
    """The search, repeated (from its cache) and first (cache emptied), each against the
    board at the same N both ways the board is served."""
    lines = []
    for label, prefix in (
        ("repeated search (from the answer cache)", "cached"),
        ("first search (cache emptied before each)", "first"),
    ):
        queries = search[f"{prefix}_queries"]
        ok_queries = queries <= 4
        lines.append(
            f"  {label}, {search['rows']} of N = {n:,}: {queries} queries "
            f"(+{search[f'{prefix}_queries_total'] - queries} for the token and "
            f"permissions; goal ≤ 4) {bench.verdict(ok_queries)}; "
            f"{search[f'{prefix}_ms']:.1f} ms ({search[f'{prefix}_cpu_ms']:.1f} ms CPU)"
        )
        for board_label, key in (
            ("the board rendered (page cache emptied first)", "board_rendered"),
            ("the board from its page cache (what a reload gets)", "board_cached"),
        ):
            ratio = search[f"{prefix}_ms"] / search[f"{key}_ms"]
            cpu_ratio = search[f"{prefix}_cpu_ms"] / search[f"{key}_cpu_ms"]
            lines.append(
                f"    vs {board_label}: {search[f'{key}_ms']:.1f} ms "
                f"({search[f'{key}_cpu_ms']:.1f} ms CPU) = {ratio:.2f}× "
                f"(CPU {cpu_ratio:.2f}×; goal ≤ 2×) {bench.verdict(ok_queries and ratio <= 2)}"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["measure"]:
        print(json.dumps(measure(int(argv[1]))))
        return
    if "--search-only" in argv:  # part 1 alone: no gunicorn, worker or receiver
        n = 10_000 if "--quick" in argv else 100_000
        with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
            db = bench.working_copy(n, Path(folder))
            out = bench._run([sys.executable, __file__, "measure", str(n)], bench._env(db))
        print(f"API search, {time.strftime('%Y-%m-%d')}, {bench.machine()}")
        print(search_lines(json.loads(out.strip().splitlines()[-1]), n))
        return
    n = 10_000 if "--quick" in argv else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        db = bench.working_copy(n, Path(folder))
        search = json.loads(
            bench._run([sys.executable, __file__, "measure", str(n)], bench._env(db))
            .strip()
            .splitlines()[-1]
        )
        hooks = webhooks(Path(folder))
    print(f"API and webhooks, {time.strftime('%Y-%m-%d')}, {bench.machine()}")
    print(search_lines(search, n))
    print(
        f"  API stage change → receiver: median {hooks['latency_median_s']:.2f} s, max "
        f"{hooks['latency_max_s']:.2f} s (goal median ≤ 2 s) "
        f"{bench.verdict(hooks['latency_median_s'] <= 2)}"
    )
    lost = 1000 - hooks["burst_delivered"]
    print(
        f"  1,000 events, half the first attempts failing: {hooks['burst_delivered']} delivered"
        f" in {hooks['burst_seconds']:.1f} s, {lost} lost, in order per deal: "
        f"{hooks['burst_in_order']}, {hooks['attempts']} attempts in all "
        f"{bench.verdict(lost == 0 and hooks['burst_in_order'])}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
