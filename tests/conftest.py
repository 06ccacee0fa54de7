import os
import shutil

import pytest

# Playwright's sync API runs an event loop in the test thread; Django's live_server
# and ORM calls from the test are still synchronous and safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _plain_static_and_no_lockout(settings):
    # live_server serves static files by their plain names; the manifest is for production.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.AXES_ENABLED = False
    # Factories hash a password per user; PBKDF2's deliberate slowness buys tests nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _roles_exist(request):
    """Tests that use the database find the groups of migration 0003.

    A transactional test (live_server, browser tests) flushes every table when it ends,
    and the flush does not bring back rows made by a data migration; any later test on
    the same worker would then see reps without permissions.
    """
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
    } & set(request.fixturenames)
    if not uses_db:
        return
    request.getfixturevalue("db")
    from django.contrib.auth.models import Group

    from tests import factories

    if Group.objects.filter(name__in=["Sales rep", "Sales manager"]).count() < 2:
        factories.ensure_roles()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(executable):
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package.")
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }
