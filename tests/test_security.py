"""Security headers, CSP, production cookie/HSTS settings and login brute-force protection,
asserted on real responses."""

import json
import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from crm.client_ip import client_ip
from tests import factories
from tests import robustness_helpers as rh

pytestmark = pytest.mark.django_db

FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def board_response(client):
    pipeline, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0], name="Globex expansion")
    client.force_login(factories.manager())
    response = client.get(reverse("opportunities:board", args=[pipeline.pk]))
    assert response.status_code == 200
    return response


@pytest.fixture
def login_response(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    return response


def _csp(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.parametrize("page", ["board_response", "login_response"])
def test_csp_allows_only_own_scripts_and_styles_without_unsafe_inline(page, request):
    response = request.getfixturevalue(page)
    csp = _csp(response)
    header = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header
    assert csp["default-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert any(re.fullmatch(r"'nonce-[\w+/=-]+'", source) for source in csp["script-src"])


@pytest.mark.parametrize("page", ["board_response", "login_response"])
def test_every_script_tag_carries_the_response_nonce(page, request):
    response = request.getfixturevalue(page)
    (nonce,) = [s[7:-1] for s in _csp(response)["script-src"] if s.startswith("'nonce-")]
    scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
    assert scripts
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag, tag


@pytest.mark.parametrize("page", ["board_response", "login_response"])
def test_html_has_no_inline_styles_or_event_handlers(page, request):
    html = request.getfixturevalue(page).content.decode()
    assert not re.search(r"<[^>]*\sstyle=", html)
    assert not re.search(r"<[^>]*\son[a-z]+=", html)


@pytest.mark.parametrize("page", ["board_response", "login_response"])
def test_security_headers_are_set(page, request):
    headers = request.getfixturevalue(page).headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_htmx_error_answers_carry_the_security_headers_too(client):
    client.force_login(factories.manager())
    response = client.post(
        reverse("opportunities:move", args=[10**9]), {"stage": "x"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 404
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers


# --- production settings, in a subprocess so crm/settings.py reads DJANGO_DEBUG=0 -------------

PRODUCTION_PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.test import Client

client = Client(HTTP_HOST="localhost")
secure = client.get("/accounts/login/", secure=True)
plain = client.get("/accounts/login/")
csrf = secure.cookies["csrftoken"]
print(json.dumps({
    "hsts": secure.headers.get("Strict-Transport-Security", ""),
    "secure_status": secure.status_code,
    "plain_status": plain.status_code,
    "plain_location": plain.headers.get("Location", ""),
    "csrf_cookie_secure": bool(csrf["secure"]),
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY,
    "csrf_setting_secure": settings.CSRF_COOKIE_SECURE,
    "debug": settings.DEBUG,
}))
"""


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    env = rh.base_env(
        SQLITE_PATH=str(tmp_path_factory.mktemp("prod") / "db.sqlite3"),
        DJANGO_SECURE_SSL_REDIRECT="1",
        DJANGO_SECRET_KEY="prod-" + "k3y" * 20,
    )
    # base_env keeps plain static storage: the manifest needs a collectstatic run first.
    return env, json.loads(rh.run_python(env, "-c", PRODUCTION_PROBE).strip().splitlines()[-1])


def test_production_sends_hsts_with_subdomains_and_preload(production):
    _, probe = production
    assert probe["debug"] is False
    assert probe["secure_status"] == 200
    max_age = re.search(r"max-age=(\d+)", probe["hsts"])
    assert max_age and int(max_age[1]) >= 31536000
    assert "includeSubDomains" in probe["hsts"]
    assert "preload" in probe["hsts"]


def test_production_redirects_plain_http_to_https(production):
    _, probe = production
    assert probe["plain_status"] == 301
    assert probe["plain_location"].startswith("https://")


def test_production_cookies_are_secure(production):
    _, probe = production
    assert probe["csrf_cookie_secure"] is True
    assert probe["csrf_setting_secure"] is True
    assert probe["session_cookie_secure"] is True
    assert probe["session_cookie_httponly"] is True


def test_check_deploy_is_clean_with_production_settings(production):
    env, _ = production
    out = rh.run_python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert "no issues" in out


# --- login brute-force protection (django-axes) ------------------------------------------------


@pytest.fixture
def axes_on(settings):
    # tests/conftest.py turns axes off for every other test.
    settings.AXES_ENABLED = True
    settings.PASSWORD_HASHERS = FAST_HASHER


def _attempt(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_sixth_attempt_with_the_right_password_is_refused_after_five_failures(axes_on, client):
    user = factories.rep(username="target")
    statuses = [_attempt(client, "target", "wrong-guess").status_code for _ in range(5)]
    # The fifth failure already answers with the lockout page.
    assert statuses == [200, 200, 200, 200, 429]
    response = _attempt(client, "target", factories.DEFAULT_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert SESSION_KEY not in client.session
    user.refresh_from_db()
    assert user.last_login is None


def test_four_failures_still_let_the_right_password_in(axes_on, client):
    factories.rep(username="forgetful")
    for _ in range(4):
        _attempt(client, "forgetful", "wrong-guess")
    response = _attempt(client, "forgetful", factories.DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert SESSION_KEY in client.session


def test_lockout_of_one_username_does_not_lock_out_colleagues_on_the_same_network(axes_on, client):
    factories.rep(username="target")
    factories.rep(username="colleague")
    for _ in range(5):
        _attempt(client, "target", "wrong-guess")
    response = _attempt(client, "colleague", factories.DEFAULT_PASSWORD)
    assert response.status_code == 302


# --- behind a reverse proxy: whose address counts ---------------------------------------------

PROXY = "10.0.0.5"


def _attempt_via(client, username, password, *, remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_behind_a_trusted_proxy_a_lockout_is_per_forwarded_client(axes_on, settings, client):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    factories.rep(username="admin2")
    for _ in range(5):
        _attempt_via(client, "admin2", "wrong-guess", remote=PROXY, forwarded="203.0.113.9")
    locked = _attempt_via(
        client, "admin2", factories.DEFAULT_PASSWORD, remote=PROXY, forwarded="203.0.113.9"
    )
    assert locked.status_code == 429
    # The real admin, through the same proxy from another address, still gets in.
    response = _attempt_via(
        client, "admin2", factories.DEFAULT_PASSWORD, remote=PROXY, forwarded="198.51.100.7"
    )
    assert response.status_code == 302


def test_a_forwarded_address_from_an_untrusted_peer_is_ignored(axes_on, settings, client):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    factories.rep(username="target")
    for index in range(5):
        # Spoofing a new X-Forwarded-For on each try does not escape the lockout.
        _attempt_via(client, "target", "wrong", remote="192.0.2.1", forwarded=f"1.2.3.{index}")
    response = _attempt_via(
        client, "target", factories.DEFAULT_PASSWORD, remote="192.0.2.1", forwarded="1.2.3.99"
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # not from a proxy: header ignored
        (PROXY, "203.0.113.9", "203.0.113.9"),
        (PROXY, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # the client wrote the left part
        (PROXY, "203.0.113.9, 10.0.0.7", "203.0.113.9"),  # two proxies of ours
        (PROXY, "", PROXY),
        (PROXY, "not-an-address", PROXY),
    ],
)
def test_client_ip_trusts_the_forwarded_address_only_from_a_configured_proxy(
    settings, rf, remote, forwarded, expected
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_without_configured_proxies_the_peer_address_counts(settings, rf):
    settings.TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(request) == PROXY


def test_a_nul_character_in_the_query_string_is_refused_with_a_message(client, db):
    from tests import factories

    client.force_login(factories.rep())
    response = client.get("/contacts/search/", {"q": "a\x00b"})
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
    assert response.headers["X-Content-Type-Options"] == "nosniff"
