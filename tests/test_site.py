"""Site-wide behaviour: health check, sign-in wall, production settings, SQLite mode."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

PROJECT = Path(settings.BASE_DIR)


def without_test_only_variables(environ):
    # tests/conftest.py sets this for Playwright; a real deployment never has it.
    return {key: value for key, value in environ.items() if key != "DJANGO_ALLOW_ASYNC_UNSAFE"}


def test_healthz_answers_without_login_after_a_database_round_trip(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert any("SELECT 1" in query["sql"] for query in queries.captured_queries)


def test_healthz_is_not_cached(client):
    assert "no-cache" in client.get("/healthz")["Cache-Control"]


@pytest.mark.parametrize("path", ["/", "/board", "/accounts/password_change/"])
def test_anonymous_user_is_redirected_to_login(client, path):
    if path == "/board":
        pipeline, _ = factories.pipeline_with_stages()
        path = reverse("opportunities:board", args=[pipeline.pk])
    response = client.get(path)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")


def test_anonymous_admin_redirects_to_admin_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_login_page_renders_the_form(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert 'name="csrfmiddlewaretoken"' in html


def test_login_with_demo_style_credentials_reaches_the_app(client):
    factories.rep(username="riley")
    response = client.post(
        reverse("login"), {"username": "riley", "password": factories.DEFAULT_PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == reverse("home")


def test_responses_carry_a_strict_content_security_policy(client):
    policy = client.get(reverse("login"))["Content-Security-Policy"]
    assert "script-src 'self' 'nonce-" in policy
    assert "unsafe-inline" not in policy


def test_check_deploy_with_production_settings_reports_no_issues():
    env = {
        **without_test_only_variables(os.environ),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="WAL and the busy timeout are SQLite properties",
)
def test_sqlite_file_database_runs_in_wal_mode_with_busy_timeout(tmp_path):
    # The test database is in memory (no WAL there), so open a file with the same settings.
    settings_dict = {**connection.settings_dict, "NAME": str(tmp_path / "wal.sqlite3")}
    wrapper = SQLiteWrapper(settings_dict, alias="wal_check")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
            cursor.execute("PRAGMA busy_timeout")
            assert cursor.fetchone()[0] >= 5000
            cursor.execute("PRAGMA foreign_keys")
            assert cursor.fetchone()[0] == 1
    finally:
        wrapper.close()
