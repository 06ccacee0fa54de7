"""Shared helpers for the robustness tests (concurrency, fuzzing, access matrix, security).

Two halves:
- In the pytest process: a throwaway file database (SQLite file, or a PostgreSQL database
  created beside the test one), a gunicorn server on a free loopback port, and a tiny
  stdlib HTTP client with cookies, CSRF and the login form (no `requests` needed).
- As a command line (`python -m tests.robustness_helpers seed|client|state`), run in
  subprocesses against that database: seed the concurrency dataset, drive one client
  of random moves, and dump the final state as JSON for the test to check.
"""

import contextlib
import http.client
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery"  # tests.factories.DEFAULT_PASSWORD, without importing Django


# ---------------------------------------------------------------------------------------------
# Databases, processes, servers (pytest side)
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess running the project like production (DEBUG off)."""
    env = {
        key: value
        for key, value in os.environ.items()
        # The test DB settings and pytest's async opt-out are not the production setup.
        if key
        not in {"DATABASE_URL", "SQLITE_PATH", "DJANGO_TEST_DB_NAME", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="crm.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="robustness-" + secrets.token_hex(16),
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_PLAIN_STATIC="1",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def throwaway_database() -> Iterator[dict[str, str]]:
    """Env vars pointing at a fresh, empty database; dropped afterwards.

    With DATABASE_URL set (PostgreSQL) a new database is created on the same server;
    otherwise a temporary SQLite file is used.
    """
    url = os.environ.get("DATABASE_URL")
    if not url:
        with tempfile.TemporaryDirectory(prefix="crm-robustness-") as folder:
            yield {"SQLITE_PATH": str(Path(folder) / "db.sqlite3")}
        return

    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = f"robustness_{os.getpid()}_{secrets.token_hex(4)}"
    admin_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": urllib.parse.urlunsplit(parts._replace(path="/" + name))}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_python(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `python <args>` in the project with `env`; return stdout, fail loudly otherwise."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"`python {' '.join(args)}` failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result.stdout


def run_helper(env: dict[str, str], *args: str, timeout: float = 300):
    """Run this module's command line in a subprocess and decode its JSON answer."""
    out = run_python(env, "-m", "tests.robustness_helpers", *args, timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class Server:
    base: str
    log_path: str

    def log(self) -> str:
        """gunicorn's output (tracebacks of any 500), to attach to a failure message."""
        return Path(self.log_path).read_text(errors="replace")[-6000:]


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2, threads: int = 4) -> Iterator[Server]:
    """A gunicorn serving the project on a free loopback port."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "crm.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--graceful-timeout",
            "5",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        _wait_until_healthy(port, process, log.name)
        yield Server(base=f"http://127.0.0.1:{port}", log_path=log.name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)


def _wait_until_healthy(port: int, process: subprocess.Popen, log_path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited early:\n{Path(log_path).read_text()[-4000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)  # polling a starting server, not waiting for an event in the app
    raise AssertionError(f"gunicorn did not answer /healthz:\n{Path(log_path).read_text()[-4000:]}")


def run_clients(env: dict[str, str], server: Server, seed: dict, moves: int) -> list[dict]:
    """Start one `client` subprocess per seeded session at once; return their logs.

    Any failure kills the clients still running, so a broken server cannot leave them behind.
    """
    clients = []
    try:
        for index, session_key in enumerate(seed["sessions"].values()):
            command = [sys.executable, "-m", "tests.robustness_helpers", "client", server.base]
            command += [session_key, json.dumps(seed["pipelines"]), str(moves), str(index)]
            clients.append(
                subprocess.Popen(
                    command,
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        logs = []
        for client in clients:
            out, err = client.communicate(timeout=900)
            assert client.returncode == 0, f"client failed:\n{err[-4000:]}\n{server.log()}"
            logs.append(json.loads(out.strip().splitlines()[-1]))
        return logs
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()


# ---------------------------------------------------------------------------------------------
# A small HTTP client with cookies and CSRF (stdlib only)
# ---------------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass
class HttpSession:
    """One browser-like session over a keep-alive connection."""

    base: str
    cookies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        parts = urllib.parse.urlsplit(self.base)
        self._host, self._port = parts.hostname, parts.port
        self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)

    def request(self, method: str, path: str, data=None, headers=None) -> Response:
        body = urllib.parse.urlencode(data, doseq=True) if data is not None else None
        all_headers = {"Host": f"{self._host}:{self._port}", **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                raw = self._conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once.
                self._conn.close()
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
                if attempt:
                    raise
        content = raw.read().decode("utf-8", "replace")
        for header, value in raw.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, content)

    def get(self, path: str, headers=None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, data: dict, *, htmx: bool = True, headers=None) -> Response:
        all_headers = {"X-CSRFToken": self.cookies.get("csrftoken", ""), **(headers or {})}
        if htmx:
            all_headers["HX-Request"] = "true"
        return self.request("POST", path, data=data, headers=all_headers)

    def login(self, username: str, password: str = PASSWORD) -> None:
        page = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.body)
        assert token, f"no CSRF token on the login page ({page.status})"
        answer = self.request(
            "POST",
            "/accounts/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
        )
        assert answer.status == 302, f"login of {username} failed: {answer.status}"

    def close(self) -> None:
        self._conn.close()


class CardParser(HTMLParser):
    """Cards (elements carrying data-id, data-version, data-stage-id) in document order."""

    def __init__(self):
        super().__init__()
        self.cards: list[tuple[int, int, int]] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if {"data-id", "data-version", "data-stage-id"} <= values.keys():
            self.cards.append(
                (int(values["data-id"]), int(values["data-version"]), int(values["data-stage-id"]))
            )


def parse_cards(html: str) -> list[tuple[int, int, int]]:
    """(id, version, stage id) of every card in the HTML, in document order."""
    parser = CardParser()
    parser.feed(html)
    return parser.cards


# ---------------------------------------------------------------------------------------------
# Database snapshot (in-process, inside a test with database access)
# ---------------------------------------------------------------------------------------------


def database_snapshot() -> dict[str, list[tuple]]:
    """Every row of the tables a request could change, to compare before and after."""
    from django.contrib.auth import get_user_model

    from opportunities import models as crm
    from pipelines import models as pipelines

    tables = [
        crm.Opportunity,
        crm.OpportunityHistory,
        crm.Contact,
        crm.Note,
        crm.Task,
        crm.Communication,
        crm.LostReason,
        pipelines.Pipeline,
        pipelines.Stage,
        get_user_model(),
    ]
    return {model._meta.label: list(model.objects.order_by("pk").values_list()) for model in tables}


# ---------------------------------------------------------------------------------------------
# Subprocess commands: seed, client, state
# ---------------------------------------------------------------------------------------------

CLIENTS = 8
SEED_STAGES = ("Lead", "Qualified", "Demo", "Proposal", "Negotiation")


def _seed() -> dict:
    """Two pipelines, eight users allowed to move anything, open cards in every stage.

    Each user gets a signed-in session stored in the database (hashing a password eight
    times would cost seconds); the login page itself is exercised by the final reader.
    """
    from django.test import Client

    from opportunities.models import Opportunity
    from tests import factories

    sales, sales_stages = factories.pipeline_with_stages(SEED_STAGES, name="Sales")
    other, other_stages = factories.pipeline_with_stages(("Intake", "Review"), name="Partners")
    sessions = {}
    for index in range(CLIENTS):
        role = factories.manager if index % 2 else factories.rep_with_view_all
        user = role(username=f"mover{index}", password=None)
        if index == 0:
            user.set_password(PASSWORD)
            user.save(update_fields=["password"])
        browser = Client()
        browser.force_login(user)
        sessions[user.username] = browser.cookies["sessionid"].value
    # Few cards per column: contention is the point, and every answer re-renders cards.
    for index in range(20):
        factories.OpportunityFactory(stage=sales_stages[index % len(sales_stages)])
    for index in range(6):
        factories.OpportunityFactory(stage=other_stages[index % len(other_stages)])
    return {
        "sessions": sessions,
        "reader": "mover0",
        "opportunities": {
            str(pk): {"pipeline": pipeline, "stage": stage}
            for pk, pipeline, stage in Opportunity.objects.values_list("pk", "pipeline", "stage")
        },
        "pipelines": {
            str(pipeline.pk): [stage.pk for stage in stages]
            for pipeline, stages in ((sales, sales_stages), (other, other_stages))
        },
    }


def _state() -> dict:
    """Everything the concurrency test checks afterwards, as plain JSON."""
    from opportunities import ranking
    from opportunities.models import Opportunity, OpportunityHistory
    from pipelines.models import Stage

    stage_pipeline = dict(Stage.objects.values_list("pk", "pipeline_id"))
    opportunities = list(
        Opportunity.objects.order_by("pk").values(
            "pk", "pipeline_id", "stage_id", "rank", "version"
        )
    )
    bad_keys = []
    for row in opportunities:
        try:
            ranking.validate_key(row["rank"])
        except ranking.InvalidKey:
            bad_keys.append(row["pk"])
    columns = {}
    for stage_id in stage_pipeline:
        column = Opportunity.objects.filter(stage_id=stage_id)
        columns[str(stage_id)] = {
            "by_rank_id": list(column.order_by("rank", "id").values_list("pk", flat=True)),
            "by_rank_desc_id": list(column.order_by("rank", "-id").values_list("pk", flat=True)),
        }
    history = list(
        OpportunityHistory.objects.order_by("pk").values(
            "opportunity_id", "from_stage_id", "to_stage_id", "from_status", "to_status"
        )
    )
    return {
        "stage_pipeline": {str(k): v for k, v in stage_pipeline.items()},
        "opportunities": opportunities,
        "bad_keys": bad_keys,
        "columns": columns,
        "history": history,
    }


def _client(base: str, session_key: str, pipelines: dict, moves: int, seed: int) -> dict:
    """Random drags and menu moves by one user; a share of them deliberately stale.

    The client knows only what the server told it (the board, then every answer), like a
    browser. Every request and its answer is reported so the test can account for each
    applied move.
    """
    rng = random.Random(seed)
    session = HttpSession(base, cookies={"sessionid": session_key})
    stage_pipeline = {stage: int(p) for p, stages in pipelines.items() for stage in stages}
    known: dict[int, tuple[int, int]] = {}  # id -> (version, stage), newest seen

    def learn(html: str) -> None:
        for pk, version, stage in parse_cards(html):
            if pk not in known or version >= known[pk][0]:
                known[pk] = (version, stage)

    for pipeline_id in pipelines:
        page = session.get(f"/pipelines/{pipeline_id}/board/")
        assert page.status == 200, page.status
        learn(page.body)

    log = []
    for _ in range(moves):
        pk = rng.choice(sorted(known))
        version, stage = known[pk]
        stages = pipelines[str(stage_pipeline[stage])]
        kind = rng.choices(["fresh", "stale", "foreign"], weights=[80, 15, 5])[0]
        if kind == "stale" and version < 2:
            kind = "fresh"
        sent_version = rng.randint(1, version - 1) if kind == "stale" else version
        if kind == "foreign":
            foreign = [s for s in stage_pipeline if stage_pipeline[s] != stage_pipeline[stage]]
            to_stage = rng.choice(foreign)
        else:
            to_stage = rng.choice(stages)
        data = {"stage": to_stage, "version": sent_version, "from_stage": stage}
        if rng.random() < 0.2:
            data["via"] = "menu"
        else:
            neighbours = [other for other, (_, s) in known.items() if s == to_stage and other != pk]
            if neighbours and rng.random() < 0.8:
                data["before"] = rng.choice(neighbours)
            if neighbours and rng.random() < 0.5:
                data["after"] = rng.choice(neighbours)
        answer = session.post(f"/opportunities/{pk}/move/", data)
        log.append(
            {
                "pk": pk,
                "kind": kind,
                "sent_version": sent_version,
                "from_stage": stage,
                "to_stage": to_stage,
                "status": answer.status,
                "body": answer.body[:300] if answer.status >= 400 and answer.status != 409 else "",
            }
        )
        if answer.status == 200:
            known[pk] = (sent_version + 1, to_stage)
        learn(answer.body)
        if answer.status == 409 and known[pk][0] <= sent_version and kind != "stale":
            # The card was not in the re-rendered columns: ask for it, as a reload would.
            card = session.get(f"/opportunities/{pk}/card/", headers={"HX-Request": "true"})
            learn(card.body)
    session.close()
    return {"log": log}


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "client":
        base, session_key, pipelines, moves, seed = argv[1:6]
        print(json.dumps(_client(base, session_key, json.loads(pipelines), int(moves), int(seed))))
        return

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    django.setup()
    if command == "seed":
        print(json.dumps(_seed()))
    elif command == "state":
        print(json.dumps(_state()))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
