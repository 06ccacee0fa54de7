"""Settings for the CRM, configured from the environment.

Development defaults (DEBUG on, SQLite file in the project) make `make run` work on a
fresh machine; production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY and DJANGO_ALLOWED_HOSTS.
"""

import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DJANGO_DEBUG", True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_filters",
    "adminsortable2",
    "axes",
    "pipelines",
    "opportunities",
    "imports_log",
    "django_tasks_db",
    "integrations",
    "automation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads the body (the CSRF check does): oversized uploads get 413.
    "crm.request_limits.RequestBodyLimitMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # After the headers' middleware, so its 400 carries them too.
    "crm.query_guard.NulQueryGuardMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so that lockouts apply after authentication has been attempted.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

# SQLite is the embedded default; DATABASE_URL (e.g. postgres://...) switches to PostgreSQL.
_sqlite_path = os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{_sqlite_path}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The same backend with this process's writers queued in Python (crm/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "crm.sqlite"
    # Django's default test database for SQLite, said out loud: pytest-django recognises
    # only the stock ENGINE and would otherwise give each xdist worker a file beside NAME.
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers proceed while one writer commits; IMMEDIATE avoids
        # "database is locked" upgrades when two gunicorn workers write at once.
        # A checkpoint runs inside the commit that fills the WAL, under the one write
        # lock; every 10,000 pages (about 40 MB) instead of 1,000 it copies each hot
        # index page once where it copied it ten times: a drag holds the lock 0.54-0.56
        # ms instead of 0.62-0.69 ms (10,000 deals, in process).
        # Temporary files in memory: an UPDATE inside a transaction keeps the pages it
        # changes in a statement journal, which SQLite spills to a file in /var/tmp past
        # 64 KB. A drag's UPDATE touches ten indexes and spilled every time (an open, an
        # unlink and about ten writes): 8-9% of a drag with the page cache cold.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
            " PRAGMA wal_autocheckpoint=10000; PRAGMA temp_store=MEMORY;"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0 if DEBUG else 60

# Lets parallel test runs on one PostgreSQL server use distinct test databases.
if os.environ.get("DJANGO_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DJANGO_TEST_DB_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Request bodies (crm/request_limits.py): refused from their Content-Length, unread, when
# over the limit of their page; Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) elsewhere.
IMPORT_MAX_FILE_BYTES = 5 * 1024 * 1024
# The file plus the form's other fields and the multipart framing.
REQUEST_BODY_LIMITS = {"opportunities:import": IMPORT_MAX_FILE_BYTES + 64 * 1024}
ANONYMOUS_BODY_LIMIT = 64 * 1024
# Everything accepted fits in memory: an upload never goes to a temporary file.
FILE_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_FILE_BYTES + 64 * 1024

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Third-party browser code comes from npm (package-lock.json), never copied into the repo.
    ("vendor/htmx", BASE_DIR / "node_modules/htmx.org/dist"),
    ("vendor/sortablejs", BASE_DIR / "node_modules/sortablejs"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if env_bool("DJANGO_PLAIN_STATIC", DEBUG)
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_KEEP_ONLY_HASHED_FILES = False

# Strict CSP: only our own scripts and styles, nonces for the few inline script tags.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# An open board polls every few seconds (opportunities/views/live.py). Reading sessions
# through a per-process cache keeps that poll at two queries (user + board fingerprint);
# writes still go to the database, so every gunicorn worker can serve every session. A
# worker's cache does not hear about sign-outs handled by another worker, so crm.sessions
# keeps a cached session at most SESSION_CACHE_SECONDS: a sign-out holds on every worker
# within a minute (Django's cached_db alone kept it for the session's whole life). Password
# changes and deactivation hold at once: the user row is read on every request.
SESSION_ENGINE = "crm.sessions"
SESSION_CACHE_ALIAS = "sessions"
SESSION_CACHE_SECONDS = int(os.environ.get("DJANGO_SESSION_CACHE_SECONDS", "60"))
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "sessions",
        "TIMEOUT": SESSION_CACHE_SECONDS,
    },
}
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Brute-force protection on the login form (django-axes): 5 failures lock the
# username+IP pair for an hour.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 1
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env_bool("AXES_ENABLED", True)
# Behind a reverse proxy: its addresses or networks (comma-separated). X-Forwarded-For is
# trusted only on requests from them (crm/client_ip.py); otherwise every client would
# count as the proxy, and anyone could lock out any username for everyone.
TRUSTED_PROXIES = [
    proxy.strip()
    for proxy in os.environ.get("DJANGO_TRUSTED_PROXIES", "").split(",")
    if proxy.strip()
]
AXES_CLIENT_IP_CALLABLE = "crm.client_ip.client_ip"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "WARNING")},
}

# The event log (opportunities.events): how long events are kept before pruning.
EVENT_RETENTION_DAYS = int(os.environ.get("EVENT_RETENTION_DAYS", "30"))

# Background work (Django tasks, stored in the database: no extra server). `make run`
# starts `db_worker` and the event pump beside gunicorn; see README "Worker".
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Consumers of the event log, each `consume(events) -> None`, fed by `manage.py pump_events`
# in order, each with its own cursor advanced in the same transaction as its work.
EVENT_CONSUMERS = ["integrations.webhooks.consume", "automation.engine.consume"]
# (dotted path of a function, interval in seconds): started by the pump on the worker.
PERIODIC_JOBS = [
    ("integrations.jobs.prune_events", 24 * 3600),
    ("integrations.webhooks.sweep", 60),
    ("automation.engine.stale_check", 15 * 60),
    ("opportunities.jobs.purge_trash", 3600),
    ("automation.engine.prune_caused_events", 24 * 3600),
]
# REST API (/api/v1/): requests per token per window, as HighLevel (100 per 10 s).
API_RATE_LIMIT = (int(os.environ.get("API_RATE_LIMIT", "100")), 10)
# Webhooks to private, loopback and link-local addresses are refused unless this is on
# (for local testing against a receiver on 127.0.0.1).
WEBHOOKS_ALLOW_PRIVATE = env_bool("WEBHOOKS_ALLOW_PRIVATE", False)
WEBHOOKS_TIMEOUT = 10
# The first retry waits this long (seconds), each next one twice as long.
WEBHOOKS_FIRST_RETRY = float(os.environ.get("WEBHOOKS_FIRST_RETRY", "10"))
# Retries back off exponentially for about a day; an endpoint failing that long is disabled.
WEBHOOKS_RETRY_FOR = 24 * 3600
WEBHOOKS_DISABLE_AFTER = 24 * 3600

# E-mail (notifications, e-mails to contacts) through Django 6.1's mailers. Development
# prints mails on the console; EMAIL_HOST (or DJANGO_DEBUG=0) switches to SMTP.
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Pipeline CRM <crm@localhost>")
_email_host = os.environ.get("EMAIL_HOST", "")
if _email_host or not DEBUG:
    _smtp = {
        "host": _email_host or "localhost",
        "username": os.environ.get("EMAIL_HOST_USER", ""),
        "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "use_ssl": env_bool("EMAIL_USE_SSL", False),
        "timeout": 10,
    }
    if os.environ.get("EMAIL_PORT"):
        _smtp["port"] = int(os.environ["EMAIL_PORT"])
    MAILERS = {
        "default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": _smtp}
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
# Deals in the trash can be restored for this long, then a periodic job purges them.
TRASH_RETENTION_DAYS = int(os.environ.get("TRASH_RETENTION_DAYS", "30"))
