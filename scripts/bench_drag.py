"""The drag against the signed-in hello, in process: where a drag's time goes, quickly.

`make bench` gives the goal's figure (gunicorn + wrk, ratios of requests/s), but one
10 s wrk run moves by ±30% on a shared machine. This times the same two requests through
Django's WSGI handler (full middleware, CSRF checked, as gunicorn calls it) at N = 10,000,
in alternating blocks so that a slow spell of the machine hits both, and prints the
median of each and of their ratio (hello / drag: the share of the ceiling a drag would
reach if both were bound by CPU alone).

Every drag moves a card into the next column (an UPDATE, a history row and an event). The
requests run on two threads taking turns, so two connections: as under load, every drag
finds its connection's page cache emptied by the other's last commit.

    .venv/bin/python scripts/bench_drag.py [--rounds R] [--block B]
"""

import io
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench  # noqa: E402 - the seeded database and its environment


def _option(argv: list[str], name: str, default: int) -> int:
    return int(argv[argv.index(name) + 1]) if name in argv else default


def measure(rounds: int, block: int) -> dict:
    info = bench.session(50)  # sets Django up: a manager's session and the top cards
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    token = info["csrftoken"]
    cookie = f"sessionid={info['sessionid']}; csrftoken={token}"
    stages = info["stages"]
    versions = {pk: version for pk, version, _stage in info["cards"]}
    stage_of = {pk: stage for pk, _version, stage in info["cards"]}
    cards = list(versions)

    def call(method: str, path: str, body: bytes = b"") -> dict:
        answer = {}
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_COOKIE": cookie,
            "HTTP_X_CSRFTOKEN": token,
            "HTTP_HX_REQUEST": "true",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        chunks = app(environ, lambda status, headers: answer.update(status=status, **dict(headers)))
        b"".join(chunks)
        chunks.close()
        if not answer["status"].startswith("200"):
            sys.exit(f"{method} {path} answered {answer['status']}")
        return answer

    def drag(i: int) -> None:
        """Card i into the next column: every drag changes the stage (three writes)."""
        card = cards[i % len(cards)]
        to = stages[(stages.index(stage_of[card]) + 1) % len(stages)]
        body = f"stage={to}&version={versions[card]}".encode()
        versions[card] = int(call("POST", f"/opportunities/{card}/move/", body)["X-Card-Version"])
        stage_of[card] = to

    def hello(i: int) -> None:
        call("GET", "/bench/hello-signed-in/")

    # Two threads, one request at a time: each has its own connection.
    inboxes, outbox = [queue.Queue(), queue.Queue()], queue.Queue()

    def serve(inbox: queue.Queue) -> None:
        while (job := inbox.get()) is not None:
            started = time.perf_counter()
            job[0](job[1])
            outbox.put(time.perf_counter() - started)

    threads = [threading.Thread(target=serve, args=(inbox,)) for inbox in inboxes]
    for thread in threads:
        thread.start()

    def timed(request, count: int, first: int) -> float:
        """Mean ms per request over `count` requests, the threads taking turns."""
        total = 0.0
        for i in range(first, first + count):
            inboxes[i % 2].put((request, i))
            total += outbox.get()
        return total / count * 1000

    try:
        timed(drag, 100, 0)  # warm both connections, the compiled reads, the caches
        timed(hello, 100, 0)
        drags, hellos = [], []
        for r in range(rounds):
            drags.append(timed(drag, block, (r + 1) * block))
            hellos.append(timed(hello, block, 0))
    finally:
        for inbox in inboxes:
            inbox.put(None)
    ratios = [h / d for h, d in zip(hellos, drags, strict=True)]
    return {
        "drag_ms": round(statistics.median(drags), 3),
        "hello_ms": round(statistics.median(hellos), 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "rounds": rounds,
        "block": block,
    }


def main(argv: list[str]) -> None:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return
    rounds, block = _option(argv, "--rounds", 10), _option(argv, "--block", 200)
    if argv and argv[0] == "measure":
        print(json.dumps(measure(rounds, block)))
        return
    with tempfile.TemporaryDirectory(prefix="crm-bench-drag-") as folder:
        db = bench.working_copy(10_000, Path(folder))
        env = bench._env(db, DJANGO_SETTINGS_MODULE="bench_settings")
        args = [sys.executable, __file__, "measure", "--rounds", str(rounds), "--block", str(block)]
        result = json.loads(bench._run(args, env).strip().splitlines()[-1])
    print(f"N = 10,000, {rounds} rounds of {block} drags and {block} signed-in hellos, in process:")
    print(f"  drag             {result['drag_ms']:.3f} ms (median of the rounds' means)")
    print(f"  signed-in hello  {result['hello_ms']:.3f} ms")
    print(
        f"  hello / drag     {result['ratio']:.1%} (rounds from {result['ratio_min']:.1%}"
        f" to {result['ratio_max']:.1%}); the goal under wrk: ≥ 30%"
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
    main(sys.argv[1:])
