"""Fixtures for the browser tests: roles after the flush, and a signed-in page."""

import pytest
from django.conf import settings
from django.test import Client

from tests import factories


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
