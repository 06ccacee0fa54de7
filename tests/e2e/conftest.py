"""Fixtures for the browser tests: roles after the flush, and a signed-in page."""

import threading

import pytest
from django.conf import settings
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connection
from django.test import Client
from django.test.testcases import LiveServerThread

from tests import factories


class OneRequestAtATime(ThreadedWSGIServer):
    """The live server, answering its requests one at a time.

    On SQLite the tests' database is in memory, so the live server's threads share the
    test thread's one connection, and two requests at once (a record page loads its
    panels together) can meet inside it: SQLite answers "bad parameter or other API
    misuse" and the page shows an error. Each request runs to its last byte under one
    lock instead.
    """

    def set_app(self, application):
        one_at_a_time = threading.Lock()

        def serial(environ, start_response):
            with one_at_a_time:
                answer = application(environ, start_response)
                try:
                    return list(answer)
                finally:
                    if hasattr(answer, "close"):
                        answer.close()

        super().set_app(serial)


@pytest.fixture(scope="session", autouse=True)
def _live_server_one_request_at_a_time():
    if connection.vendor != "sqlite":  # PostgreSQL: a connection per thread
        yield
        return
    LiveServerThread.server_class = OneRequestAtATime
    yield
    LiveServerThread.server_class = ThreadedWSGIServer


@pytest.fixture
def roles(transactional_db):
    # Transactional tests flush every table, including the groups migration 0003 made.
    factories.ensure_roles()


@pytest.fixture
def login_as(page, live_server, roles):
    """`login_as(user)` gives the page a session of `user` (the login form has its own tests)."""

    def sign_in_as(user):
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
        )
        return page

    return sign_in_as
