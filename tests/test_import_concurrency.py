"""A 45,000-row import through gunicorn while others post notes: nobody gets a 5xx.

The import runs as a browser would drive it (upload, preview, confirm, then the progress
page's steps); meanwhile three other managers post notes as fast as they can. Each chunk
of the import is its own short transaction, so the notes wait for one chunk at most.
"""

import http.client
import re
import threading
import time
import urllib.parse
import uuid

import pytest

from tests import robustness_helpers as rh

pytestmark = [pytest.mark.slow, pytest.mark.load, pytest.mark.xdist_group("concurrency")]

ROWS = 45_000
BASELINE_SECONDS = 10
NOTE_POSTERS = ("mover3", "mover5", "mover7")


def _multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = "".join(parts).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _upload(session: rh.HttpSession, path: str, content: bytes) -> rh.Response:
    token = session.cookies["csrftoken"]
    body, content_type = _multipart(
        {"step": "preview", "csrfmiddlewaretoken": token}, "big.csv", content
    )
    parts = urllib.parse.urlsplit(session.base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Content-Type": content_type, "Cookie": cookies, "X-CSRFToken": token},
    )
    raw = conn.getresponse()
    response = rh.Response(raw.status, dict(raw.getheaders()), raw.read().decode())
    conn.close()
    return response


def _session(base: str, session_key: str) -> rh.HttpSession:
    session = rh.HttpSession(base)
    session.cookies["sessionid"] = session_key
    session.get("/opportunities/import/")  # sets the CSRF cookie
    return session


def _post_notes(base, session_key, pks, stop: threading.Event, logs: dict) -> None:
    """Post notes until stopped, into logs["current"] (the baseline, then the import's)."""
    session = _session(base, session_key)
    index = 0
    while not stop.is_set():
        pk = pks[index % len(pks)]
        log = logs["current"]
        started = time.monotonic()
        response = session.post(f"/opportunities/{pk}/notes/", {"body": f"Note {index}"})
        log.append((response.status, time.monotonic() - started))
        index += 1
    session.close()


@pytest.fixture(scope="module")
def run():
    content = ("name,value\n" + "".join(f"Bulk {i},{i}\n" for i in range(ROWS))).encode()
    with rh.throwaway_database() as database:
        env = rh.base_env(**database)
        rh.run_python(env, "manage.py", "migrate", "--no-input", "-v0")
        seed = rh.run_helper(env, "seed")
        pks = [int(pk) for pk in seed["opportunities"]][:10]
        with rh.gunicorn(env, workers=2, threads=4) as server:
            importer = _session(server.base, seed["sessions"]["mover1"])
            # The preview and the confirm check all 45,000 rows: on a busy machine that can
            # take longer than the helper's 60 s read timeout.
            importer._conn.timeout = 600
            if importer._conn.sock is not None:
                importer._conn.sock.settimeout(600)
            stop, baseline, notes = threading.Event(), [], []
            logs = {"current": baseline}
            posters = [
                threading.Thread(
                    target=_post_notes,
                    args=(server.base, seed["sessions"][name], pks, stop, logs),
                )
                for name in NOTE_POSTERS
            ]
            for poster in posters:
                poster.start()
            # The same posts without an import first: the machine's own pace (shared cores).
            stop.wait(BASELINE_SECONDS)
            logs["current"] = notes
            steps, started = [], time.monotonic()
            try:
                preview = _upload(importer, "/opportunities/import/", content)
                assert preview.status == 200, preview.body[-2000:]
                token = re.search(r'name="token" value="([^"]+)"', preview.body)[1]
                fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', preview.body)[1]
                confirm = importer.post(
                    "/opportunities/import/",
                    {"step": "confirm", "token": token, "fingerprint": fingerprint},
                    htmx=False,
                )
                steps.append(confirm.status)
                progress = confirm.headers.get("location", "")
                while "/import/" in progress:
                    step = importer.post(progress, {})
                    steps.append(step.status)
                    if step.status != 200 or "hx-trigger" not in step.body:
                        break
            finally:
                stop.set()
                for poster in posters:
                    poster.join()
            elapsed = time.monotonic() - started
            log = server.log()
        count = rh.run_python(
            env,
            "manage.py",
            "shell",
            "-c",
            "from opportunities.models import Opportunity as O; print(O.objects.count())",
        )
    return {
        "baseline": baseline,
        "notes": notes,
        "steps": steps,
        "elapsed": elapsed,
        "log": log,
        "count": int(count.split()[-1]),
    }


def test_no_note_post_got_a_server_error_during_the_import(run):
    statuses = [status for status, _ in run["notes"]]
    assert len(statuses) > 20, statuses
    errors = [status for status in statuses if status >= 500]
    assert not errors, f"{len(errors)} of {len(statuses)} notes failed\n{run['log']}"


def test_note_posts_waited_seconds_at_most(run):
    def summary(log):
        waits = sorted(seconds for _, seconds in log)
        return len(waits), waits[len(waits) // 2], waits[len(waits) * 99 // 100], waits[-1]

    base, during = summary(run["baseline"]), summary(run["notes"])
    for label, (count, median, p99, slowest) in (("alone", base), ("during import", during)):
        print(
            f"notes {label}: {count}, median {median:.2f} s, p99 {p99:.2f} s, "
            f"slowest {slowest:.2f} s"
        )
    print(f"import {run['elapsed']:.0f} s in {len(run['steps'])} requests")
    # A chunk holds SQLite's lock for a moment: notes wait a second or two more than they
    # do anyway (measured +1.5 s at p99 with the machine's load average at 15, +3.6 s at
    # 20); far below the 20 s busy timeout after which SQLite answers "database is locked".
    assert during[2] < base[2] + 5 and during[3] < 15, (base, during)


def test_the_import_went_to_its_end_in_steps(run):
    assert run["steps"][0] == 302 and set(run["steps"][1:]) == {200}, run["steps"]
    assert len(run["steps"]) > 3
    assert run["count"] == 26 + ROWS
